"""The twin's HTTP API: OGC API – Features, vector tiles, scenarios and the web viewer, behind access control.

:func:`civictwin.api.app.create_app` builds the FastAPI application over one twin; ``civictwin serve``
runs it with uvicorn.
"""
