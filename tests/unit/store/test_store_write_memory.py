"""The DuckDB store's memory cap while ``write_tables`` appends: lowered to 64 MiB, the caller's own restored after.

DuckDB shows its cap to 0.1 MiB (``256MB`` as ``244.1 MiB``), and that shown value is what is set back,
so the cap restored may lie up to 0.1 MiB below the one set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import shapely

from civictwin.store.duckdb import WRITE_MEMORY_MB, DuckDBStore

CRS = "EPSG:32635"
SCHEMA = pa.schema([("n", pa.int64()), ("geometry", pa.binary())])


def _limit(store: DuckDBStore) -> str:
    row = store.connection.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


def _mebibytes(shown: str) -> float:
    number, unit = shown.split()
    assert unit == "MiB"
    return float(number)


def _batches(store: DuckDBStore, seen: list[str], *, fail: bool = False) -> Iterator[dict[str, pa.Table]]:
    """Two batches of one 1 × 1 m square, noting the cap DuckDB has while each is appended."""
    for i in range(2):
        seen.append(_limit(store))
        if fail and i == 1:
            raise OSError("the file broke")
        square = shapely.to_wkb([shapely.box(i, 0, i + 1, 1)])
        yield {"squares": pa.table({"n": [i], "geometry": pa.array(square)}, schema=SCHEMA)}


@pytest.mark.parametrize(("cap", "shown"), [("256MB", "244.1 MiB"), ("32MB", "30.5 MiB")])
def test_the_cap_is_at_most_64_mib_while_appending_and_restored_after(
    tmp_path: Path, cap: str, shown: str
) -> None:
    assert WRITE_MEMORY_MB == 64
    store = DuckDBStore.create(tmp_path / "t.duckdb", crs=CRS)
    try:
        store.connection.execute(f"SET memory_limit = '{cap}'")
        seen: list[str] = []
        assert store.write_tables(_batches(store, seen), schemas={"squares": SCHEMA}) == {"squares": 2}
        lowered = "64.0 MiB" if cap == "256MB" else shown  # a lower cap than 64 MiB is kept
        assert seen == [lowered, lowered]
        assert _mebibytes(_limit(store)) == pytest.approx(_mebibytes(shown), abs=0.1)
        assert store.read_table("squares").geometry.area.tolist() == [1.0, 1.0]
        with pytest.raises(OSError, match="broke"):
            store.write_tables(_batches(store, [], fail=True), schemas={"squares": SCHEMA})
        assert _mebibytes(_limit(store)) == pytest.approx(_mebibytes(shown), abs=0.1)
    finally:
        store.close()
