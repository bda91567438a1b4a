"""``quantize``: the one entry point every front end (CLI, batch, web) calls."""

from __future__ import annotations

import numbers
import time

from .errors import InvalidParameterError
from .imageio import DEFAULT_MAX_PIXELS, read_image
from .methods import METHODS
from .pipeline import fit, label_image, prepare
from .result import QuantizedImage

__all__ = ["quantize", "validate_n_colors", "validate_method", "MIN_COLORS", "MAX_COLORS"]

MIN_COLORS, MAX_COLORS = 2, 256


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
    n_colors: int = 16,
    method: str = "kmeans",
    random_state: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **method_options,
) -> QuantizedImage:
    """Reduce ``image`` to at most ``n_colors`` colours learned by ``method``.

    Parameters
    ----------
    image : str or Path, bytes, PIL.Image.Image, or ndarray of shape (H, W[, 3|4]), uint8
    n_colors : int in [2, 256]
        An image with no more distinct colours than this keeps exactly its own colours.
    method : "kmeans", "minibatch" or "gmm"
    random_state : int
        Seed of every random choice: the same input and settings give the same result.
    max_pixels : int
        Refuse larger images, judged from the file header before decoding.
    covariance_type : "full", "tied", "diag" or "spherical", only for ``method="gmm"``

    Returns
    -------
    QuantizedImage
    """
    n_colors = validate_n_colors(n_colors)
    method = validate_method(method)
    options = _validate_options(method, method_options)
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0:
        raise InvalidParameterError(f"random_state must be a non-negative int; got {random_state!r}")

    loaded = read_image(image, max_pixels=max_pixels)
    started = time.perf_counter()
    prepared = prepare(loaded.pixels)
    quantization = fit(prepared, n_colors, method, random_state=random_state, **options)
    labels = label_image(prepared, quantization)
    seconds = time.perf_counter() - started
    return QuantizedImage(
        palette=quantization.palette,
        labels=labels,
        original=loaded.pixels,
        method=method,
        n_colors_requested=n_colors,
        random_state=int(random_state),
        seconds=seconds,
        source=loaded.source,
        source_path=loaded.path,
        bytes_in=loaded.n_bytes,
        warnings=loaded.warnings,
    )
