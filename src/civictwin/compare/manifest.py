"""The run manifest: everything needed to re-run a comparison and get the same numbers.

It records the twin's data versions (each catalogued table with its source file checksum, row count
and ingestion time), each scenario file's SHA-256, the seeds, every engine with its version, the
package that provides it and all its parameters, each seed's fingerprint and details, its status
(``complete``, or ``failed`` with the engine's quality check's message as ``failure``), and the
software versions. Same manifest → same results: every engine is deterministic per seed.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from civictwin.catalog.lineage import tool_versions
from civictwin.scenarios.spec import Scenario, intervention_label

MANIFEST_VERSION = 3
"""3: each run has ``status`` and ``failure`` (failed seeds are kept); 2 had neither."""
_LIBRARIES = ("numpy", "pandas", "scipy", "geopandas", "pydantic", "matplotlib")


def software_versions() -> dict[str, str]:
    """civictwin's tool versions plus the libraries every comparison relies on."""
    versions = dict(tool_versions())
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    versions.setdefault("python", platform.python_version())
    return versions


def data_versions(catalog: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per catalogued table: its source file and checksum (or derived inputs), rows and issue time."""
    versions: dict[str, dict[str, Any]] = {}
    for table, record in sorted(catalog.items()):
        entry: dict[str, Any] = {"rows": record.get("rows"), "issued": record.get("issued")}
        source = record.get("source")
        if isinstance(source, Mapping):
            entry["source"] = source.get("name")
            entry["path"] = source.get("path")
            entry["sha256"] = source.get("sha256")
        if record.get("sources"):
            entry["sources"] = [
                {k: c.get(k) for k in ("name", "path", "sha256", "rows")} for c in record["sources"]
            ]
        if record.get("inputs"):
            entry["derived_from"] = list(record["inputs"])
        versions[table] = entry
    return versions


def scenario_entry(scenario: Scenario, owners: Mapping[str, str]) -> dict[str, Any]:
    """A scenario's identity: name, file, SHA-256 of the file bytes, and its interventions (each with
    the engine that applies it)."""
    return {
        "name": scenario.name,
        "file": str(scenario.path) if scenario.path is not None else None,
        "sha256": scenario.file_hash or None,
        "baseline": scenario.baseline,
        "interventions": [
            {"engine": owners.get(i.type), "label": intervention_label(n, i), **i.model_dump(mode="json")}
            for n, i in enumerate(scenario.interventions)
        ],
    }


def build_manifest(
    *,
    comparison_id: str,
    created: str,
    twin_dir: str,
    catalog: Mapping[str, Mapping[str, Any]],
    scenarios: Sequence[Scenario],
    seeds: Sequence[int],
    engines: Mapping[str, Mapping[str, Any]],
    owners: Mapping[str, str],
    runs: Sequence[Mapping[str, Any]],
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``manifest.json`` document of one comparison.

    ``engines``: per engine name its ``version``, ``package`` and ``parameters``; ``owners``: which
    engine each intervention type belongs to; ``runs``: one entry per saved seed (failed ones too).
    """
    return {
        "manifest_version": MANIFEST_VERSION,
        "comparison": comparison_id,
        "created": created,
        "command": list(command) if command is not None else list(sys.argv),
        "twin": {"dir": twin_dir, "data": data_versions(catalog)},
        "scenarios": [scenario_entry(s, owners) for s in scenarios],
        "seeds": list(seeds),
        "engines": {name: dict(entry) for name, entry in engines.items()},
        "runs": list(runs),
        "software": software_versions(),
    }
