"""Python's automatic garbage collection is paused while a city model is imported, and given back after."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from city3d_fixtures import Ingest, house_cityjson, write_json

from civictwin.errors import SourceError


def test_collection_is_on_again_after_an_import_and_after_a_broken_one(
    tmp_path: Path, ingest: Ingest
) -> None:
    young_before = gc.get_stats()[1]["collections"]
    _store, result = ingest("cityjson", write_json(tmp_path / "house.city.json", house_cityjson()))
    assert result.layers[0].rows == 1
    assert gc.isenabled()
    assert gc.get_stats()[1]["collections"] > young_before  # the batch's young objects were collected
    broken = house_cityjson()
    broken["CityObjects"]["house0"]["geometry"][0]["boundaries"] = 5
    with pytest.raises(SourceError, match=r"CityObjects\['house0'\]: geometry 0 \(Solid\) is not nested"):
        ingest("cityjson", write_json(tmp_path / "broken.city.json", broken))
    assert gc.isenabled()


def test_collection_left_off_when_the_caller_had_it_off(tmp_path: Path, ingest: Ingest) -> None:
    gc.disable()
    try:
        ingest("cityjson", write_json(tmp_path / "house.city.json", house_cityjson()))
        assert not gc.isenabled()
    finally:
        gc.enable()
