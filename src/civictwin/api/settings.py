"""Server settings: where to listen, the limits that protect the server, and how it sits in a network.

:class:`ServerSettings` defaults suit a library caller (tests, notebooks): any ``Host`` is accepted.
``civictwin serve`` builds its settings from the ``[server]`` and ``[audit]`` sections of
``twin.toml`` (:meth:`ServerSettings.from_config`), whose defaults trust only loopback host names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from civictwin.config import AuditSection, ServerSection
from civictwin.governance.audit import ClientAddresses
from civictwin.governance.chain import RotationPolicy


@dataclass(frozen=True)
class ServerSettings:
    """Tunable limits and network behaviour of the API server."""

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
    public_url: str | None = None
    """The base URL clients reach the API at; absolute links are built from it (else from ``Host``)."""
    trusted_hosts: tuple[str, ...] = ("*",)
    """``Host`` header values accepted (``*``: any); others get 400."""
    forwarded_allow_ips: tuple[str, ...] = ()
    """Proxies (addresses or networks) whose ``X-Forwarded-For``/``-Proto`` headers are believed."""
    cors_origins: tuple[str, ...] = ()
    """Web origins allowed to call the API from a browser (CORS); none by default."""
    frame_ancestors: tuple[str, ...] = ("'self'",)
    """Who may embed the pages in a frame (CSP ``frame-ancestors`` sources)."""
    hsts_max_age_s: int = 31_536_000
    """``Strict-Transport-Security`` max-age sent over HTTPS (0: no HSTS)."""
    tls_certificate: Path | None = None
    tls_private_key: Path | None = None
    shutdown_timeout_s: float = 10.0
    """How long a stopping server lets in-flight requests finish before cancelling them (seconds)."""
    metrics_public: bool = False
    """Whether ``/metrics`` is readable without an admin token."""
    audit_rotation: RotationPolicy = field(default_factory=RotationPolicy)
    client_addresses: ClientAddresses = ClientAddresses.TRUNCATED
    """How client addresses are written to the audit and security logs."""
    workers: int = 1
    """Processes serving the twin; above 1 their rate buckets and failure counts are shared through
    ``<store>.limits.sqlite`` and each audit line names the worker (process id) that wrote it."""
    shared_limits: Literal["host", "database"] = "host"
    """Where rate buckets and failure bursts are counted: in memory or ``<store>.limits.sqlite`` for the
    workers of one server ("host"), or in the twin's PostGIS database for every replica ("database")."""
    tokens: Literal["file", "database"] = "file"
    """Where API tokens are kept: ``<store>.tokens.json`` ("file"), or the schema ``civictwin_tokens``
    of a PostGIS twin's database for replicas on several hosts ("database")."""
    limits_key: bytes = field(default=b"", repr=False)
    """Key of the keyed hash under which the shared limits file records clients (so no IP address is
    written there): drawn at random by the supervisor at each start and handed to its workers, never
    written anywhere."""

    @classmethod
    def from_config(
        cls, server: ServerSection, audit: AuditSection, *, base_dir: Path, **overrides: Any
    ) -> ServerSettings:
        """Settings from the ``[server]`` and ``[audit]`` sections (paths relative to ``base_dir``)."""

        def resolved(path: str | None) -> Path | None:
            return None if path is None else (base_dir / Path(path).expanduser())

        settings = cls(
            public_url=server.public_url,
            trusted_hosts=tuple(server.trusted_hosts),
            forwarded_allow_ips=tuple(server.forwarded_allow_ips),
            cors_origins=tuple(server.cors_origins),
            frame_ancestors=tuple(server.frame_ancestors),
            hsts_max_age_s=server.hsts_max_age_s,
            tls_certificate=resolved(server.tls_certificate),
            tls_private_key=resolved(server.tls_private_key),
            shutdown_timeout_s=server.shutdown_timeout_s,
            metrics_public=server.metrics_public,
            shared_limits=server.shared_limits,
            tokens=server.tokens,
            audit_rotation=RotationPolicy(
                max_bytes=int(audit.max_megabytes * 1_048_576),
                max_age_s=audit.rotate_after_hours * 3_600,
                retention_days=audit.retention_days,
            ),
            client_addresses=ClientAddresses(audit.client_addresses),
        )
        return replace(settings, **overrides)

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS itself."""
        return self.tls_certificate is not None
