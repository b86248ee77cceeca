"""The hot day the heat engine simulates: read an EnergyPlus weather file (EPW) and pick its hottest day.

The EPW is parsed with :func:`pvlib.iotools.read_epw`. Its rows are hourly values for the hour *ending*
at the stated time in local standard time; pvlib labels each with the hour's start, and this module
keeps the hour's end, which is what SOLWEIG expects (it takes the sun position half an hour earlier). The hottest day is the calendar day
with the highest hourly dry-bulb temperature (the first such day on ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from civictwin.errors import EngineError

_COLUMNS = ("temp_air", "relative_humidity", "wind_speed", "ghi", "dni", "dhi")
_PLAUSIBLE = {
    "temp_air": (-70.0, 70.0),
    "relative_humidity": (0.0, 110.0),
    "wind_speed": (0.0, 40.0),
    "ghi": (0.0, 1500.0),
    "dni": (0.0, 1500.0),
    "dhi": (0.0, 1000.0),
}


@dataclass(frozen=True)
class HotDay:
    """Hourly weather of one day at one place (local standard time; each stamp ends its hour).

    Temperatures in °C, relative humidity in %, wind speed at 10 m in m/s, irradiance in W/m².
    """

    source: str
    latitude: float
    longitude: float
    utc_offset_h: float
    times: tuple[pd.Timestamp, ...]
    temp_air_c: tuple[float, ...]
    relative_humidity_pct: tuple[float, ...]
    wind_speed_ms: tuple[float, ...]
    ghi_wm2: tuple[float, ...]
    dni_wm2: tuple[float, ...]
    dhi_wm2: tuple[float, ...]

    @property
    def date(self) -> str:
        """The day as ``MM-DD`` (typical-year files mix years, so the year is left out)."""
        return f"{self.times[0].month:02d}-{self.times[0].day:02d}"

    @property
    def max_temp_c(self) -> float:
        """The day's highest hourly air temperature (°C)."""
        return max(self.temp_air_c)

    def hours(self, first: int, last: int) -> list[int]:
        """Indices of the hours whose local start hour lies in ``first..last`` (inclusive)."""
        return [i for i, t in enumerate(self.times) if first <= (t - pd.Timedelta(hours=1)).hour <= last]


def read_hot_day(path: Path) -> HotDay:
    """The hottest day of the EPW at ``path``; a missing or malformed file is one EngineError line."""
    frame, meta = _read_epw(path)
    labels = pd.DatetimeIndex(frame.index).strftime("%m-%d")
    hottest = labels[int(np.argmax(frame["temp_air"].to_numpy()))]
    day = frame[labels == hottest]
    stamps = tuple(pd.Timestamp(t) + pd.Timedelta(hours=1) for t in day.index)
    return HotDay(
        source=str(path),
        latitude=_number(meta, "latitude"),
        longitude=_number(meta, "longitude"),
        utc_offset_h=_number(meta, "TZ"),
        times=stamps,
        temp_air_c=tuple(float(v) for v in day["temp_air"]),
        relative_humidity_pct=tuple(float(min(v, 100.0)) for v in day["relative_humidity"]),
        wind_speed_ms=tuple(float(v) for v in day["wind_speed"]),
        ghi_wm2=tuple(float(v) for v in day["ghi"]),
        dni_wm2=tuple(float(v) for v in day["dni"]),
        dhi_wm2=tuple(float(v) for v in day["dhi"]),
    )


def _number(meta: dict[str, object], key: str) -> float:
    value = meta[key]
    assert isinstance(value, int | float)  # checked by _read_epw
    return float(value)


def _read_epw(path: Path) -> tuple[pd.DataFrame, dict[str, object]]:
    from pvlib.iotools import read_epw

    if not path.is_file():
        raise EngineError("weather file not found", path=path)
    try:
        frame, meta = read_epw(str(path))
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise EngineError(
            f"not a readable EPW weather file ({type(exc).__name__}: {exc})", path=path
        ) from None
    for key in ("latitude", "longitude", "TZ"):
        value = meta.get(key)
        if not isinstance(value, int | float) or not np.isfinite(float(value)):
            raise EngineError(f"LOCATION line: {key} is missing or not a number", path=path)
    if len(frame) < 24:
        raise EngineError(
            f"EPW holds {len(frame)} hourly rows; at least one whole day (24) is needed", path=path
        )
    for column in _COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        low, high = _PLAUSIBLE[column]
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if bad.any():
            row = int(np.argmax(bad))
            raise EngineError(
                f"data row {row + 1}: {column} = {frame[column].iloc[row]} is missing or outside {low:g}..{high:g}",
                path=path,
            )
    return frame, meta
