"""Compress one file to one output: the unit of work of ``compress``, ``batch`` and the web app.

``compress_file`` never raises for a problem with the file: it returns a :class:`CompressRecord`
whose ``status`` is "ok", "skipped" or "error", and keeps the exception so that each front end
can map it to its own exit or HTTP status in one place.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ColorquantError, OutputNotSmallerError, QualityTooLowError
from .imageio import DEFAULT_MAX_PIXELS, check_destination, read_image, suffix_for

__all__ = ["CompressSettings", "CompressRecord", "compress_file", "default_output_name", "worker_pool"]


@dataclass(frozen=True)
class CompressSettings:
    """Everything that decides the output bytes (and a few things that decide whether to write)."""

    n_colors: int = 16
    method: str = "kmeans"
    random_state: int = 0
    format: str = "png"
    covariance_type: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    skip_if_larger: bool = False
    overwrite: bool = False
    # Quality target: at most one; n_colors is then the upper bound of the search.
    target_psnr: float | None = None
    target_mse: float | None = None
    target_ssim: float | None = None
    min_colors: int = 2
    # With a target: accept the n_colors result when the target is missed but this PSNR is met
    # (the lower end of --quality MIN-MAX).
    fallback_psnr: float | None = None
    color_space: str = "rgb"
    dither: float = 0.0
    # Also measure mean CIEDE2000 and blurred PSNR (costs about as much as the fit).
    perceptual_metrics: bool = False

    @property
    def has_target(self) -> bool:
        return any(t is not None for t in (self.target_psnr, self.target_mse, self.target_ssim))

    def quantize_options(self) -> dict:
        options = {
            "n_colors": self.n_colors,
            "method": self.method,
            "random_state": self.random_state,
            "max_pixels": self.max_pixels,
            "color_space": self.color_space,
            "dither": self.dither,
        }
        if self.covariance_type is not None:
            options["covariance_type"] = self.covariance_type
        if self.has_target:
            options.update(target_psnr=self.target_psnr, target_mse=self.target_mse,
                           target_ssim=self.target_ssim, min_colors=self.min_colors)
        return options


@dataclass
class CompressRecord:
    """What happened to one input; ``as_json()`` gives the documented JSON Lines record."""

    input: str
    output: str | None = None
    method: str | None = None
    colors: int | None = None
    mse: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    ciede2000: float | None = None
    blurred_psnr: float | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    bpp: float | None = None
    seconds: float | None = None
    status: str = "ok"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)

    def as_json(self) -> dict:
        def finite(value):
            return None if value is None or not math.isfinite(value) else round(value, 6)

        return {
            "input": self.input,
            "output": self.output,
            "method": self.method,
            "colors": self.colors,
            "mse": finite(self.mse),
            "psnr": finite(self.psnr),
            "ssim": finite(self.ssim),
            "ciede2000": finite(self.ciede2000),
            "blurred_psnr": finite(self.blurred_psnr),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bpp": finite(self.bpp),
            "seconds": finite(self.seconds),
            "status": self.status,
            "error": self.error,
        }


# Most file systems cap a name at 255 bytes.
_MAX_NAME_BYTES = 255


def default_output_name(input_path: Path, method: str, n_colors: int, format_name: str) -> str:
    """``<stem>-<method>-k<colours>.<ext>``, the stem shortened if the name would not fit."""
    ending = f"-{method}-k{n_colors}{suffix_for(format_name)}"
    stem = input_path.stem
    room = _MAX_NAME_BYTES - len(ending.encode())
    if len(stem.encode()) > room:
        # cut on a character boundary of the UTF-8 bytes
        stem = stem.encode()[:room].decode("utf-8", errors="ignore")
    return stem + ending


def compress_file(
    input_path, settings: CompressSettings, *, output_path=None, output_dir=None
) -> CompressRecord:
    """Quantize ``input_path`` and write it to ``output_path`` (or the default name in
    ``output_dir``, or next to the input)."""
    started = time.perf_counter()
    input_path = Path(input_path)
    record = CompressRecord(input=str(input_path), method=settings.method)
    try:
        loaded = read_image(input_path, max_pixels=settings.max_pixels)
        folder = Path(output_dir) if output_dir is not None else input_path.parent
        if output_path is None and not settings.has_target:
            output_path = folder / default_output_name(
                input_path, settings.method, settings.n_colors, settings.format)
        if output_path is not None:
            # Refuse before the work, not after it; write_atomic checks again without a race.
            record.output = str(output_path)
            check_destination(output_path, overwrite=settings.overwrite, protect=(input_path,))
        result = _quantize(loaded, settings)
        if output_path is None:  # named after the colour count the search found
            output_path = folder / default_output_name(
                input_path, settings.method, result.n_colors_requested, settings.format)
        output_path = Path(output_path)
        record.output = str(output_path)
        record.warnings.extend(result.warnings)
        encoded = result.encode(settings.format)
        figures = result.measure(encoded, settings.format, perceptual=settings.perceptual_metrics)
        record.colors = figures.n_colors
        record.mse, record.psnr, record.ssim = figures.mse, figures.psnr, figures.ssim
        record.ciede2000, record.blurred_psnr = figures.ciede2000, figures.blurred_psnr
        record.bytes_in, record.bytes_out, record.bpp = result.bytes_in, figures.bytes, figures.bpp
        if settings.skip_if_larger and result.bytes_in is not None and figures.bytes >= result.bytes_in:
            raise OutputNotSmallerError(
                f"{input_path}: output would be {figures.bytes:,} bytes, not smaller than the "
                f"input's {result.bytes_in:,}; nothing written",
                bytes_in=result.bytes_in,
                bytes_out=figures.bytes,
            )
        from .imageio import write_atomic

        write_atomic(encoded, output_path, overwrite=settings.overwrite, protect=(input_path,))
    except (OutputNotSmallerError, QualityTooLowError) as error:
        record = replace(record, status="skipped", error=str(error), exception=error, output=None)
    except ColorquantError as error:
        record = replace(record, status="error", error=str(error), exception=error, output=None)
    record.seconds = time.perf_counter() - started
    return record


def _quantize(loaded, settings: CompressSettings):
    from .api import quantize

    try:
        return quantize(loaded, **settings.quantize_options())
    except QualityTooLowError as error:
        if settings.fallback_psnr is None or error.best_value is None or error.best_value < settings.fallback_psnr:
            raise
    # --quality MIN-MAX: MAX was not reached but MIN was; pngquant keeps the best it has.
    options = settings.quantize_options()
    for key in ("target_psnr", "target_mse", "target_ssim", "min_colors"):
        options.pop(key, None)
    return quantize(loaded, **options)


def worker_pool(jobs: int, method: str, preload: str = "colorquant.compress"):
    """A process pool for compressing files in parallel, one single-threaded worker per job.

    Workers fork from a fresh server process that imported the method (scikit-learn) once:
    cheap starts, and unlike a plain fork it is safe after the calling process has run
    OpenMP code (GNU OpenMP's thread pool does not survive fork and spins forever).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .methods import METHODS

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload, METHODS[method], *_HEAVY_MODULES])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_single_threaded)


# Imported once by the fork server, so that no worker pays for them.
_HEAVY_MODULES = ("sklearn.cluster", "sklearn.mixture", "skimage.metrics", "oxipng")
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
