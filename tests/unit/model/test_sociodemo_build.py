"""The build's socio-demographic step on a real store, and the ``[sociodemographics]`` section."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import Point, box

from civictwin.build_sociodemo import CAR_AVAILABILITY, sociodemographics_on_zones
from civictwin.config import SociodemographicsSection, parse_config
from civictwin.errors import ConfigError, SourceError
from civictwin.store.duckdb import DuckDBStore

CRS = "EPSG:3067"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBStore]:
    """Two statistical areas (A: 0-100 m, B: 100-200 m) and three homes: 30 and 10 residents in A, 20 in B."""
    created = DuckDBStore.create(tmp_path_factory.mktemp("sd") / "twin.duckdb", crs=CRS)
    areas = gpd.GeoDataFrame(
        {"name": ["A", "B"], "people": [400, 100], "age_65": [40, 50], "income": [30_000.0, 20_000.0],
         "car_share": [0.8, 0.2]},
        geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100)], crs=CRS,
    )  # fmt: skip
    homes = gpd.GeoDataFrame(
        {"population_est": [30.0, 10.0, 20.0]},
        geometry=[Point(20, 50), Point(80, 50), Point(150, 50)],
        crs=CRS,
    )
    created.write_table("stats", areas)
    created.write_table("buildings_3d", homes)
    yield created
    created.close()


ZONES = gpd.GeoDataFrame(
    {"zone_id": ["west", "east"]}, geometry=[box(0, 0, 50, 100), box(50, 0, 200, 100)], crs=CRS
)


def test_columns_reach_the_zones_by_residents(store: DuckDBStore) -> None:
    section = SociodemographicsSection(
        source="stats", intensive=["income", "car_share"], equity_by=["income"], car_availability="car_share"
    )
    result = sociodemographics_on_zones(store, section, ZONES)
    zones = result.zones.set_index("zone_id")
    # A's 400 people: 30 of its 40 residents live in the west zone -> 300; east: 100 of A + all of B
    assert zones["stats_people"].to_dict() == {"west": 300.0, "east": 200.0}
    assert zones["stats_age_65"].to_dict() == {"west": 30.0, "east": 60.0}
    # east: 10 residents at 30,000 and 20 at 20,000; cars 0.8 and 0.2 likewise
    assert zones["stats_income"].to_dict() == pytest.approx({"west": 30_000.0, "east": 23_333.3333})
    assert zones[CAR_AVAILABILITY].to_dict() == pytest.approx({"west": 0.8, "east": 0.4})
    assert zones["stats_coverage"].to_dict() == {"west": 1.0, "east": 1.0}
    assert result.inputs == ["stats", "buildings_3d"]
    assert result.quality["zone_totals"] == {"people": 500.0, "age_65": 90.0}


def test_an_equity_column_the_source_lacks_is_one_line(store: DuckDBStore) -> None:
    section = SociodemographicsSection(source="stats", equity_by=["name"])
    with pytest.raises(SourceError) as caught:
        sociodemographics_on_zones(store, section, ZONES)
    assert caught.value.user_message() == (
        "stats: sociodemographics.equity_by: equity_by names 'name', which is not a numeric column of the "
        "source; numeric columns: people, age_65, income, car_share"
    )


def _config(tmp_path: Path, section: dict[str, Any], kind: str = "grid") -> None:
    source = {"name": "stats", "kind": kind, "path": "stats.gpkg", "licence": "CC-BY-4.0", "publisher": "p",
              "steward": "s"}  # fmt: skip
    parse_config({"twin": {"name": "t"}, "area": {"bbox": [24.9, 60.1, 25.0, 60.2]}, "sources": [source],
                  "sociodemographics": section}, base_dir=tmp_path)  # fmt: skip


def test_the_section_names_a_layer_source_and_a_share(tmp_path: Path) -> None:
    _config(
        tmp_path, {"source": "stats", "weighting": "area", "intensive": ["cars"], "car_availability": "cars"}
    )
    with pytest.raises(ConfigError, match=r"sociodemographics\.source names 'other'"):
        _config(tmp_path, {"source": "other"})
    with pytest.raises(ConfigError, match="must be listed in `intensive`"):
        _config(tmp_path, {"source": "stats", "car_availability": "cars"})
    with pytest.raises(ConfigError, match="which is not a source of kind"):
        _config(tmp_path, {"source": "stats"}, kind="gtfs")
