"""Compress a whole folder: discover inputs, skip what is already done, run the rest on a
local process pool or a Dask cluster, and record every outcome in the manifest.

Only the submitting process writes the manifest and the progress events; workers return
results. Outputs mirror the input tree inside the output folder and nothing is written
outside it: a link that leads out of the input folder is refused and recorded, links to
folders are not followed, and every output path is checked to lie inside the output folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .compress import compress_file, worker_pool
from .errors import BatchLockedError, ImageWriteError, InvalidParameterError, MissingDependencyError
from .manifest import MANIFEST_NAME, Manifest
from .outcome import DONE, FAILED, STATUSES, Outcome
from .settings import Settings

__all__ = ["BatchTask", "BatchSummary", "run_batch", "settings_hash", "LOCK_NAME"]

LOCK_NAME = ".colorquant.lock"
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def settings_hash(settings: Settings) -> str:
    """Hash of every setting that decides the output."""
    decisive = json.dumps(settings.output_fingerprint(), sort_keys=True)
    return hashlib.blake2b(decisive.encode(), digest_size=8).hexdigest()


def content_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class BatchTask:
    relpath: str
    input_path: str
    output_folder: str
    output_root: str
    settings: Settings


@dataclass
class BatchSummary:
    """What a run found and did; ``error_kinds`` are the class names of its failures (not of
    its skips: a skipped input is an outcome the user asked for)."""

    total: int = 0
    up_to_date: int = 0
    counts: dict = field(default_factory=lambda: {status: 0 for status in STATUSES})
    bytes_in: int = 0
    bytes_out: int = 0
    psnrs: list = field(default_factory=list)
    error_kinds: set = field(default_factory=set)

    def add(self, outcome: Outcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.status == DONE:
            self.bytes_in += outcome.bytes_in or 0
            self.bytes_out += outcome.bytes_out or 0
            if outcome.metrics.get("psnr") is not None:
                self.psnrs.append(outcome.metrics["psnr"])
        if outcome.status == FAILED and outcome.error_kind:
            self.error_kinds.add(outcome.error_kind)

    @property
    def mean_psnr(self) -> float | None:
        finite = [value for value in self.psnrs if value != float("inf")]
        return sum(finite) / len(finite) if finite else None


def run_task(task: BatchTask) -> Outcome:
    """Compress one input (in a worker). A problem with the file, or a bug, becomes that
    input's failed outcome: one file never stops the batch."""
    started = time.perf_counter()
    path = Path(task.input_path)
    try:
        stat = path.stat()
        digest = content_hash(path)
    except OSError as error:
        return Outcome(task.relpath, FAILED, error=f"{task.relpath}: cannot read "
                       f"({error.strerror or error})", error_kind="ImageReadError")
    identity = dict(input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns, input_hash=digest)
    try:
        outcome = compress_file(path, task.settings, output_dir=task.output_folder, overwrite=True)
    except Exception as error:  # noqa: BLE001 - a bug: that file fails, the batch goes on
        return Outcome(task.relpath, FAILED, method=task.settings.method,
                       error=f"{task.relpath}: internal error: {type(error).__name__}: {error} "
                             "(please report it)",
                       error_kind=type(error).__name__, **identity)
    output = None
    if outcome.status == DONE:
        output_path = Path(outcome.output).resolve()
        output = str(output_path.relative_to(Path(task.output_root).resolve()))
    return outcome.with_changes(input=task.relpath, output=output, exception=None,
                                seconds=time.perf_counter() - started, **identity)


class _OutputFolder:
    """Creates the output folder, then holds an exclusive, non-blocking lock on it, released
    when the process ends (however it ends)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = _FolderLock(folder)

    def __enter__(self):
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ImageWriteError(
                f"{self.folder}: cannot create output folder ({error.strerror or error})") from None
        return self.lock.__enter__()

    def __exit__(self, *exc):
        self.lock.__exit__(*exc)


class _FolderLock:
    """An exclusive, non-blocking lock on the output folder, released when the process dies."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise BatchLockedError(
                f"{self.path.parent}: another colorquant batch ({holder}) is writing here; "
                "wait for it to finish or choose another output folder"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def discover(input_dir: Path, output_dir: Path, recursive: bool):
    """Yield ``(relpath, path, refusal)`` for each candidate input, in a stable order.

    ``refusal`` is a reason string for inputs that must not be read (links leading outside
    the input folder), else None. The output folder is never searched for inputs.
    """
    input_real = input_dir.resolve()
    output_real = output_dir.resolve()
    for folder, subfolders, names in os.walk(input_dir, followlinks=False):
        folder_path = Path(folder)
        # prune: the output folder (when inside the input), and never descend when flat
        subfolders[:] = sorted(d for d in subfolders
                               if recursive and (folder_path / d).resolve() != output_real)
        for name in sorted(names):
            path = folder_path / name
            if path.suffix.lower() not in INPUT_SUFFIXES:
                continue
            relpath = str(path.relative_to(input_dir))
            if path.is_symlink() and not _inside(path.resolve(), input_real):
                yield relpath, path, "link leads outside the input folder; refused"
            else:
                yield relpath, path, None
        if not recursive:
            break


def _remove_stale_temporaries(output_dir: Path) -> None:
    # A killed run can leave ".<name>.<random>.part" files from atomic writes; under the lock
    # no other run is writing, so they are safe to remove.
    for folder, _, names in os.walk(output_dir):
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass


def run_batch(
    input_dir, output_dir, settings: Settings, *, recursive: bool = False,
    jobs: int | None = None, scheduler: str | None = None, manifest_path=None,
    retry_failed: bool = False, on_event=None,
) -> BatchSummary:
    """Compress every image in ``input_dir`` into ``output_dir``, resumably.

    on_event : callable(kind, payload), called in this process: ("planned", {"total",
        "todo", "up_to_date"}) once, then ("result", Outcome) per input processed.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InvalidParameterError(f"{input_dir}: not a folder")
    if output_dir.resolve() == input_dir.resolve():
        raise InvalidParameterError("the output folder must differ from the input folder")
    emit = on_event or (lambda kind, payload: None)
    wanted_hash = settings_hash(settings)
    summary = BatchSummary()

    with _dask_client(scheduler, jobs) as client, _OutputFolder(output_dir), \
            Manifest(manifest_path or output_dir / MANIFEST_NAME) as manifest:
        _remove_stale_temporaries(output_dir)
        known = manifest.rows()
        tasks = []
        for relpath, path, refusal in discover(input_dir, output_dir, recursive):
            summary.total += 1
            row = known.get(relpath)
            if refusal is not None:
                refused = Outcome(relpath, FAILED, error=refusal, error_kind="ImageReadError")
                if row is None or row.outcome.status != FAILED or row.outcome.error != refusal:
                    manifest.record(refused, settings_hash=wanted_hash)
                summary.add(refused)
                continue
            if row is not None and _up_to_date(row, path, wanted_hash, retry_failed, manifest):
                summary.up_to_date += 1
                continue
            output_folder = (output_dir / relpath).parent
            if not _inside(output_folder.resolve(), output_dir.resolve()):
                refused = Outcome(relpath, FAILED, error_kind="ImageWriteError",
                                  error="output would fall outside the output folder; refused")
                manifest.record(refused, settings_hash=wanted_hash)
                summary.add(refused)
                continue
            output_folder.mkdir(parents=True, exist_ok=True)
            tasks.append(BatchTask(relpath, str(path), str(output_folder), str(output_dir), settings))
        emit("planned", {"total": summary.total, "todo": len(tasks), "up_to_date": summary.up_to_date})

        for outcome in _execute(tasks, jobs, client):
            previous = known.get(outcome.input)
            manifest.record(outcome, settings_hash=wanted_hash)
            if previous is not None and previous.outcome.output and previous.outcome.output != outcome.output:
                _remove_replaced_output(output_dir, previous.outcome.output)
            summary.add(outcome)
            emit("result", outcome)
    return summary


def _up_to_date(row, path: Path, wanted_hash: str, retry_failed: bool, manifest: Manifest) -> bool:
    outcome = row.outcome
    if row.settings_hash != wanted_hash:
        return False
    if outcome.status == FAILED and retry_failed:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    if outcome.input_size == stat.st_size and outcome.input_mtime_ns == stat.st_mtime_ns:
        return True
    if outcome.input_size == stat.st_size and outcome.input_hash is not None \
            and outcome.input_hash == content_hash(path):
        manifest.refresh_mtime(outcome.input, stat.st_mtime_ns)  # touched, not changed
        return True
    return False


def _remove_replaced_output(output_dir: Path, relative: str) -> None:
    old = (output_dir / relative).resolve()
    if _inside(old, output_dir.resolve()):
        try:
            old.unlink()
        except OSError:
            pass


def _execute(tasks: list[BatchTask], jobs: int | None, client):
    """Yield one Outcome per task, as they finish."""
    if not tasks:
        return
    if client is not None:
        yield from _execute_dask(tasks, client)
        return
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(tasks) == 1:
        for task in tasks:
            yield run_task(task)
        return
    yield from _execute_pool(tasks, jobs)


def _execute_pool(tasks, jobs):
    from concurrent.futures import FIRST_COMPLETED, wait

    window = 4 * jobs  # bounded in flight: memory stays flat for any number of files
    pending_tasks = iter(tasks)
    with worker_pool(jobs, tasks[0].settings, preload="colorquant.batch") as pool:
        in_flight = {pool.submit(run_task, task) for task in _take(pending_tasks, window)}
        while in_flight:
            finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
            in_flight |= {pool.submit(run_task, task) for task in _take(pending_tasks, len(finished))}


@contextlib.contextmanager
def _dask_client(scheduler: str | None, jobs: int | None):
    """A Dask client for ``scheduler`` ('local' starts a LocalCluster), or None without one.

    Connecting comes first, before any file is touched, so a wrong address fails fast.
    """
    if not scheduler:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError(
            "--scheduler needs Dask: pip install 'colorquant[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, ValueError, TypeError) as error:
            raise InvalidParameterError(
                f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _execute_dask(tasks, client):
    from dask.distributed import as_completed

    window = 4 * max(1, sum(client.nthreads().values()))
    pending_tasks = iter(tasks)
    futures = as_completed([client.submit(run_task, task, pure=False)
                            for task in _take(pending_tasks, window)])
    for future in futures:
        yield future.result()
        for task in _take(pending_tasks, 1):
            futures.add(client.submit(run_task, task, pure=False))


def _take(iterator, count: int) -> list:
    taken = []
    while len(taken) < count:
        item = next(iterator, None)
        if item is None:
            break
        taken.append(item)
    return taken
