"""One function per command: each takes the parsed arguments, calls the library, prints
through :mod:`.report`, and returns an exit status. Errors the library raises are left to
``main``, which maps them in one place."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..effort import DEFAULT_SPEED
from ..errors import ImageWriteError
from ..settings import FRONT_END_COLORS, FRONT_END_SPACE
from .argtypes import UsageError
from .parser import method_options_from_args, settings_from_args
from .report import (BatchProgress, batch_summary, describe_outcome, error, figures_table, kib,
                     status_report, warn)
from .status import ExitStatus, outcome_status, overall_status

__all__ = ["COMMANDS"]


def _make_folder(folder: Path, *, for_file: Path | None = None) -> list[Path]:
    """Create ``folder`` and any missing parents; returns those it created, deepest first.
    Errors name ``for_file`` (an --output) when given."""
    created = []
    existing = folder
    while not existing.exists() and existing != existing.parent:
        created.append(existing)
        existing = existing.parent
    cannot = f"{for_file}: cannot create output folder {folder}" if for_file else f"{folder}: cannot create output folder"
    if not existing.is_dir():
        raise ImageWriteError(f"{cannot} ({existing} is a file, not a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as problem:
        raise ImageWriteError(f"{cannot} ({problem.strerror or problem})") from None
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    """Undo :func:`_make_folder` for a run that wrote nothing there."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file), or gone
            return


# --------------------------------------------------------------------------- compress

STDIO = "-"  # as an input: standard input; as --output: standard output (pngquant's way)
_FORMAT_OF_SUFFIX = {".png": "png", ".gif": "gif", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}


def compress(args) -> ExitStatus:
    reads_stdin = STDIO in args.inputs
    if args.output and args.output != STDIO and args.output.endswith(("/", os.sep)):
        # --output small/ names a folder, as cp and mv read it: the default name goes in it
        args.output_dir, args.output = args.output, None
    if args.output and len(args.inputs) > 1:
        raise UsageError("--output takes one input; use --output-dir for several")
    if reads_stdin and len(args.inputs) > 1:
        raise UsageError("- (standard input) must be the only input")
    # pngquant's convention: an image read from a pipe goes to a pipe unless told otherwise
    writes_stdout = args.output == STDIO or (reads_stdin and not args.output and not args.output_dir)
    args.format = _output_format(args, writes_stdout)
    settings = settings_from_args(args, default_colors=FRONT_END_COLORS, default_space=FRONT_END_SPACE)
    if writes_stdout and sys.stdout is None:  # started with >&-
        raise ImageWriteError("standard output is closed; name a file with --output")
    if writes_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write image data to a terminal: redirect standard output "
                         "(> out.png) or name a file with --output")
    if reads_stdin and sys.stdin is None:
        raise UsageError("- reads an image from standard input, which is closed")
    if reads_stdin and sys.stdin.isatty():
        raise UsageError("- reads an image from standard input, which is a terminal: pipe one in "
                         "(< photo.png)")
    if args.format == "jpeg" and not args.quiet:
        warn("JPEG re-expands the palette to millions of colours and usually makes the file "
             "larger than a palette PNG")
    if args.format == "gif" and not args.quiet:
        warn("GIF keeps only fully transparent or opaque pixels")
    from ..objects import is_url, parse_storage_options

    if reads_stdin or writes_stdout:
        if any(is_url(name) for name in (args.output_dir, args.output)):
            raise UsageError("an image from standard input is written to a file or to standard output, "
                             "not to object storage: save it to a file first, then compress that file")
        return _compress_stdio(args, settings, reads_stdin=reads_stdin, writes_stdout=writes_stdout)

    if any(is_url(name) for name in (*args.inputs, args.output_dir, args.output)):
        return _compress_objects(args, settings, parse_storage_options(args.storage_options))

    output_dir = Path(args.output_dir) if args.output_dir else None
    _refuse_shared_outputs(args.inputs, output_dir, settings, args.output)
    if output_dir is not None:
        created = _make_folder(output_dir)
    else:
        created = _make_folder(Path(args.output).parent, for_file=Path(args.output)) if args.output else []
    statuses, wrote = [], False
    try:
        for outcome in _run_compress(args.inputs, settings, args, output_dir):
            statuses.append(outcome_status(outcome))
            wrote = wrote or outcome.status == "done"
            _report(outcome, args, sys.stdout)
    except KeyboardInterrupt as stop:
        done = sum(status is ExitStatus.OK for status in statuses)
        # inputs are reported in order: a later one's output may be written but not reported
        error(f"interrupted after {done} of {len(args.inputs)} inputs were reported done; every "
              "output written is whole, no partial file left")
        stop.reported = True
        raise
    finally:
        if not wrote:
            _remove_if_empty(created)
    return overall_status(statuses)


def _output_format(args, writes_stdout: bool) -> str:
    """--format, else the format --output's suffix names (a known one), else None: png for a
    still image, and an animation's own kind (GIF, APNG, WebP) for an animation."""
    if args.output and not writes_stdout:
        suffix = Path(args.output).suffix.lower()
        named = _FORMAT_OF_SUFFIX.get(suffix)
        if args.format and named and named != args.format:
            raise UsageError(f"--output {args.output} ends in {suffix} but --format is {args.format}; "
                             "make them agree")
        return args.format or named
    return args.format


def _refuse_shared_outputs(inputs, output_dir, settings, output) -> None:
    """Two inputs of one call must not write one output (x.png and x.gif into one folder,
    or two long names that are the same once shortened to fit): refused before anything is
    written, naming both, with --force or without (--force replaces files of earlier runs,
    never this run's own)."""
    from ..compress import default_output_name
    from ..objects import is_url

    if output:
        return
    # With a target the colour count is not known yet: names are compared as they would be
    # with the longest count (256), whose stems are shortened the most.
    n_colors = 256 if settings.searches_colors else settings.n_colors
    first_of = {}
    for name in inputs:
        folder = str(output_dir if output_dir is not None else os.path.dirname(name) or ".").rstrip("/") or "/"
        shown = default_output_name(Path(name).name, settings.method, n_colors, settings.format)
        key = (folder if is_url(folder) else os.path.normcase(os.path.abspath(folder)), shown)
        if key in first_of:
            if settings.searches_colors:
                shown = shown.replace("-k256.", "-k<colours>.")
            raise ImageWriteError(f"{first_of[key]} and {name} would both write {folder}/{shown}; "
                                  "rename one, or compress them into different folders (-o)")
        first_of[key] = name


def _report(outcome, args, stream) -> None:
    """An outcome's lines: warnings and errors on stderr, the result on ``stream``."""
    if not args.quiet:
        for note in outcome.warnings:
            warn(note)
    if outcome.error:
        error(outcome.error_text("cli"))
    if args.json:
        print(json.dumps(outcome.as_json("cli")), file=stream, flush=True)
    elif outcome.status == "done" and not args.quiet:
        print(describe_outcome(outcome), file=stream, flush=True)


def _compress_stdio(args, settings, *, reads_stdin: bool, writes_stdout: bool) -> ExitStatus:
    """One image from standard input or to standard output; every message then goes to
    stderr, so that a pipe carries the image's bytes only."""
    from ..compress import compress_to_bytes, default_output_name
    from ..storage import check_destination, write_atomic

    from ..objects import is_url

    if reads_stdin:
        source, name = _read_stdin(settings), "stdin"
    elif is_url(args.inputs[0]):  # an object to standard output
        from ..objectbatch import read_object
        from ..objects import parse_storage_options

        name = args.inputs[0]
        source = read_object(name, parse_storage_options(args.storage_options))
    else:
        source, name = args.inputs[0], args.inputs[0]
    protect = () if reads_stdin or not isinstance(source, str) else (source,)
    output = Path(args.output) if args.output and not writes_stdout else None
    folder = output.parent if output is not None else Path(args.output_dir) if args.output_dir else None
    created = _make_folder(folder, for_file=output) if folder is not None else []
    try:
        if output is not None:  # refuse before the work, not after it
            check_destination(output, overwrite=args.force, protect=protect)
        outcome, compressed = compress_to_bytes(source, settings, name=name)
        if compressed is not None and writes_stdout:
            _write_stdout(compressed.encoded)
            outcome = outcome.with_changes(output=STDIO)
        elif compressed is not None:
            output = output or folder / default_output_name(
                "stdin", settings.method, compressed.result.n_colors_requested, compressed.result.settings.format)
            write_atomic(compressed.encoded, output, overwrite=args.force, protect=protect)
            outcome = outcome.with_changes(output=str(output))
    finally:
        if not (output is not None and output.exists()):
            _remove_if_empty(created)
    _report(outcome, args, sys.stderr if writes_stdout else sys.stdout)
    return outcome_status(outcome)


def _read_stdin(settings) -> bytes:
    """Standard input's bytes, up to the largest file an image of ``settings.max_pixels``
    could need (``compress - < /dev/zero`` would otherwise fill the memory): more is refused."""
    from ..errors import ImageTooLargeError

    limit = max(64 * 1024 * 1024, 8 * settings.max_pixels)  # 16-bit RGBA, uncompressed, and then some
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLargeError(f"stdin: more than {limit:,} bytes; no image within --max-pixels "
                                 "needs that many", remedy="max_pixels")
    return data


def _write_stdout(data: bytes) -> None:
    """The image's bytes to standard output, all of them or an error (a full disk behind a
    redirection is an output that could not be written: 4; a reader gone is SIGPIPE's 141)."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as problem:
        raise ImageWriteError(f"standard output: cannot write ({problem.strerror or problem})") from None


def _compress_objects(args, settings, storage_options) -> ExitStatus:
    """compress where an input or the output is a URL: each image read and written where it
    lives (see :mod:`colorquant.objectbatch`)."""
    from ..objectbatch import CompressObjectTask, compress_object
    from ..runners import run_tasks

    _refuse_shared_outputs(args.inputs, args.output_dir, settings, args.output)
    tasks = [CompressObjectTask(source=name, settings=settings, output=args.output, output_dir=args.output_dir,
                                overwrite=args.force, storage_options=storage_options)
             for name in args.inputs]
    statuses = []
    def lost(task, error):
        from ..outcome import FAILED, Outcome

        return Outcome.from_error(task.source, FAILED, type(error)(f"{task.source}: {error}"),
                                  method=settings.method)

    for outcome in run_tasks(compress_object, tasks, settings, jobs=args.jobs, ordered=True,
                             preload="colorquant.objectbatch", lost=lost):
        statuses.append(outcome_status(outcome))
        _report(outcome, args, sys.stdout)
    return overall_status(statuses)


def _run_compress(inputs, settings, args, output_dir):
    from functools import partial

    from ..compress import compress_file
    from ..runners import run_tasks
    from ..storage import file_identities

    # an input of the call is never an output of the call, with --force or without
    one_file = partial(compress_file, settings=settings, output_dir=output_dir, overwrite=args.force,
                       output_path=Path(args.output) if args.output else None,
                       protect_ids=file_identities(inputs))
    def lost(name, error):
        from ..outcome import FAILED, Outcome

        return Outcome.from_error(name, FAILED, type(error)(f"{name}: {error}"), method=settings.method)

    yield from run_tasks(one_file, list(inputs), settings, jobs=args.jobs, ordered=True, lost=lost)


# --------------------------------------------------------------------------- batch


def batch(args) -> ExitStatus:
    if args.status:
        return batch_status(args)
    if args.csv:
        raise UsageError("--csv goes with --status")
    if not args.output_dir:
        raise UsageError("batch needs -o/--output-dir OUTPUT_DIR")
    _refuse_url("--manifest", args.manifest, "the manifest is an SQLite file on this machine")
    settings = settings_from_args(args, default_colors=FRONT_END_COLORS, default_space=FRONT_END_SPACE)
    from ..batch import run_batch
    from ..objects import is_url, parse_storage_options

    progress = BatchProgress(quiet=args.quiet)
    common = dict(recursive=args.recursive, jobs=args.jobs, scheduler=args.scheduler,
                  manifest_path=args.manifest, retry_failed=args.retry_failed, force=args.force,
                  include_hidden=args.include_hidden, on_event=progress)
    try:
        if is_url(args.folder) or is_url(args.output_dir):
            from ..objectbatch import run_object_batch

            summary = run_object_batch(args.folder, args.output_dir, settings,
                                       storage_options=parse_storage_options(args.storage_options), **common)
        else:
            summary = run_batch(args.folder, args.output_dir, settings, **common)
    except KeyboardInterrupt as stop:
        progress.close()
        error(f"interrupted after {progress.done} of {progress.total} inputs to do were recorded; "
              "running the same command again does the rest, and keeps any output already written")
        stop.reported = True
        raise
    finally:
        progress.close()
    print(batch_summary(summary))
    return _failures_status(summary.error_kinds)


def _failures_status(error_kinds) -> ExitStatus:
    """A batch's exit status: that of the most serious failure standing (0 if none)."""
    from ..errors import error_class
    from .status import exit_status_for

    return overall_status(exit_status_for(error_class(kind)) for kind in error_kinds)


def _refuse_url(option: str, value, why: str) -> None:
    from ..objects import is_url

    if value is not None and is_url(value):
        raise UsageError(f"{option} {value}: {why}; give a local path")


def batch_status(args) -> ExitStatus:
    from ..errors import ImageReadError, ImageWriteError
    from ..manifest import MANIFEST_NAME, Manifest
    from ..objects import is_url
    from ..storage import same_file, write_atomic

    _refuse_url("--manifest", args.manifest, "the manifest is an SQLite file on this machine")
    _refuse_url("--csv", args.csv, "the CSV is written on this machine (or to standard output: --csv -)")
    if args.manifest:
        path = Path(args.manifest)
    elif is_url(args.folder):
        from ..objectbatch import default_manifest_path

        path = default_manifest_path(args.folder.rstrip("/"))
    else:
        path = Path(args.folder) / MANIFEST_NAME
    if not path.is_file():
        raise ImageReadError(f"{path}: no manifest here (is {args.folder} a batch output folder?)")
    to_stdout = args.csv == STDIO  # the rows on stdout, the report on stderr
    with Manifest(path, readonly=True) as manifest:
        summary = manifest.summary()
        if to_stdout:
            data, exported = manifest.csv_bytes()
            _write_stdout(data)
        elif args.csv:
            target = Path(args.csv)
            for protected in manifest.own_files() + manifest.files_named():
                if same_file(target, protected):
                    raise ImageWriteError(f"{target}: is {'the manifest' if protected in manifest.own_files() else 'a file the manifest names'}; "
                                          "choose another name for the CSV")
            data, exported = manifest.csv_bytes()
            write_atomic(data, target, overwrite=args.force)
    report = sys.stderr if to_stdout else sys.stdout
    print(status_report(summary), file=report)
    if args.csv:
        print(f"wrote {exported} rows to {'standard output' if to_stdout else args.csv}", file=report)
    return _failures_status(summary["error_kinds"])


# --------------------------------------------------------------------------- compare, demo


def _every_method(image, args, *, perceptual: bool = True) -> list:
    """``(title, result, figures)`` for every registered method, encoded as PNG."""
    from ..api import quantize
    from ..methods import METHODS

    # the commands that show figures compute them: SSIM and the perceptual ones
    metrics = ("ssim", "ssimulacra2", "ciede2000", "blurred_psnr") if perceptual else ("ssim", "ssimulacra2")
    rows = []
    for name, spec in METHODS.items():
        settings = settings_from_args(args, method=name, metrics=metrics)
        result = quantize(image, settings=settings)
        rows.append((spec.title, result, result.measure(result.encode("png"))))
    return rows


def compare(args) -> ExitStatus:
    from ..imageio import read_image
    from ..storage import check_destination, write_atomic
    from ..plots import comparison_figure, figure_png

    source = Path(args.input)
    n_colors = args.colors or 16
    output = Path(args.output) if args.output else source.with_name(f"{source.stem}-compare-k{n_colors}.png")
    settings_from_args(args)  # every option checked before the file is read
    loaded = read_image(source, max_pixels=args.max_pixels, frames="first")
    for note in loaded.warnings:  # the first frame of an animation, a broken profile
        warn(note)
    check_destination(output, overwrite=args.force, protect=(source,))
    rows = _every_method(loaded, args)
    figure = comparison_figure(loaded.pixels, rows, zoom=args.zoom)
    write_atomic(figure_png(figure), output, overwrite=args.force, protect=(source,))
    print(figures_table([(title, figures, result.seconds) for title, result, figures in rows],
                        bytes_in=loaded.n_bytes))
    print(f"figure: {output}")
    return ExitStatus.OK


def demo(args) -> ExitStatus:
    from skimage import data

    from ..encoding import encode_reference_png
    from ..storage import write_atomic
    from ..methods import METHODS
    from ..plots import comparison_figure, figure_png

    photo = data.astronaut()
    folder = Path(args.output_dir)
    # The same rule as compress and compare: files already there are replaced only with
    # --force; all of them checked before any work.
    names = ["original.png", *(f"compressed_{name}_K{args.colors}.png" for name in METHODS),
             f"comparison_K{args.colors}.png"]
    existing = [name for name in names if os.path.lexists(folder / name)]
    if existing and not args.force:
        raise ImageWriteError(f"{folder / existing[0]}: already exists", remedy="overwrite")
    _make_folder(folder)
    original_png = encode_reference_png(photo)
    write_atomic(original_png, folder / "original.png", overwrite=args.force)
    args.seed, args.max_pixels, args.color_space, args.dither = 0, 100_000_000, None, 0.0
    args.speed = DEFAULT_SPEED
    rows = _every_method(photo, args)
    for name, (_, result, _) in zip(METHODS, rows):
        result.save(folder / f"compressed_{name}_K{args.colors}.png", overwrite=args.force)
    figure = comparison_figure(photo, rows, original_bytes=len(original_png))
    write_atomic(figure_png(figure), folder / f"comparison_K{args.colors}.png", overwrite=args.force)
    print(f"scikit-image 'astronaut' photo, 512x512, {args.colors} colours; "
          f"original as 24-bit PNG: {kib(len(original_png))}")
    print(figures_table([(title, figures, result.seconds) for title, result, figures in rows],
                        bytes_in=len(original_png)))
    print(f"wrote {folder}/: original.png, "
          + ", ".join(f"compressed_{name}_K{args.colors}.png" for name in METHODS)
          + f", comparison_K{args.colors}.png")
    return ExitStatus.OK


# --------------------------------------------------------------------------- curve


def curve(args) -> ExitStatus:
    from ..api import quality_curves
    from ..imageio import read_image
    from ..storage import check_destination, write_atomic
    from ..methods import METHODS
    from ..plots import curve_figure, figure_png

    if args.colors is None:
        args.colors = 256  # the curve runs up to 256 colours unless told
    settings = settings_from_args(args)
    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_name(f"{source.stem}-curve.png")
    loaded = read_image(source, max_pixels=args.max_pixels, frames="first")
    for note in loaded.warnings:  # the first frame of an animation, a broken profile
        warn(note)
    check_destination(output, overwrite=args.force, protect=(source,))
    from ..errors import InvalidParameterError

    try:
        curves = quality_curves(loaded, settings, methods=[args.method] if args.method else None,
                                metric=args.metric, options=method_options_from_args(args))
    except InvalidParameterError as problem:
        raise UsageError(str(problem)) from None
    for method, reason in curves.errors.items():
        warn(f"{METHODS[method].title}: {reason}")
    titles = {name: spec.title for name, spec in METHODS.items()}
    figure = curve_figure(curves.points, metric=curves.metric, target=settings.target,
                          chosen=curves.chosen, titles=titles, image_name=source.name)
    write_atomic(figure_png(figure), output, overwrite=args.force, protect=(source,))
    for method, points in curves.points.items():
        line = ", ".join(f"{k}: {v:.4g}" for k, v in points)
        found = f"; chosen {curves.chosen[method][0]}" if curves.chosen.get(method) else ""
        print(f"{titles[method]} {curves.metric}: {line}{found}")
    print(f"figure: {output}")
    return ExitStatus.OK


# --------------------------------------------------------------------------- serve


def serve(args) -> ExitStatus:
    from ..errors import MissingDependencyError

    try:
        import uvicorn

        from ..web import WebSettings, create_app
    except ImportError as problem:
        raise MissingDependencyError(
            f"the web app needs its extra: pip install 'colorquant[web]' ({problem})") from None
    if args.allowed_hosts is not None:
        hosts = tuple(name.strip() for name in args.allowed_hosts.split(",") if name.strip())
        if not hosts:
            raise UsageError("--allowed-hosts needs at least one host name (or * for any); "
                             "with none, every request would be refused")
    elif args.host in ("127.0.0.1", "localhost", "::1"):
        hosts = ("localhost", "127.0.0.1", "::1")  # DNS rebinding cannot reach a local server
    else:
        hosts = ("*",)
    app = create_app(WebSettings(max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                                 max_pixels=args.max_pixels, max_pixels_in_flight=args.max_pixels,
                                 allowed_hosts=hosts,
                                 min_upload_rate=args.min_upload_rate * 1024))
    from ..web.protocol import protocol_with_header_timeout

    listening = _listen(args.host, args.port)  # before saying so: the port may be taken
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"colorquant: serving on http://{shown_host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", http=protocol_with_header_timeout(args.header_timeout))
    uvicorn.Server(config).run(sockets=[listening])
    return ExitStatus.OK


def _listen(host: str, port: int):
    """A listening socket on ``host``:``port``, or a usage error saying why there is none."""
    import socket

    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
        listening = socket.socket(family, kind, protocol)
    except (OSError, UnicodeError) as problem:
        raise UsageError(f"cannot listen on {host}:{port} ({getattr(problem, 'strerror', None) or problem})") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(2048)
    except OSError as problem:
        listening.close()
        raise UsageError(f"cannot listen on {host}:{port} ({problem.strerror or problem}"
                         + ("; is another server using it?" if problem.errno == 98 else "") + ")") from None
    listening.set_inheritable(True)
    return listening


COMMANDS = {"compress": compress, "batch": batch, "compare": compare, "demo": demo,
            "curve": curve, "serve": serve}
