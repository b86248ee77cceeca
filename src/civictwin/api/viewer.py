"""The web viewer: serves the bundle that ``web/`` builds (``npm ci && npm run build``) at ``/viewer/``.

The bundle lives in ``civictwin/api/static/`` (git-ignored, produced by npm) and holds everything the
page needs — our code, MapLibre GL and its worker — so the viewer works offline. The page talks to the
API at the server root (tiles, OGC API Features, comparisons). A content security policy restricts it
to this server, which both protects users and proves that nothing is fetched from elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from civictwin.api.problems import problem_response

STATIC_DIR = Path(__file__).parent / "static"
BUILD_HINT = "cd web && npm ci && npm run build"

_ASSET = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # frame-ancestors is appended from [server] frame_ancestors (civictwin.api.hardening)
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def viewer_built(static_dir: Path = STATIC_DIR) -> bool:
    """Whether the bundle has been built (its page, script and MapLibre worker are all there)."""
    return all((static_dir / name).is_file() for name in ("index.html", "app.js", "maplibre-gl-worker.mjs"))


def viewer_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """Routes ``/viewer`` (redirect), ``/viewer/`` (the page) and ``/viewer/{asset}`` (bundle files)."""
    router = APIRouter(tags=["viewer"])

    def serve(name: str) -> Response:
        if not viewer_built(static_dir):
            return problem_response(503, f"the web viewer has not been built; run `{BUILD_HINT}`")
        path = static_dir / name
        if not _ASSET.match(name) or not path.is_file() or path.suffix not in _MEDIA_TYPES:
            return problem_response(404, f"no viewer file '{name[:80]}'")
        return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_HEADERS)

    @router.get("/viewer", include_in_schema=False)
    def viewer_redirect() -> RedirectResponse:
        return RedirectResponse("viewer/", status_code=308)

    @router.get("/viewer/", include_in_schema=False)
    def viewer_page() -> Response:
        return serve("index.html")

    @router.get("/viewer/{asset}", include_in_schema=False)
    def viewer_asset(asset: str) -> Response:
        return serve(asset)

    return router
