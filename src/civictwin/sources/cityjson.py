"""CityJSON sources: CityJSON 1.1 and 2.0 files and CityJSONSeq (``.jsonl``) streams, read without loading them.

A CityJSON file keeps one vertex list for the whole model, before or after the city objects. The
file is memory-mapped and scanned structurally with numpy, a few MiB at a time: quotes (less the
escaped ones) mark strings, brackets outside strings give each byte's nesting depth, so the root's
members and each city object are found as byte ranges without parsing what lies between. The file
is scanned once: pass 1 finds the root's members and writes where each city object starts and ends
to a temporary file, parses the vertex list's integers straight from its bytes (vectorised, checked
to be ``[x, y, z]`` triples) into another (both memory-mapped, never beside the user's data) and the
small header members with ``json``; pass 2 parses the city objects one at a time from their own
bytes, cut out at the offsets pass 1 kept (the vertices may come after the objects, so they cannot
be read in pass 1).
A CityJSONSeq stream is read line by line: a header line, then one ``CityJSONFeature`` per line
with its own vertices. Buildings and their parts become :class:`~civictwin.sources.city3d.CityBuilding`
objects; other city objects (roads, vegetation, ...) are counted and skipped.

Broken files stop with one line naming the file and the object: an unsupported version, no
``transform``, a vertex index outside the vertex list, a geometry that is not nested as its type
requires, a part whose parent is missing, a string (an attribute) holding a lone surrogate escape.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import mmap
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import numpy as np
import numpy.typing as npt

from civictwin.config import SourceConfig
from civictwin.errors import SourceError, first_line
from civictwin.sources.base import BuildContext, IngestResult
from civictwin.sources.city3d import CityBuilding, ModelCRS, SurfaceBlock, ingest_buildings, resolve_crs

SUPPORTED_VERSIONS = ("1.1", "2.0")
BUILDING_TYPES = frozenset({"Building"})
PART_TYPES = frozenset({"BuildingPart"})
_SEQ_PROBE_BYTES = 1 << 20
_SCAN_CHUNK = 1 << 20
"""Bytes scanned per vectorised step (1 MiB; its index arrays take a few times that), whatever the file's size."""


def ingest(source: SourceConfig, ctx: BuildContext) -> IngestResult:
    """Read a CityJSON file or CityJSONSeq stream into the twin's city-model tables."""
    path = ctx.path_of(source)
    _check_file(path)
    skipped: Counter[str] = Counter()
    if _is_sequence(path):
        header = _sequence_header(path)
        crs = _crs(header, source, path)
        buildings: Iterator[CityBuilding] = _sequence_buildings(path, header, skipped)
        result = ingest_buildings(source, ctx, path, crs, buildings, notes=[])
    else:
        with tempfile.TemporaryDirectory(prefix="civictwin-cityjson-") as folder:
            buf = _map(path)
            header, vertices, objects = _header_and_vertices(path, buf, Path(folder))
            crs = _crs(header, source, path)
            buildings = _file_buildings(path, buf, objects, vertices, skipped)
            result = ingest_buildings(source, ctx, path, crs, buildings, notes=[])
    if skipped:
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped.items()))
        result.layers[0].notes.append(f"city objects that are not buildings were skipped: {listed}")
        result.layers[0].quality["skipped_objects"] = dict(skipped)
    return result


def _map(path: Path) -> mmap.mmap:
    """The file memory-mapped read-only; unmapped when the last array viewing it is gone (not closed here:
    an error's traceback may still hold a chunk's view, and closing under it would hide the error)."""
    with path.open("rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceError("file not found", path=path)
    if path.stat().st_size == 0:
        raise SourceError("file is empty", path=path)


def _is_sequence(path: Path) -> bool:
    """CityJSONSeq: ``.jsonl``, or a first line that is a whole CityJSON header with more lines after it."""
    if path.suffix.lower() == ".jsonl":
        return True
    with path.open("rb") as f:
        probe = f.read(_SEQ_PROBE_BYTES)
    first, newline, rest = probe.partition(b"\n")
    if not newline or not rest.strip():
        return False
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("type") == "CityJSON"


def _check_header(header: dict[str, Any], path: Path) -> dict[str, Any]:
    if header.get("type") != "CityJSON":
        raise SourceError(f"not a CityJSON file (type is {header.get('type')!r})", path=path)
    version = str(header.get("version"))
    if version not in SUPPORTED_VERSIONS:
        raise SourceError(
            f"CityJSON version {version!r} is not supported (versions {', '.join(SUPPORTED_VERSIONS)} are)",
            path=path,
            field="version",
        )
    transform = header.get("transform")
    if (
        not isinstance(transform, dict)
        or not _is_triple(transform.get("scale"))
        or not _is_triple(transform.get("translate"))
    ):
        raise SourceError(
            "no valid 'transform' (CityJSON 1.1 and 2.0 store integer vertices with scale and translate)",
            path=path,
            field="transform",
        )
    return header


def _is_triple(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)


def _crs(header: dict[str, Any], source: SourceConfig, path: Path) -> ModelCRS:
    metadata = header.get("metadata") or {}
    declared = metadata.get("referenceSystem") if isinstance(metadata, dict) else None
    return resolve_crs(str(declared) if declared else None, source.crs, path)


# ------------------------------------------------------------------------------------ CityJSON file


def _header_and_vertices(
    path: Path, buf: mmap.mmap, folder: Path
) -> tuple[dict[str, Any], _VertexView, _Objects]:
    """Pass 1: the header members, every vertex (a memory-mapped integer array) and where each city object is."""
    separators = folder / "objects.i64"
    with separators.open("wb") as out:
        members, count = _scan_root(buf, path, out)
    header: dict[str, Any] = {}
    for key in ("type", "version", "transform", "metadata"):
        if key in members:
            header[key] = _load(buf, members[key], path, key)
    _check_header(header, path)
    raw = folder / "vertices.i64"
    with raw.open("wb") as out:
        vertex_count = _write_vertices(buf, members["vertices"], out, path) if "vertices" in members else 0
    mapped = _map(raw) if vertex_count else None
    integers: npt.NDArray[np.int64] = (
        np.frombuffer(mapped, dtype=np.int64).reshape(vertex_count, 3)
        if mapped is not None
        else np.zeros((0, 3), np.int64)
    )
    span = members.get("CityObjects")
    if span is None:
        raise SourceError("no 'CityObjects'", path=path)
    mapped_separators = _map(separators) if count else None
    events: npt.NDArray[np.int64] = (
        np.frombuffer(mapped_separators, dtype=np.int64).reshape(count, 2)
        if mapped_separators is not None
        else np.zeros((0, 2), np.int64)
    )
    vertices = _VertexView(integers, header["transform"], mapped=mapped)
    return header, vertices, _Objects(span=span, separators=events, mapped=mapped_separators)


@dataclass(frozen=True)
class _Objects:
    """The ``CityObjects`` member: its byte span, and its separators found by pass 1's scan.

    ``separators`` holds (file offset, byte) of each ``:`` after an object's id and each ``,`` or
    ``}`` after its value (memory-mapped from a temporary file: 32 bytes per object, not held in
    memory), so pass 2 cuts the objects out without scanning their bytes again.
    """

    span: _Span
    separators: npt.NDArray[np.int64]
    mapped: mmap.mmap | None
    """The memory map ``separators`` views, whose pages pass 2 hands back as it moves on."""


_DECODER = msgspec.json.Decoder()


def _parse(text: bytes) -> Any:
    """A JSON text as Python values, the same as ``json.loads`` gives, about three times faster.

    msgspec parses it (the same dicts, lists, ints of any size and correctly rounded floats); what
    it refuses (an error, a number beyond a double's range, ``NaN``, a lone surrogate escape) goes
    to ``json.loads``, which accepts what it always did and raises its own ``ValueError`` otherwise.
    A lone surrogate escape (``"\\ud800"``: half of a UTF-16 pair, no character) that ``json.loads``
    lets through is :class:`NotText`: no such text can be stored.
    """
    try:
        return _DECODER.decode(text)
    except msgspec.DecodeError:
        value = json.loads(text)
    place = _lone_surrogate(value, "")
    if place is not None:
        raise NotText(place)
    return value


class NotText(ValueError):
    """A JSON string (or member name) holding a lone surrogate escape; the message names where."""

    def __init__(self, place: str) -> None:
        super().__init__(f"{place or 'a string'}: a lone surrogate escape (half of a UTF-16 pair), not text")


def _lone_surrogate(value: Any, place: str) -> str | None:
    """Where in ``value`` (``attributes.name``, ``children[2]``) the first string or member name holding
    a lone surrogate is (``place`` that of ``value`` itself), or None."""
    if isinstance(value, str):
        return place if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{place}.{_shown(key)}" if place else _shown(key)
            found = here if _has_surrogate(key) else _lone_surrogate(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, f"{place}[{index}]")
            if found is not None:
                return found
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (``json.loads`` joins whole pairs into one
    character, so any left is a lone one)."""
    return _SURROGATE.search(text) is not None


def _shown(name: str) -> str:
    """A member name as an error line shows it: its surrogates escaped (``\\ud800``)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _load(buf: mmap.mmap, span: _Span, path: Path, record: str) -> Any:
    try:
        return _parse(buf[span[0] : span[1]])
    except NotText as exc:
        raise SourceError(f"{record}: {exc}", path=path) from None
    except ValueError as exc:
        raise SourceError(f"{record}: not valid JSON: {first_line(exc)}", path=path) from None


_Span = tuple[int, int]
"""A byte range [start, end) of the file."""

_STEP = np.zeros(256, dtype=np.int64)
_STEP[list(b"{[")] = 1
_STEP[list(b"}]")] = -1
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _structure(
    buf: mmap.mmap, span: _Span, path: Path
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.int64]]]:
    """The structural bytes of the JSON text in ``span`` outside strings, chunk by chunk, vectorised.

    Yields (file offsets, bytes, nesting depth before each byte; 0 outside the outermost value).
    A quote counts unless an odd run of backslashes precedes it; chunks never end on a backslash,
    so a run is always whole inside one chunk.
    """
    inside, depth = 0, 0
    position, end = span
    while position < end:
        stop = min(position + _SCAN_CHUNK, end)
        while stop < end and buf[stop - 1] == _BACKSLASH:
            stop += 1
        data = np.frombuffer(buf, dtype=np.uint8, count=stop - position, offset=position)
        hits = np.flatnonzero(_structural(data))
        chars = data[hits]
        quotes = chars == _QUOTE
        indices = np.flatnonzero(quotes)
        for q in indices[_escaped_candidates(data, hits[indices])].tolist():
            quotes[q] = _backslashes_before(data, int(hits[q])) % 2 == 0
        before = np.cumsum(quotes) - quotes + inside
        outside = (before % 2 == 0) & ~quotes & (chars != _BACKSLASH)
        steps = _STEP[chars[outside]]
        after = depth + np.cumsum(steps)
        if len(after) and after.min() < 0:
            raise SourceError("not valid JSON: a closing bracket without its opening one", path=path)
        yield hits[outside] + position, chars[outside], after - steps
        inside = (inside + int(quotes.sum())) % 2
        depth = int(after[-1]) if len(after) else depth
        _drop_pages(buf, position, stop)
        position = stop
    if inside or depth:
        raise SourceError(
            "not valid JSON: the file ends inside a string, object or list (truncated?)", path=path
        )


def _structural(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which bytes are ``"``, ``\\``, ``,``, ``:`` or a bracket: compared, about three times faster than a
    256-entry lookup table's fancy indexing (``{`` and ``[``, ``}`` and ``]`` differ only in bit 0x20)."""
    folded = data | 0x20
    found: npt.NDArray[np.bool_] = (
        (data == _QUOTE) | (data == _BACKSLASH) | (data == ord(",")) | (data == ord(":"))
        | (folded == ord("{")) | (folded == ord("}"))
    )  # fmt: skip
    return found


def _drop_pages(buf: mmap.mmap, start: int, stop: int) -> None:
    """Let the kernel take back the pages of a scanned range (read again from the page cache if needed),
    so that the process's resident memory does not grow with the file as the scan moves through it."""
    first = start - start % mmap.PAGESIZE
    if stop > first:
        buf.madvise(mmap.MADV_DONTNEED, first, stop - first)


def _escaped_candidates(data: npt.NDArray[np.uint8], quotes: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which quotes follow a backslash (those need their backslash run counted)."""
    candidates = np.zeros(len(quotes), dtype=bool)
    candidates[quotes > 0] = data[quotes[quotes > 0] - 1] == _BACKSLASH
    return candidates


def _backslashes_before(data: npt.NDArray[np.uint8], quote: int) -> int:
    """The length of the run of backslashes right before ``quote`` (odd: the quote is escaped)."""
    run = 0
    while quote - run - 1 >= 0 and data[quote - run - 1] == _BACKSLASH:
        run += 1
    return run


_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[list(b":,}")] = True
_COLON, _COMMA, _CLOSE = ord(":"), ord(","), ord("}")


def _scan_root(buf: mmap.mmap, path: Path, objects_out: BinaryIO) -> tuple[dict[str, _Span], int]:
    """The one structural scan of the file: the byte span of each member's value of the root object.

    On the way, the separators of the ``CityObjects`` member's own members (see :class:`_Objects`) are
    written to ``objects_out`` as int64 (offset, byte) pairs; returns the members and the pairs written.
    """
    members: dict[str, _Span] = {}
    state = _RootState()
    for offsets, chars, depth in _structure(buf, (0, len(buf)), path):
        top = depth == 0
        if top.any():
            if state.key_start >= 0 or int(top.sum()) > 1 or chars[top][0] != ord("{"):
                raise SourceError("not a CityJSON file (not one JSON object)", path=path)
            state.key_start = int(offsets[top][0]) + 1
        separator = _SEPARATOR[chars]
        level = np.flatnonzero((depth == 1) & separator)
        inside = [state.in_objects]
        for offset, char in zip(offsets[level].tolist(), chars[level].tolist(), strict=True):
            if state.step(buf, offset, char, members, path):
                objects_out.seek(0)
                objects_out.truncate()  # a repeated "CityObjects": the last one counts, as in JSON
                state.written = 0
            inside.append(state.in_objects)
        inner = np.flatnonzero((depth == 2) & separator)
        if len(inner):
            wanted = np.asarray(inside)[np.searchsorted(offsets[level], offsets[inner])] & (
                offsets[inner] > state.colon_of_objects
            )
            pairs = np.column_stack([offsets[inner][wanted], chars[inner][wanted].astype(np.int64)])
            objects_out.write(np.ascontiguousarray(pairs, dtype=np.int64).tobytes())
            state.written += len(pairs)
    if state.key_start < 0 or state.last != _CLOSE:
        raise SourceError("not a CityJSON file (not one JSON object)", path=path)
    return members, state.written


@dataclass
class _RootState:
    """Where :func:`_scan_root` is among the root's members: ``key : value ,`` … ``}``."""

    key_start: int = -1
    colon: int = -1
    last: int = -1
    in_objects: bool = False
    colon_of_objects: int = -1
    """Where the (last) ``CityObjects`` value starts: separators before it belong to an earlier one."""
    written: int = 0

    def step(self, buf: mmap.mmap, offset: int, char: int, members: dict[str, _Span], path: Path) -> bool:
        """Take the root's separator ``char`` at ``offset``; True when a ``CityObjects`` value starts."""
        self.last = char
        if char == _COLON and self.colon < 0:
            self.colon = offset
            self.in_objects = _key(buf, self.key_start, offset, path) == "CityObjects"
            if self.in_objects:
                self.colon_of_objects = offset
            return self.in_objects
        if char != _COLON and self.colon >= 0:
            members[_key(buf, self.key_start, self.colon, path)] = (self.colon + 1, offset)
            self.key_start, self.colon, self.in_objects = offset + 1, -1, False
        elif buf[self.key_start : offset].strip():
            raise SourceError("not valid JSON: a member without a value", path=path)
        return False


def _key(buf: mmap.mmap, start: int, colon: int, path: Path) -> str:
    raw = buf[start:colon].strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == _QUOTE and b"\\" not in raw and b'"' not in raw[1:-1]:
        with contextlib.suppress(UnicodeDecodeError):  # the common case: nothing to unescape
            return raw[1:-1].decode("utf-8")
    try:
        key = json.loads(raw)
    except ValueError:
        key = None
    if not isinstance(key, str):
        raise SourceError(f"not valid JSON near byte {start}: a member name that is not a string", path=path)
    return key


def _write_vertices(buf: mmap.mmap, span: _Span, out: BinaryIO, path: Path) -> int:
    """Parse the vertex list (``[[x, y, z], ...]``, integers) chunk by chunk into int64 triples in ``out``."""
    start, end = _strip(buf, span)
    if buf[start : start + 1] != b"[" or buf[end - 1 : end] != b"]":
        raise SourceError("'vertices' is not a list", path=path, field="vertices")
    position, last = start + 1, end - 1
    count = 0
    while position < last:
        stop = min(position + _SCAN_CHUNK, last)
        if stop < last:
            cut = buf.rfind(b"]", position, stop)
            stop = cut + 1 if cut >= 0 else buf.find(b"]", stop, last) + 1 or last
        chunk = np.frombuffer(buf, dtype=np.uint8, count=stop - position, offset=position)
        triples = _vertex_chunk(chunk, first=count == 0, path=path)
        out.write(triples.tobytes())
        count += len(triples)
        _drop_pages(buf, position, stop)
        position = stop
    return count


_VERTEX_CLASS = np.zeros(256, dtype=np.int8)  # 0: not allowed in a list of integer triples
_VERTEX_CLASS[list(b"0123456789")] = 1
_VERTEX_CLASS[ord("-")] = 2
_VERTEX_CLASS[ord(",")] = 3
_VERTEX_CLASS[ord("[")] = 4
_VERTEX_CLASS[ord("]")] = 5
_VERTEX_CLASS[list(b" \t\r\n")] = 6
_POWERS = 10 ** np.arange(19, dtype=np.int64)


def _vertex_chunk(chunk: npt.NDArray[np.uint8], *, first: bool, path: Path) -> npt.NDArray[np.int64]:
    """The (n, 3) integers of whole vertices ``[x,y,z],[x,y,z]`` (with the comma before them unless ``first``)."""
    kind = _VERTEX_CLASS[chunk]
    if not kind.all():
        bad = chr(int(chunk[np.flatnonzero(kind == 0)[0]]))
        raise SourceError(
            f"'vertices' holds {bad!r}: CityJSON 1.1 and 2.0 vertices are integers (scaled by the transform)",
            path=path, field="vertices",
        )  # fmt: skip
    digits = np.flatnonzero(kind == 1)
    new = np.ones(len(digits), dtype=bool)
    new[1:] = digits[1:] != digits[:-1] + 1
    heads = np.flatnonzero(new)
    lengths = np.diff(np.append(heads, len(digits)))
    starts = digits[heads]
    minus = np.flatnonzero(kind == 2)
    signed = minus + 1 < len(kind)  # a minus must start a number: a digit right after it
    if (lengths > 18).any() or not signed.all() or not (kind[minus[signed] + 1] == 1).all():
        raise SourceError(
            "'vertices' holds a number that is not a 64-bit integer", path=path, field="vertices"
        )
    last_digit = (starts + lengths - 1)[np.cumsum(new) - 1]
    values = (
        np.add.reduceat((chunk[digits] - 48).astype(np.int64) * _POWERS[last_digit - digits], heads)
        if len(heads)
        else np.zeros(0, np.int64)
    )
    negative = (starts > 0) & (kind[np.maximum(starts - 1, 0)] == 2)  # not np.isin: it hashes every number
    values[negative] *= -1
    _check_triples(kind, starts, first, path)
    return values.reshape(-1, 3)


def _check_triples(
    kind: npt.NDArray[np.int8], numbers: npt.NDArray[np.int64], first: bool, path: Path
) -> None:
    """Every number inside one ``[x, y, z]``, separated by single commas, vertices separated by one comma."""
    opens, closes, commas = (np.flatnonzero(kind == k) for k in (4, 5, 3))
    n = len(opens)
    shaped = bool(
        len(closes) == n
        and len(numbers) == 3 * n
        and (opens < closes).all()
        and (opens[1:] > closes[:-1]).all()
    )
    if n == 0:
        shaped = shaped and not len(commas)
    elif shaped:
        vertex = np.searchsorted(opens, numbers) - 1
        within = np.searchsorted(opens, commas) - 1
        inner = (within >= 0) & (closes[np.maximum(within, 0)] > commas)
        gaps = np.bincount(within[~inner] + 1, minlength=n + 1)
        expected = np.ones(n + 1, dtype=np.int64)
        expected[0], expected[n] = (0 if first else 1), 0
        shaped = bool(
            (vertex >= 0).all() and (closes[vertex] > numbers).all()
            and (np.bincount(vertex, minlength=n) == 3).all() and int(inner.sum()) == 2 * n
            and (np.bincount(within[inner], minlength=n) == 2).all() and (gaps == expected).all()
        )  # fmt: skip
        if shaped:
            x = numbers.reshape(-1, 3)
            c = commas[inner].reshape(-1, 2)
            shaped = bool(
                ((x[:, 0] < c[:, 0]) & (c[:, 0] < x[:, 1]) & (x[:, 1] < c[:, 1]) & (c[:, 1] < x[:, 2])).all()
            )
    if not shaped:
        raise SourceError(
            "'vertices' is not a list of [x, y, z] integer triples", path=path, field="vertices"
        )


def _strip(buf: mmap.mmap, span: _Span) -> _Span:
    start, end = span
    while start < end and buf[start] in b" \t\r\n":
        start += 1
    while end > start and buf[end - 1] in b" \t\r\n":
        end -= 1
    return start, end


class _VertexView:
    """Integer vertices that read as real coordinates: ``v × scale + translate``.

    ``mapped``: the memory map the integers are a view of (a file's whole vertex list); its pages
    are handed back to the kernel after each lookup (:meth:`take` runs once per batch), so the
    process's resident memory does not grow with the vertex list as the batches touch it (they are
    read again from the page cache when needed).
    """

    def __init__(
        self, integers: npt.NDArray[np.int64], transform: dict[str, Any], *, mapped: mmap.mmap | None = None
    ) -> None:
        self._integers = integers
        self._scale = np.asarray(transform["scale"], dtype=np.float64)
        self._translate = np.asarray(transform["translate"], dtype=np.float64)
        self._mapped = mapped

    def __len__(self) -> int:
        return len(self._integers)

    def take(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        real: npt.NDArray[np.float64] = self._integers[indices] * self._scale + self._translate
        if self._mapped is not None:
            _drop_pages(self._mapped, 0, len(self._mapped))
        return real


_SEPARATORS_PER_STEP = 1 << 13
"""City objects' separators read per step in pass 2 (128 KiB of them, about 4,000 objects); the pages of
the file's objects read are handed back after each step. At 1 << 16 (about 33,000 objects, 25-30 MB of
the file resident between steps) the process's peak was 40 MB higher on a 162 MB file than on a 20 MB
one; at this step, 16 MB."""


def _file_buildings(
    path: Path, buf: mmap.mmap, objects: _Objects, vertices: Any, skipped: Counter[str]
) -> Iterator[CityBuilding]:
    """Pass 2: the city objects one at a time (each parsed from its own bytes), assembled with their parts."""
    assembler = _Assembler(path)
    start, _end = _strip(buf, objects.span)
    if buf[start : start + 1] != b"{":
        raise SourceError("'CityObjects' is not an object", path=path, field="CityObjects")
    key_start, colon, dropped = start + 1, -1, start
    for step in range(0, len(objects.separators), _SEPARATORS_PER_STEP):
        for offset, char in objects.separators[step : step + _SEPARATORS_PER_STEP].tolist():
            if char == _COLON and colon < 0:
                colon = offset
            elif char in (_COMMA, _CLOSE) and colon >= 0:
                object_id = _key(buf, key_start, colon, path)
                record = f"CityObjects[{object_id!r}]"
                obj = _load(buf, (colon + 1, offset), path, record)
                yield from assembler.add(object_id, obj, vertices, record, skipped)
                key_start, colon = offset + 1, -1
        _drop_pages(buf, dropped, key_start)
        dropped = key_start
        if objects.mapped is not None:
            _drop_pages(objects.mapped, 0, min(len(objects.mapped), (step + _SEPARATORS_PER_STEP) * 16))
    yield from assembler.finish()


# ---------------------------------------------------------------------------------- CityJSONSeq


def _sequence_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        line = f.readline(_SEQ_PROBE_BYTES)
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise SourceError(f"line 1: not a CityJSON header: {first_line(exc)}", path=path) from None
    if not isinstance(header, dict):
        raise SourceError("line 1: not a CityJSON header", path=path)
    return _check_header(header, path)


def _sequence_buildings(path: Path, header: dict[str, Any], skipped: Counter[str]) -> Iterator[CityBuilding]:
    transform = header["transform"]
    with path.open("rb") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            try:
                feature = _parse(line)
            except NotText as exc:
                raise SourceError(f"line {number}: {exc}", path=path) from None
            except ValueError as exc:
                raise SourceError(f"line {number}: not valid JSON: {first_line(exc)}", path=path) from None
            if not isinstance(feature, dict) or feature.get("type") != "CityJSONFeature":
                raise SourceError(f"line {number}: not a CityJSONFeature", path=path)
            raw = feature.get("vertices")
            try:
                integers = np.asarray(raw if raw else np.zeros((0, 3)), dtype=np.int64).reshape(-1, 3)
            except (ValueError, TypeError):
                raise SourceError(
                    f"line {number}: 'vertices' is not a list of integer triples", path=path
                ) from None
            vertices = _VertexView(integers, transform)
            assembler = _Assembler(path)
            objects = feature.get("CityObjects")
            if not isinstance(objects, dict):
                raise SourceError(f"line {number}: no 'CityObjects'", path=path)
            for object_id, obj in objects.items():
                yield from assembler.add(object_id, obj, vertices, f"line {number} ({object_id!r})", skipped)
            yield from assembler.finish()


# ------------------------------------------------------------------------------ objects to buildings


class _Assembler:
    """Joins BuildingParts to their Building whatever order they come in; yields complete buildings."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._waiting: dict[str, tuple[CityBuilding, set[str]]] = {}
        self._orphans: dict[str, list[tuple[str, dict[str, Any], list[SurfaceBlock]]]] = {}
        self._part_parent: dict[str, str] = {}

    def add(
        self, object_id: str, obj: Any, vertices: Any, record: str, skipped: Counter[str]
    ) -> Iterator[CityBuilding]:
        if not isinstance(obj, dict):
            raise SourceError(f"{record}: not a city object", path=self._path)
        kind = str(obj.get("type"))
        if kind in BUILDING_TYPES:
            yield from self._building(object_id, obj, vertices, record)
        elif kind in PART_TYPES:
            yield from self._part(object_id, obj, vertices, record)
        else:
            skipped[kind] += 1

    def _building(
        self, object_id: str, obj: dict[str, Any], vertices: Any, record: str
    ) -> Iterator[CityBuilding]:
        building = CityBuilding(
            building_id=object_id,
            object_type=str(obj["type"]),
            attributes=dict(obj.get("attributes") or {}),
            geometries=object_geometries(obj, vertices, record, self._path, part_id=None),
            record=record,
        )
        children = {str(c) for c in obj.get("children") or []}
        for part_id, attributes, geometries in self._orphans.pop(object_id, []):
            building.attach(part_id, attributes, geometries)
            children.discard(part_id)
        if children:
            self._waiting[object_id] = (building, children)
        else:
            yield building

    def _part(
        self, object_id: str, obj: dict[str, Any], vertices: Any, record: str
    ) -> Iterator[CityBuilding]:
        parents = obj.get("parents") or []
        if not parents:
            raise SourceError(f"{record}: a BuildingPart without a parent", path=self._path)
        parent = str(parents[0])
        geometries = object_geometries(obj, vertices, record, self._path, part_id=object_id)
        attributes = dict(obj.get("attributes") or {})
        self._part_parent[object_id] = parent
        if parent in self._waiting:
            building, missing = self._waiting[parent]
            building.attach(object_id, attributes, geometries)
            missing.discard(object_id)
            if not missing:
                del self._waiting[parent]
                yield building
        else:
            self._orphans.setdefault(parent, []).append((object_id, attributes, geometries))

    def finish(self) -> Iterator[CityBuilding]:
        for parent, parts in self._orphans.items():
            raise SourceError(
                f"BuildingPart {parts[0][0]!r}: its parent {parent!r} is not in the file", path=self._path
            )
        for building, missing in self._waiting.values():
            nested = [m for m in missing if self._part_parent.get(m) is not None]
            if len(nested) != len(missing):
                absent = sorted(missing - set(nested))[0]
                raise SourceError(
                    f"{building.record}: its child {absent!r} is not in the file", path=self._path
                )
            yield building


def object_geometries(
    obj: dict[str, Any], vertices: Any, record: str, path: Path, *, part_id: str | None
) -> list[SurfaceBlock]:
    """Every surface geometry of an object with its polygons as flat lists (LoD, nesting, semantic surfaces).

    Geometries without polygons (and points, lines) give no block.
    """
    blocks: list[SurfaceBlock] = []
    for index, geometry in enumerate(obj.get("geometry") or []):
        if not isinstance(geometry, dict):
            raise SourceError(f"{record}: geometry {index} is not an object", path=path)
        kind = geometry.get("type")
        if kind == "GeometryInstance":
            raise SourceError(f"{record}: geometry templates (GeometryInstance) are not supported", path=path)
        try:
            block = _geometry_block(geometry, index, vertices, part_id)
        except _BadIndex as exc:
            raise SourceError(
                f"{record}: vertex index {exc.index} is outside the vertex list ({len(vertices)} vertices)",
                path=path,
            ) from None
        except (TypeError, ValueError, IndexError, KeyError):
            raise SourceError(
                f"{record}: geometry {index} ({kind}) is not nested as its type requires", path=path
            ) from None
        if block is not None:
            blocks.append(block)
    return blocks


class _BadIndex(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


_DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2, "CompositeSolid": 2}


def _geometry_block(
    geometry: dict[str, Any], index: int, vertices: _VertexView, part_id: str | None
) -> SurfaceBlock | None:
    """One geometry's polygons as flat lists, built with ``itertools`` (a Python step per shell, not per polygon)."""
    kind = str(geometry["type"])
    if kind not in _DEPTH:
        return None
    boundaries = geometry["boundaries"]
    semantics = geometry.get("semantics") or {}
    values = semantics.get("values")
    solids = boundaries if _DEPTH[kind] == 2 else [boundaries if _DEPTH[kind] == 1 else [boundaries]]
    solid_values = values if _DEPTH[kind] == 2 else [values if _DEPTH[kind] == 1 else [values]]
    polygons: list[Any] = []
    solid_of: list[int] = []
    shell_of: list[int] = []
    surface_index: list[int] = []
    codes: list[int | None] = []
    for s, solid in enumerate(solids):
        shell_values = solid_values[s] if solid_values and solid_values[s] is not None else None
        for h, shell in enumerate(solid):
            n = len(shell)
            surface_values = shell_values[h] if shell_values is not None else None
            if surface_values is not None and len(surface_values) < n:
                raise IndexError("fewer semantic values than surfaces")
            polygons.extend(shell)
            solid_of.extend(itertools.repeat(s, n))
            shell_of.extend(itertools.repeat(h, n))
            surface_index.extend(range(n))
            codes.extend(itertools.repeat(None, n) if surface_values is None else surface_values[:n])
    if not polygons:
        return None
    rings = list(itertools.chain.from_iterable(polygons))
    points = list(itertools.chain.from_iterable(rings))
    if points and (min(points) < 0 or max(points) >= len(vertices)):
        raise _BadIndex(next(i for i in points if not 0 <= i < len(vertices)))
    return SurfaceBlock(
        lod=str(geometry.get("lod")), geometry_index=index, geometry_type=kind, part_id=part_id,
        ring_counts=list(map(len, polygons)), ring_lengths=list(map(len, rings)), points=points,
        vertices=vertices, solid=solid_of, shell=shell_of, surface_index=surface_index, semantic=codes,
        semantics=[_semantic(entry) for entry in semantics.get("surfaces") or []],
    )  # fmt: skip


def _semantic(entry: Any) -> tuple[str, dict[str, Any] | None]:
    """A semantic surface's type and its own attributes (None without any), read once per geometry."""
    if not isinstance(entry, dict):
        raise TypeError(entry)
    kind = str(entry["type"])
    if len(entry) == 1:
        return kind, None
    attributes = {k: v for k, v in entry.items() if k not in ("type", "parent", "children")}
    return kind, attributes or None
