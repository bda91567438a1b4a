"""Compress a whole folder: find the inputs, skip what is already done, run the rest on a
local process pool or a Dask cluster, and record every outcome in the manifest.

What a user can count on (each is tested, several by a stateful property test):

- **It touches only what it wrote.** An output is replaced or deleted only when the manifest
  says this output folder wrote it and the file still has the bytes it wrote (its hash); a
  file of the same name that it did not write, or that was changed since, is left alone and
  that input fails with the reason, unless ``force``. A file that already holds exactly the
  bytes it would write is adopted without writing. Temporary files carry the output folder's
  own token and only those are cleaned up.
- **The manifest tells the truth.** It is bound to its output (and input) folder; it records
  each output's hash; missing outputs are rebuilt; an input that now fails or is skipped keeps
  its earlier output, and says so; inputs deleted since the last run are reported and their
  rows marked; a run's exit status counts every input that stands failed.
- **Only regular image files are read.** Named pipes, sockets and devices are refused from
  their stat, before a byte is read; folders holding a manifest (an earlier output folder)
  are never read as input; hidden files and folders (``.name``, macOS ``._name``) are
  skipped unless asked; a file with an unknown suffix is an input when its first bytes are
  an image's.
- **No output is written twice in a run.** Inputs of one folder that share a stem
  (``x.jpg``, ``x.png``) get distinct output names: the first in name order keeps the stem,
  the others add their suffix (``x-png-kmeans-k16.png``); a name, once given, stays with its
  input in later runs.

Only the submitting process writes the manifest and the progress events; workers read their
input and write their output themselves and return an :class:`~colorquant.outcome.Outcome`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .compress import compress_image, fit_stem, outcome_of, output_name, stem_room
from .errors import (ColorquantError, ImageWriteError, InvalidParameterError, OutputNotSmallerError,
                     QualityTooLowError)
from .inputs import discover, inside
from .manifest import MANIFEST_NAME, Manifest
from .outcome import DONE, FAILED, SKIPPED, STATUSES, Outcome
from .settings import Settings
from .runners import dask_client, run_tasks
from .storage import FolderLock, content_hash, file_hash, not_regular_reason, read_regular_file, remove_temporaries, write_atomic

__all__ = ["BatchTask", "BatchSummary", "run_batch", "run_task", "problem_outcome", "record_results", "settings_hash",
           "LOCK_NAME"]

LOCK_NAME = ".colorquant.lock"


def settings_hash(settings: Settings) -> str:
    """Hash of every setting that decides the output."""
    decisive = json.dumps(settings.output_fingerprint(), sort_keys=True)
    return hashlib.blake2b(decisive.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class BatchTask:
    """One input to compress, and everything its worker needs to write its output safely.

    previous_output, previous_hash : the output this input's row owns (relative to the output
        root) and the bytes' hash it was written with: the only existing file the worker may
        replace without ``force``
    """

    relpath: str
    input_root: str
    output_root: str
    output_stem: str
    settings: Settings
    temp_tag: str
    previous_output: str | None = None
    previous_hash: str | None = None
    force: bool = False


@dataclass
class BatchSummary:
    """What a run found and did.

    counts : outcomes of the inputs done in this run, by status
    up_to_date : inputs left as they were (``failed_before`` of them stand failed)
    error_kinds : class names of every failure that stands, this run's and earlier ones'
    kept : inputs that failed or were skipped now but keep an earlier output
    """

    total: int = 0
    up_to_date: int = 0
    failed_before: int = 0
    counts: dict = field(default_factory=lambda: {status: 0 for status in STATUSES})
    bytes_in: int = 0
    bytes_out: int = 0
    psnrs: list = field(default_factory=list)
    error_kinds: set = field(default_factory=set)
    kept: int = 0
    hidden: int = 0
    not_images: int = 0
    deleted: int = 0
    temporaries_removed: int = 0

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.status == DONE:
            self.bytes_in += outcome.bytes_in or 0
            self.bytes_out += outcome.bytes_out or 0
            if outcome.metrics.get("psnr") is not None:
                self.psnrs.append(outcome.metrics["psnr"])
        if outcome.status == FAILED:
            self.error_kinds.add(outcome.error_kind or "ColorquantError")

    @property
    def failed(self) -> int:
        """Inputs that stand failed: this run's failures and earlier ones not retried."""
        return self.counts[FAILED] + self.failed_before

    @property
    def mean_psnr(self) -> float | None:
        finite = [value for value in self.psnrs if value != float("inf")]
        return sum(finite) / len(finite) if finite else None


# --------------------------------------------------------------------------- the worker's side


def run_task(task: BatchTask) -> Outcome:
    """Compress one input and place its output (in a worker). A problem with the file, or a
    bug, becomes that input's failed outcome: one file never stops the batch."""
    started = time.perf_counter()
    identity = {}
    try:
        from .imageio import head_problem, read_image

        path = Path(task.input_root) / task.relpath
        with contextlib.suppress(OSError):  # a file refused by its first bytes is still known
            seen = os.stat(path)
            identity = dict(input_size=seen.st_size, input_mtime_ns=seen.st_mtime_ns)
        data, info = read_regular_file(path, head_problem=head_problem)
        identity = dict(input_size=info.st_size, input_mtime_ns=info.st_mtime_ns,
                        input_hash=content_hash(data))

        loaded = read_image(data, max_pixels=task.settings.max_pixels, name=task.relpath,
                            max_frames=task.settings.max_frames)
        compressed = compress_image(loaded, task.settings)
        folder = str(Path(task.relpath).parent)
        relative = os.path.normpath(os.path.join(folder, output_name(
            task.output_stem, task.settings.method, compressed.result.n_colors_requested,
            compressed.result.settings.format)))
        new_hash = content_hash(compressed.encoded)
        if task.settings.skip_if_larger and len(compressed.encoded) >= len(data):
            error = OutputNotSmallerError(
                f"{task.relpath}: output would be {len(compressed.encoded):,} bytes, not smaller than "
                f"the input's {len(data):,}; nothing written")
            measured = outcome_of(task.relpath, compressed, output=None, seconds=0.0)
            return Outcome.from_error(task.relpath, SKIPPED, error).with_changes(
                method=measured.method, colors=measured.colors, metrics=measured.metrics,
                bytes_in=measured.bytes_in, bytes_out=measured.bytes_out, bpp=measured.bpp,
                seconds=time.perf_counter() - started, exception=None, **identity)
        output_mtime = place_output(task, relative, compressed.encoded, new_hash)
        outcome = outcome_of(task.relpath, compressed, output=relative, seconds=0.0)
        return outcome.with_changes(output_hash=new_hash, output_mtime_ns=output_mtime,
                                    seconds=time.perf_counter() - started, **identity)
    except Exception as error:  # noqa: BLE001 - judged in problem_outcome: one file never stops the batch
        return problem_outcome(task.relpath, task.settings.method, error, started, identity)


def problem_outcome(relpath: str, method: str, error: Exception, started: float, identity: dict) -> Outcome:
    """The outcome of an input whose work raised ``error`` in a worker: skipped (not smaller,
    target missed), failed (a problem with the file), or failed as a bug, which is said so."""
    seconds = time.perf_counter() - started
    if isinstance(error, (OutputNotSmallerError, QualityTooLowError)):
        return Outcome.from_error(relpath, SKIPPED, error, method=method, seconds=seconds,
                                  **identity).with_changes(exception=None)
    if isinstance(error, ColorquantError):
        return Outcome.from_error(relpath, FAILED, error, method=method, seconds=seconds,
                                  **identity).with_changes(exception=None)
    return Outcome(relpath, FAILED, method=method,
                   error=f"{relpath}: internal error: {type(error).__name__}: {error} (please report it)",
                   error_kind=type(error).__name__, seconds=seconds, **identity)


def place_output(task: BatchTask, relative: str, encoded: bytes, new_hash: str) -> int:
    """Put ``encoded`` at ``relative`` under the output root, replacing only a file this
    output folder wrote (or any, with ``force``); returns the output's mtime (ns).

    A file that already holds exactly these bytes is kept as it is (adopted): after a lost or
    damaged manifest, a re-run re-checks the outputs instead of refusing them.
    """
    path = Path(task.output_root) / relative
    _check_output_folder(task, relative, path.parent)  # before mkdir: it would follow a link
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(f"{relative}: cannot create its folder ({error.strerror or error})") from None
    _check_output_folder(task, relative, path.parent)  # and after, in case a link appeared
    for _ in range(2):  # a second round only if a file appeared between the check and the write
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            try:
                write_atomic(encoded, path, temp_tag=task.temp_tag)
            except ImageWriteError:
                if os.path.lexists(path):
                    continue  # appeared meanwhile: judge it as an existing file
                raise
            return os.stat(path).st_mtime_ns
        reason = not_regular_reason(existing.st_mode)
        if reason is not None and not task.force:
            raise ImageWriteError(f"{relative}: already exists and {reason}; nothing written")
        if reason is None and file_hash(path) == new_hash:
            return existing.st_mtime_ns  # already these very bytes
        ours = (reason is None and relative == task.previous_output and task.previous_hash is not None
                and file_hash(path) == task.previous_hash)
        if not ours and not task.force:
            raise ImageWriteError(
                f"{relative}: already exists and was not written by this batch, or was changed "
                "since; nothing written", remedy="force")
        write_atomic(encoded, path, overwrite=True, temp_tag=task.temp_tag)
        return os.stat(path).st_mtime_ns
    raise ImageWriteError(f"{relative}: another program keeps writing this name; nothing written")


def _check_output_folder(task: BatchTask, relative: str, folder: Path) -> None:
    """Refuse an output whose folder (its nearest existing part) leads outside the output
    folder, through a link, or into the input folder's tree (an input folder inside the
    output folder, with a subfolder of its own name): nothing is written there."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    real = existing.resolve()
    output_root, input_root = Path(task.output_root).resolve(), Path(task.input_root).resolve()
    if not inside(real, output_root):
        raise ImageWriteError(f"{relative}: its folder leads outside the output folder (through a link, "
                              f"to {real}); nothing written")
    if inside(real, input_root) and not inside(output_root, input_root):
        raise ImageWriteError(f"{relative}: would be written inside the input folder {task.input_root} "
                              "(it lies in the output folder); nothing written: choose an output folder "
                              "apart from the input folder")


# --------------------------------------------------------------------------- the output folder


def _stems_in_use(rows) -> dict:
    """Output stems already given, per output folder (case-folded: some file systems are)."""
    taken = {}
    for relpath, stored in rows.items():
        if stored.output_stem:
            taken[(str(Path(relpath).parent), stored.output_stem.casefold())] = relpath
    return taken


def _output_stem(relpath: str, taken: dict, room: int) -> str:
    """The stem this input's outputs are named with: its own, or (when another input of its
    folder has it) its own plus its suffix, then a number; each shortened to ``room`` bytes
    (what any output name keeps: :func:`~colorquant.compress.stem_room`) before it is
    compared, so that two long names never meet once shortened."""
    path = Path(relpath)
    folder = str(path.parent)
    suffix = path.suffix.lstrip('.').lower() or 'file'
    endings = ["", f"-{suffix}"] + [f"-{suffix}-{n}" for n in range(2, 1000)]
    for ending in endings:
        stem = fit_stem(path.stem, room - len(ending.encode())) + ending
        owner = taken.get((folder, stem.casefold()))
        if owner is None or owner == relpath:
            taken[(folder, stem.casefold())] = relpath
            return stem
    raise ImageWriteError(f"{relpath}: no free output name")


def run_batch(
    input_dir, output_dir, settings: Settings, *, recursive: bool = False,
    jobs: int | None = None, scheduler: str | None = None, manifest_path=None,
    retry_failed: bool = False, force: bool = False, include_hidden: bool = False, on_event=None,
) -> BatchSummary:
    """Compress every image in ``input_dir`` into ``output_dir``, resumably.

    force : replace files in the output folder that this batch did not write
    on_event : callable(kind, payload), called in this process: ("planned", {"total",
        "todo", "up_to_date"}) once, then ("result", Outcome) per input processed; an outcome
        that failed or was skipped but keeps an earlier output has it as ``output``.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InvalidParameterError(f"{input_dir}: not a folder")
    if output_dir.resolve() == input_dir.resolve():
        raise InvalidParameterError("the output folder must differ from the input folder")
    if (input_dir / MANIFEST_NAME).exists():
        raise InvalidParameterError(
            f"{input_dir}: holds a colorquant manifest, so it is an output folder; give the folder "
            "of the original images")
    emit = on_event or (lambda kind, payload: None)
    wanted_hash = settings_hash(settings)
    summary = BatchSummary()

    with dask_client(scheduler, jobs) as client, FolderLock(output_dir, LOCK_NAME), \
            Manifest(manifest_path or output_dir / MANIFEST_NAME) as manifest:
        manifest.bind(input_root=input_dir.resolve(), output_root=output_dir.resolve())
        token = manifest.temp_token()
        summary.temporaries_removed = remove_temporaries(output_dir, token)
        found = discover(input_dir, output_dir, recursive=recursive, include_hidden=include_hidden)
        summary.hidden, summary.not_images = found.hidden, found.not_images
        known = manifest.rows()
        taken = _stems_in_use(known)
        room = stem_room(settings.method, settings.format)
        seen = set()
        tasks, settled = [], []  # settled: outcomes decided without running (refusals)
        for folder, reason in found.unreadable:  # reported and counted; not an input, so no row
            settled.append(Outcome(folder + "/", FAILED, error=f"{folder}/: {reason}", error_kind="ImageReadError"))
        for candidate in found.inputs:
            relpath = candidate.relpath
            seen.add(relpath)
            summary.total += 1
            stored = known.get(relpath)
            if candidate.refusal is not None:
                refused = Outcome(relpath, FAILED, error=f"{relpath}: {candidate.refusal}",
                                  error_kind="ImageReadError")
                refused = _keeping(refused, stored, output_dir, manifest)
                if stored is None or stored.outcome.error != refused.error:
                    manifest.record(refused, settings_hash=wanted_hash,
                                    output_stem=stored.output_stem if stored else None)
                settled.append(refused)
                continue
            state = _standing(stored, input_dir / relpath, output_dir, wanted_hash, retry_failed, force, manifest)
            if state == "up to date":
                summary.up_to_date += 1
                if stored.outcome.status == FAILED:
                    summary.failed_before += 1
                    summary.error_kinds.add(stored.outcome.error_kind or "ColorquantError")
                continue
            if state == "changed output":
                changed = Outcome(
                    relpath, FAILED, method=settings.method, error_kind="ImageWriteError", remedy="force",
                    error=f"{relpath}: its output {stored.outcome.output} was changed since this batch "
                          "wrote it; left as it is")
                changed = changed.with_changes(input_size=stored.outcome.input_size,
                                               input_mtime_ns=stored.outcome.input_mtime_ns,
                                               input_hash=stored.outcome.input_hash)
                manifest.record(changed, settings_hash=wanted_hash, output_stem=stored.output_stem)
                settled.append(changed)
                continue
            owned = stored.outcome if stored is not None and stored.outcome.output else None
            tasks.append(BatchTask(
                relpath=relpath, input_root=str(input_dir), output_root=str(output_dir),
                output_stem=_output_stem(relpath, taken, room), settings=settings, temp_tag=token,
                previous_output=owned.output if owned else None,
                previous_hash=owned.output_hash if owned else None, force=force))
        vanished = [relpath for relpath in set(known) - seen if not os.path.lexists(input_dir / relpath)]
        summary.deleted = manifest.mark_gone(vanished, present=seen)
        for relpath in set(known) - seen:  # rows not looked at: do they still own their outputs?
            stored = known[relpath]
            if stored.outcome.output is not None and _owned_output_state(stored, output_dir, manifest) != "ok":
                manifest.release_output(relpath)
        emit("planned", {"total": summary.total, "todo": len(tasks) + len(settled),
                         "up_to_date": summary.up_to_date})
        for outcome in settled:
            summary.add(outcome)
            emit("result", outcome)

        results = run_tasks(run_task, tasks, settings, jobs=jobs, client=client, preload="colorquant.batch",
                            lost=lambda task, error: problem_outcome(
                                task.relpath, settings.method, type(error)(f"{task.relpath}: {error}"),
                                time.perf_counter(), {}))
        try:
            record_results(results, tasks, known, manifest, summary, emit, wanted_hash,
                           remove_owned=lambda owned: _remove_owned(output_dir, owned),
                           keeping=lambda outcome, stored: _keeping(outcome, stored, output_dir, manifest))
        except BaseException:
            if client is not None:  # Dask workers stopped by SIGKILL leave their temporaries
                remove_temporaries(output_dir, token)
            raise
    return summary


def record_results(results, tasks, known: dict, manifest: Manifest, summary: BatchSummary, emit,
                   wanted_hash: str, *, remove_owned, keeping) -> None:
    """Record each outcome as it comes (in this process only): a done input whose output got
    a new name removes its old output (``remove_owned``); one that failed or was skipped keeps
    its earlier output if still there (``keeping``)."""
    stems = {task.relpath: task.output_stem for task in tasks}
    for outcome in results:
        stored = known.get(outcome.input)
        if outcome.status == DONE:
            if stored is not None and stored.outcome.output and stored.outcome.output != outcome.output:
                remove_owned(stored.outcome)
        else:
            outcome = keeping(outcome, stored)
            summary.kept += outcome.output is not None
        manifest.record(outcome, settings_hash=wanted_hash, output_stem=stems[outcome.input])
        summary.add(outcome)
        emit("result", outcome)


def _keeping(outcome: Outcome, stored, output_dir: Path, manifest: Manifest) -> Outcome:
    """A failed or skipped outcome that keeps the earlier output its row owns (if that file
    is still there, with the bytes written)."""
    if stored is None or not stored.outcome.output or stored.outcome.output_hash is None \
            or _owned_output_state(stored, output_dir, manifest) != "ok":
        return outcome.with_changes(output=None, output_hash=None, output_mtime_ns=None)
    return outcome.with_changes(output=stored.outcome.output, output_hash=stored.outcome.output_hash,
                                output_mtime_ns=stored.outcome.output_mtime_ns)


def _standing(stored, input_path: Path, output_dir: Path, wanted_hash: str, retry_failed: bool,
              force: bool, manifest: Manifest) -> str:
    """"up to date", "changed output" (its output was changed by someone else), or "to do"."""
    if stored is None:
        return "to do"
    outcome = stored.outcome
    if outcome.status == FAILED and (retry_failed or (force and outcome.remedy == "force")):
        return "to do"  # asked to try again, or given the --force that the failure called for
    if stored.settings_hash != wanted_hash:
        return "to do"
    try:
        info = os.stat(input_path)
    except OSError:
        return "to do"
    if outcome.input_size != info.st_size:
        return "to do"
    if outcome.input_mtime_ns != info.st_mtime_ns:
        if outcome.input_hash is None or outcome.input_hash != file_hash(input_path):
            return "to do"
        manifest.refresh(outcome.input, input_mtime_ns=info.st_mtime_ns)  # touched, not changed
    if outcome.status != DONE:
        if outcome.output is not None and _owned_output_state(stored, output_dir, manifest) != "ok":
            manifest.release_output(outcome.input)  # a kept earlier output was deleted or changed
        return "up to date"
    state = _owned_output_state(stored, output_dir, manifest)
    if state == "ok":
        return "up to date"
    if state == "missing":
        return "to do"  # rebuilt
    return "to do" if force else "changed output"


def _owned_output_state(stored, output_dir: Path, manifest: Manifest) -> str:
    """"ok" when the output a row owns still holds the bytes written (its size and mtime say
    so, else its hash), "missing", or "changed"."""
    outcome = stored.outcome
    if outcome.output is None:  # released: its input was gone and its output deleted
        return "missing"
    output = output_dir / outcome.output
    try:
        written = os.lstat(output)
    except FileNotFoundError:
        return "missing"
    if not_regular_reason(written.st_mode) is not None:
        return "changed"
    if written.st_mtime_ns == outcome.output_mtime_ns and (outcome.bytes_out is None or written.st_size == outcome.bytes_out):
        return "ok"
    if file_hash(output) == outcome.output_hash:
        manifest.refresh(outcome.input, output_mtime_ns=written.st_mtime_ns)
        return "ok"
    return "changed"


def _remove_owned(output_dir: Path, outcome: Outcome) -> None:
    """Delete an output this folder wrote, if it still holds the bytes written."""
    path = output_dir / outcome.output
    try:
        if inside(path.resolve(), output_dir.resolve()) and file_hash(path) == outcome.output_hash:
            path.unlink()
    except OSError:
        pass
