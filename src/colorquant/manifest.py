"""The batch manifest: one SQLite row per input, so a batch can be killed and resumed.

The database lives in the output folder (``colorquant.sqlite`` by default), in WAL mode, and
only the process that submitted the batch writes it. A row is written after its output has
been renamed into place, in its own transaction, so a SIGKILL at any moment loses at most the
rows of outputs whose transaction had not committed; those inputs are simply done again
(outputs are deterministic and replaced atomically).
"""

from __future__ import annotations

import csv
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Manifest", "ManifestRow", "MANIFEST_NAME", "STATUSES"]

MANIFEST_NAME = "colorquant.sqlite"
STATUSES = ("done", "skipped", "failed")
_SCHEMA_VERSION = "1"

_COLUMNS = (
    "relpath", "size", "mtime_ns", "content_hash", "settings_hash", "status", "output_path",
    "colors", "psnr", "ssim", "bytes_in", "bytes_out", "seconds", "error", "attempts",
    "created_at", "updated_at",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    relpath TEXT PRIMARY KEY,          -- input path relative to the input folder
    size INTEGER,                      -- input size in bytes when processed
    mtime_ns INTEGER,                  -- input modification time when processed
    content_hash TEXT,                 -- BLAKE2b-128 of the input's bytes
    settings_hash TEXT NOT NULL,       -- hash of every setting that decides the output
    status TEXT NOT NULL CHECK (status IN ('done', 'skipped', 'failed')),
    output_path TEXT,                  -- relative to the output folder; NULL unless done
    colors INTEGER, psnr REAL, ssim REAL, bytes_in INTEGER, bytes_out INTEGER, seconds REAL,
    error TEXT,                        -- why it was skipped or failed
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ManifestRow:
    relpath: str
    size: int | None
    mtime_ns: int | None
    content_hash: str | None
    settings_hash: str
    status: str
    output_path: str | None
    colors: int | None
    psnr: float | None
    ssim: float | None
    bytes_in: int | None
    bytes_out: int | None
    seconds: float | None
    error: str | None
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

    def rows(self) -> dict[str, ManifestRow]:
        cursor = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files ORDER BY relpath")
        return {row["relpath"]: ManifestRow(**dict(row)) for row in cursor}

    def get(self, relpath: str) -> ManifestRow | None:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files WHERE relpath = ?",
                               (relpath,)).fetchone()
        return None if row is None else ManifestRow(**dict(row))

    def record(self, relpath: str, *, status: str, settings_hash: str, size=None, mtime_ns=None,
               content_hash=None, output_path=None, colors=None, psnr=None, ssim=None,
               bytes_in=None, bytes_out=None, seconds=None, error=None) -> None:
        """Insert or update ``relpath``'s row, counting the attempt, in one transaction."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {status!r}")
        now = _now()
        with self._db:
            self._db.execute(
                """INSERT INTO files (relpath, size, mtime_ns, content_hash, settings_hash, status,
                       output_path, colors, psnr, ssim, bytes_in, bytes_out, seconds, error,
                       attempts, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT(relpath) DO UPDATE SET
                       size=excluded.size, mtime_ns=excluded.mtime_ns,
                       content_hash=excluded.content_hash, settings_hash=excluded.settings_hash,
                       status=excluded.status, output_path=excluded.output_path,
                       colors=excluded.colors, psnr=excluded.psnr, ssim=excluded.ssim,
                       bytes_in=excluded.bytes_in, bytes_out=excluded.bytes_out,
                       seconds=excluded.seconds, error=excluded.error,
                       attempts=files.attempts + 1, updated_at=excluded.updated_at""",
                (relpath, size, mtime_ns, content_hash, settings_hash, status, output_path, colors,
                 psnr, ssim, bytes_in, bytes_out, seconds, error, now, now),
            )

    def refresh_mtime(self, relpath: str, mtime_ns: int) -> None:
        """Same content under a new modification time (a copy, a touch): remember the time."""
        with self._db:
            self._db.execute("UPDATE files SET mtime_ns = ? WHERE relpath = ?", (mtime_ns, relpath))

    def summary(self) -> dict:
        """Counts per status, bytes before and after (done rows), mean PSNR, failures."""
        counts = {status: 0 for status in STATUSES}
        for status, count in self._db.execute("SELECT status, COUNT(*) FROM files GROUP BY status"):
            counts[status] = count
        bytes_in, bytes_out, mean_psnr, mean_ssim, seconds = self._db.execute(
            "SELECT SUM(bytes_in), SUM(bytes_out), AVG(psnr), AVG(ssim), SUM(seconds) "
            "FROM files WHERE status = 'done'").fetchone()
        failures = [(row["relpath"], row["error"]) for row in self._db.execute(
            "SELECT relpath, error FROM files WHERE status = 'failed' ORDER BY relpath")]
        skipped = [(row["relpath"], row["error"]) for row in self._db.execute(
            "SELECT relpath, error FROM files WHERE status = 'skipped' ORDER BY relpath")]
        return {"counts": counts, "bytes_in": bytes_in or 0, "bytes_out": bytes_out or 0,
                "mean_psnr": mean_psnr, "mean_ssim": mean_ssim, "seconds": seconds or 0.0,
                "failures": failures, "skipped": skipped}

    def export_csv(self, destination) -> int:
        """Write every row as CSV; returns the number of rows."""
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM files ORDER BY relpath").fetchall()
        with open(destination, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(_COLUMNS)
            writer.writerows(tuple(row) for row in rows)
        return len(rows)
