"""Each heat intervention changes exactly the cells it selects, and selecting nothing is an error."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from heat_surfaces import NORTH, WEST, small_place, wkt_wgs84

from civictwin.engines.heat.interventions import (
    CoolSurfaces,
    Depave,
    GreenRoofs,
    PlantStreetTrees,
    PlantTreesInArea,
    apply,
    apply_all,
)
from civictwin.engines.heat.rasters import Cover, Surface
from civictwin.errors import ScenarioError


def _differs(a: Surface, b: Surface) -> np.ndarray:
    """Cells where any grid differs between two surfaces."""
    diff = np.zeros(a.grid.shape, dtype=bool)
    for name in ("cover", "building_height_m", "canopy_height_m", "green_roof", "public_green"):
        diff |= getattr(a, name) != getattr(b, name)
    diff |= ~np.isclose(a.albedo, b.albedo, equal_nan=True)
    return diff


def test_street_trees_stand_in_crowns_beside_the_street_and_nowhere_else(surface: Surface) -> None:
    spec = PlantStreetTrees(
        type="plant_street_trees", streets=["Testikatu"], spacing_m=10.0, crown_radius_m=2.0
    )
    after, changed = apply(surface, spec, small_place(surface))
    assert np.array_equal(_differs(surface, after), changed)
    assert changed.any()
    # carriageway 2 lanes x 3.6 m = 7.2 m; trees 3.6 + 1 + 2 = 6.6 m either side of the centreline at
    # y = NORTH - 20 m: crowns reach 6.6 +- 2 m from it, so never the road cells (rows 9-10)
    rows = np.nonzero(changed)[0]
    assert not np.isin(rows, [9, 10]).any()
    assert set(np.unique(after.canopy_height_m[changed])) == {10.0}
    assert not (changed & (surface.cover == Cover.BUILDING)).any()
    # 60 m of street, two sides, one tree every 10 m from 5 m: 6 per side, 12 trees of ~3 cells each
    assert 12 * 2 <= changed.sum() <= 12 * 5


def test_trees_in_an_area_reach_the_canopy_share_on_open_ground(surface: Surface) -> None:
    area = shapely.box(WEST + 20.0, NORTH - 36.0, WEST + 56.0, NORTH - 24.0)  # rows 12-17, cols 10-27
    spec = PlantTreesInArea(
        type="plant_trees_in_area", polygon=wkt_wgs84(area), canopy_share=0.5, crown_radius_m=2.0
    )
    after, changed = apply(surface, spec, small_place(surface))
    assert np.array_equal(_differs(surface, after), changed)
    inside = surface.grid.mask([area])
    assert not (changed & ~inside).any()
    assert changed.sum() >= 0.5 * inside.sum()


def test_depaving_turns_only_paved_cells_in_the_polygon_to_public_green(surface: Surface) -> None:
    area = shapely.box(WEST, NORTH - 16.0, WEST + 20.0, NORTH)  # rows 0-7, cols 0-9: holds the building
    after, changed = apply(surface, Depave(type="depave", polygon=wkt_wgs84(area)), small_place(surface))
    assert np.array_equal(_differs(surface, after), changed)
    expected = surface.grid.mask([area]) & (surface.cover == Cover.PAVED)
    assert np.array_equal(changed, expected)
    assert changed.sum() == 8 * 10 - 4 * 6  # the building's 24 cells stay
    assert (after.cover[changed] == Cover.GRASS).all() and after.public_green[changed].all()


def test_green_roofs_cover_exactly_the_selected_buildings_roof(surface: Surface) -> None:
    after, changed = apply(
        surface, GreenRoofs(type="green_roofs", uses=["residential"]), small_place(surface)
    )
    assert np.array_equal(changed, surface.cover == Cover.BUILDING)
    assert np.array_equal(_differs(surface, after), changed)
    _, same = apply(surface, GreenRoofs(type="green_roofs", osm_ids=[7]), small_place(surface))
    assert np.array_equal(same, changed)  # the shared building selection, by OSM id


def test_cool_pavements_change_only_pavement_albedo_inside_the_polygon(surface: Surface) -> None:
    area = shapely.box(WEST, NORTH - 24.0, WEST + 30.0, NORTH)  # rows 0-11, cols 0-14
    spec = CoolSurfaces(type="cool_surfaces", polygon=wkt_wgs84(area), albedo=0.5, surfaces=["pavements"])
    after, changed = apply(surface, spec, small_place(surface))
    assert np.array_equal(_differs(surface, after), changed)
    assert changed.sum() == 12 * 15 - 4 * 6
    assert np.all(after.albedo[changed] == np.float32(0.5))


def test_an_intervention_that_selects_no_cell_is_one_error_line(surface: Surface) -> None:
    far = shapely.box(WEST + 5000, NORTH + 5000, WEST + 5100, NORTH + 5100)
    with pytest.raises(ScenarioError) as err:
        apply_all(
            surface,
            [(2, Depave(type="depave", polygon=wkt_wgs84(far)))],
            small_place(surface),
            origin="s.toml",
        )
    assert (
        err.value.user_message()
        == "s.toml: interventions[2] (depave): selects no cell of the heat grid (nothing to change there)"
    )
    with pytest.raises(
        ScenarioError, match=r"interventions\[0\] \(plant_street_trees\): streets: no street named 'Nowhere'"
    ):
        apply_all(
            surface,
            [(0, PlantStreetTrees(type="plant_street_trees", streets=["Nowhere"]))],
            small_place(surface),
            origin="s.toml",
        )
