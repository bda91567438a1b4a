"""One image in, one encoded output and its figures out: the unit of work of ``compress``,
``batch`` and the web app.

:func:`compress_image` quantizes, encodes and measures (the one place where that happens);
:func:`compress_file` adds reading a file and writing its output atomically, and returns an
:class:`~colorquant.outcome.Outcome` instead of raising for a problem with the file: the
front ends map its error to their own exit or HTTP status in one place each. A bug (any
exception that is not a :class:`ColorquantError`) is not caught here.
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import ColorquantError, OutputNotSmallerError, QualityTooLowError
from .imageio import read_image, suffix_for
from .storage import check_destination, write_atomic
from .outcome import DONE, FAILED, SKIPPED, Outcome
from .settings import Settings

__all__ = ["compress_image", "compress_file", "default_output_name", "outcome_of",
           "worker_pool", "Compressed"]


class Compressed:
    """A quantized image, its encoding in the settings' format, and that encoding's figures."""

    def __init__(self, result, encoded: bytes, figures):
        self.result, self.encoded, self.figures = result, encoded, figures


def compress_image(loaded, settings: Settings) -> Compressed:
    """Quantize an image already read, encode it and measure the encoding."""
    from .api import quantize_loaded

    result = quantize_loaded(loaded, settings)
    encoded = result.encode(settings.format)
    return Compressed(result, encoded, result.measure(encoded, settings.format))


def outcome_of(name: str, compressed: Compressed, *, output: str | None, seconds: float) -> Outcome:
    """The record of a done image."""
    result, figures = compressed.result, compressed.figures
    return Outcome(
        input=name, status=DONE, output=output, method=result.method, colors=figures.n_colors,
        metrics=dict(figures.values), bytes_in=result.bytes_in, bytes_out=figures.bytes,
        bpp=figures.bpp, seconds=seconds, warnings=tuple(result.warnings), search=result.search,
    )


# Most file systems cap a name at 255 bytes.
_MAX_NAME_BYTES = 255


def default_output_name(input_name: str, method: str, n_colors: int, format_name: str) -> str:
    """``<stem>-<method>-k<colours>.<ext>``, the stem shortened if the name would not fit."""
    ending = f"-{method}-k{n_colors}{suffix_for(format_name)}"
    stem = Path(input_name).stem
    room = _MAX_NAME_BYTES - len(ending.encode())
    if len(stem.encode()) > room:
        # cut on a character boundary of the UTF-8 bytes
        stem = stem.encode()[:room].decode("utf-8", errors="ignore")
    return stem + ending


def compress_file(
    input_path, settings: Settings, *, output_path=None, output_dir=None, overwrite: bool = False,
) -> Outcome:
    """Quantize ``input_path`` and write it to ``output_path`` (or the default name in
    ``output_dir``, or next to the input); an existing output is replaced only with
    ``overwrite``, the input never."""
    started = time.perf_counter()
    input_path = Path(input_path)
    name = str(input_path)
    output = None
    try:
        loaded = read_image(input_path, max_pixels=settings.max_pixels)
        folder = Path(output_dir) if output_dir is not None else input_path.parent
        if output_path is None and settings.target is None:
            output_path = folder / default_output_name(
                input_path.name, settings.method, settings.n_colors, settings.format)
        if output_path is not None:
            # Refuse before the work, not after it; write_atomic checks again without a race.
            output = str(output_path)
            check_destination(output_path, overwrite=overwrite, protect=(input_path,))
        compressed = compress_image(loaded, settings)
        if output_path is None:  # named after the colour count the search found
            output_path = folder / default_output_name(
                input_path.name, settings.method, compressed.result.n_colors_requested,
                settings.format)
        output = str(output_path)
        if settings.skip_if_larger and len(compressed.encoded) >= loaded.n_bytes:
            error = OutputNotSmallerError(
                f"{input_path}: output would be {len(compressed.encoded):,} bytes, not smaller "
                f"than the input's {loaded.n_bytes:,}; nothing written",
                bytes_in=loaded.n_bytes, bytes_out=len(compressed.encoded))
            measured = outcome_of(name, compressed, output=None, seconds=time.perf_counter() - started)
            return measured.with_changes(status=SKIPPED, error=str(error), exception=error,
                                         error_kind=type(error).__name__)
        write_atomic(compressed.encoded, output_path, overwrite=overwrite, protect=(input_path,))
    except QualityTooLowError as error:
        return Outcome.from_error(name, SKIPPED, error, method=settings.method,
                                  seconds=time.perf_counter() - started)
    except ColorquantError as error:
        return Outcome.from_error(name, FAILED, error, method=settings.method,
                                  seconds=time.perf_counter() - started)
    return outcome_of(name, compressed, output=output, seconds=time.perf_counter() - started)


def worker_pool(jobs: int, settings: Settings, preload: str = "colorquant.compress"):
    """A process pool for compressing files in parallel, one single-threaded worker per job.

    Workers fork from a fresh server process that imported the method's libraries once:
    cheap starts, and unlike a plain fork it is safe after the calling process has run
    OpenMP code (GNU OpenMP's thread pool does not survive fork and spins forever).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload, *settings.method_spec.imports, *_HEAVY_MODULES])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_single_threaded)


# Imported once by the fork server, so that no worker pays for them.
_HEAVY_MODULES = ("skimage.metrics", "oxipng")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "RAYON_NUM_THREADS", "NUMBA_NUM_THREADS")


def _single_threaded() -> None:
    # One process per core: threads inside each would only fight over the cores (measured:
    # 0.65 s per photo with two workers left multi-threaded, 0.45 s single-threaded).
    # Thread pools not started yet read the variables (oxipng's rayon, numba); those already
    # loaded (OpenMP, BLAS) are limited by threadpoolctl.
    import os

    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
