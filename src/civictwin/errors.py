"""The exceptions civictwin raises for problems a user can fix.

Every error carries one user-facing line naming the file/field and the problem; the CLI prints that
line and exits non-zero, and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class CivicTwinError(Exception):
    """Base class: a problem with the user's input or environment, explained in one line."""

    exit_code = 1

    def __init__(self, message: str, *, path: Path | str | None = None, field: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.field = field
        super().__init__(self.user_message())

    def user_message(self) -> str:
        """The one line shown to the user: ``file: field: problem``."""
        where = [p for p in (self.path, self.field) if p]
        return ": ".join([*where, self.message])


class ConfigError(CivicTwinError):
    """``twin.toml`` (or another configuration file) is missing, malformed or invalid."""

    exit_code = 2


class SourceError(CivicTwinError):
    """A source file cannot be read or does not hold what its kind requires."""


class AreaError(CivicTwinError):
    """The area of interest is invalid or intersects none of the data."""


class StoreError(CivicTwinError):
    """The twin's store is missing, locked, corrupt or lacks a requested table."""


class StoreUnavailable(StoreError):
    """The store's database cannot be reached now (down, restarting, refusing connections): worth retrying."""


class ExportError(CivicTwinError):
    """A layer cannot be exported in the requested format."""


class ScenarioError(CivicTwinError):
    """A scenario file is invalid, a selection matches nothing, or an intervention disconnects zones."""


class EngineError(CivicTwinError):
    """A simulation engine (SUMO) failed; the message names the step and quotes the engine's own error."""


class QualityCheckFailed(EngineError):
    """A simulation ran but is too broken to report on (too many teleports or trips not arrived)."""


class UploadError(CivicTwinError):
    """A photo or an answer from the field is not what it claims to be, too large, or unsafe."""


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut (a value quoted in an error)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(exc: BaseException, *, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters (a library's message quoted in
    a one-line error), or the exception's class name when it has no message."""
    text = str(exc).strip()
    return shorten(text.splitlines()[0], limit) if text else type(exc).__name__
