"""Ensemble statistics for any engine's KPIs and tables: means with 95% intervals, differences in words."""
