"""The cohort table: one row per radiograph (``cobb``) or per vertebra (``fracture``, ``centra``).

Built from the rows each done study left in DIR/<id>/ (``tasks.ROWS_FILE``), so studies done in an
earlier run are in it as well as today's; written as ``cohort.parquet`` and ``cohort.csv``, each
complete or as before.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..io.atomic import atomic_output, write_csv_rows
from .ledger import Ledger
from .tasks import ROWS_FILE

TABLE_PARQUET, TABLE_CSV = "cohort.parquet", "cohort.csv"


def cohort_rows(ledger: Ledger, ids=None) -> list[dict]:
    """The table rows of every done study (of ``ids``, default all), in id order, each starting with
    the study's id and input path."""
    rows = []
    for study_id in sorted(ids if ids is not None else ledger.rows):
        entry = ledger.rows.get(study_id)
        path = ledger.out_dir / study_id / ROWS_FILE
        if not entry or entry["status"] != "done" or not path.is_file():
            continue
        for row in json.loads(path.read_text(encoding="utf-8"))["rows"]:
            rows.append({"study_id": study_id, "path": entry["path"], **row})
    return rows


def _columns(rows: list[dict]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def write_table(rows: list[dict], out_dir) -> dict[str, Path]:
    """``cohort.parquet`` and ``cohort.csv`` of ``rows`` in ``out_dir`` (no rows: nothing written)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        return {}
    out_dir = Path(out_dir)
    columns = _columns(rows)
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    with atomic_output(out_dir / TABLE_PARQUET) as tmp:
        pq.write_table(table, tmp)
    write_csv_rows(columns, [["" if row.get(c) is None else row[c] for c in columns] for row in rows],
                   out_dir / TABLE_CSV)
    return {TABLE_PARQUET: out_dir / TABLE_PARQUET, TABLE_CSV: out_dir / TABLE_CSV}
