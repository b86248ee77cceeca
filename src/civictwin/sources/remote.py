"""HTTP for sources read from a data platform's API: credentials from the environment, paging, validators.

Every request goes through :func:`fetch_page`, which turns each way a server can fail (unreachable,
HTTP 401/403/5xx, a body that is not what was asked for) into one :class:`SourceError` line naming
the source and the page, and keeps the page's validators (``ETag``, ``Last-Modified``) so that a
later ``civictwin refresh`` can ask with ``If-None-Match``/``If-Modified-Since`` whether it changed.

A :class:`Snapshot` records one complete read of a source as the build stored it (see
:mod:`civictwin.sources.platform`). Credentials never leave the process's environment: the config
names environment variables (``token_env``, or ``username_env``/``password_env``); their values go
only into request headers, never into a message, the twin, its catalogue, lineage or a log (httpx
logs URLs, not headers, and drops ``Authorization`` on a redirect to another host).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from civictwin.config import SensorSourceConfig, SourceConfig
from civictwin.errors import SourceError, first_line

PAGE_SIZE = 1000
"""Features asked for per request when the source sets no ``page_size``."""
MAX_PAGES = 100_000
"""A server whose next links never end is refused after this many pages."""
TIMEOUT_S = 60.0
"""Seconds to wait for a server to connect or send a page."""


@dataclass(frozen=True)
class Page:
    """One response body as the server sent it, with its validators (``None`` when not sent)."""

    number: int
    url: str
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None

    def validators(self) -> dict[str, str | None]:
        """What lineage keeps of the page to ask later whether it changed."""
        return {"url": self.url, "etag": self.etag, "last_modified": self.last_modified}


@dataclass(frozen=True)
class Snapshot:
    """What one complete read of a remote source gave: the stored file and how it was retrieved."""

    source: str
    path: Path
    url: str
    retrieved_at: str
    """ISO 8601 UTC time the first page was asked for."""
    sha256: str
    """SHA-256 of the snapshot file."""
    features: int
    pages: list[dict[str, str | None]]
    """Each page's ``url``, ``etag`` and ``last_modified`` (None where the server sent none)."""

    def lineage(self) -> dict[str, Any]:
        """The snapshot's part of the table's lineage parameters (no credentials: there are none here)."""
        return {
            "url": self.url, "snapshot": str(self.path), "retrieved_at": self.retrieved_at,
            "sha256": self.sha256, "features": self.features, "pages": self.pages,
            "etag": self.pages[0]["etag"] if self.pages else None,
            "last_modified": self.pages[0]["last_modified"] if self.pages else None,
        }  # fmt: skip

    @classmethod
    def from_lineage(cls, source: str, parameters: dict[str, Any]) -> Snapshot | None:
        """The snapshot an earlier build recorded, or None when lineage holds none or its file is gone."""
        found = parameters.get("remote")
        if not isinstance(found, dict) or not Path(str(found.get("snapshot"))).is_file():
            return None
        return cls(
            source=source, path=Path(found["snapshot"]), url=str(found["url"]),
            retrieved_at=str(found["retrieved_at"]), sha256=str(found["sha256"]),
            features=int(found["features"]), pages=list(found["pages"]),
        )  # fmt: skip


NextUrl = Callable[[Page], str | None]
"""The next page's URL from a page, or None when it was the last."""


def where(source: SourceConfig | SensorSourceConfig) -> str:
    """How errors name a remote source: its name and kind (or, for ``[[sensors]]``, format)."""
    if isinstance(source, SensorSourceConfig):
        return f"sensors '{source.name}' ({source.format.value})"
    return f"source '{source.name}' ({source.kind.value})"


def open_client(source: SourceConfig | SensorSourceConfig, *, accept: str) -> httpx.Client:
    """An HTTP client with the source's credentials (read from the environment now) and ``accept``."""
    headers = {"Accept": accept, "User-Agent": "civictwin"}
    auth: httpx.Auth | None = None
    if source.token_env is not None:
        headers["Authorization"] = f"Bearer {_secret(source, source.token_env, 'token_env')}"
    if source.username_env is not None and source.password_env is not None:
        auth = httpx.BasicAuth(
            _secret(source, source.username_env, "username_env"),
            _secret(source, source.password_env, "password_env"),
        )
    return httpx.Client(headers=headers, auth=auth, timeout=TIMEOUT_S, follow_redirects=True)


def _secret(source: SourceConfig | SensorSourceConfig, variable: str, key: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise SourceError(f"environment variable {variable} ({key}) is not set or empty", path=where(source))
    return value


def fetch_page(
    client: httpx.Client,
    url: str,
    *,
    label: str,
    number: int,
    previous: dict[str, str | None] | None = None,
) -> Page | None:
    """GET one page; None when ``previous`` validators were given and the server says 304 Not Modified.

    ``label`` names the source in error messages; ``number`` is the page's position (1 = first).
    """
    headers = _conditional_headers(previous) if previous else {}
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise SourceError(
            f"page {number} ({url}): server unreachable: {first_line(exc)}", path=label
        ) from None
    if response.status_code == 304 and previous:
        return None
    if response.status_code in (401, 403):
        raise SourceError(
            f"page {number} ({url}): HTTP {response.status_code} {response.reason_phrase}: the credentials "
            "(token_env or username_env/password_env) were refused",
            path=label,
        )
    if response.status_code >= 400:
        said = _exception_text(response)
        raise SourceError(
            f"page {number} ({url}): HTTP {response.status_code} {response.reason_phrase}"
            + (f": {said}" if said else ""),
            path=label,
        )
    return Page(
        number=number,
        url=str(response.url),
        body=response.content,
        content_type=response.headers.get("content-type", ""),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )


def follow_pages(client: httpx.Client, first_url: str, next_url: NextUrl, *, label: str) -> Iterator[Page]:
    """Every page from ``first_url`` on, asking ``next_url`` for each following one."""
    url: str | None = first_url
    for number in range(1, MAX_PAGES + 1):
        if url is None:
            return
        page = fetch_page(client, url, label=label, number=number)
        assert page is not None  # unconditional requests never answer 304
        yield page
        url = next_url(page)
    raise SourceError(f"more than {MAX_PAGES} pages: the server's next links do not end", path=label)


def unchanged(client: httpx.Client, pages: list[dict[str, str | None]], *, label: str) -> bool | None:
    """Ask for each earlier page with its validators: True if every one is 304 Not Modified.

    None when some page had no validator (the server sent neither ETag nor Last-Modified), so only
    fetching again and comparing checksums can tell.
    """
    if not pages or any(not (p.get("etag") or p.get("last_modified")) for p in pages):
        return None
    for number, previous in enumerate(pages, start=1):
        if (
            fetch_page(client, str(previous["url"]), label=label, number=number, previous=previous)
            is not None
        ):
            return False
    return True


def _exception_text(response: httpx.Response) -> str:
    """The text of an OGC ``ows:ExceptionReport`` body (what a WFS says went wrong), else empty."""
    if "xml" not in response.headers.get("content-type", ""):
        return ""
    try:
        root = etree.fromstring(response.content)
    except etree.XMLSyntaxError:
        return ""
    texts = [
        " ".join(e.itertext()).strip() for e in root.iter() if etree.QName(e).localname == "ExceptionText"
    ]
    return " ".join(" ".join(texts).split())[:300]


def _conditional_headers(previous: dict[str, str | None]) -> dict[str, str]:
    headers = {}
    if previous.get("etag"):
        headers["If-None-Match"] = str(previous["etag"])
    if previous.get("last_modified"):
        headers["If-Modified-Since"] = str(previous["last_modified"])
    return headers
