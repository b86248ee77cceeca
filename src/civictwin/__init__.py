"""civictwin: turn a city's open data into one governed, queryable twin."""

__version__ = "0.1.0"
