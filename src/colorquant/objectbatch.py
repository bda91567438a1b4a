"""A batch whose input or output folder is a URL (``s3://photos/in``): the same promises as
:mod:`colorquant.batch`, for object stores and clusters without a shared disk.

- The client lists the input and output prefixes and decides what to do; the workers (a
  local pool or Dask) read each input object and write its output object themselves, so
  image bytes never pass through the client or the scheduler.
- The manifest lives on the client's disk (``--manifest``, default
  ``./colorquant-<output URL>.sqlite``) and records each input by its path under the input
  URL with its ETag, size and modification time; an input whose size and ETag are unchanged,
  whose settings are the same and whose output object is still there with the size written,
  is up to date.
- It touches only what it wrote: an existing output object is replaced only when it holds
  the bytes this manifest recorded for it (or with ``force``), adopted when it already holds
  exactly the bytes it would write (so a re-run after the client was killed completes the
  set without duplicates), and refused otherwise. Outputs are single PUTs: whole or absent.
- Errors of the store (no credentials, access denied, no bucket, endpoint unreachable) stop
  the run with one line; an object that vanished between listing and reading, or requests
  still throttled after retries, fail that input only.
"""

from __future__ import annotations

import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .batch import BatchSummary, problem_outcome, record_results, settings_hash
from .compress import compress_image, outcome_of, output_name
from .errors import ColorquantError, ImageWriteError, InvalidParameterError, OutputNotSmallerError, error_class
from .inputs import IMAGE_SUFFIXES
from .manifest import Manifest
from .objects import ObjectFolder, ObjectInfo
from .outcome import DONE, FAILED, Outcome
from .runners import dask_client, run_tasks
from .settings import Settings
from .storage import FolderLock, content_hash

__all__ = ["ObjectTask", "run_object_batch", "run_object_task", "default_manifest_path"]


def default_manifest_path(output_url: str) -> Path:
    """``./colorquant-<the output URL, in safe characters>.sqlite``: beside where the user
    runs, one per output location."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", output_url).strip("-")[:120]
    return Path.cwd() / f"colorquant-{slug}.sqlite"


@dataclass(frozen=True)
class ObjectTask:
    """One input object to compress, and what its worker needs to write its output safely."""

    relpath: str
    source: ObjectFolder
    target: ObjectFolder
    listed: ObjectInfo
    output_stem: str
    settings: Settings
    previous_output: str | None = None
    previous_hash: str | None = None
    force: bool = False


def run_object_task(task: ObjectTask) -> Outcome:
    """Read, compress and write one object (in a worker); any problem is that input's
    failed outcome."""
    started = time.perf_counter()
    identity = dict(input_size=task.listed.size, input_mtime_ns=task.listed.mtime_ns,
                    input_hash=task.listed.identity)
    try:
        from .imageio import read_image

        data = task.source.read(task.relpath)
        loaded = read_image(data, max_pixels=task.settings.max_pixels, name=task.relpath,
                            max_frames=task.settings.max_frames)
        compressed = compress_image(loaded, task.settings)
        relative = posixpath.join(posixpath.dirname(task.relpath), output_name(
            task.output_stem, task.settings.method, compressed.result.n_colors_requested,
            compressed.result.settings.format))
        if task.settings.skip_if_larger and len(compressed.encoded) >= len(data):
            raise OutputNotSmallerError(
                f"{task.relpath}: output would be {len(compressed.encoded):,} bytes, not smaller than "
                f"the input's {len(data):,}; nothing written")
        new_hash = content_hash(compressed.encoded)
        _place(task, relative, compressed.encoded, new_hash)
        outcome = outcome_of(task.relpath, compressed, output=relative, seconds=0.0)
        return outcome.with_changes(output_hash=new_hash, seconds=time.perf_counter() - started, **identity)
    except Exception as error:  # noqa: BLE001 - judged in problem_outcome: one file never stops the batch
        return problem_outcome(task.relpath, task.settings.method, error, started, identity)


def _place(task: ObjectTask, relative: str, encoded: bytes, new_hash: str) -> None:
    """Write the output object unless an object this batch did not write is in the way."""
    existing = task.target.read_if_exists(relative)
    if existing is not None:
        existing_hash = content_hash(existing)
        if existing_hash == new_hash:
            return  # already these very bytes (written by an earlier run that was cut off)
        ours = relative == task.previous_output and existing_hash == task.previous_hash
        if not ours and not task.force:
            raise ImageWriteError(
                f"{task.target.url_of(relative)}: already exists and was not written by this batch, "
                "or was changed since; nothing written", remedy="force")
    task.target.write(relative, encoded)


def _is_image_name(relpath: str, include_hidden: bool) -> tuple[bool, bool]:
    """(hidden, image): whether a key is hidden (a part starting with '.') and whether its
    suffix is an image's. Objects are judged by name: reading each one's first bytes would
    cost a request per object."""
    parts = relpath.split("/")
    hidden = any(part.startswith(".") for part in parts)
    return hidden and not include_hidden, Path(relpath).suffix.lower() in IMAGE_SUFFIXES


def run_object_batch(
    input_location, output_location, settings: Settings, *, recursive: bool = False,
    jobs: int | None = None, scheduler: str | None = None, manifest_path=None,
    retry_failed: bool = False, force: bool = False, include_hidden: bool = False,
    storage_options=(), on_event=None,
) -> BatchSummary:
    """Compress every image object under ``input_location`` into ``output_location`` (either
    or both a URL), resumably. Events and the summary are those of :func:`batch.run_batch`."""
    source = ObjectFolder.of(input_location, storage_options)
    target = ObjectFolder.of(output_location, storage_options)
    if source.url == target.url:
        raise InvalidParameterError("the output location must differ from the input location")
    if target.url.startswith(source.url + "/") and recursive:
        raise InvalidParameterError("the output location is inside the input location; --recursive would read it")
    manifest_path = Path(manifest_path) if manifest_path else (
        Path(target.root) / "colorquant.sqlite" if target.is_local else default_manifest_path(target.url))
    emit = on_event or (lambda kind, payload: None)
    wanted_hash = settings_hash(settings)
    summary = BatchSummary()
    # Both stores reachable and the inputs listed before anything is created: a typo in a
    # URL, a missing bucket or extra leaves no folder and binds no manifest.
    target.filesystem()
    inputs = source.list(recursive=recursive)
    try:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(f"{manifest_path.parent}: cannot create the manifest's folder "
                              f"({error.strerror or error})") from None

    with FolderLock(manifest_path.parent, f".{manifest_path.name}.lock"), \
            Manifest(manifest_path) as manifest, dask_client(scheduler, jobs) as client:
        manifest.bind(input_root=source.url, output_root=target.url)
        outputs = target.list(recursive=True, writing=True)
        known = manifest.rows()
        from .batch import _output_stem, _stems_in_use
        from .compress import stem_room

        taken = _stems_in_use(known)
        room = stem_room(settings.method, settings.format)
        tasks = []
        for relpath in sorted(inputs):
            hidden, image = _is_image_name(relpath, include_hidden)
            if hidden:
                summary.hidden += 1
                continue
            if not image or relpath == manifest_path.name:
                summary.not_images += 1
                continue
            summary.total += 1
            listed = inputs[relpath]
            stored = known.get(relpath)
            if _up_to_date(stored, listed, outputs, wanted_hash, retry_failed, force):
                summary.up_to_date += 1
                if stored.outcome.status == FAILED:
                    summary.failed_before += 1
                    summary.error_kinds.add(stored.outcome.error_kind or "ColorquantError")
                continue
            owned = stored.outcome if stored is not None and stored.outcome.output else None
            tasks.append(ObjectTask(
                relpath=relpath, source=source, target=target, listed=listed,
                output_stem=_output_stem(relpath, taken, room), settings=settings,
                previous_output=owned.output if owned else None,
                previous_hash=owned.output_hash if owned else None, force=force))
        gone = [relpath for relpath in known if relpath not in inputs]
        summary.deleted = manifest.mark_gone(gone, present=inputs)
        emit("planned", {"total": summary.total, "todo": len(tasks), "up_to_date": summary.up_to_date})

        results = _until_unreachable(run_tasks(run_object_task, tasks, settings, jobs=jobs, client=client,
                            preload="colorquant.objectbatch",
                            lost=lambda task, error: problem_outcome(
                                task.relpath, settings.method, type(error)(f"{task.relpath}: {error}"),
                                time.perf_counter(), {})))
        record_results(results, tasks, known, manifest, summary, emit, wanted_hash,
                       remove_owned=lambda owned: _remove_owned(target, owned),
                       keeping=lambda outcome, stored: _keeping(outcome, stored, outputs))
    return summary


def _until_unreachable(results):
    """The results, up to and including the first that says the store did not answer: then
    the run stops (the workers with it) rather than fail every remaining input one by one.
    Such failures are retried by the next run."""
    from .objects import UNREACHABLE

    for outcome in results:
        yield outcome
        if outcome.status == FAILED and outcome.remedy == "retry" and UNREACHABLE in (outcome.error or ""):
            results.close()  # stops the pool, as Ctrl-C does
            kind = error_class(outcome.error_kind)
            kind = kind if isinstance(kind, type) and issubclass(kind, ColorquantError) else ColorquantError
            raise kind(f"the run stopped: {UNREACHABLE} (at {outcome.input})", remedy="retry")


def _up_to_date(stored, listed: ObjectInfo, outputs: dict, wanted_hash: str, retry_failed: bool,
                force: bool) -> bool:
    if stored is None or stored.settings_hash != wanted_hash:
        return False
    outcome = stored.outcome
    if outcome.status == FAILED and (retry_failed or outcome.remedy == "retry"
                                     or (force and outcome.remedy == "force")):
        return False  # asked to try again; or the store did not answer last time
    if outcome.input_size != listed.size:
        return False
    if listed.identity is not None and outcome.input_hash != listed.identity:
        return False
    if listed.identity is None and outcome.input_mtime_ns != listed.mtime_ns:
        return False
    if outcome.status != DONE:
        return True
    written = outputs.get(outcome.output)
    return written is not None and (outcome.bytes_out is None or written.size == outcome.bytes_out)


def _keeping(outcome: Outcome, stored, outputs: dict) -> Outcome:
    """A failed or skipped outcome keeps the earlier output its row owns, if still there."""
    if stored is None or not stored.outcome.output or stored.outcome.output not in outputs:
        return outcome.with_changes(output=None, output_hash=None, output_mtime_ns=None)
    return outcome.with_changes(output=stored.outcome.output, output_hash=stored.outcome.output_hash)


def _remove_owned(target: ObjectFolder, outcome: Outcome) -> None:
    """Delete an output object this batch wrote under another name, if it still holds the
    bytes written."""
    try:
        existing = target.read_if_exists(outcome.output)
        if existing is not None and content_hash(existing) == outcome.output_hash:
            target.remove(outcome.output)
    except ColorquantError:
        pass  # left in place: it is recorded nowhere as ours any more, and harms nothing


# --------------------------------------------------------------------------- compress


@dataclass(frozen=True)
class CompressObjectTask:
    """``colorquant compress`` of one input where the input or the output is a URL."""

    source: str
    settings: Settings
    output: str | None = None        # the output's URL or path
    output_dir: str | None = None    # or the folder it goes to, named as the CLI names files
    overwrite: bool = False
    storage_options: tuple = ()


def compress_object(task: CompressObjectTask) -> Outcome:
    """Read, compress and write one image, each side an object or a file; problems become
    the outcome's error, as :func:`colorquant.compress.compress_file` does."""
    from .compress import compress_to_bytes, default_output_name

    started = time.perf_counter()
    source_folder, source_name = _folder_and_name(task.source, task.storage_options)
    try:
        data = source_folder.read(source_name, listed=False)
    except ColorquantError as error:
        return Outcome.from_error(task.source, FAILED, error, method=task.settings.method,
                                  seconds=time.perf_counter() - started)
    outcome, compressed = compress_to_bytes(data, task.settings, name=task.source)
    if compressed is None:
        return outcome
    if task.output is not None:
        folder, name = _folder_and_name(task.output, task.storage_options)
    else:
        folder = ObjectFolder.of(task.output_dir if task.output_dir is not None else
                                 posixpath.dirname(task.source) or ".", task.storage_options)
        name = default_output_name(source_name, task.settings.method, compressed.result.n_colors_requested,
                                   compressed.result.settings.format)
    try:
        if folder.is_local:
            from .storage import write_atomic

            protect = (Path(source_folder.root) / source_name,) if source_folder.is_local else ()
            Path(folder.root).mkdir(parents=True, exist_ok=True)
            write_atomic(compressed.encoded, Path(folder.root) / name, overwrite=task.overwrite, protect=protect)
        else:
            if not task.overwrite and folder.info(name, writing=True) is not None:
                raise ImageWriteError(f"{folder.url_of(name)}: already exists", remedy="overwrite")
            folder.write(name, compressed.encoded)
    except ColorquantError as error:
        return Outcome.from_error(task.source, FAILED, error, method=task.settings.method,
                                  seconds=time.perf_counter() - started)
    return outcome.with_changes(output=folder.url_of(name) if not folder.is_local else str(Path(folder.root) / name),
                                seconds=time.perf_counter() - started)


def read_object(location: str, options=()) -> bytes:
    """The bytes of one object (or file) named by URL; a missing one is an ImageReadError."""
    folder, name = _folder_and_name(location, options)
    return folder.read(name, listed=False)


def _folder_and_name(location: str, options) -> tuple[ObjectFolder, str]:
    head, name = posixpath.split(location.rstrip("/"))
    return ObjectFolder.of(head or ".", options), name
