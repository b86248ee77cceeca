"""Plausible before precise: the demand of a traffic run checked against what the twin knows.

A run whose demand is far from what the area's residents and jobs imply is a broken input, not a
result: its scenario differences are noise around the wrong number. :func:`demand_warnings` compares
the run's person trips and simulated car trips per hour with the residents and jobs of the zones and
returns one loud sentence per problem (empty when plausible); :func:`demand_caveats` says what the
demand leaves out (traffic from outside an area that draws people: many more people present in it
by day, by the phone presence counts, or else many more jobs, than live there). The thresholds are stated assumptions,
derived from the demand model's own documented defaults (docs/methods-demand.md), and listed in
docs/methods-calibration.md ("Plausible before precise").
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_RESIDENTS = 1000.0
"""Below this many residents a few dozen car trips an hour are plausible: no check (assumption)."""
MIN_PERSON_TRIP_RATIO = 0.25
"""Person trips per hour below this share of residents × trips per day × peak-hour share are implausible
(assumption: a quarter of the model's own expectation, beyond any local variation of trip rates)."""
MIN_CAR_TRIPS_PER_1000 = 10.0
"""Simulated car trips per hour per 1,000 residents below which the run is implausible (assumption:
the defaults 2.7 trips/day × 10 % in the peak hour give 270 person trips per 1,000 residents; even a
5 % car share at 1.2 persons per car gives 11 car trips)."""
MAX_JOBS_PER_RESIDENT = 2.0
"""Jobs per resident above which residents-only demand misses most traffic (assumption: most of the
area's workers then live outside it, and their trips enter only through gateways)."""
MAX_PRESENT_PER_RESIDENT = 2.0
"""People present in the area (phone presence, the busiest hour of the window) per resident above
which residents-only demand misses most traffic (assumption: more visitors than residents are then
in the area, and they came, and will leave, through its boundary)."""


@dataclass(frozen=True)
class DemandFacts:
    """What one run's demand and the twin say, per hour of the demand window (averaged over it).

    ``expected_person_trips`` is residents × trips per resident and day × peak-hour share, averaged
    over the window's hours along the hourly profile (the demand model's production);
    ``gateways`` whether traffic from outside the area is modelled.
    """

    residents: float
    jobs: float
    expected_person_trips: float
    person_trips: float
    car_trips: float
    gateways: bool
    present: float | None = None
    """People the phone presence counts in the area in the window's busiest hour (None: no data)."""
    present_hour: int | None = None
    """That clock hour (None: a count without hours)."""


def demand_warnings(facts: DemandFacts) -> list[str]:
    """One sentence per implausibility of the run's demand (empty when nothing is implausible)."""
    if facts.residents < MIN_RESIDENTS:
        return []
    warnings = []
    per_1000 = 1000.0 * facts.car_trips / facts.residents
    if per_1000 < MIN_CAR_TRIPS_PER_1000:
        warnings.append(
            f"Implausible demand: {facts.residents:,.0f} residents yield only {facts.car_trips:,.0f} "
            f"simulated car trips per hour ({per_1000:.1f} per 1,000 residents; below "
            f"{MIN_CAR_TRIPS_PER_1000:.0f} is a broken input, not a result)."
        )
    if facts.person_trips < MIN_PERSON_TRIP_RATIO * facts.expected_person_trips:
        warnings.append(
            f"Implausible demand: {facts.person_trips:,.0f} person trips per hour where the residents "
            f"imply about {facts.expected_person_trips:,.0f} (less than "
            f"{MIN_PERSON_TRIP_RATIO:.0%}; check demand.scale, the OD matrix and the zones' population)."
        )
    return warnings


def demand_caveats(facts: DemandFacts) -> list[str]:
    """Sentences on what the demand leaves out (not a broken input, but a limit of its results): the
    phone presence counts decide where the twin has them (people present measure the day population
    directly), else the jobs per resident."""
    if facts.gateways or facts.residents <= 0:
        return []
    if facts.present is not None:
        if facts.present <= MAX_PRESENT_PER_RESIDENT * facts.residents:
            return []
        when = f" at {facts.present_hour}:00" if facts.present_hour is not None else ""
        return [
            f"Incomplete demand: the phone presence counts {facts.present:,.0f} people in the area{when} "
            f"for {facts.residents:,.0f} residents, but only residents' trips are simulated (no "
            "gateways): the trips of the people who come from outside are missing, so car flows are "
            "underestimated."
        ]
    if facts.jobs <= MAX_JOBS_PER_RESIDENT * facts.residents:
        return []
    return [
        f"Incomplete demand: {facts.jobs:,.0f} jobs for {facts.residents:,.0f} residents, but only "
        "residents' trips are simulated (no gateways): traffic from outside the area is missing, so car "
        "flows are underestimated."
    ]
