"""The batch manifest: one SQLite row per input, so a batch can be killed and resumed.

The database lives in the output folder (``colorquant.sqlite`` by default), in WAL mode, and
only the process that submitted the batch writes it. A row holds an input's
:class:`~colorquant.outcome.Outcome` (its figures as JSON, so that a new figure needs no new
column) and is written after the output has been renamed into place, in its own
transaction: a SIGKILL at any moment loses at most the rows of outputs whose transaction had
not committed, and those inputs are simply done again (outputs are deterministic, and an
existing file with exactly the bytes to be written is adopted).

The manifest is bound to the folders it was made for (``meta``: ``output_root``,
``input_root``) and holds a random token that the batch's temporary files carry, so that only
its own leftovers are ever cleaned up. A damaged manifest, or one bound elsewhere, is refused
with one line saying how to go on.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ColorquantError, ImageWriteError, InvalidParameterError, ManifestError
from .metrics import METRICS
from .outcome import STATUSES, Outcome

__all__ = ["Manifest", "StoredOutcome", "ManifestError", "MANIFEST_NAME"]

MANIFEST_NAME = "colorquant.sqlite"
_SCHEMA_VERSION = "3"  # 3: dither, max_bytes and color_space (byte budgets)

# Outcome fields stored as columns (metrics as JSON); ``input`` is the primary key.
_OUTCOME_COLUMNS = (
    "status", "output", "method", "colors", "bytes_in", "bytes_out", "bpp", "seconds", "error",
    "error_kind", "remedy", "input_size", "input_mtime_ns", "input_hash", "output_hash",
    "output_mtime_ns", "dither", "max_bytes", "color_space",
)
_BOOKKEEPING = ("settings_hash", "output_stem", "input_gone", "attempts", "created_at", "updated_at")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS files (
    input TEXT PRIMARY KEY,            -- input path relative to the input folder
    status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    output TEXT,                       -- the output this row owns, relative to the output
                                       -- folder: this run's, or an earlier one kept
    method TEXT,
    colors INTEGER,
    metrics TEXT NOT NULL DEFAULT '{{}}', -- the figures, JSON: {{"psnr": 33.1, ...}}
    bytes_in INTEGER, bytes_out INTEGER, bpp REAL, seconds REAL,
    error TEXT,                        -- why it was skipped or failed
    error_kind TEXT,                   -- the error's class name, for exit statuses
    remedy TEXT,                       -- the setting that would let it through
    input_size INTEGER,                -- the input when processed: size in bytes,
    input_mtime_ns INTEGER,            -- modification time,
    input_hash TEXT,                   -- and BLAKE2b-128 of its bytes
    output_hash TEXT,                  -- BLAKE2b-128 of the owned output's bytes
    output_mtime_ns INTEGER,           -- its modification time when written or checked
    dither REAL,                       -- the output's dither level
    max_bytes INTEGER,                 -- the byte budget of this input (--max-size)
    color_space TEXT,                  -- the output's colour space
    settings_hash TEXT NOT NULL,       -- hash of every setting that decides the output
    output_stem TEXT,                  -- the stem its outputs are named with
    input_gone INTEGER NOT NULL DEFAULT 0,  -- 1: the input was not there on the last run
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
    output_stem: str | None
    input_gone: int
    attempts: int
    created_at: str
    updated_at: str


def _text(value):
    """A value as SQLite stores it: a name that is not UTF-8 (a file name's undecodable bytes,
    kept by Python as surrogates) goes in as its bytes, a BLOB; every other value as it is.
    Each name has one form, so lookups by name still match."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
    return value


def _from_db(value):
    """The inverse of :func:`_text`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9 // 10**6:03d}Z"


def _damaged(path: Path, error: Exception) -> ColorquantError:
    """The error for a failed SQLite call: a damaged file (SQLite's CORRUPT and NOTADB, which
    Python raises as plain DatabaseError), or one that cannot be written (OperationalError:
    read-only, full disk, I/O error)."""
    if type(error) is not sqlite3.DatabaseError:
        return ImageWriteError(f"{path}: cannot use the manifest ({error})")
    aside = path.with_name(path.name + ".damaged")
    return ManifestError(
        f"{path}: damaged manifest ({error}); move it aside (mv {path} {aside}) and run the "
        "batch again: it rebuilds the manifest and keeps every output that is already right")


class Manifest:
    """Read and write the manifest at ``path``."""

    def __init__(self, path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
                self._db.row_factory = sqlite3.Row
                self._db.execute("SELECT COUNT(*) FROM files").fetchone()
            else:
                self._db = sqlite3.connect(self.path)
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL survives a killed process (not a power cut); that is the promise.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._open_schema()
            self._db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as error:
            raise _damaged(self.path, error) from None

    def _open_schema(self) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if "meta" in tables:
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = found[0] if found else None
        if "files" in tables and version == "1":
            self._migrate_from_1()
        elif "files" in tables and version == "2":
            self._migrate_from_2()
        elif "files" in tables and version != _SCHEMA_VERSION:
            raise ManifestError(f"{self.path}: not a colorquant manifest this version can read "
                                f"(schema {version!r}); move it aside and run the batch again")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (_SCHEMA_VERSION,))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('temp_token', ?)",
                             (f"cq-{secrets.token_hex(4)}",))

    def _migrate_from_2(self) -> None:
        """A manifest from before byte budgets: the three new columns, empty."""
        with self._db:
            self._db.execute("ALTER TABLE files ADD COLUMN dither REAL")
            self._db.execute("ALTER TABLE files ADD COLUMN max_bytes INTEGER")
            self._db.execute("ALTER TABLE files ADD COLUMN color_space TEXT")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (_SCHEMA_VERSION,))

    def _migrate_from_1(self) -> None:
        """Rows of a manifest written before outputs had hashes: each output still on disk
        is taken as written by this folder (it was, by the earlier version) and hashed now."""
        from .storage import file_hash

        old = [dict(row) for row in self._db.execute("SELECT * FROM files")]
        root = self.path.parent
        with self._db:
            self._db.execute("ALTER TABLE files RENAME TO files_v1")
            self._db.executescript(_SCHEMA)
            for row in old:
                output = row["output_path"]
                output_hash = output_mtime = None
                if output and (root / output).is_file():
                    output_hash, output_mtime = file_hash(root / output), (root / output).stat().st_mtime_ns
                else:
                    output = None
                metrics = {k: row[k] for k in ("psnr", "ssim") if row[k] is not None}
                self._db.execute(
                    """INSERT INTO files (input, status, output, colors, metrics, bytes_in, bytes_out,
                           seconds, error, input_size, input_mtime_ns, input_hash, output_hash,
                           output_mtime_ns, settings_hash, output_stem, attempts, created_at, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (row["relpath"], row["status"], output, row["colors"], json.dumps(metrics),
                     row["bytes_in"], row["bytes_out"], row["seconds"], row["error"], row["size"],
                     row["mtime_ns"], row["content_hash"], output_hash, output_mtime,
                     row["settings_hash"], Path(row["relpath"]).stem if output else None,
                     row["attempts"], row["created_at"], row["updated_at"]))
            self._db.execute("DROP TABLE files_v1")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (_SCHEMA_VERSION,))

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _meta(self, key: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def temp_token(self) -> str:
        """The tag this output folder's temporary files carry."""
        return self._meta("temp_token")

    def bind(self, *, input_root, output_root) -> None:
        """Bind the manifest to its folders on first use; refuse other folders after that.

        A manifest serves one output folder (its rows name files there) and one input folder
        (its rows name files there): used with another, its rows would be wrong.
        """
        for key, folder, kind in (("output_root", output_root, "output"), ("input_root", input_root, "input")):
            bound = self._meta(key)
            if bound is None:
                with self._db:
                    self._db.execute("INSERT INTO meta VALUES (?, ?)", (key, str(folder)))
            elif bound != str(folder):
                raise InvalidParameterError(
                    f"{self.path}: this manifest belongs to the {kind} folder {bound}, not {folder}; "
                    f"use that folder, or another output folder")

    def rows(self) -> dict[str, StoredOutcome]:
        try:
            cursor = self._db.execute("SELECT * FROM files ORDER BY input")
            return {_from_db(row["input"]): _stored(row) for row in cursor}
        except sqlite3.DatabaseError as error:
            raise _damaged(self.path, error) from None

    def record(self, outcome: Outcome, *, settings_hash: str, output_stem: str | None = None) -> None:
        """Insert or update ``outcome.input``'s row, counting the attempt, in one transaction."""
        if outcome.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {outcome.status!r}")
        now = _now()
        values = [getattr(outcome, name) for name in _OUTCOME_COLUMNS]
        figures = {k: v for k, v in outcome.metrics.items() if v is not None}
        if outcome.frames is not None:  # an animation's frame figures ride with its figures
            figures[_FRAMES_KEY] = {"count": outcome.frames, **outcome.frame_metrics}
        metrics = json.dumps(figures)
        columns = ("input", *_OUTCOME_COLUMNS, "metrics", "settings_hash", "output_stem", "input_gone",
                   "attempts", "created_at", "updated_at")
        updated = (*_OUTCOME_COLUMNS, "metrics", "settings_hash", "output_stem", "input_gone")
        updates = ", ".join(f"{name}=excluded.{name}" for name in updated)
        try:
            with self._db:
                self._db.execute(
                    f"""INSERT INTO files ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})
                        ON CONFLICT(input) DO UPDATE SET {updates},
                            attempts=files.attempts + 1, updated_at=excluded.updated_at""",
                    tuple(map(_text, (outcome.input, *values, metrics, settings_hash, output_stem, 0, 1, now, now))),
                )
        except sqlite3.DatabaseError as error:
            raise _damaged(self.path, error) from None

    def refresh(self, relpath: str, **fields) -> None:
        """Remember new modification times of an unchanged input or output (a copy, a touch)."""
        allowed = {"input_mtime_ns", "output_mtime_ns"}
        assert set(fields) <= allowed, fields
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._db:
            self._db.execute(f"UPDATE files SET {assignments} WHERE input = ?", (*fields.values(), _text(relpath)))

    def release_output(self, relpath: str) -> None:
        """The row no longer owns its output (deleted, or changed by someone else)."""
        with self._db:
            self._db.execute("UPDATE files SET output = NULL, output_hash = NULL, output_mtime_ns = NULL "
                             "WHERE input = ?", (_text(relpath),))

    def mark_gone(self, relpaths, *, present=()) -> int:
        """Mark the rows of inputs that are no longer there, and unmark those of ``present``
        inputs (one that came back may be up to date and so not recorded again); returns how
        many rows are marked in all (their outputs are kept, and counted)."""
        with self._db:
            self._db.executemany("UPDATE files SET input_gone = 1 WHERE input = ?",
                                 [(_text(r),) for r in relpaths])
            self._db.executemany("UPDATE files SET input_gone = 0 WHERE input = ? AND input_gone = 1",
                                 [(_text(r),) for r in present])
        return self._db.execute("SELECT COUNT(*) FROM files WHERE input_gone = 1").fetchone()[0]

    def summary(self) -> dict:
        """Counts per status, outputs owned, inputs gone, bytes before and after and mean PSNR
        (done rows), and every failure with its reason."""
        counts = {status: 0 for status in STATUSES}
        bytes_in = bytes_out = outputs = kept = gone = 0
        psnrs, failures, kinds = [], [], set()
        for stored in self.rows().values():
            outcome = stored.outcome
            counts[outcome.status] += 1
            outputs += outcome.output is not None
            kept += outcome.output is not None and outcome.status != "done"
            gone += stored.input_gone
            if outcome.status == "done":
                bytes_in += outcome.bytes_in or 0
                bytes_out += outcome.bytes_out or 0
                if outcome.metrics.get("psnr") is not None:
                    psnrs.append(outcome.metrics["psnr"])
            elif outcome.status == "failed":
                failures.append((outcome.input, outcome.error_text("cli")))
                kinds.add(outcome.error_kind or "ColorquantError")
        finite = [p for p in psnrs if p != float("inf")]
        return {"counts": counts, "outputs": outputs, "kept": kept, "gone": gone,
                "bytes_in": bytes_in, "bytes_out": bytes_out,
                "mean_psnr": sum(finite) / len(finite) if finite else None,
                "failures": failures, "error_kinds": kinds,
                "input_root": self._meta("input_root"), "output_root": self._meta("output_root")}

    def csv_bytes(self) -> tuple[bytes, int]:
        """Every row as CSV, one column per figure (and for an animation its frame count and,
        as JSON, its mean and worst frame's figures); and the number of rows."""
        header = ("input", *_OUTCOME_COLUMNS, *METRICS, "frames", "frame_metrics", *_BOOKKEEPING)
        rows = self.rows()
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for stored in rows.values():
            outcome = stored.outcome
            writer.writerow(map(_csv_cell, [outcome.input, *(getattr(outcome, n) for n in _OUTCOME_COLUMNS),
                                            *(outcome.metrics.get(n) for n in METRICS), outcome.frames,
                                            json.dumps(outcome.frame_metrics) if outcome.frame_metrics else None,
                                            *(getattr(stored, n) for n in _BOOKKEEPING)]))
        # a name's undecodable bytes are written back as they are on disk
        return text.getvalue().encode("utf-8", "surrogateescape"), len(rows)

    def own_files(self) -> list[Path]:
        """The manifest's own files (the database and its WAL companions)."""
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]

    def files_named(self) -> list[Path]:
        """Every input and output file the rows name, as absolute paths where the roots are known."""
        named = []
        input_root, output_root = self._meta("input_root"), self._meta("output_root")
        for stored in self.rows().values():
            if input_root:
                named.append(Path(input_root) / stored.outcome.input)
            if output_root and stored.outcome.output:
                named.append(Path(output_root) / stored.outcome.output)
        return named


# A spreadsheet takes a cell that starts with one of these as a formula (OWASP, "CSV
# Injection"): text cells (names, errors) that do are prefixed with a quote; numbers are not.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


# The key in a row's figures (JSON) under which an animation's frame count and frame figures
# are kept: {"count": n, "mean": {...}, "worst": {...}}
_FRAMES_KEY = "_frames"


def _stored(row: sqlite3.Row) -> StoredOutcome:
    metrics = {name: None for name in METRICS}
    metrics.update(json.loads(row["metrics"] or "{}"))
    frames = metrics.pop(_FRAMES_KEY, None) or {}
    outcome = Outcome(input=_from_db(row["input"]), metrics=metrics, frames=frames.pop("count", None),
                      frame_metrics=frames,
                      **{name: _from_db(row[name]) for name in _OUTCOME_COLUMNS})
    return StoredOutcome(outcome, *(_from_db(row[name]) for name in _BOOKKEEPING))
