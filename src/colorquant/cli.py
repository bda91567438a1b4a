"""The ``colorquant`` command: parses arguments, calls the library, prints, maps errors to
exit statuses. It is the only module that prints or exits.

Exit statuses (also in README):
    0   all done
    1   internal error (a bug: please report it)
    2   usage error (bad option values are rejected before any file is touched)
    3   at least one input could not be read (the others are still done)
    4   an output could not be written
    75  batch: another batch is writing to the same output folder
    98  skipped by --skip-if-larger: the output would not be smaller than the input
    99  a quality target could not be met within the allowed colour counts
When inputs end differently, the most serious status wins: 4, then 3, then 99, then 98.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from enum import IntEnum
from pathlib import Path

__all__ = ["main", "ExitStatus"]

METHOD_NAMES = ("kmeans", "minibatch", "gmm")  # mirrors colorquant.methods.METHODS, import-free
FORMAT_NAMES = ("png", "gif", "webp", "jpeg")
METHOD_TITLES = {"kmeans": "K-Means", "minibatch": "Mini-Batch", "gmm": "GMM"}


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    READ_ERROR = 3
    WRITE_ERROR = 4
    BUSY = 75  # another batch holds the output folder (EX_TEMPFAIL)
    SKIPPED_LARGER = 98
    QUALITY_TOO_LOW = 99


# Most serious first: the overall status of a run is the first of these that occurred.
_SEVERITY = (
    ExitStatus.ERROR,
    ExitStatus.WRITE_ERROR,
    ExitStatus.READ_ERROR,
    ExitStatus.USAGE,
    ExitStatus.QUALITY_TOO_LOW,
    ExitStatus.SKIPPED_LARGER,
)


def exit_status_for(error: BaseException | None) -> ExitStatus:
    """The one place where an error becomes an exit status."""
    from .errors import (
        BatchLockedError,
        ImageReadError,
        ImageWriteError,
        InvalidParameterError,
        MissingDependencyError,
        OutputNotSmallerError,
        QualityTooLowError,
    )

    if error is None:
        return ExitStatus.OK
    for error_type, status in (
        (InvalidParameterError, ExitStatus.USAGE),
        (MissingDependencyError, ExitStatus.USAGE),
        (ImageReadError, ExitStatus.READ_ERROR),
        (ImageWriteError, ExitStatus.WRITE_ERROR),
        (OutputNotSmallerError, ExitStatus.SKIPPED_LARGER),
        (QualityTooLowError, ExitStatus.QUALITY_TOO_LOW),
        (BatchLockedError, ExitStatus.BUSY),
    ):
        if isinstance(error, error_type):
            return status
    return ExitStatus.ERROR


def overall_status(statuses) -> ExitStatus:
    statuses = set(statuses)
    for status in _SEVERITY:
        if status in statuses:
            return status
    return ExitStatus.OK


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, instead of argparse's usage dump
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _int_in(low: int, high: int | None, name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer; got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bounds}; got {value}")
        return value

    return parse


def _add_common(parser, *, colors_help: str) -> None:
    parser.add_argument("-k", "--colors", type=_int_in(2, 256, "--colors"), default=None,
                        metavar="N", help=colors_help)
    parser.add_argument("--seed", type=_int_in(0, 2**32 - 1, "--seed"), default=0,
                        help="random seed; the same seed gives the same bytes (default 0)")
    parser.add_argument("--max-pixels", type=_int_in(1, None, "--max-pixels"),
                        default=100_000_000, metavar="N",
                        help="refuse images with more pixels, judged from the header (default 100M)")
    parser.add_argument("--covariance", choices=("full", "tied", "diag", "spherical"),
                        default=None, help="GMM covariance type (default spherical, see README)")
    parser.add_argument("--color-space", choices=("rgb", "lab", "oklab"), default="rgb",
                        help="space to cluster and remap in; the palette is stored in sRGB (default rgb)")
    parser.add_argument("--dither", type=_dither_level, nargs="?", const=1.0, default=0.0,
                        metavar="LEVEL", help="Floyd-Steinberg error diffusion, LEVEL 0-1 "
                        "(1 when the flag is given without a value)")


def _float_arg(name: str):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number; got {text!r}") from None

    return parse


def _dither_level(text: str) -> float:
    try:
        level = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dither must be a number in [0, 1]; got {text!r}") from None
    if not 0 <= level <= 1:
        raise argparse.ArgumentTypeError(f"--dither must be in [0, 1]; got {text}")
    return level


def _quality_range(text: str) -> tuple[float, float]:
    """pngquant's --quality: "MIN-MAX", "MAX", "MIN-" or "-MAX", each 0-100."""
    low_text, _, high_text = text.partition("-") if "-" in text else ("", "", text)
    try:
        low = float(low_text) if low_text else 0.0
        high = float(high_text) if high_text else 100.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"--quality must be MIN-MAX with numbers 0-100; got {text!r}") from None
    if not (0 <= low <= high <= 100):
        raise argparse.ArgumentTypeError(f"--quality must be MIN-MAX with 0 <= MIN <= MAX <= 100; got {text!r}")
    return low, high


def _add_compress_options(parser) -> None:
    """Options that decide each output: shared by compress and batch."""
    _add_common(parser, colors_help="number of colours, 2-256 (default 16)")
    parser.add_argument("-m", "--method", choices=METHOD_NAMES, default="kmeans")
    parser.add_argument("--format", choices=FORMAT_NAMES, default="png",
                        help="output format (default png: a palette PNG)")
    parser.add_argument("--skip-if-larger", action="store_true",
                        help="write nothing when the output is not smaller (exit 98)")
    _add_targets(parser)


def _settings_from_args(args, *, perceptual_metrics: bool = False, overwrite: bool = False):
    """CompressSettings from the command line, validated before any file is touched."""
    from .compress import CompressSettings

    targets = _target_settings(args)
    if targets and args.format == "jpeg":
        raise _UsageError("quality targets need a lossless output format (png, webp or gif), "
                          "not jpeg, whose own loss would decide the figure")
    if args.covariance and args.method != "gmm":
        raise _UsageError("--covariance applies to --method gmm only")
    return CompressSettings(
        n_colors=targets.pop("n_colors", args.colors),
        method=args.method,
        random_state=args.seed,
        format=args.format,
        covariance_type=args.covariance,
        max_pixels=args.max_pixels,
        skip_if_larger=args.skip_if_larger,
        overwrite=overwrite,
        color_space=args.color_space,
        dither=args.dither,
        perceptual_metrics=perceptual_metrics,
        **targets,
    )


def _add_targets(parser) -> None:
    group = parser.add_argument_group(
        "quality target", "choose the fewest colours that reach a target; --colors is then "
        "the upper bound (default 256)")
    targets = group.add_mutually_exclusive_group()
    targets.add_argument("--target-psnr", type=_float_arg("--target-psnr"), metavar="DB",
                         help="PSNR of the output at least DB (0-100]")
    targets.add_argument("--target-mse", type=_float_arg("--target-mse"), metavar="X",
                         help="mean squared error of the output at most X")
    targets.add_argument("--target-ssim", type=_float_arg("--target-ssim"), metavar="S",
                         help="SSIM of the output at least S (0-1]")
    targets.add_argument("--quality", type=_quality_range, metavar="MIN-MAX",
                         help="pngquant-style 0-100: reach PSNR 20+MAX/4 dB with the fewest colours; "
                              "if not even --colors reach it, keep --colors when PSNR 20+MIN/4 is met, "
                              "else exit 99")
    group.add_argument("--min-colors", type=_int_in(2, 256, "--min-colors"), default=2, metavar="N",
                       help="lower bound of the search (default 2)")


def _target_settings(args) -> dict:
    """Quality-target options from the command line, validated before any file is touched."""
    from .search import make_target, quality_to_psnr

    settings = {}
    if args.quality is not None:
        low, high = args.quality
        settings = {"target_psnr": quality_to_psnr(high), "fallback_psnr": quality_to_psnr(low)}
    elif any(v is not None for v in (args.target_psnr, args.target_mse, args.target_ssim)):
        settings = {"target_psnr": args.target_psnr, "target_mse": args.target_mse,
                    "target_ssim": args.target_ssim}
    if not settings:
        return {}
    try:
        make_target(psnr=settings.get("target_psnr"), mse=settings.get("target_mse"),
                    ssim=settings.get("target_ssim"))
    except Exception as error:  # InvalidParameterError: say it in CLI option names
        raise _UsageError(str(error).replace("target_", "--target-")) from None
    if args.min_colors > (args.colors if args.colors_given else 256):
        raise _UsageError(f"--min-colors ({args.min_colors}) must not exceed --colors")
    settings["min_colors"] = args.min_colors
    settings["n_colors"] = args.colors if args.colors_given else 256
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="colorquant",
        description="Make images smaller with a palette learned by clustering "
        "(K-Means, Mini-Batch K-Means, Gaussian mixture).",
        epilog="Exit statuses: 0 ok, 2 usage, 3 unreadable input, 4 write failed, "
        "98 skipped (not smaller), 99 quality target not met.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"colorquant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    compress = commands.add_parser("compress", help="quantize images and write palette files",
                                   description="Quantize images and write palette files.")
    compress.add_argument("inputs", nargs="+", metavar="INPUT")
    where = compress.add_mutually_exclusive_group()
    where.add_argument("-o", "--output-dir", metavar="DIR", help="write outputs into DIR")
    where.add_argument("--output", metavar="FILE", help="output file (one input only)")
    compress.add_argument("--force", action="store_true", help="replace existing outputs")
    compress.add_argument("--json", action="store_true", help="one JSON record per input on stdout")
    compress.add_argument("--jobs", type=_int_in(1, None, "--jobs"), default=None, metavar="N",
                          help="parallel processes (default: one per core, at most one per input)")
    compress.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    _add_compress_options(compress)

    batch = commands.add_parser(
        "batch", help="compress a folder, resumably (SQLite manifest), locally or on Dask",
        description="Compress every image in INPUT_DIR into OUTPUT_DIR, mirroring the tree. "
                    "Run it again to do only what is not done; 'batch --status OUTPUT_DIR' "
                    "summarises the manifest.")
    batch.add_argument("folder", metavar="INPUT_DIR",
                       help="folder of images (with --status: the output folder)")
    batch.add_argument("-o", "--output-dir", metavar="OUTPUT_DIR", help="where outputs go")
    batch.add_argument("--recursive", action="store_true", help="include subfolders")
    batch.add_argument("--jobs", type=_int_in(1, None, "--jobs"), default=None, metavar="N",
                       help="parallel processes or Dask workers (default: one per core)")
    batch.add_argument("--scheduler", metavar="ADDRESS|local",
                       help="run on a Dask cluster: tcp://HOST:8786, or 'local' for a LocalCluster")
    batch.add_argument("--manifest", metavar="FILE",
                       help="manifest database (default OUTPUT_DIR/colorquant.sqlite)")
    batch.add_argument("--retry-failed", action="store_true", help="try failed inputs again")
    batch.add_argument("--status", action="store_true", help="summarise the manifest of INPUT_DIR "
                       "(an output folder) and exit")
    batch.add_argument("--csv", metavar="FILE", help="with --status: export every row as CSV")
    batch.add_argument("-q", "--quiet", action="store_true", help="print errors and the summary only")
    _add_compress_options(batch)

    compare = commands.add_parser("compare", help="figure comparing the three methods on one image",
                                  description="Run every method on one image and write one figure.")
    compare.add_argument("input", metavar="INPUT")
    _add_common(compare, colors_help="number of colours, 2-256 (default 16)")
    compare.add_argument("-o", "--output", metavar="FIGURE.png",
                         help="figure file (default <stem>-compare-k<N>.png next to the input)")
    compare.add_argument("--force", action="store_true", help="replace an existing figure")
    compare.add_argument("--zoom", action="store_true",
                         help="add a zoomed crop of a smooth gradient area, where banding and "
                              "dithering show")

    curve = commands.add_parser(
        "curve", help="plot quality against the number of colours (the elbow plot)",
        description="Quality against colour count for each method, with the target and the "
                    "count it chooses marked.")
    curve.add_argument("input", metavar="INPUT")
    curve.add_argument("-m", "--method", choices=METHOD_NAMES, default=None,
                       help="one method (default: all three)")
    curve.add_argument("--metric", choices=("psnr", "ssim", "mse"), default=None,
                       help="figure on the y axis (default: the target's, else psnr)")
    curve.add_argument("-o", "--output", metavar="CURVE.png",
                       help="figure file (default <stem>-curve.png next to the input)")
    curve.add_argument("--force", action="store_true", help="replace an existing figure")
    _add_common(curve, colors_help="largest colour count plotted (default 256)")
    _add_targets(curve)

    serve = commands.add_parser("serve", help="start the web page and HTTP API (needs colorquant[web])",
                                description="Serve the colorquant page and API with uvicorn.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_int_in(1, 65535, "--port"), default=8000)
    serve.add_argument("--max-upload-mb", type=_int_in(1, None, "--max-upload-mb"), default=25,
                       help="largest upload in MB (default 25)")
    serve.add_argument("--max-pixels", type=_int_in(1, None, "--max-pixels"), default=40_000_000,
                       help="largest image in pixels (default 40M)")

    demo = commands.add_parser("demo", help="run all methods on a photo shipped with scikit-image",
                               description="Compress a scikit-image sample photo with every method.")
    demo.add_argument("-o", "--output-dir", default="compressed_outputs", metavar="DIR",
                      help="where to write (default ./compressed_outputs)")
    demo.add_argument("-k", "--colors", type=_int_in(2, 256, "--colors"), default=16, metavar="N")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return ExitStatus.USAGE
        if getattr(args, "colors", 0) is None:
            args.colors_given, args.colors = False, 16
        else:
            args.colors_given = True
        handler = {"compress": _compress, "compare": _compare, "demo": _demo,
                   "curve": _curve, "batch": _batch, "serve": _serve}[args.command]
        return int(handler(args))
    except _UsageError as error:
        _error(str(error))
        return ExitStatus.USAGE
    except SystemExit as exit_request:  # --help and --version
        return int(exit_request.code or 0)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as error:  # noqa: BLE001 - the one place every error becomes a status
        status = exit_status_for(error)
        if status is ExitStatus.ERROR and os.environ.get("COLORQUANT_DEBUG"):
            raise
        message = str(error) if status is not ExitStatus.ERROR else (
            f"internal error: {type(error).__name__}: {error} "
            "(set COLORQUANT_DEBUG=1 for a traceback, and please report it)"
        )
        _error(message)
        return status


def _error(message: str) -> None:
    print(f"colorquant: {message}", file=sys.stderr)


def _make_folder(folder: Path) -> bool:
    """Create ``folder`` (and parents); on failure say why and return False."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError as error:
        _error(f"{folder}: cannot create output folder ({error.strerror or error})")
        return False


def _warn(message: str) -> None:
    print(f"colorquant: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- compress


def _compress(args) -> ExitStatus:
    if args.output and len(args.inputs) > 1:
        raise _UsageError("--output takes one input; use --output-dir for several")
    settings = _settings_from_args(args, perceptual_metrics=args.json, overwrite=args.force)
    if args.format == "jpeg" and not args.quiet:
        _warn("JPEG re-expands the palette to millions of colours and usually makes the file "
              "larger than a palette PNG")
    if args.format == "gif" and not args.quiet:
        _warn("GIF keeps only fully transparent or opaque pixels")
    output_dir = Path(args.output_dir) if args.output_dir else None
    if output_dir is not None and not _make_folder(output_dir):
        return ExitStatus.WRITE_ERROR

    statuses = []
    for record in _run_compress(args.inputs, settings, args, output_dir):
        status = exit_status_for(record.exception)
        statuses.append(status)
        if not args.quiet:
            for note in record.warnings:
                _warn(note)
        if record.error:
            _error(record.error)
        if args.json:
            print(json.dumps(record.as_json()), flush=True)
        elif record.status == "ok" and not args.quiet:
            print(_describe_record(record), flush=True)
    return overall_status(statuses)


def _run_compress(inputs, settings, args, output_dir):
    from .compress import compress_file

    jobs = args.jobs or min(len(inputs), os.cpu_count() or 1)
    jobs = min(jobs, len(inputs))
    output_path = Path(args.output) if args.output else None
    if jobs <= 1:
        for path in inputs:
            yield _guarded(compress_file, path, settings, output_path, output_dir)
        return

    from .compress import worker_pool

    with worker_pool(jobs, settings.method) as pool:
        futures = [pool.submit(_guarded, compress_file, path, settings, output_path, output_dir)
                   for path in inputs]
        for future in futures:
            yield future.result()


def _guarded(compress_file, path, settings, output_path, output_dir):
    """compress_file, with a bug in it reported as that input's error rather than a crash."""
    from .compress import CompressRecord

    try:
        return compress_file(path, settings, output_path=output_path, output_dir=output_dir)
    except Exception as error:  # noqa: BLE001 - report, continue with the other inputs
        if os.environ.get("COLORQUANT_DEBUG"):
            raise
        return CompressRecord(
            input=str(path), status="error", exception=error,
            error=f"{path}: internal error: {type(error).__name__}: {error} (please report it)",
        )


def _describe_record(record) -> str:
    saved = ""
    if record.bytes_in:
        change = 100.0 * (record.bytes_out - record.bytes_in) / record.bytes_in
        saved = f", {_kib(record.bytes_in)} -> {_kib(record.bytes_out)} ({change:+.0f}%)"
    else:
        saved = f", {_kib(record.bytes_out)}"
    return (f"{record.input} -> {record.output}: {record.colors} colours, "
            f"PSNR {_db(record.psnr)}, SSIM {_ssim(record.ssim)}{saved}, {record.seconds:.2f} s")


def _kib(n_bytes: int) -> str:
    return f"{n_bytes / 1024:.1f} KiB"


def _db(psnr: float | None) -> str:
    if psnr is None:
        return "n/a"
    return "inf (lossless)" if psnr == float("inf") else f"{psnr:.2f} dB"


def _ssim(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------- serve


def _serve(args) -> ExitStatus:
    from .errors import MissingDependencyError

    try:
        import uvicorn

        from .web import WebSettings, create_app
    except ImportError as error:
        raise MissingDependencyError(
            f"the web app needs its extra: pip install 'colorquant[web]' ({error})") from None
    app = create_app(WebSettings(max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                                 max_pixels=args.max_pixels))
    print(f"colorquant: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return ExitStatus.OK


# --------------------------------------------------------------------------- batch


def _batch(args) -> ExitStatus:
    if args.status:
        return _batch_status(args)
    if args.csv:
        raise _UsageError("--csv goes with --status")
    if not args.output_dir:
        raise _UsageError("batch needs -o/--output-dir OUTPUT_DIR")
    settings = _settings_from_args(args)
    from .batch import run_batch

    progress = _BatchProgress(quiet=args.quiet)
    summary = run_batch(args.folder, args.output_dir, settings, recursive=args.recursive,
                        jobs=args.jobs, scheduler=args.scheduler, manifest_path=args.manifest,
                        retry_failed=args.retry_failed, on_event=progress)
    progress.close()
    print(_batch_summary_table(summary), file=sys.stderr if args.quiet else sys.stdout)
    kinds = summary.error_kinds - {"OutputNotSmallerError", "QualityTooLowError"}
    if "ImageWriteError" in kinds:
        return ExitStatus.WRITE_ERROR
    return ExitStatus.READ_ERROR if kinds or summary.counts["failed"] else ExitStatus.OK


class _BatchProgress:
    """A live bar on a terminal (tqdm), plain lines otherwise; failures always on stderr."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.done, self.total = quiet, None, 0, 0
        self.saved, self.started = 0, None

    def __call__(self, kind, payload):
        import time

        if kind == "planned":
            self.total, self.started = payload["todo"], time.perf_counter()
            if not self.quiet:
                print(f"{payload['total']} images: {payload['up_to_date']} up to date, "
                      f"{payload['todo']} to do", file=sys.stderr)
            if not self.quiet and sys.stderr.isatty() and self.total:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="img", file=sys.stderr, dynamic_ncols=True)
            return
        result = payload
        self.done += 1
        if result.status == "done":
            self.saved += (result.bytes_in or 0) - (result.bytes_out or 0)
        if result.status == "failed":
            _error(result.error)
        if self.bar is not None:
            self.bar.set_postfix_str(f"saved {self.saved / 2**20:.1f} MiB", refresh=False)
            self.bar.update(1)
        elif not self.quiet:
            elapsed = time.perf_counter() - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate else 0.0
            detail = (f"{_kib(result.bytes_in or 0)} -> {_kib(result.bytes_out or 0)}"
                      if result.status == "done" else (result.error or ""))
            print(f"[{self.done}/{self.total}] {result.relpath}: {result.status}, {detail} "
                  f"({rate:.1f} img/s, ETA {eta:.0f} s)", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _batch_summary_table(summary) -> str:
    counts = summary.counts
    saved = summary.bytes_in - summary.bytes_out
    share = f" ({100.0 * saved / summary.bytes_in:.1f}%)" if summary.bytes_in else ""
    psnr = f"{summary.mean_psnr:.2f} dB" if summary.mean_psnr is not None else "n/a"
    lines = [
        f"{'images found':<22}{summary.total}",
        f"{'already up to date':<22}{summary.up_to_date}",
        f"{'done now':<22}{counts['done']}",
        f"{'skipped':<22}{counts['skipped']}",
        f"{'failed':<22}{counts['failed']}",
        f"{'bytes in -> out':<22}{_kib(summary.bytes_in)} -> {_kib(summary.bytes_out)}, saved {_kib(saved)}{share}",
        f"{'mean PSNR (done now)':<22}{psnr}",
    ]
    return "\n".join(lines)


def _batch_status(args) -> ExitStatus:
    from .manifest import MANIFEST_NAME, Manifest

    path = Path(args.manifest) if args.manifest else Path(args.folder) / MANIFEST_NAME
    if not path.is_file():
        _error(f"{path}: no manifest here (is {args.folder} a batch output folder?)")
        return ExitStatus.READ_ERROR
    with Manifest(path, readonly=True) as manifest:
        summary = manifest.summary()
        if args.csv:
            from .imageio import check_destination

            check_destination(args.csv, overwrite=True)
            exported = manifest.export_csv(args.csv)
    counts = summary["counts"]
    saved = summary["bytes_in"] - summary["bytes_out"]
    share = f" ({100.0 * saved / summary['bytes_in']:.1f}%)" if summary["bytes_in"] else ""
    psnr = f"{summary['mean_psnr']:.2f} dB" if summary["mean_psnr"] is not None else "n/a"
    print(f"{'done':<10}{counts['done']}\n{'skipped':<10}{counts['skipped']}\n{'failed':<10}{counts['failed']}")
    print(f"bytes before {_kib(summary['bytes_in'])}, after {_kib(summary['bytes_out'])}, "
          f"saved {_kib(saved)}{share}; mean PSNR {psnr}")
    for relpath, reason in summary["failures"]:
        print(f"failed: {relpath}: {reason}")
    if args.csv:
        print(f"wrote {exported} rows to {args.csv}")
    return ExitStatus.OK


# --------------------------------------------------------------------------- compare, demo


def _quantize_all_methods(image, args) -> dict:
    from .api import quantize

    options = {"n_colors": args.colors, "random_state": args.seed, "max_pixels": args.max_pixels,
               "color_space": args.color_space, "dither": args.dither}
    results = {}
    for method in METHOD_NAMES:
        extra = {"covariance_type": args.covariance} if method == "gmm" and args.covariance else {}
        results[method] = quantize(image, method=method, **options, **extra)
    return results


def _compare(args) -> ExitStatus:
    from .imageio import check_destination, read_image, write_atomic
    from .plots import comparison_figure, figure_png

    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_name(
        f"{source.stem}-compare-k{args.colors}.png")
    loaded = read_image(source, max_pixels=args.max_pixels)
    check_destination(output, overwrite=args.force, protect=(source,))
    results = _quantize_all_methods(loaded, args)
    figures = {m: r.measure(r.encode(), perceptual=True) for m, r in results.items()}
    figure = comparison_figure(loaded.pixels, results, figures=figures, titles=METHOD_TITLES,
                               zoom=args.zoom)
    write_atomic(figure_png(figure), output, overwrite=args.force, protect=(source,))
    print(_table(results, figures, bytes_in=loaded.n_bytes))
    print(f"figure: {output}")
    return ExitStatus.OK


def _demo(args) -> ExitStatus:
    from skimage import data

    from .imageio import encode_reference_png, write_atomic
    from .plots import comparison_figure, figure_png

    photo = data.astronaut()
    folder = Path(args.output_dir)
    if not _make_folder(folder):
        return ExitStatus.WRITE_ERROR
    # The demo owns its folder's files, so a second run replaces them.
    original_png = encode_reference_png(photo)
    write_atomic(original_png, folder / "original.png", overwrite=True)
    args.seed, args.max_pixels, args.covariance = 0, 100_000_000, None
    args.color_space, args.dither = "rgb", 0.0
    results = _quantize_all_methods(photo, args)
    for method, result in results.items():
        result.save(folder / f"compressed_{method}_K{args.colors}.png", overwrite=True)
    figures = {m: r.measure(r.encode(), perceptual=True) for m, r in results.items()}
    figure = comparison_figure(photo, results, figures=figures, titles=METHOD_TITLES,
                               original_bytes=len(original_png))
    write_atomic(figure_png(figure), folder / f"comparison_K{args.colors}.png", overwrite=True)
    print(f"scikit-image 'astronaut' photo, 512x512, {args.colors} colours; "
          f"original as 24-bit PNG: {_kib(len(original_png))}")
    print(_table(results, figures, bytes_in=len(original_png)))
    print(f"wrote {folder}/: original.png, "
          + ", ".join(f"compressed_{m}_K{args.colors}.png" for m in results)
          + f", comparison_K{args.colors}.png")
    return ExitStatus.OK


def _curve(args) -> ExitStatus:
    from .imageio import check_destination, read_image, write_atomic
    from .plots import curve_figure, figure_png
    from .search import make_target, quality_curve, search_n_colors
    from .pipeline import prepare, single_threaded_blas

    targets = _target_settings(args)
    max_colors = args.colors if args.colors_given else 256
    target = make_target(psnr=targets.get("target_psnr"), mse=targets.get("target_mse"),
                         ssim=targets.get("target_ssim")) if targets else None
    metric = args.metric or (target.metric if target else "psnr")
    if target is not None and metric != target.metric:
        raise _UsageError(f"--metric {metric} differs from the target's metric {target.metric}")
    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_name(f"{source.stem}-curve.png")
    loaded = read_image(source, max_pixels=args.max_pixels)
    check_destination(output, overwrite=args.force, protect=(source,))
    prepared = prepare(loaded.pixels, args.color_space)
    methods = [args.method] if args.method else list(METHOD_NAMES)
    curves, chosen = {}, {}
    with single_threaded_blas():
        for method in methods:
            options = {"covariance_type": args.covariance} if method == "gmm" and args.covariance else {}
            curves[method] = quality_curve(prepared, loaded.pixels, method, metric, max_colors=max_colors,
                                           random_state=args.seed, dither=args.dither, **options)
            if target is not None:
                try:
                    answer, _, trace = search_n_colors(
                        prepared, loaded.pixels, method, target, min_colors=args.min_colors,
                        max_colors=max_colors, random_state=args.seed, dither=args.dither, **options)
                    chosen[method] = (answer, next(s.value for s in trace if s.n_colors == answer))
                except Exception as error:  # QualityTooLowError: mark nothing, say so
                    chosen[method] = None
                    _warn(f"{METHOD_TITLES[method]}: {error}")
    figure = curve_figure(curves, metric=metric, target=target, chosen=chosen, titles=METHOD_TITLES,
                          image_name=source.name)
    write_atomic(figure_png(figure), output, overwrite=args.force, protect=(source,))
    for method, points in curves.items():
        line = ", ".join(f"{k}: {v:.4g}" for k, v in points)
        found = f"; chosen {chosen[method][0]}" if chosen.get(method) else ""
        print(f"{METHOD_TITLES[method]} {metric}: {line}{found}")
    print(f"figure: {output}")
    return ExitStatus.OK


def _table(results: dict, figures: dict, *, bytes_in: int | None) -> str:
    header = (f"{'method':<11} {'colours':>7} {'PSNR dB':>8} {'SSIM':>7} {'dE2000':>7} "
              f"{'blur dB':>8} {'size':>10} {'vs input':>9} {'seconds':>8}")
    lines = [header, "-" * len(header)]
    for method, result in results.items():
        measured = figures[method]
        ratio = f"{100.0 * measured.bytes / bytes_in:.1f}%" if bytes_in else "n/a"
        lines.append(
            f"{METHOD_TITLES[method]:<11} {measured.n_colors:>7} {_number(measured.psnr, 2):>8} "
            f"{_ssim(measured.ssim):>7} {_number(measured.ciede2000, 2):>7} "
            f"{_number(measured.blurred_psnr, 2):>8} {_kib(measured.bytes):>10} {ratio:>9} "
            f"{result.seconds:>8.3f}"
        )
    return "\n".join(lines)


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return "inf" if value == float("inf") else f"{value:.{digits}f}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
