"""Zip archives from outside (ODK Central's "with media" export) unpacked without trusting them.

A zip's directory says how large each member is; a zip bomb says little and inflates to gigabytes,
or hides ``../`` in a name to write outside the target. :func:`safe_extract` refuses, before
writing anything, an archive with too many members, members whose names leave the target, more
than :data:`MAX_UNZIPPED_BYTES` in all, or a member inflating more than :data:`MAX_RATIO` times;
then it copies each member in chunks, stopping at the size the directory declared.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from civictwin.errors import SourceError

MAX_ENTRIES = 20_000
"""Most members accepted (an export of a few thousand submissions with a photo or two each)."""
MAX_UNZIPPED_BYTES = 4 * 2**30
"""Largest total size once unpacked (4 GiB: a thousand submissions with a few phone photos each)."""
MAX_RATIO = 200
"""Largest compression ratio accepted for a member over 1 MiB; CSV text compresses about 5–20×,
JPEG photos barely at all, while zip bombs reach 1,000× and more."""
_RATIO_FROM_BYTES = 2**20
_CHUNK = 2**20


def safe_extract(archive: Path, target: Path, *, keep: tuple[str, ...] = ()) -> list[Path]:
    """Unpack ``archive`` into ``target`` after checking it; returns the files written.

    ``keep``: name suffixes (``.csv``) or folder prefixes (``media/``) of the members wanted; every
    member when empty.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir() and _wanted(m.filename, keep)]
            _check(zipped.infolist(), archive)
            return [_copy(zipped, member, target, archive) for member in members]
    except zipfile.BadZipFile as exc:
        raise SourceError(f"not a readable zip archive ({exc})", path=archive) from None


def _wanted(name: str, keep: tuple[str, ...]) -> bool:
    return not keep or any(name.startswith(k) if k.endswith("/") else name.lower().endswith(k) for k in keep)


def _check(members: list[zipfile.ZipInfo], archive: Path) -> None:
    if len(members) > MAX_ENTRIES:
        raise SourceError(f"{len(members)} members; at most {MAX_ENTRIES:,} are accepted", path=archive)
    total = 0
    for member in members:
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise SourceError(f"member '{member.filename}' would be written outside the folder", path=archive)
        total += member.file_size
        if member.file_size > _RATIO_FROM_BYTES and member.file_size > MAX_RATIO * max(
            member.compress_size, 1
        ):
            ratio = member.file_size / max(member.compress_size, 1)
            raise SourceError(
                f"member '{member.filename}' inflates {ratio:,.0f}× (at most {MAX_RATIO}×): refused as a zip bomb",
                path=archive,
            )
    if total > MAX_UNZIPPED_BYTES:
        raise SourceError(
            f"{total / 2**30:,.1f} GiB once unpacked; at most {MAX_UNZIPPED_BYTES / 2**30:.0f} GiB: "
            "refused as a zip bomb",
            path=archive,
        )


def _copy(zipped: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, archive: Path) -> Path:
    """One member copied in chunks, never past the size the archive's directory declared."""
    destination = target.joinpath(*PurePosixPath(member.filename.replace("\\", "/")).parts)
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zipped.open(member) as source, destination.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > member.file_size:
                raise SourceError(f"member '{member.filename}' is larger than its header says", path=archive)
            out.write(chunk)
    return destination
