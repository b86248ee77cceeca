"""Where each datastream is, for maps: its Thing's Location as a WGS84 point (one query, all SQL here)."""

from __future__ import annotations

from civictwin.store.observations import ObservationStore
from civictwin.store.sql_observations import SQLObservationStore


def datastream_positions(store: ObservationStore) -> dict[int, tuple[float, float]]:
    """Each datastream's (longitude, latitude) in degrees, from its Thing's Location."""
    if not isinstance(store, SQLObservationStore):
        raise TypeError(f"no position query for {type(store).__name__}")
    rows = store.connection.execute(
        "SELECT d.id, l.lon, l.lat FROM datastreams d JOIN things t ON t.id = d.thing_id "
        "JOIN locations l ON l.id = t.location_id"
    ).fetchall()
    return {int(ds): (float(lon), float(lat)) for ds, lon, lat in rows}
