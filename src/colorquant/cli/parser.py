"""The command line's grammar, and the one function that turns it into :class:`Settings`.

Methods, their option flags (``--covariance``) and the quality-target flags
(``--target-psnr``...) come from the registries (``methods.METHODS``, ``metrics.METRICS``),
so a method or figure registered there is offered here without touching this file. Nothing
here imports numpy: ``colorquant --help`` stays instant.
"""

from __future__ import annotations

import re

from ..effort import DEFAULT_SPEED, MAX_SPEED, MIN_SPEED
from ..errors import InvalidParameterError
from ..settings import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, FORMATS, MAX_COLORS, MAX_SEED, MIN_COLORS, COLOR_SPACES
from .argtypes import Parser, UsageError, byte_budget, dither_level, int_in, metric_names, number, quality_range

__all__ = ["build_parser", "settings_from_args", "method_options_from_args"]


def _target_flag(name: str) -> str:
    return "--target-" + name.replace("_", "-")


def _add_common(parser, *, colors_help: str) -> None:
    """Options that decide how an image is quantized: every command that quantizes has them."""
    from ..methods import options_for_flag

    parser.add_argument("-k", "--colors", type=int_in(MIN_COLORS, MAX_COLORS, "--colors"), default=None,
                        metavar="N", help=colors_help)
    parser.add_argument("-s", "--speed", type=int_in(MIN_SPEED, MAX_SPEED, "--speed"), default=DEFAULT_SPEED,
                        metavar="N", help="1 (slowest, best) to 11 (fastest), as pngquant's; default 4")
    parser.add_argument("--seed", type=int_in(0, MAX_SEED, "--seed"), default=0,
                        help="random seed; the same seed gives the same bytes (default 0)")
    parser.add_argument("--max-pixels", type=int_in(1, None, "--max-pixels"),
                        default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse images with more pixels (every frame of an animation counts), judged "
                             "from the header (default 100M)")
    parser.add_argument("--max-frames", type=int_in(1, None, "--max-frames"), default=DEFAULT_MAX_FRAMES, metavar="N",
                        help="refuse animations with more frames, judged from the header (default 1000)")
    for flag, (option, _) in options_for_flag().items():
        parser.add_argument(flag, dest=f"option_{option.name}", choices=option.choices,
                            default=None, help=option.help)
    parser.add_argument("--color-space", choices=COLOR_SPACES, default=None,
                        help="space to cluster and remap in: mixed (sRGB and Oklab distances: what "
                             "people see), rgb (the PSNR-optimal fit) or oklab; default mixed, rgb "
                             "for a PSNR or MSE target")
    parser.add_argument("--dither", type=dither_level, nargs="?", const=1.0, default=None,
                        metavar="LEVEL", help="Floyd-Steinberg error diffusion, LEVEL 0-1 "
                        "(1 when the flag is given without a value; not given: none, or the level "
                        "--max-size or --target-ssimulacra2 finds best)")


def _add_targets(parser) -> None:
    from ..metrics import METRICS

    group = parser.add_argument_group(
        "quality target", "choose the fewest colours that reach a target; --colors is then "
        "the upper bound (default 256)")
    targets = group.add_mutually_exclusive_group()
    for name, metric in METRICS.items():
        if metric.target_bounds is None:
            continue
        low, high, low_inclusive = metric.target_bounds
        relation = "at least" if metric.higher_is_better else "at most"
        interval = f"{'[' if low_inclusive else '('}{low:g}-{high:g}]"
        unit = f" {metric.unit}" if metric.unit else ""
        targets.add_argument(_target_flag(name), dest=f"target_{name}", type=number(_target_flag(name)),
                             metavar="X", help=f"{metric.title} of the output {relation} X{unit} {interval}")
    targets.add_argument("--quality", type=quality_range, metavar="MIN-MAX",
                         help="pngquant-style 0-100: reach PSNR 20+MAX/4 dB with the fewest colours; "
                              "if not even --colors reach it, keep --colors when PSNR 20+MIN/4 is met, "
                              "else exit 99")
    group.add_argument("--min-colors", type=int_in(MIN_COLORS, MAX_COLORS, "--min-colors"), default=None,
                       metavar="N", help="lower bound of the search (default 2)")


def _add_compress_options(parser) -> None:
    """Options that decide each output: shared by compress and batch."""
    from ..methods import METHODS

    _add_common(parser, colors_help="number of colours, 2-256 (default 200, fitted in Oklab unless "
                                    "--color-space says otherwise; with a target or --max-size, "
                                    "the most the search may use: default 256)")
    parser.add_argument("-m", "--method", choices=list(METHODS), default="kmeans")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format (default: from --output's suffix, else png, a palette PNG)")
    parser.add_argument("--skip-if-larger", action="store_true",
                        help="write nothing when the output is not smaller (exit 98)")
    parser.add_argument("--metrics", type=metric_names, default=(), metavar="NAMES",
                        help="figures to compute beyond MSE and PSNR, comma-separated: "
                             + ", ".join(n for n, m in _metrics().items() if not m.default) + ", or all")
    parser.add_argument("--max-size", type=byte_budget, metavar="SIZE",
                        help="the best-looking output whose file fits in SIZE: bytes (150000), "
                             "KB/MB (1000-based), KiB/MiB or k/M (1024-based), or a share of the "
                             "input (30%%); with a target, the smallest file meeting it, if it fits; "
                             "exit 99 when nothing fits")
    _add_targets(parser)


def _add_storage_options(parser) -> None:
    parser.add_argument("--storage-option", dest="storage_options", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="an option for the object store of s3://, gs://... URLs (repeatable), e.g. "
                             "endpoint_url=http://127.0.0.1:9000; credentials come from the store's "
                             "usual places (AWS_* variables, ~/.aws)")


def _metrics():
    from ..metrics import METRICS

    return METRICS


def settings_from_args(args, *, method: str | None = None, metrics=(), default_colors: int | None = None,
                       default_space: str | None = None):
    """The :class:`Settings` the command line asks for, checked before any file is touched.

    ``method`` overrides ``--method`` (commands that run every method build one per method).
    ``default_colors`` and ``default_space`` are the count, and the colour space unless
    --color-space is given, when neither --colors, a target nor --max-size is given.
    """
    from ..methods import get_method, options_for_flag
    from ..metrics import METRICS
    from ..settings import Settings

    method = method or getattr(args, "method", None) or "kmeans"
    accepted = {option.name for option in get_method(method).options}
    options = {}
    for name, value in method_options_from_args(args).items():
        if name in accepted:
            options[name] = value
        elif getattr(args, "method", None) is not None:  # asked for a method without it
            flag, (_, methods) = next((flag, entry) for flag, entry in options_for_flag().items()
                                      if entry[0].name == name)
            raise UsageError(f"{flag} applies to --method {' or '.join(methods)} only")
    keywords = {f"target_{name}": getattr(args, f"target_{name}", None)
                for name in METRICS if hasattr(args, f"target_{name}")}
    has_target = any(value is not None for value in keywords.values()) or getattr(args, "quality", None)
    max_size = getattr(args, "max_size", None)
    if getattr(args, "min_colors", None) is not None and not has_target and max_size is None:
        raise UsageError("--min-colors goes with a quality target (--target-psnr, --quality, ...) "
                         "or --max-size")
    n_colors, color_space = args.colors, args.color_space
    if n_colors is None and not has_target and max_size is None:
        n_colors = default_colors
        color_space = color_space or default_space
    try:
        return Settings.from_keywords(
            n_colors=n_colors, method=method, random_state=args.seed, color_space=color_space,
            dither=args.dither, min_colors=getattr(args, "min_colors", None) or MIN_COLORS,
            quality=getattr(args, "quality", None), max_pixels=args.max_pixels,
            format=getattr(args, "format", None) or "png",
            keep_animation_format=getattr(args, "format", None) is None,
            max_frames=getattr(args, "max_frames", DEFAULT_MAX_FRAMES), skip_if_larger=getattr(args, "skip_if_larger", False),
            metrics=tuple(metrics) + tuple(getattr(args, "metrics", ())), speed=args.speed, max_size=max_size,
            **keywords, **options)
    except InvalidParameterError as error:  # say it in the command line's own words
        message = str(error)
        for name in METRICS:
            message = re.sub(rf"\btarget_{name}\b", _target_flag(name), message)
        for ours, flag in (("n_colors", "--colors"), ("min_colors", "--min-colors"), ("max_size", "--max-size"),
                           ("random_state", "--seed"), ("max_pixels", "--max-pixels")):
            message = re.sub(rf"\b{ours}\b", flag, message)
        raise UsageError(message) from None


def method_options_from_args(args) -> dict:
    """The method options given on the command line, by option name."""
    from ..methods import options_for_flag

    given = {}
    for option, _ in options_for_flag().values():
        value = getattr(args, f"option_{option.name}", None)
        if value is not None:
            given[option.name] = value
    return given


def build_parser() -> Parser:
    """The whole command line, built from the registries as they are now."""
    from .. import __version__

    parser = Parser(
        prog="colorquant",
        description="Make images smaller with a palette learned by clustering "
        "(K-Means, Mini-Batch K-Means, Gaussian mixture).",
        epilog="Exit statuses: 0 ok, 1 internal error (a bug), 2 usage, 3 unreadable input (or its "
        "worker killed), 4 write failed, 75 another batch holds the output folder, 98 skipped "
        "(not smaller), 99 quality target not met, 130/143 interrupted (Ctrl-C/SIGTERM), "
        "141 the reader of standard output went away.",
    )
    parser.add_argument("--version", action="version", version=f"colorquant {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    compress = commands.add_parser("compress", help="quantize images and write palette files",
                                   description="Quantize images and write palette files.")
    compress.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="image files; - reads one image from standard input (written to "
                               "standard output unless -o or --output says otherwise)")
    where = compress.add_mutually_exclusive_group()
    where.add_argument("-o", "--output-dir", metavar="DIR", help="write outputs into DIR (created if missing)")
    where.add_argument("--output", metavar="FILE", help="output file (one input only); - is standard "
                                                        "output; its suffix sets the format")
    compress.add_argument("--force", action="store_true", help="replace existing outputs")
    compress.add_argument("--json", action="store_true", help="one JSON record per input on stdout "
                                                              "(stderr when the image goes to stdout)")
    compress.add_argument("--jobs", type=int_in(1, None, "--jobs"), default=None, metavar="N",
                          help="parallel processes (default and most: one per core; at most one per input)")
    compress.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    _add_storage_options(compress)
    _add_compress_options(compress)

    batch = commands.add_parser(
        "batch", help="compress a folder, resumably (SQLite manifest), locally or on Dask",
        description="Compress every image in INPUT_DIR into OUTPUT_DIR, mirroring the tree. "
                    "Run it again to do only what is not done; 'batch --status OUTPUT_DIR' "
                    "summarises the manifest.")
    batch.add_argument("folder", metavar="INPUT_DIR",
                       help="folder of images, or a URL such as s3://bucket/photos (with --status: the "
                            "output folder or URL)")
    batch.add_argument("-o", "--output-dir", metavar="OUTPUT_DIR", help="where outputs go (a folder or a URL)")
    batch.add_argument("--recursive", action="store_true", help="include subfolders")
    batch.add_argument("--jobs", type=int_in(1, None, "--jobs"), default=None, metavar="N",
                       help="parallel processes or Dask workers (default: one per core)")
    batch.add_argument("--scheduler", metavar="ADDRESS|local",
                       help="run on a Dask cluster: tcp://HOST:8786, or 'local' for a LocalCluster")
    batch.add_argument("--manifest", metavar="FILE",
                       help="manifest database (default OUTPUT_DIR/colorquant.sqlite)")
    batch.add_argument("--retry-failed", action="store_true", help="try failed inputs again")
    batch.add_argument("--force", action="store_true",
                       help="replace files in OUTPUT_DIR that this batch did not write, or that were "
                            "changed since it wrote them; with --status --csv: replace an existing CSV")
    batch.add_argument("--include-hidden", action="store_true",
                       help="also read hidden files and folders (names starting with '.'; macOS '._' "
                            "files never)")
    batch.add_argument("--status", action="store_true", help="summarise the manifest of INPUT_DIR "
                       "(an output folder) and exit")
    batch.add_argument("--csv", metavar="FILE", help="with --status: export every row as CSV")
    batch.add_argument("-q", "--quiet", action="store_true", help="print errors and the summary only")
    _add_storage_options(batch)
    _add_compress_options(batch)

    compare = commands.add_parser("compare", help="figure comparing every method on one image",
                                  description="Run every method on one image and write one figure.")
    compare.add_argument("input", metavar="INPUT")
    _add_common(compare, colors_help="number of colours, 2-256 (default 16)")
    compare.add_argument("-o", "--output", metavar="FIGURE.png",
                         help="figure file (default <stem>-compare-k<N>.png next to the input)")
    compare.add_argument("--force", action="store_true", help="replace an existing figure")
    compare.add_argument("--zoom", action="store_true",
                         help="add a zoomed crop of a smooth gradient area, where banding and "
                              "dithering show")

    from ..methods import METHODS
    from ..metrics import METRICS

    curve = commands.add_parser(
        "curve", help="plot quality against the number of colours (the elbow plot)",
        description="Quality against colour count for each method, with the target and the "
                    "count it chooses marked.")
    curve.add_argument("input", metavar="INPUT")
    curve.add_argument("-m", "--method", choices=list(METHODS), default=None,
                       help="one method (default: every method)")
    curve.add_argument("--metric", choices=list(METRICS), default=None,
                       help="figure on the y axis (default: the target's, else psnr)")
    curve.add_argument("-o", "--output", metavar="CURVE.png",
                       help="figure file (default <stem>-curve.png next to the input)")
    curve.add_argument("--force", action="store_true", help="replace an existing figure")
    _add_common(curve, colors_help="largest colour count plotted (default 256)")
    _add_targets(curve)

    serve = commands.add_parser("serve", help="start the web page and HTTP API (needs colorquant[web])",
                                description="Serve the colorquant page and API with uvicorn.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int_in(1, 65535, "--port"), default=8000)
    serve.add_argument("--max-upload-mb", type=int_in(1, None, "--max-upload-mb"), default=25,
                       help="largest upload in MB (default 25)")
    serve.add_argument("--max-pixels", type=int_in(1, None, "--max-pixels"), default=40_000_000,
                       help="largest image in pixels (default 40M)")
    serve.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                       help="Host header names to answer, comma-separated, or * for any (default: "
                            "localhost, 127.0.0.1 and ::1 when --host is a loopback address, else *)")
    serve.add_argument("--min-upload-rate", type=int_in(1, None, "--min-upload-rate"), default=16,
                       metavar="KB_S", help="cut off uploads slower than this many KB/s after "
                                            "the first 10 s (408; default 16)")
    serve.add_argument("--header-timeout", type=int_in(1, 3600, "--header-timeout"), default=10,
                       metavar="SECONDS", help="close connections whose request headers are not in "
                                               "within this many seconds (default 10)")

    demo = commands.add_parser("demo", help="run every method on a photo shipped with scikit-image",
                               description="Compress a scikit-image sample photo with every method.")
    demo.add_argument("-o", "--output-dir", default="compressed_outputs", metavar="DIR",
                      help="where to write (default ./compressed_outputs)")
    demo.add_argument("-k", "--colors", type=int_in(MIN_COLORS, MAX_COLORS, "--colors"), default=16, metavar="N")
    demo.add_argument("-f", "--force", action="store_true",
                      help="replace the demo's files from an earlier run (refused without it)")
    return parser
