"""A warm-up before the analysed period: the network fills before anything is counted or reported.

A simulation that starts empty at the first counted hour undercounts that hour: a vehicle inserted
during it needs minutes to reach a counting point, and the streets carry none of the traffic that set
out before the hour. With a warm-up of ``warmup_s`` seconds the SUMO run starts that much earlier:
the trips of the analysed window keep their times relative to its start and are written ``warmup_s``
later (:func:`~civictwin.engines.traffic.run.shifted`), and the warm-up itself replays the window's first ``warmup_s`` seconds of car
trips (:func:`warmup_trips`), so the hour before the window is assumed to have the first hour's
demand (an assumption: the twin has no demand for the hour before). Warm-up trips carry the id of the
trip they copy behind :data:`WARMUP_PREFIX` (the origin-destination pair stays readable from it), are
left out of every KPI, and count at a counting point only when they pass it inside the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from civictwin.engines.traffic.run import CarTrip

WARMUP_PREFIX = "w"
"""How the ids of warm-up trips begin (never a window trip's: ``t``, ``e…x``, ``g``, ``bk``, ``pt``)."""


def warmup_trips(trips: Sequence[CarTrip], *, warmup_s: float) -> list[CarTrip]:
    """The warm-up's car trips: each of ``trips`` departing in the window's first ``warmup_s`` seconds
    again, at the same second of the warm-up, as ``w<its id>`` (sorted by departure)."""
    copies = [
        dataclasses.replace(trip, trip_id=WARMUP_PREFIX + trip.trip_id)
        for trip in trips
        if trip.depart_s < warmup_s
    ]
    return sorted(copies, key=lambda t: (t.depart_s, t.trip_id))


def original_id(trip_id: str) -> str:
    """The id of the window trip a warm-up trip copies (any other id unchanged)."""
    return trip_id.removeprefix(WARMUP_PREFIX)
