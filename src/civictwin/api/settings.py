"""Server settings: where to listen and the limits that protect the server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """Tunable limits of the API server (defaults suit one city twin on a small machine)."""

    host: str = "127.0.0.1"
    port: int = 8000
    default_limit: int = 10
    """Features per page when the client gives no ``limit``."""
    max_limit: int = 10_000
    """Largest page; a larger ``limit`` is capped to it (OGC API – Features, /req/core/fc-limit-response)."""
    rate_per_second: float = 300.0
    """Sustained requests per second allowed per client (token id, or IP address when anonymous)."""
    rate_burst: int = 1_000
    """Requests a client may send at once before the sustained rate applies (a map view loads ~100 tiles)."""
    max_body_bytes: int = 1_048_576
    """Largest request body accepted (413 beyond)."""
    max_url_bytes: int = 8_192
    """Longest path plus query string accepted (414 beyond)."""
    tile_cache_bytes: int = 64 * 1_048_576
    """Memory for rendered tiles (least recently used tiles are dropped first)."""
