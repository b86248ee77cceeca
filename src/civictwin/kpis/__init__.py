"""Indicators from engine outputs, and their aggregation over seeds into means with 95% intervals."""
