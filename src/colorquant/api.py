"""``quantize``: the one entry point every front end (CLI, batch, web) calls."""

from __future__ import annotations

import numbers
import time

from .colorspace import validate_color_space
from .errors import InvalidParameterError
from .imageio import DEFAULT_MAX_PIXELS, read_image
from .methods import METHODS, load_method
from .pipeline import fit, label_image, prepare, single_threaded_blas
from .result import QuantizedImage
from .search import make_target, search_n_colors

__all__ = ["quantize", "validate_n_colors", "validate_method", "MIN_COLORS", "MAX_COLORS"]

MIN_COLORS, MAX_COLORS, DEFAULT_COLORS = 2, 256, 16


def validate_n_colors(n_colors, name: str = "n_colors") -> int:
    if isinstance(n_colors, bool) or not isinstance(n_colors, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an int in [2, 256]; got {n_colors!r}")
    if not MIN_COLORS <= n_colors <= MAX_COLORS:
        raise InvalidParameterError(f"{name} must be an int in [2, 256]; got {n_colors!r}")
    return int(n_colors)


def validate_method(method) -> str:
    if method not in METHODS:
        raise InvalidParameterError(
            f"method must be one of {', '.join(METHODS)}; got {method!r}"
        )
    return method


def validate_dither(dither) -> float:
    if isinstance(dither, bool) or not isinstance(dither, numbers.Real) or not 0 <= dither <= 1:
        raise InvalidParameterError(f"dither must be a number in [0, 1]; got {dither!r}")
    return float(dither)


def _validate_options(method: str, options: dict) -> dict:
    if not options:
        return {}
    if method != "gmm" or set(options) - {"covariance_type"}:
        raise InvalidParameterError(
            f"unexpected options for method {method!r}: {', '.join(sorted(options))}"
        )
    from .methods.gmm import COVARIANCE_TYPES

    if options.get("covariance_type") is None:
        return {}
    if options["covariance_type"] not in COVARIANCE_TYPES:
        raise InvalidParameterError(
            f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}; "
            f"got {options['covariance_type']!r}"
        )
    return dict(options)


def quantize(
    image,
    *,
    n_colors: int | None = None,
    method: str = "kmeans",
    random_state: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_psnr: float | None = None,
    target_mse: float | None = None,
    target_ssim: float | None = None,
    min_colors: int = MIN_COLORS,
    color_space: str = "rgb",
    dither: float = 0.0,
    **method_options,
) -> QuantizedImage:
    """Reduce ``image`` to at most ``n_colors`` colours learned by ``method``.

    Parameters
    ----------
    image : str or Path, bytes, PIL.Image.Image, or ndarray of shape (H, W[, 3|4]), uint8
    n_colors : int in [2, 256], default 16 (256 with a quality target)
        An image with no more distinct colours than this keeps exactly its own colours.
        With a quality target, the upper bound of the search.
    method : "kmeans", "minibatch" or "gmm"
    random_state : int
        Seed of every random choice: the same input and settings give the same result.
    max_pixels : int
        Refuse larger images, judged from the file header before decoding.
    target_psnr, target_mse, target_ssim : float, at most one
        Choose the colour count: the smallest in ``[min_colors, n_colors]`` whose output
        reaches PSNR >= target_psnr (dB), MSE <= target_mse, or SSIM >= target_ssim. The
        counts tried are in ``result.search``. Raises QualityTooLowError if none does.
    min_colors : int in [2, 256], lower bound of that search
    color_space : "rgb", "lab" or "oklab"
        Where clustering and remapping happen; the palette is stored in sRGB either way.
    dither : float in [0, 1]
        Strength of Floyd-Steinberg error diffusion onto the palette; 0 (default) is none.
    covariance_type : "full", "tied", "diag" or "spherical", only for ``method="gmm"``

    Returns
    -------
    QuantizedImage
    """
    target = make_target(psnr=target_psnr, mse=target_mse, ssim=target_ssim)
    if n_colors is None:
        n_colors = DEFAULT_COLORS if target is None else MAX_COLORS
    n_colors = validate_n_colors(n_colors)
    method = validate_method(method)
    options = _validate_options(method, method_options)
    color_space = validate_color_space(color_space)
    dither = validate_dither(dither)
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0:
        raise InvalidParameterError(f"random_state must be a non-negative int; got {random_state!r}")

    if target is not None:
        min_colors = validate_n_colors(min_colors, "min_colors")
        if min_colors > n_colors:
            raise InvalidParameterError(
                f"min_colors ({min_colors}) must not exceed n_colors ({n_colors})"
            )

    loaded = read_image(image, max_pixels=max_pixels)
    load_method(method)  # imports scikit-learn once, outside the timed part
    started = time.perf_counter()
    with single_threaded_blas():
        prepared = prepare(loaded.pixels, color_space)
        trace = ()
        if target is None:
            quantization = fit(prepared, n_colors, method, random_state=random_state, **options)
        else:
            n_colors, quantization, trace = search_n_colors(
                prepared, loaded.pixels, method, target, min_colors=min_colors,
                max_colors=n_colors, random_state=random_state, dither=dither, **options,
            )
        labels = label_image(prepared, quantization, dither)
    seconds = time.perf_counter() - started
    return QuantizedImage(
        palette=quantization.palette,
        labels=labels,
        original=loaded.pixels,
        method=method,
        n_colors_requested=n_colors,
        random_state=int(random_state),
        seconds=seconds,
        color_space=color_space,
        dither=dither,
        source=loaded.source,
        source_path=loaded.path,
        bytes_in=loaded.n_bytes,
        search=trace,
        warnings=loaded.warnings,
    )
