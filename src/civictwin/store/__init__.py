"""The only place that talks SQL to a database: the twin's store (DuckDB, or PostGIS), the stores
written while a twin is served (observations, alerts, contributions, proposals, tokens), feature
pages and vector tiles.

:mod:`civictwin.store.opening` opens a twin's store, :mod:`civictwin.store.observations` its
observation store; nothing outside this package names a backend.
"""
