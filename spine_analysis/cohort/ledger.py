"""The cohort's ledger: one row per study, what a rerun reads to skip what is done.

Only the client process writes it, from studies whose task has finished, so a worker killed
mid-study (its task runs again elsewhere) or a task run twice never gives two rows: a row is keyed
by the study id and the last result wins. Each finished study is appended to ``ledger.jsonl`` and
flushed to disk at once (a crash or Ctrl-C loses no finished study; a line cut short by a crash is
ignored on reading). ``ledger.parquet`` and ``ledger.csv``, the copies a researcher opens, are
rewritten atomically every few seconds and at the end; reading takes the Parquet copy and replays
the journal over it, so the three never disagree on what is done.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import SpineAnalysisError
from ..io.atomic import atomic_output, write_csv_rows

COLUMNS = ("id", "task", "path", "centroids", "fingerprint", "model", "status", "reason", "seconds",
           "peak_memory_mb", "worker", "finished")
STATUSES = ("done", "refused", "error")
JOURNAL, PARQUET, CSV = "ledger.jsonl", "ledger.parquet", "ledger.csv"


def _parquet_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist() if path.is_file() else []


def _journal_rows(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:   # the last line of a crashed run, cut short
                continue
    return rows


class Ledger:
    """The rows of a cohort's output folder, updated study by study."""

    def __init__(self, out_dir, task: str, snapshot_every_s: float = 10.0):
        self.out_dir = Path(out_dir)
        self.task = task
        self.rows: dict[str, dict] = {}
        for row in _parquet_rows(self.out_dir / PARQUET) + _journal_rows(self.out_dir / JOURNAL):
            self.rows[row["id"]] = {c: row.get(c) for c in COLUMNS}
        other = {row["task"] for row in self.rows.values()} - {task}
        if other:
            raise SpineAnalysisError(f"{self.out_dir} holds a {sorted(other)[0]} cohort, not {task}: "
                                     "choose another --out-dir")
        self._every = snapshot_every_s
        self._last_snapshot = time.monotonic()
        self._journal = None

    def is_done(self, study_id: str, fingerprint: str, model: str) -> bool:
        """Done already with this input and these models: nothing to recompute."""
        row = self.rows.get(study_id)
        return bool(row and row["status"] == "done" and row["fingerprint"] == fingerprint and row["model"] == model)

    def record(self, row: dict) -> None:
        """Add or replace the row of one finished study, on disk before this returns."""
        row = {c: row.get(c) for c in COLUMNS}
        if row["status"] not in STATUSES:
            raise ValueError(f"unknown status {row['status']!r}")
        self.rows[row["id"]] = row
        if self._journal is None:
            self._open_journal()
        self._journal.write(json.dumps(row) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        if time.monotonic() - self._last_snapshot >= self._every:
            self.snapshot()

    def _open_journal(self) -> None:
        """Open the journal to append; a line a crash cut short is ended first, so the next row stays whole."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / JOURNAL
        torn = path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        self._journal = open(path, "a", encoding="utf-8")
        if torn:
            self._journal.write("\n")

    def snapshot(self) -> None:
        """Rewrite ledger.parquet and ledger.csv from the rows, each complete or as before."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rows = sorted(self.rows.values(), key=lambda r: r["id"])
        schema = pa.schema([(c, pa.float64() if c in ("seconds", "peak_memory_mb") else pa.string())
                            for c in COLUMNS])
        with atomic_output(self.out_dir / PARQUET) as tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        write_csv_rows(COLUMNS, [["" if r[c] is None else r[c] for c in COLUMNS] for r in rows],
                       self.out_dir / CSV)
        self._last_snapshot = time.monotonic()

    def close(self) -> None:
        """The last snapshot; the journal, now in it, starts again empty."""
        self.snapshot()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self.rows and (self.out_dir / JOURNAL).is_file():
            with atomic_output(self.out_dir / JOURNAL) as tmp:
                tmp.write_text("", encoding="utf-8")

    def counts(self, ids=None) -> dict[str, int]:
        """How many of ``ids`` (default all) are done, refused, error."""
        chosen = self.rows.values() if ids is None else [self.rows[i] for i in ids if i in self.rows]
        return {status: sum(r["status"] == status for r in chosen) for status in STATUSES}
