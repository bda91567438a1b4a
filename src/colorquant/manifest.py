"""The batch manifest: one SQLite row per input, so a batch can be killed and resumed.

The database lives in the output folder (``colorquant.sqlite`` by default), in WAL mode, and
only the process that submitted the batch writes it. A row holds an input's
:class:`~colorquant.outcome.Outcome` (its figures as JSON, so that a new figure needs no new
column) and is written after the output has been renamed into place, in its own
transaction: a SIGKILL at any moment loses at most the rows of outputs whose transaction had
not committed, and those inputs are simply done again (outputs are deterministic and
replaced atomically).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .metrics import METRICS
from .outcome import STATUSES, Outcome

__all__ = ["Manifest", "StoredOutcome", "MANIFEST_NAME"]

MANIFEST_NAME = "colorquant.sqlite"
_SCHEMA_VERSION = "2"

# Outcome fields stored as columns (metrics as JSON); ``input`` is the primary key.
_OUTCOME_COLUMNS = (
    "status", "output", "method", "colors", "bytes_in", "bytes_out", "bpp", "seconds", "error",
    "error_kind", "input_size", "input_mtime_ns", "input_hash", "output_hash",
)
_BOOKKEEPING = ("settings_hash", "attempts", "created_at", "updated_at")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS files (
    input TEXT PRIMARY KEY,            -- input path relative to the input folder
    status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    output TEXT,                       -- relative to the output folder; NULL unless done
    method TEXT,
    colors INTEGER,
    metrics TEXT NOT NULL DEFAULT '{{}}', -- the figures, JSON: {{"psnr": 33.1, ...}}
    bytes_in INTEGER, bytes_out INTEGER, bpp REAL, seconds REAL,
    error TEXT,                        -- why it was skipped or failed
    error_kind TEXT,                   -- the error's class name, for exit statuses
    input_size INTEGER,                -- the input when processed: size in bytes,
    input_mtime_ns INTEGER,            -- modification time,
    input_hash TEXT,                   -- and BLAKE2b-128 of its bytes
    output_hash TEXT,                  -- BLAKE2b-128 of the output's bytes
    settings_hash TEXT NOT NULL,       -- hash of every setting that decides the output
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StoredOutcome:
    """An outcome as the manifest holds it, with its bookkeeping."""

    outcome: Outcome
    settings_hash: str
    attempts: int
    created_at: str
    updated_at: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9 // 10**6:03d}Z"


class Manifest:
    """Read and write the manifest at ``path``."""

    def __init__(self, path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process (not a power cut); that is the promise.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))
            self._db.commit()
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def rows(self) -> dict[str, StoredOutcome]:
        cursor = self._db.execute("SELECT * FROM files ORDER BY input")
        return {row["input"]: _stored(row) for row in cursor}

    def record(self, outcome: Outcome, *, settings_hash: str) -> None:
        """Insert or update ``outcome.input``'s row, counting the attempt, in one transaction."""
        if outcome.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {outcome.status!r}")
        now = _now()
        values = [getattr(outcome, name) for name in _OUTCOME_COLUMNS]
        metrics = json.dumps({k: v for k, v in outcome.metrics.items() if v is not None})
        columns = ("input", *_OUTCOME_COLUMNS, "metrics", "settings_hash", "attempts",
                   "created_at", "updated_at")
        updates = ", ".join(f"{name}=excluded.{name}" for name in (*_OUTCOME_COLUMNS, "metrics", "settings_hash"))
        with self._db:
            self._db.execute(
                f"""INSERT INTO files ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})
                    ON CONFLICT(input) DO UPDATE SET {updates},
                        attempts=files.attempts + 1, updated_at=excluded.updated_at""",
                (outcome.input, *values, metrics, settings_hash, 1, now, now),
            )

    def refresh_mtime(self, relpath: str, mtime_ns: int) -> None:
        """Same content under a new modification time (a copy, a touch): remember the time."""
        with self._db:
            self._db.execute("UPDATE files SET input_mtime_ns = ? WHERE input = ?", (mtime_ns, relpath))

    def summary(self) -> dict:
        """Counts per status, bytes before and after and mean PSNR (done rows), failures."""
        counts = {status: 0 for status in STATUSES}
        bytes_in = bytes_out = 0
        psnrs, failures = [], []
        for stored in self.rows().values():
            outcome = stored.outcome
            counts[outcome.status] += 1
            if outcome.status == "done":
                bytes_in += outcome.bytes_in or 0
                bytes_out += outcome.bytes_out or 0
                if outcome.metrics.get("psnr") is not None:
                    psnrs.append(outcome.metrics["psnr"])
            elif outcome.status == "failed":
                failures.append((outcome.input, outcome.error))
        return {"counts": counts, "bytes_in": bytes_in, "bytes_out": bytes_out,
                "mean_psnr": sum(psnrs) / len(psnrs) if psnrs else None, "failures": failures}

    def export_csv(self, destination) -> int:
        """Write every row as CSV, one column per figure; returns the number of rows."""
        header = ("input", *_OUTCOME_COLUMNS, *METRICS, *_BOOKKEEPING)
        rows = self.rows()
        with open(destination, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for stored in rows.values():
                outcome = stored.outcome
                writer.writerow([outcome.input, *(getattr(outcome, n) for n in _OUTCOME_COLUMNS),
                                 *(outcome.metrics.get(n) for n in METRICS),
                                 *(getattr(stored, n) for n in _BOOKKEEPING)])
        return len(rows)


def _stored(row: sqlite3.Row) -> StoredOutcome:
    metrics = {name: None for name in METRICS}
    metrics.update(json.loads(row["metrics"] or "{}"))
    outcome = Outcome(input=row["input"], metrics=metrics,
                      **{name: row[name] for name in _OUTCOME_COLUMNS})
    return StoredOutcome(outcome, *(row[name] for name in _BOOKKEEPING))
