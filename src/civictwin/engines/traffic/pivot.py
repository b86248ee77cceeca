"""The calibrated base day the mode choice pivots on (an incremental logit).

A calibration fits the car demand with each OD pair's mode shares held at the base run's; a later run
starts from those shares and moves them only by what its level of service changes, so the baseline
reproduces the fitted day and a plan changes it by its own effect. Method: docs/methods-calibration.md,
"The base day the mode choice pivots on".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from civictwin.engines.traffic.demand import DemandError, FloatMatrix
from civictwin.engines.traffic.modechoice import MODES, Mode

ModeMatrices = Mapping[Mode, FloatMatrix]


@dataclass(frozen=True)
class BaseModes:
    """Each OD pair's mode shares on the calibrated base day and the utilities they go with.

    ``utility`` is each mode's systematic utility at the level of service the base day's simulation
    showed, ``free_flow_utility`` at the baseline's free-flow service (``-inf`` where a mode is
    unavailable); ``shares`` sum to 1 over the modes for every pair with an available mode.
    """

    zones: tuple[str, ...]
    shares: dict[Mode, FloatMatrix]
    utility: dict[Mode, FloatMatrix]
    free_flow_utility: dict[Mode, FloatMatrix]

    def shares_at(
        self, utility: ModeMatrices, *, absolute: ModeMatrices, free_flow: bool = False
    ) -> dict[Mode, FloatMatrix]:
        """The shares at ``utility``: ``s_m · exp(ΔU_m) / Σ_k s_k · exp(ΔU_k)`` with ``ΔU`` the change
        from the base day's utilities (from its free-flow ones with ``free_flow``, for a run's first
        round, whose service is free flow too).

        A pair whose set of available modes differs from the base day's (a closure that cuts the car
        off, a new line that serves it) cannot pivot on shares of modes it did not have: it takes the
        ``absolute`` logit shares, as does a pair with no share on the base day.
        """
        reference = self.free_flow_utility if free_flow else self.utility
        now = np.stack([np.asarray(utility[m], dtype=float) for m in MODES])
        then = np.stack([reference[m] for m in MODES])
        base = np.stack([self.shares[m] for m in MODES])
        same = (np.isfinite(now) == np.isfinite(then)).all(axis=0)
        usable = np.isfinite(now) & np.isfinite(then) & (base > 0)
        change = np.subtract(now, then, out=np.zeros_like(now), where=usable)
        log_weight = np.where(usable, np.log(np.where(usable, base, 1.0)) + change, -np.inf)
        best = log_weight.max(axis=0)
        pivots = same & np.isfinite(best)
        weight = np.exp(log_weight - np.where(pivots, best, 0.0))
        total = weight.sum(axis=0)
        pivoted = np.divide(weight, total, out=np.zeros_like(weight), where=total > 0)
        fallback = np.stack([np.asarray(absolute[m], dtype=float) for m in MODES])
        chosen = np.where(pivots, pivoted, fallback)
        return {mode: chosen[k] for k, mode in enumerate(MODES)}

    def as_record(self) -> dict[str, Any]:
        """Plain JSON data for the calibration record (``null`` for an unavailable mode's utility)."""

        def rows(matrix: FloatMatrix) -> list[list[float | None]]:
            return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(matrix)]

        return {
            "zones": list(self.zones),
            "shares": {m: rows(self.shares[m]) for m in MODES},
            "utility": {m: rows(self.utility[m]) for m in MODES},
            "free_flow_utility": {m: rows(self.free_flow_utility[m]) for m in MODES},
        }

    def check_zones(self, zones: tuple[str, ...]) -> None:
        """Raise :class:`DemandError` unless the base day was made for ``zones`` (in their order): a
        twin whose zones changed since its calibration must be calibrated again."""
        if self.zones != zones:
            raise DemandError(
                f"the calibration's base day was made for {len(self.zones)} zones and the twin has "
                f"{len(zones)} (or they differ): calibrate again",
                field="base_modes",
            )

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> BaseModes:
        """The base day a record's ``base_modes`` holds (:meth:`as_record`)."""

        def matrices(key: str, missing: float) -> dict[Mode, FloatMatrix]:
            return {
                m: np.array([[missing if v is None else v for v in row] for row in data[key][m]], dtype=float)
                for m in MODES
            }

        return cls(
            zones=tuple(str(z) for z in data["zones"]),
            shares=matrices("shares", 0.0),
            utility=matrices("utility", -np.inf),
            free_flow_utility=matrices("free_flow_utility", -np.inf),
        )
