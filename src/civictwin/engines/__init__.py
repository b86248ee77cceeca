"""Simulation engines: each prepares inputs from the model and a scenario, runs one seed in its own
process, and reads the outputs into tidy tables (see :mod:`civictwin.engines.base`)."""
