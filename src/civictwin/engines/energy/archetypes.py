"""Building archetypes: envelope by construction period and refurbishment level, use by activity.

Envelope parameters come from a TABULA/EPISCOPE typology file (one country, the format of the TABULA
webtool export: one row per building type, construction period and refurbishment variant). The
refurbished U-values follow the TABULA calculation sheet: an ``Add`` measure puts its thermal
resistance in series with the existing element, ``Replace`` substitutes it, ``ReplaceInsulation``
first removes the existing insulation (at 0.04 W/(m·K)); ``f_Measure`` is the refurbished share of
the element's area.

Use parameters (set-points, people, appliances and lighting with their 24-hour profiles, cooling)
come from TEASER's ``UseConditions.json`` (DIN V 18599-10 and SIA 2024 based), read from the
installed ``teaser`` package so that no value is typed by hand here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from civictwin.errors import ConfigError

VARIANTS = {"existing": 1, "usual": 2, "advanced": 3}
"""TABULA refurbishment variants: 1 as built, 2 usual refurbishment, 3 advanced refurbishment."""

SIZE_CLASSES = ("SFH", "TH", "MFH", "AB")
_ELEMENTS = ("Roof", "Wall", "Floor", "Window")
_OPAQUE = ("Roof", "Wall", "Floor")
# The TABULA sheet's conductivity of insulation removed by a ReplaceInsulation measure, W/(m·K).
_INSULATION_CONDUCTIVITY = 0.04

TYPOLOGY_COLUMNS = (
    "size_class", "year_from", "year_to", "variant", "u_roof", "u_wall", "u_floor", "u_window",
    "b_roof", "b_floor", "g_window", "delta_u_bridging", "n_infiltration", "n_use", "c_m_wh_m2k",
    "dhw_kwh_m2", "window_wall_ratio", "frame_fraction", "shading_factor", "angle_factor", "code",
)  # fmt: skip


def read_typology(path: Path) -> pd.DataFrame:
    """The archetype table of a TABULA country file: one row per size class, period and variant.

    Columns: :data:`TYPOLOGY_COLUMNS` (U-values in W/(m²·K) already refurbished for variants 2 and 3,
    ``b_*`` temperature adjustment factors, air change rates in 1/h, heat capacity in Wh/(m²·K) of
    reference floor area, hot water need in kWh/(m²·a)). Regional rows are dropped where the file has
    national ones (code ``<country>.N.…``); of several type variants the first is kept.
    """
    if not path.is_file():
        raise ConfigError("typology file not found", path=path)
    try:
        raw = pd.read_csv(path, low_memory=False, encoding_errors="replace")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"not a readable CSV file ({exc})", path=path) from None
    needed = ["Code_BuildingVariant", "Code_BuildingSizeClass", "Year1_Building", "Year2_Building"]
    needed += [f"U_{e}_1" for e in _ELEMENTS]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise ConfigError(f"not a TABULA typology: missing column(s) {', '.join(missing)}", path=path)
    rows = _national_rows(raw)
    rows = rows[rows["Code_BuildingSizeClass"].isin(SIZE_CLASSES)]
    if rows.empty:
        raise ConfigError(f"no building types of the classes {', '.join(SIZE_CLASSES)}", path=path)
    return _archetypes(rows).reset_index(drop=True)


def _national_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """National rows (``<country>.N.…``) where the file has them; per class and period one type.

    Codes read ``country.region.class.period.subtype.datatype.type_variant.refurbishment_variant``;
    the generic subtype (``Gen``) and the first type variant are preferred.
    """
    parts = raw["Code_BuildingVariant"].astype(str).str.split(".", expand=True).reindex(columns=range(8))
    national = parts[1] == "N"
    keep = national if national.any() else pd.Series(True, index=raw.index)
    rows, parts = raw[keep], parts[keep].fillna("")
    key = parts[2] + "." + parts[3]
    rank = (parts[4] != "Gen").astype(int).astype(str) + "." + parts[5] + "." + parts[6]
    return rows[rank == rank.groupby(key).transform("min")]


def _num(rows: pd.DataFrame, column: str, default: float = 0.0) -> np.ndarray:
    if column not in rows.columns:
        return np.full(len(rows), default)
    values = pd.to_numeric(rows[column], errors="coerce")
    return np.asarray(values.fillna(default), dtype=float)


def _refurbished_u(rows: pd.DataFrame, element: str) -> np.ndarray:
    """The element's effective U-value (W/(m²·K)) after the variant's measure, per the TABULA sheet."""
    u = _num(rows, f"U_{element}_1")
    extra = _num(rows, f"R_Add_UnheatedSpace_{element}_1") if element in _OPAQUE else np.zeros(len(rows))
    measure = rows.get(f"Code_MeasureType_{element}_1", pd.Series("0", index=rows.index)).astype(str)
    r_measure = _num(rows, f"R_PredefinedMeasure_{element}_1")
    share = np.clip(_num(rows, f"f_Measure_{element}_1", 1.0), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_before = np.where(u > 0, 1.0 / u, 0.0) + extra
        if element in _OPAQUE:
            removed = _num(rows, f"d_Insulation_{element}_1") / _INSULATION_CONDUCTIVITY
            r_before = r_before - np.where(measure.to_numpy() == "ReplaceInsulation", removed, 0.0)
        denominator = np.where(measure.to_numpy() == "Replace", extra, r_before) + r_measure
        modified = np.where(denominator > 0, 1.0 / denominator, 0.0)
        original = np.where(u > 0, 1.0 / (np.where(u > 0, 1.0 / u, 1.0) + extra), 0.0)
    applies = (measure.isin(["Add", "Replace", "ReplaceInsulation"]).to_numpy()) & (r_measure > 0)
    return np.where(applies, (1 - share) * original + share * modified, original)


def _archetypes(rows: pd.DataFrame) -> pd.DataFrame:
    walls = sum(_num(rows, f"A_Wall_{i}") for i in (1, 2, 3))
    windows = _num(rows, "A_Window_1") + _num(rows, "A_Window_2")
    variant = np.asarray(pd.to_numeric(rows["Number_BuildingVariant"], errors="coerce").fillna(1), dtype=int)
    bridging = np.where(
        variant > 1,
        _num(rows, "delta_U_ThermalBridging_Refurbished"),
        _num(rows, "delta_U_ThermalBridging_Original"),
    )
    frame = pd.DataFrame({
        "size_class": rows["Code_BuildingSizeClass"].to_numpy(),
        "year_from": _num(rows, "Year1_Building").astype(int),
        "year_to": _num(rows, "Year2_Building", 2100).astype(int),
        "variant": variant,
        "u_roof": _refurbished_u(rows, "Roof"),
        "u_wall": _refurbished_u(rows, "Wall"),
        "u_floor": _refurbished_u(rows, "Floor"),
        "u_window": _refurbished_u(rows, "Window"),
        "b_roof": _num(rows, "b_Transmission_Roof_1", 1.0),
        "b_floor": _num(rows, "b_Transmission_Floor_1", 0.5),
        "g_window": _num(rows, "g_gl_n_Window_1", 0.6),
        "delta_u_bridging": bridging,
        "n_infiltration": _num(rows, "n_air_infiltration", 0.2),
        "n_use": _num(rows, "n_air_use", 0.4),
        "c_m_wh_m2k": _num(rows, "c_m", 45.0),
        "dhw_kwh_m2": _num(rows, "q_w_nd", 15.0),
        "window_wall_ratio": np.where(walls + windows > 0, windows / np.maximum(walls + windows, 1e-9), 0.2),
        "frame_fraction": _num(rows, "F_f", 0.3),
        "shading_factor": _num(rows, "F_sh_vert", 0.6),
        "angle_factor": _num(rows, "F_w", 0.9),
        "code": rows["Code_BuildingVariant"].astype(str).to_numpy(),
    })  # fmt: skip
    frame = frame[frame["variant"].isin(list(VARIANTS.values()))]
    return frame.sort_values(["size_class", "year_from", "variant"], kind="stable")


@dataclass(frozen=True)
class UseProfile:
    """One use condition: set-points (°C), gains and electricity (W/m²), each a 24-hour profile."""

    name: str
    heating_setpoint: np.ndarray  # °C, 24 values
    cooling_setpoint: np.ndarray  # °C, 24 values
    with_cooling: bool
    internal_gains: np.ndarray  # W/m² of floor area: people + appliances + lighting, 24 values
    electricity: np.ndarray  # W/m²: appliances + lighting, 24 values


# OSM building values and civictwin use classes mapped to TEASER use conditions.
USE_CONDITION_OF_BUILDING: dict[str, str] = {
    "office": "Group Office (between 2 and 6 employees)",
    "commercial": "Group Office (between 2 and 6 employees)",
    "government": "Group Office (between 2 and 6 employees)",
    "civic": "Group Office (between 2 and 6 employees)",
    "public": "Group Office (between 2 and 6 employees)",
    "retail": "Retail, department store",
    "supermarket": "Retail with cooling",
    "kiosk": "Retail, department store",
    "hotel": "Hotel room",
    "school": "Classroom",
    "kindergarten": "Class room (school), group room (kindergarden)",
    "university": "Lecture hall, auditorium",
    "college": "Lecture hall, auditorium",
    "hospital": "Examination- or treatment room",
    "library": "Library - reading room",
    "museum": "Exhibition room and museum conservational demands",
    "theatre": "Spectator area (theater and event venues)",
    "sports_hall": "Gym (without spectator area)",
    "stadium": "Gym (without spectator area)",
    "train_station": "Main Hall, Reception",
    "transportation": "Main Hall, Reception",
    "warehouse": "Storehouse, logistics building",
}
USE_CONDITION_OF_CLASS: dict[str, str] = {
    "residential": "Living",
    "unknown": "Living",
    "commercial": "Group Office (between 2 and 6 employees)",
    "public": "Group Office (between 2 and 6 employees)",
    "religious": "Spectator area (theater and event venues)",
    "industrial": "Commercial and industrial Halls - medium work, standing activity",
    "transport": "Main Hall, Reception",
}
UNHEATED_CLASSES = ("ancillary", "agricultural")
"""Use classes the model treats as unheated (garages, sheds, barns): no heating, cooling or hot water."""


def use_condition_name(building: str | None, use: str) -> str | None:
    """The TEASER use condition of a building (None for unheated ones)."""
    if use in UNHEATED_CLASSES or building in ("parking", "garage", "garages", "carport"):
        return None
    return USE_CONDITION_OF_BUILDING.get(building or "", USE_CONDITION_OF_CLASS.get(use, "Living"))


def load_use_profiles(names: set[str]) -> dict[str, UseProfile]:
    """The named use conditions from TEASER's ``UseConditions.json`` as 24-hour profiles."""
    source = resources.files("teaser").joinpath("data/input/inputdata/UseConditions.json")
    data = json.loads(source.read_text(encoding="utf-8"))
    return {name: _use_profile(name, data[name]) for name in sorted(names)}


def _daily(values: list[float]) -> np.ndarray:
    """A 24-hour profile (TEASER stores 24 values, or a multiple of 24 for longer cycles: first day)."""
    array = np.asarray(values, dtype=float)
    return array[:24] if len(array) >= 24 else np.resize(array, 24)


def _use_profile(name: str, entry: dict[str, object]) -> UseProfile:
    persons_ratio = entry["persons"]
    numerator, denominator = persons_ratio["/"] if isinstance(persons_ratio, dict) else (persons_ratio, 1)  # type: ignore[misc]
    persons_per_m2 = float(numerator) / float(denominator)  # type: ignore[arg-type]
    people = persons_per_m2 * float(entry["fixed_heat_flow_rate_persons"]) * _daily(entry["persons_profile"])  # type: ignore[arg-type]
    machines = float(entry["machines"]) * _daily(entry["machines_profile"])  # type: ignore[arg-type]
    if entry.get("use_maintained_illuminance"):
        lighting_w_m2 = float(entry["maintained_illuminance"]) / float(entry["lighting_efficiency_lumen"])  # type: ignore[arg-type]
    else:
        lighting_w_m2 = float(entry["fixed_lighting_power"])  # type: ignore[arg-type]
    lighting = lighting_w_m2 * _daily(entry["lighting_profile"])  # type: ignore[arg-type]
    return UseProfile(
        name=name,
        heating_setpoint=_daily(entry["heating_profile"]) - 273.15,  # type: ignore[arg-type]
        cooling_setpoint=_daily(entry["cooling_profile"]) - 273.15,  # type: ignore[arg-type]
        with_cooling=bool(entry["with_cooling"]),
        internal_gains=people + machines + lighting,
        electricity=machines + lighting,
    )
