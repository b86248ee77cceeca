"""Helpers of the observation import tests: sensor entries, twin configs, where the shared data is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from civictwin.config import TwinConfig, parse_config

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
COLOGNE_BBOX = (6.8, 50.7, 7.2, 51.1)


def sensors_entry(name: str, fmt: str, **options: Any) -> dict[str, Any]:
    """A ``[[sensors]]`` entry with governance filled in."""
    return {
        "name": name,
        "format": fmt,
        "licence": "CC-BY-4.0",
        "publisher": "Test publisher",
        "steward": "Test steward",
        **options,
    }


def twin_config(
    directory: Path, sensors: list[dict[str, Any]], *, bbox: tuple[float, ...] = COLOGNE_BBOX
) -> TwinConfig:
    """A parsed config of a twin in ``directory`` with the given sensor sources."""
    data = {
        "twin": {"name": "Sensor test"},
        "area": {"bbox": list(bbox)},
        "sources": [
            {
                "name": "osm",
                "kind": "osm",
                "path": "unused.osm.pbf",
                "licence": "ODbL-1.0",
                "publisher": "OpenStreetMap contributors",
                "steward": "GIS",
            }
        ],
        "sensors": sensors,
    }
    return parse_config(data, base_dir=directory)
