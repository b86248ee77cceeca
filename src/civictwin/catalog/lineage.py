"""Lineage records (``lineage/<table>``): which inputs, which step, parameters and tool versions
produced a table, so a result can be traced and reproduced.

Inputs are other tables of the twin, or source files identified by their SHA-256 checksum (taken
from the catalogue, or computed when a file is not catalogued).
"""

from __future__ import annotations

import json
import platform
from functools import lru_cache
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from civictwin.catalog.metadata import CATALOG, sha256_of, source_files
from civictwin.errors import StoreError
from civictwin.store.base import Store

LINEAGE = "lineage"


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    """Versions of civictwin, Python and the libraries (and their C libraries) that shape results.

    ``osmium`` is listed only when importable. Reused by run manifests.
    """
    import duckdb
    import h3
    import pyogrio
    import pyproj
    import shapely

    versions = {
        "civictwin": _package_version("civictwin"),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
        "pyogrio": pyogrio.__version__,
        "gdal": pyogrio.__gdal_version_string__,
        "h3": h3.__version__,
    }
    try:
        osmium_version = import_module("osmium.version")
    except ImportError:
        return versions
    versions["pyosmium"] = str(osmium_version.pyosmium_release)
    versions["libosmium"] = str(osmium_version.libosmium_version)
    return versions


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        import civictwin

        return civictwin.__version__


def record_lineage(
    store: Store, table: str, *, inputs: list[str], step: str, parameters: dict[str, Any]
) -> None:
    """Write ``lineage/<table>``: resolved inputs, the step's name, its parameters and tool versions.

    Each input is resolved, in this order, as: another table of the twin (catalogued or stored); the
    name of a catalogued source (or ``table`` itself, for a source layer named after its source); the
    path of a catalogued source file; an existing file or directory (checksummed now). Anything else
    is an error, so lineage never names an input that cannot be traced.
    """
    record = {
        "table": table,
        "step": step,
        "inputs": [_resolve(store, table, name) for name in inputs],
        "parameters": json.loads(json.dumps(parameters, default=str)),
        "tools": tool_versions(),
    }
    store.put_record(LINEAGE, table, record)


def _resolve(store: Store, table: str, name: str) -> dict[str, Any]:
    catalogue = store.records(CATALOG)
    if name != table and (name in catalogue or store.has_table(name)):
        return {"type": "table", "table": name}
    for entry in catalogue.values():
        for source in source_files(entry):
            if name in (source["name"], source["path"]):
                return {
                    "type": "file",
                    "source": source["name"],
                    "path": source["path"],
                    "sha256": source["sha256"],
                }
    path = Path(name)
    if path.exists():
        return {"type": "file", "source": None, "path": str(path), "sha256": sha256_of(path)}
    raise StoreError(f"lineage of '{table}': input '{name}' is neither a table, a source nor a file")
