"""The SensorThings API served by ``civictwin serve``: queries against hand-computed answers, paging,
expansions, the aggregates extension, and the access matrix for datastreams (every role, every
place a datastream could leak: listings, entities, navigation, expansions, counts, aggregates)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from civictwin.api.app import create_app
from civictwin.api.settings import ServerSettings
from civictwin.governance.audit import audit_path, read_audit
from civictwin.governance.tokens import Role, create_token, tokens_path
from civictwin.store.duckdb import DuckDBStore
from civictwin.store.observations import (
    MS_PER_HOUR,
    DatasetSpec,
    DatastreamSpec,
    LocationSpec,
    ObservationBatch,
    ObservedPropertySpec,
    SensorSpec,
    ThingSpec,
    Unit,
    open_observations,
    to_ms,
)

T0 = to_ms("2014-01-01T00:00:00Z")
ROOT = "/sensorthings/v1.1"
# dataset -> (access, station, lon, lat)
STATIONS = {
    "air": ("public", "kalk", 6.99, 50.94),
    "air_far": ("public", "far", 8.0, 52.0),
    "noise": ("internal", "ring", 6.95, 50.93),
    "secret": ("restricted", "bunker", 6.97, 50.95),
}
VISIBLE = {
    "anonymous": {"air", "air_far"},
    "viewer": {"air", "air_far", "noise"},
    "analyst": {"air", "air_far", "noise"},
    "steward": {"air", "air_far", "noise", "secret"},
    "admin": {"air", "air_far", "noise", "secret"},
}


def datastream(dataset: str, prop: str) -> DatastreamSpec:
    _, station, lon, lat = STATIONS[dataset]
    thing = ThingSpec(
        f"{dataset}/{station}", station.title(), LocationSpec(f"{dataset}/{station}", station, lon, lat)
    )
    return DatastreamSpec(
        key=f"{dataset}/{station}/{prop}",
        name=f"{station} {prop}",
        dataset=dataset,
        thing=thing,
        sensor=SensorSpec(f"{dataset}/sensor", "sensor"),
        observed_property=ObservedPropertySpec(f"{dataset}/{prop}", prop, f"urn:{prop}"),
        unit=Unit("ug/m3", "microgram per cubic metre", "µg/m³"),
        interval_s=3600,
    )


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A twin with an (empty) built store and observations at every access level.

    ``air/kalk/NO2`` (id 1): 48 hourly values from 2014-01-01T00:00Z, value = hour index (0..47),
    hour 5 missing. ``air/kalk/PM10`` (id 2): 3 values. One datastream in each other dataset.
    """
    directory = tmp_path_factory.mktemp("sta")
    store_path = directory / "sta.duckdb"
    DuckDBStore.create(store_path, crs="EPSG:32632").close()
    with open_observations(store_path) as store:
        for name, (access, *_) in STATIONS.items():
            store.ensure_dataset(DatasetSpec(name, name, "City", f"{name} steward", "CC-BY-4.0", access))
        no2 = store.ensure_datastream(datastream("air", "NO2"))
        pm10 = store.ensure_datastream(datastream("air", "PM10"))
        values: list[float | None] = [float(i) for i in range(48)]
        values[5] = None
        batch = ObservationBatch.of(
            datastream_id=[no2] * 48 + [pm10] * 3,
            phenomenon_time=[T0 + i * MS_PER_HOUR for i in range(48)]
            + [T0, T0 + MS_PER_HOUR, T0 + 2 * MS_PER_HOUR],
            result=[*values, 10.0, 20.0, 30.0],
        )
        store.append(batch, origin="test")
        for name in ("air_far", "noise", "secret"):
            other = store.ensure_datastream(datastream(name, "NO2"))
            store.append(
                ObservationBatch.of(datastream_id=[other], phenomenon_time=[T0], result=[1.0]), origin="t"
            )
    return directory


@pytest.fixture(scope="module")
def tokens(twin: Path) -> dict[str, str]:
    path = tokens_path(twin / "sta.duckdb")
    return {
        "viewer": create_token(path, role=Role.VIEWER).token,
        "analyst": create_token(path, role=Role.ANALYST).token,
        "steward": create_token(path, role=Role.STEWARD, datasets=["secret"]).token,
        "admin": create_token(path, role=Role.ADMIN).token,
    }


@pytest.fixture(scope="module")
def client(twin: Path, tokens: dict[str, str]) -> Iterator[TestClient]:
    settings = ServerSettings(rate_per_second=10_000, rate_burst=100_000)
    with TestClient(create_app(twin, settings=settings)) as test_client:
        yield test_client


def get(client: TestClient, url: str, role: str = "anonymous", tokens: dict[str, str] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {tokens[role]}"} if tokens and role != "anonymous" else {}
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_service_root_lists_the_entity_sets(client: TestClient) -> None:
    root = get(client, ROOT)
    assert [e["name"] for e in root["value"]] == [
        "Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "Observations", "FeaturesOfInterest"
    ]  # fmt: skip
    assert root["value"][0]["url"] == "http://testserver/sensorthings/v1.1/Things"


def test_datastream_entity_with_unit_governance_and_extent(client: TestClient) -> None:
    ds = get(client, f"{ROOT}/Datastreams(1)")
    assert ds["unitOfMeasurement"] == {
        "name": "microgram per cubic metre",
        "symbol": "µg/m³",
        "definition": "ucum:ug/m3",
    }
    assert ds["phenomenonTime"] == "2014-01-01T00:00:00Z/2014-01-02T23:00:00Z"
    assert ds["properties"]["steward"] == "air steward" and ds["properties"]["access"] == "public"
    assert (
        ds["Observations@iot.navigationLink"]
        == "http://testserver/sensorthings/v1.1/Datastreams(1)/Observations"
    )
    thing = get(client, f"{ROOT}/Datastreams(1)/Thing")
    assert thing["name"] == "Kalk"
    assert get(client, f"{ROOT}/Datastreams(1)/name") == {"name": "kalk NO2"}
    assert client.get(f"{ROOT}/Datastreams(1)/name/$value").text == "kalk NO2"


def test_observations_page_filter_order_and_count(client: TestClient) -> None:
    page = get(client, f"{ROOT}/Datastreams(1)/Observations?$top=10&$orderby=phenomenonTime desc&$count=true")
    assert page["@iot.count"] == 48 and len(page["value"]) == 10
    assert [o["result"] for o in page["value"][:3]] == [47, 46, 45]
    first = page["value"][0]
    assert first["phenomenonTime"] == "2014-01-02T23:00:00Z" and first["resultQuality"] == "good"
    assert first["@iot.id"] == 1 * 10**13 + T0 + 47 * MS_PER_HOUR
    nxt = page["@iot.nextLink"]
    assert "%24skip=10" in nxt and "%24top=10" in nxt
    second = get(client, nxt.replace("http://testserver", ""))
    assert second["value"][0]["result"] == 37
    # hand-counted: results above 40 are 41..47; on day 2 (24..47) below 30: 24..29; one missing value
    assert len(get(client, f"{ROOT}/Datastreams(1)/Observations?$filter=result gt 40")["value"]) == 7
    day2 = (
        f"{ROOT}/Datastreams(1)/Observations?$filter=phenomenonTime ge 2014-01-02T00:00:00Z and result lt 30"
    )
    assert [o["result"] for o in get(client, day2)["value"]] == [24, 25, 26, 27, 28, 29]
    missing = get(client, f"{ROOT}/Observations?$filter=result eq null")["value"]
    assert len(missing) == 1 and missing[0]["phenomenonTime"] == "2014-01-01T05:00:00Z"
    assert missing[0]["resultQuality"] == "missing"
    by_stream = get(client, f"{ROOT}/Observations?$filter=Datastream/id eq 2&$select=result")["value"]
    assert by_stream == [{"result": 10}, {"result": 20}, {"result": 30}]
    one = get(client, f"{ROOT}/Observations({first['@iot.id']})")
    assert one["result"] == 47
    assert get(client, f"{ROOT}/Observations({first['@iot.id']})/Datastream")["name"] == "kalk NO2"


def test_geo_intersects_select_and_expand(client: TestClient) -> None:
    box = "geography'POLYGON((6.9 50.9, 7.1 50.9, 7.1 51.0, 6.9 51.0, 6.9 50.9))'"
    things = get(client, f"{ROOT}/Things?$filter=geo.intersects(Locations/location, {box})")["value"]
    assert [t["name"] for t in things] == ["Kalk"]  # Far lies outside; Ring and Bunker are not public
    features = get(client, f"{ROOT}/FeaturesOfInterest?$filter=geo.intersects(feature, {box})&$select=name")
    assert features["value"] == [{"name": "kalk"}]
    expanded = get(client, f"{ROOT}/Things(1)?$expand=Datastreams($select=name;$top=1;$count=true),Locations")
    assert expanded["Datastreams"] == [{"name": "kalk NO2"}] and expanded["Datastreams@iot.count"] == 2
    assert expanded["Datastreams@iot.nextLink"].endswith("/Things(1)/Datastreams?%24top=1&%24skip=1")
    assert expanded["Locations"][0]["location"] == {"type": "Point", "coordinates": [6.99, 50.94]}
    deep = get(
        client, f"{ROOT}/Datastreams(2)?$expand=Observations($top=2;$orderby=result desc),Thing/Locations"
    )
    assert [o["result"] for o in deep["Observations"]] == [30, 20]
    assert deep["Thing"]["Locations"][0]["name"] == "kalk"
    by_name = get(client, f"{ROOT}/Datastreams?$filter=startswith(name, 'kalk') and Thing/name eq 'Kalk'")
    assert [d["name"] for d in by_name["value"]] == ["kalk NO2", "kalk PM10"]


def test_aggregates_extension_matches_hand_computation(client: TestClient) -> None:
    body = get(client, f"{ROOT}/Datastreams(1)/Aggregates?window=day&statistics=mean,max,p50,count")
    day1, day2 = body["value"]
    # day 1: 0..23 without 5 -> (276 - 5) / 23; median of the 23 values is 12; day 2: 24..47
    assert (day1["count"], day1["max"], day1["p50"]) == (23, 23.0, 12.0)
    assert day1["mean"] == pytest.approx(271 / 23)
    assert (day2["mean"], day2["max"], day2["windowStart"]) == (35.5, 47.0, "2014-01-02T00:00:00Z")
    local = get(client, f"{ROOT}/Datastreams(1)/Aggregates?window=day&timezone=Europe/Berlin&start=2014-01-01T23:00:00Z"
                        "&end=2014-01-02T23:00:00Z")  # fmt: skip
    assert [(v["windowStart"], v["count"], v["mean"]) for v in local["value"]] == [
        ("2014-01-01T23:00:00Z", 24, 34.5)
    ]
    hourly = get(client, f"{ROOT}/Datastreams/Aggregates?window=hour&ids=2&statistics=sum")
    assert [v["sum"] for v in hourly["value"]] == [10.0, 20.0, 30.0]
    assert client.get(f"{ROOT}/Datastreams(1)/Aggregates?window=week").status_code == 400


@pytest.mark.parametrize("role", sorted(VISIBLE))
def test_access_matrix(client: TestClient, tokens: dict[str, str], role: str) -> None:
    visible = VISIBLE[role]
    expected_streams = 1 + len(visible)  # air has two datastreams, every other dataset one
    listing = get(client, f"{ROOT}/Datastreams?$count=true", role, tokens)
    assert listing["@iot.count"] == expected_streams == len(listing["value"])
    assert {d["properties"]["dataset"] for d in listing["value"]} == visible
    things = get(client, f"{ROOT}/Things?$count=true&$expand=Datastreams", role, tokens)
    assert things["@iot.count"] == len(visible)
    assert sum(len(t["Datastreams"]) for t in things["value"]) == expected_streams
    observations = get(client, f"{ROOT}/Observations?$count=true&$top=1", role, tokens)
    assert observations["@iot.count"] == 51 + len(visible) - 1
    for set_name in ("Locations", "Sensors", "ObservedProperties", "FeaturesOfInterest"):
        assert get(client, f"{ROOT}/{set_name}?$count=true", role, tokens)["@iot.count"] == len(visible) + (
            1 if set_name == "ObservedProperties" else 0
        )
    headers = {"Authorization": f"Bearer {tokens[role]}"} if role != "anonymous" else {}
    for ds_id, dataset in ((3, "air_far"), (4, "noise"), (5, "secret")):
        status = 200 if dataset in visible else 404
        for path in (
            f"Datastreams({ds_id})",
            f"Datastreams({ds_id})/Observations",
            f"Datastreams({ds_id})/Aggregates",
        ):
            assert client.get(f"{ROOT}/{path}", headers=headers).status_code == status, (role, path)
        observation_id = ds_id * 10**13 + T0
        assert client.get(f"{ROOT}/Observations({observation_id})", headers=headers).status_code == status
    everything = get(client, f"{ROOT}/Datastreams/Aggregates?window=day", role, tokens)
    assert {v["Datastream@iot.id"] for v in everything["value"]} == {d["@iot.id"] for d in listing["value"]}


def test_bad_queries_are_400_and_every_request_is_audited(client: TestClient, twin: Path) -> None:
    for query in ("$filter=result gt", "$filter=nope eq 1", "$orderby=nope", "$top=-1", "$expand=Nope",
                  "$select=nope", "$count=maybe", "$unknown=1", "$filter=phenomenonTime gt 'yesterday'"):  # fmt: skip
        response = client.get(f"{ROOT}/Datastreams(1)/Observations?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get(f"{ROOT}/Nothing").status_code == 404
    assert client.get(f"{ROOT}/Datastreams(99)").status_code == 404
    assert client.get(f"{ROOT}/Observations(999999999999999999)").status_code == 404
    too_long = client.get(f"{ROOT}/Datastreams(99999999999999999999)")  # beyond a 64-bit id
    assert too_long.status_code == 400 and too_long.headers["content-type"] == "application/problem+json"
    entries = read_audit(audit_path(twin / "sta.duckdb"))
    assert any(e.path == f"{ROOT}/Datastreams(99)" and e.status == 404 for e in entries)
    assert any(e.path == f"{ROOT}/Datastreams(1)/Observations" and e.status == 400 for e in entries)
