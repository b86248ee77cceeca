"""Many small JSON texts at once: one encoder call per batch, numpy for the rest, no Python loop per value.

The city model tables keep each building's attributes, its parts' and each semantic surface's
attributes as one JSON text per row, written as ``json.dumps(value, ensure_ascii=False)`` writes
them (``{"a": 1, "b": [2, 3]}``). One ``json`` call per value cost about 10 µs per building of the
tiled LoD2 district (its attributes and its six semantic surfaces'), 6.5 here (measured under
load): msgspec encodes the whole batch as one compact JSON list, and numpy finds, in that text, the
strings (quotes, less the escaped ones), the separators outside them (a space goes after each ``,``
and ``:`` inside a value) and the commas between the values (where the texts are cut), giving one
Arrow string array.

msgspec writes strings, integers, ``true``/``false`` and most floats exactly as ``json`` does; it
writes floats with an exponent differently (``1e16`` for ``1e+16``, ``0.00001`` for ``1e-05``) and NaN
and infinities as ``null``. A value whose text holds an exponent, a number below 0.0001 or a
``null`` is therefore written by ``json`` itself, as is every value of a batch msgspec refuses (a
type it does not know, which ``json`` writes as its ``str()``), so each text is exactly ``json``'s.
Values are those parsed from JSON or XML: dicts with string keys, lists, strings, numbers,
booleans and None.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa

_ENCODER = msgspec.json.Encoder()
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
"""``json``'s own text for the values msgspec would write differently (as the readers always wrote them)."""

_QUOTE, _BACKSLASH, _COMMA, _COLON, _SPACE = (ord(c) for c in '"\\,: ')
_STRUCTURAL_BYTES = b'"\\,:{}[]'
_STEP = np.zeros(256, dtype=np.int64)
_STEP[list(b"{[")] = 1
_STEP[list(b"}]")] = -1
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[list(b"0123456789")] = True
_SMALL = b"0.0000"
"""How msgspec starts a number below 0.0001 that it writes without an exponent (``json`` uses one)."""


def json_texts(values: Sequence[Any]) -> pa.StringArray:
    """Each value as ``json.dumps(value, ensure_ascii=False)`` writes it, null for None, as one Arrow array."""
    present = [i for i, v in enumerate(values) if v is not None]
    if len(present) == len(values):
        return _texts(values)
    texts = _texts([values[i] for i in present])
    where = np.full(len(values), -1, dtype=np.int64)
    where[present] = np.arange(len(present))
    taken: pa.StringArray = texts.take(pa.array(where, mask=where < 0))
    return taken


def _texts(values: Sequence[Any]) -> pa.StringArray:
    """The texts of values none of which is None: one msgspec call, then numpy over its separators."""
    if not values:
        return pa.array([], type=pa.string())
    try:
        encoded = _ENCODER.encode(values)
    except (TypeError, ValueError, OverflowError):  # UnicodeEncodeError is a ValueError
        return pa.array([_JSON.encode(v) for v in values], type=pa.string())
    data = np.frombuffer(encoded, dtype=np.uint8)
    hits = np.flatnonzero(functools.reduce(np.logical_or, (data == c for c in _STRUCTURAL_BYTES)))
    chars = data[hits]
    quotes = _real_quotes(data, hits, chars)
    outside = ((np.cumsum(quotes) - quotes) % 2 == 0) & ~quotes & (chars != _BACKSLASH)
    strings = hits[quotes]
    hits, chars = hits[outside], chars[outside]
    depth = np.cumsum(_STEP[chars])  # after each byte; the list's own "[" makes it 1
    comma = chars == _COMMA
    between = hits[comma & (depth == 1)]
    spaced = hits[(comma & (depth > 1)) | (chars == _COLON)]
    starts = np.concatenate([[1], between + 1])
    ends = np.append(between, len(data) - 1)
    lengths = ends - starts + np.searchsorted(spaced, ends) - np.searchsorted(spaced, starts)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if offsets[-1] >= 2**31:
        raise ValueError("a batch of JSON texts larger than 2 GiB")
    cut = np.concatenate([[0], between + np.searchsorted(spaced, between), [len(data) + len(spaced) - 1]])
    text = np.delete(np.insert(data, spaced + 1, _SPACE), cut)
    array = pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text)
    )
    redo = _unlike_json(encoded, data, strings, starts)
    if not len(redo):
        return array
    texts = array.to_pylist()
    for i in redo.tolist():
        texts[i] = _JSON.encode(values[i])
    return pa.array(texts, type=pa.string())


def _real_quotes(
    data: npt.NDArray[np.uint8], hits: npt.NDArray[np.int64], chars: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:
    """Which of the structural bytes ``hits`` are quotes that start or end a string.

    A quote is escaped when an odd run of backslashes comes right before it; such runs are rare, so
    they are counted one quote at a time.
    """
    quotes: npt.NDArray[np.bool_] = np.asarray(chars == _QUOTE)
    candidates = np.flatnonzero(quotes)
    candidates = candidates[data[hits[candidates] - 1] == _BACKSLASH]
    for q in candidates.tolist():
        run, at = 0, int(hits[q]) - 1
        while data[at - run] == _BACKSLASH:
            run += 1
        quotes[q] = run % 2 == 0
    return quotes


def _unlike_json(
    encoded: bytes, data: npt.NDArray[np.uint8], strings: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The values whose text msgspec may write unlike ``json``: an exponent, a number below 0.0001, a null.

    ``strings``: where the strings' quotes are (a byte lies outside every string when an even number
    of them come before it); ``starts``: where each value's text starts.
    """
    exponent = np.flatnonzero(data == ord("e"))  # msgspec writes a lower-case exponent
    exponent = exponent[_DIGIT[data[exponent - 1]]]
    candidates = [exponent, np.flatnonzero(data == ord("n"))]
    small: list[int] = []
    start = encoded.find(_SMALL)
    while start >= 0:
        if not (start and _DIGIT[data[start - 1]]):
            small.append(start)
        start = encoded.find(_SMALL, start + 1)
    candidates.append(np.asarray(small, dtype=np.int64))
    at = np.concatenate(candidates)
    at = at[np.searchsorted(strings, at) % 2 == 0]
    return np.unique(np.searchsorted(starts, at, side="right") - 1)
