"""The heat engine's parameters: central values, the ranges each seed samples from, and their sources.

Every uncertain parameter is drawn uniformly from its range with ``numpy.random.default_rng(seed)``,
in the fixed order of :data:`UNCERTAIN`, so a seed always gives the same draw. Only ranges taken from
a published source are used by default; a range that is an assumption is used only when the twin asks
for it (``sample_assumed_ranges`` in ``heat.toml``), else its parameter stays at the central value.
Sources are listed in docs/methods-heat.md (table "Parameters"); ``source`` here is the short key of
that table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from civictwin.engines.heat.rasters import Cover


@dataclass(frozen=True)
class Uncertain:
    """A parameter sampled per seed: ``low..high`` (uniform), ``central`` for a deterministic run.

    ``published``: the range itself (not only the central value) comes from the cited source.
    """

    name: str
    central: float
    low: float
    high: float
    unit: str
    source: str
    published: bool = False


UNCERTAIN: tuple[Uncertain, ...] = (
    Uncertain("uhi_max_c", 2.5, 1.5, 3.5, "°C", "assumption: UHI magnitude"),
    Uncertain("cooling_distance_m", 275.0, 100.0, 450.0, "m", "InVEST UG; Zawadzka et al. 2021"),
    Uncertain("blending_distance_m", 500.0, 300.0, 700.0, "m", "InVEST UG appendix (500 m)"),
    Uncertain("kc_grass", 0.90, 0.85, 0.95, "-", "FAO-56 table 12, turf grass", published=True),
    Uncertain("kc_tree", 1.00, 0.95, 1.05, "-", "FAO-56 table 12, trees"),
    Uncertain("kc_sealed", 0.05, 0.0, 0.1, "-", "assumption: sealed surfaces"),
    Uncertain("kc_green_roof", 0.5, 0.3, 0.7, "-", "assumption: extensive green roof"),
    Uncertain("albedo_canopy", 0.175, 0.15, 0.20, "-", "Oke 1987 table 1.1, deciduous trees", published=True),
    Uncertain("abs_k", 0.70, 0.65, 0.75, "-", "ISO 7726 (0.70) ± 0.05"),
)

# Albedo per land-cover class: UMEP/SOLWEIG's effective albedos (Lindberg et al. 2008, 2016), as
# shipped in solweig's parametersforsolweig.json. Kc of water: FAO-56 table 12, open water < 2 m.
ALBEDO = {Cover.PAVED: 0.20, Cover.ASPHALT: 0.18, Cover.BUILDING: 0.18, Cover.GRASS: 0.16,
          Cover.BARE_SOIL: 0.25, Cover.WATER: 0.05}  # fmt: skip
KC_WATER = 1.05
KC_BARE_SOIL = 0.3  # FAO-56 ch. 7: bare soil evaporation, Kc_ini of a dry soil surface (0.3)
GREEN_ROOF_ALBEDO = 0.16  # the grass value above


def sample(seed: int | None, *, assumed: bool = False) -> dict[str, float]:
    """One draw of the uncertain parameters (the central values when ``seed`` is None).

    Every range is drawn, in a fixed order, so a seed's draw does not depend on which are used; a
    parameter whose range is not published keeps its central value unless ``assumed`` is true.
    """
    if seed is None:
        return {p.name: p.central for p in UNCERTAIN}
    rng = np.random.default_rng(seed)
    drawn = {p.name: float(rng.uniform(p.low, p.high)) for p in UNCERTAIN}
    return {p.name: drawn[p.name] if (p.published or assumed) else p.central for p in UNCERTAIN}


def sampled(*, assumed: bool) -> list[str]:
    """The names of the parameters a seed draws (the others stay at their central values)."""
    return [p.name for p in UNCERTAIN if p.published or assumed]
