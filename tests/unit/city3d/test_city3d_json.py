"""The city model tables' JSON texts written in bulk: exactly the texts ``json.dumps(value, ensure_ascii=False)`` writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from civictwin.sources.city3d_json import json_texts


def test_texts_are_json_dumps_texts_written_by_hand() -> None:
    values: list[Any] = [
        {"a": 1, "b": [2, 3.5], "c": {"d": True, "e": False}},
        None,
        {"id": 'x:y, "q" {[ \\', "empty": {}, "list": []},
        {"name": "Rathaus é😀\n\t", "year": 1975},
        {},
        {"tail": "ends in a backslash \\"},
    ]
    expected = [
        '{"a": 1, "b": [2, 3.5], "c": {"d": true, "e": false}}',
        None,
        '{"id": "x:y, \\"q\\" {[ \\\\", "empty": {}, "list": []}',
        '{"name": "Rathaus é😀\\n\\t", "year": 1975}',
        "{}",
        '{"tail": "ends in a backslash \\\\"}',
    ]
    texts = json_texts(values)
    assert texts.type == pa.string()
    assert texts.to_pylist() == expected
    assert expected == [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]


def test_numbers_msgspec_writes_differently_are_written_as_json_writes_them() -> None:
    """Exponents, numbers below 0.0001, NaN and infinities, integers beyond 64 bits: json's text, each."""
    values = [
        {"small": 1e-05, "tiny": 2.5e-07, "big": 1e16},
        {"nan": math.nan, "inf": -math.inf, "none": None},
        {"plain": 0.0001, "x": 1234.5, "id": "9e5"},
        {"huge": 10**30},
    ]
    assert json_texts(values).to_pylist() == [
        '{"small": 1e-05, "tiny": 2.5e-07, "big": 1e+16}',
        '{"nan": NaN, "inf": -Infinity, "none": null}',
        '{"plain": 0.0001, "x": 1234.5, "id": "9e5"}',
        '{"huge": 1000000000000000000000000000000}',
    ]


def test_a_value_msgspec_refuses_makes_the_batch_json_written() -> None:
    values = [{"a": complex(1, 2)}, {"b": 1}]  # not JSON: json's default=str writes its str()
    assert json_texts(values).to_pylist() == ['{"a": "(1+2j)"}', '{"b": 1}']


def test_no_values_and_only_none() -> None:
    assert json_texts([]).to_pylist() == []
    assert json_texts([None, None]).to_pylist() == [None, None]


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=6), _VALUES, max_size=5) | st.none(), max_size=6))
def test_any_json_values_give_json_dumps_texts(values: list[Any]) -> None:
    expected = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
    assert json_texts(values).to_pylist() == expected
