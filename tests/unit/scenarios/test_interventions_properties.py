"""Properties of any combination of interventions on the grid: ids kept, input untouched, log consistent."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civictwin.engines.registry import intervention_catalog
from civictwin.engines.traffic.edits import apply_interventions
from civictwin.engines.traffic.engine import TrafficEngine
from civictwin.engines.traffic.synthetic import grid_network
from civictwin.scenarios.spec import parse_scenario

CATALOG = intervention_catalog([TrafficEngine()])

CRS = "EPSG:32635"
EDGES, _ = grid_network(3, 3, 200.0)
STREETS = sorted(set(EDGES["name"]))
WAYS = sorted(set(EDGES["osm_id"]))

selection = st.one_of(
    st.builds(lambda names: {"streets": names}, st.lists(st.sampled_from(STREETS), min_size=1, max_size=2)),
    st.builds(lambda ways: {"osm_ids": ways}, st.lists(st.sampled_from(WAYS), min_size=1, max_size=2)),
)
intervention = st.one_of(
    st.builds(
        lambda s, m: {"type": "close_streets", **s, "modes": m},
        selection,
        st.lists(st.sampled_from(["all", "car", "bus", "bike", "walk"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda s, k: {"type": "one_way", **s, "keep": k}, selection, st.sampled_from(["forward", "reverse"])
    ),
    st.builds(
        lambda s, v: {"type": "speed_limit", **s, "speed_kmh": v}, selection, st.sampled_from([20, 30, 40])
    ),
    st.builds(lambda s: {"type": "pedestrianise", **s}, selection),
    st.builds(lambda s: {"type": "works_closure", **s, "begin_s": 0, "end_s": 600}, selection),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(intervention, min_size=1, max_size=4))
def test_any_combination_keeps_ids_and_logs_every_change(items: list[dict[str, Any]]) -> None:
    before = EDGES.copy()
    scenario = parse_scenario({"name": "p", "interventions": items}, CATALOG, origin="p.toml")
    result = apply_interventions(EDGES, scenario, crs=CRS)
    assert EDGES.equals(before)
    assert list(result.edges["edge_id"]) == list(EDGES["edge_id"])
    assert result.car_edges <= frozenset(result.edges.loc[result.edges["car"], "edge_id"])
    final = result.edges.set_index("edge_id")
    for column in ("car", "bike", "walk", "speed_kmh"):
        logged = result.changes[result.changes["attribute"] == column]
        untouched = final.index.difference(logged["edge_id"])
        original = before.set_index("edge_id").loc[untouched, column]
        assert (final.loc[untouched, column] == original).all()
        last = logged.groupby("edge_id")["after"].last()
        assert (final.loc[last.index, column] == last).all()
    assert all(c.begin_s == 0 and c.end_s == 600 for c in result.closures)
