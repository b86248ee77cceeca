"""The words of the proposal menu (docs/consultation.md#languages): for each intervention type that
civictwin's own engines place on a map, its label, its help text, its settings' names and its choices'
names, as gettext message ids marked with :func:`~civictwin.i18n.N_`, so ``make messages`` extracts
them and the menu translates them into the page's language.

One place, so translators find every menu word together. The English help is the intervention model's
docstring (its first paragraph, as the menu shows a third-party engine's types); a unit test holds each
one here equal to its docstring, so an edited docstring cannot leave its translations behind. Energy
offers no type placed on a map (its interventions select buildings by zone, use or year), so none is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from civictwin.i18n import N_


@dataclass(frozen=True)
class TypeWords:
    """The message ids of one intervention type on the menu."""

    label: str
    help: str
    settings: Mapping[str, str] = field(default_factory=dict)
    """Each setting's name as people read it, by field name (``speed_kmh`` → "speed (km/h)")."""
    choices: Mapping[str, str] = field(default_factory=dict)
    """Each choice of a setting as people read it, by value (``forward``)."""


_TREES = {
    "count": N_("number of trees"),
    "crown_radius_m": N_("crown radius (m)"),
    "height_m": N_("tree height (m)"),
}
_WORKS = {"begin_s": N_("begins (simulation second)"), "end_s": N_("ends (simulation second)")}

WORDS: dict[str, TypeWords] = {
    "bus_lane": TypeWords(
        N_("bus lane"), N_("Reserve the rightmost lanes lanes for buses."), {"lanes": N_("number of lanes")}
    ),
    "close_streets": TypeWords(
        N_("close streets"),
        N_("Close the selected edges to some or all modes (car = private cars; buses are bus)."),
    ),
    "cool_surfaces": TypeWords(
        N_("cool surfaces"),
        N_("Roofs and/or pavements inside polygon get albedo albedo (e.g. 0.5 for a light coating)."),
        {"albedo": N_("albedo (0–1)")},
    ),
    "cycle_lane": TypeWords(
        N_("cycle lane"),
        N_(
            "A cycle lane on the selected edges: they open to bikes (a new link where bikes were barred, "
            "e.g. against a one-way street), and with from_cars the rightmost car lane becomes bike-only."
        ),
        {"from_cars": N_("lane taken from cars")},
    ),
    "depave": TypeWords(
        N_("depave"),
        N_("Paved ground inside polygon becomes grass; public green counts for green access."),
        {"public": N_("public green")},
    ),
    "one_way": TypeWords(
        N_("one way"),
        N_("Cars and buses keep only one direction: forward (the OSM way direction) or reverse."),
        {"keep": N_("direction kept")},
        {
            "forward": N_("forward (as drawn in OpenStreetMap)"),
            "reverse": N_("reverse (against how it is drawn)"),
        },
    ),
    "pedestrianise": TypeWords(
        N_("pedestrianise"),
        N_("Cars and buses lose access, walking is allowed, bikes per allow_bikes."),
        {"allow_bikes": N_("bikes allowed")},
    ),
    "plant_street_trees": TypeWords(
        N_("plant street trees"),
        N_("Trees along the selected streets (both sides), every spacing_m or count in all."),
        {"spacing_m": N_("spacing (m)"), **_TREES},
    ),
    "plant_trees_in_area": TypeWords(
        N_("plant trees in area"),
        N_("Trees inside polygon: count trees, or enough to cover canopy_share of its open ground."),
        {**_TREES, "canopy_share": N_("canopy share (0–1)")},
    ),
    "reverse": TypeWords(
        N_("reverse"),
        N_("A one-way street changes direction for cars and buses (edge ids are kept, see the docs)."),
    ),
    "speed_limit": TypeWords(
        N_("speed limit"),
        N_("Set the speed limit; with only_lower edges that are already slower keep their speed."),
        {"speed_kmh": N_("speed (km/h)"), "only_lower": N_("only lower speeds")},
    ),
    "works_closure": TypeWords(
        N_("works closure"),
        N_("A temporary closure (roadworks) between begin_s and end_s simulation seconds."),
        _WORKS,
    ),
}
"""The menu words of civictwin's own map-placed intervention types, by type."""
