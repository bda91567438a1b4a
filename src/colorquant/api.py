"""``quantize``: the one entry point every front end (CLI, batch, web) calls, and
``quality_curves``, the figures behind ``colorquant curve``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .effort import DEFAULT_SPEED
from .errors import InvalidParameterError, QualityTooLowError
from .imageio import read_image
from .pipeline import fit, label_image, prepare, single_threaded_blas
from .result import QuantizedImage
from .search import quality_curve, search_n_colors
from .settings import DEFAULT_MAX_PIXELS, MIN_COLORS, Settings

__all__ = ["quantize", "quantize_loaded", "quality_curves", "CurveResult"]


def quantize(
    image,
    *,
    settings: Settings | None = None,
    n_colors: int | None = None,
    method: str = "kmeans",
    speed: int = DEFAULT_SPEED,
    random_state: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_psnr: float | None = None,
    target_mse: float | None = None,
    target_ssim: float | None = None,
    quality=None,
    min_colors: int = MIN_COLORS,
    color_space: str | None = None,
    dither: float | None = None,
    metrics=(),
    max_size=None,
    **options,
) -> QuantizedImage:
    """Reduce ``image`` to at most ``n_colors`` colours learned by ``method``.

    Parameters
    ----------
    image : str or Path, bytes, PIL.Image.Image, or ndarray of shape (H, W[, 3|4]), uint8
    settings : Settings, optional
        Everything below in one checked value; then no other keyword may be given.
    n_colors : int in [2, 256], default 16 (256 with a quality target)
        An image with no more distinct colours than this keeps exactly its own colours.
        With a quality target or a byte budget, the upper bound of the search.
    method : "kmeans", "minibatch", "gmm", or any registered method
    speed : int in [1, 11], default 4
        pngquant's scale: 1 is slowest and best, 11 fastest (see README for each level).
    random_state : int
        Seed of every random choice: the same input and settings give the same result.
    max_pixels : int
        Refuse larger images, judged from the file header before decoding.
    target_psnr, target_mse, target_ssim : float, at most one
        Choose the colour count: the smallest file, over counts in ``[min_colors, n_colors]``
        (and dither levels, for SSIMULACRA2), whose output reaches PSNR >= target_psnr (dB),
        MSE <= target_mse, or SSIM >= target_ssim. The counts tried are in
        ``result.search``. Raises QualityTooLowError if none does.
    quality : (min, max) or "MIN-MAX", pngquant's 0-100 quality instead of a target
        The fewest colours reaching PSNR 20 + max/4 dB; if ``n_colors`` colours miss it but
        reach 20 + min/4 dB, those (``result.target_met`` is False); else QualityTooLowError.
    min_colors : int in [2, 256], lower bound of that search
    color_space : "mixed" (default), "rgb" or "oklab"
        Where clustering and remapping happen; the palette is stored in sRGB either way.
        "mixed" weighs sRGB and Oklab distances (what people see, at the PSNR of a plain
        fit); "rgb" is the PSNR-optimal fit, and the default for a PSNR or MSE target.
    dither : float in [0, 1], optional
        Strength of Floyd-Steinberg error diffusion onto the palette; 0 is none. Not given,
        none, except that a byte budget or a SSIMULACRA2 target chooses among off, 0.5 and 1.
    metrics : names of figures ``result.metrics`` computes beyond MSE and PSNR (``"ssim"``,
        ``"ciede2000"``, ``"blurred_psnr"``, or any in ``colorquant.METRICS``)
    max_size : int or str, optional
        A byte budget: bytes (150000), a size with a unit ("100KB", "2MiB", "64k") or a share
        of the input file ("30%"). The output is then the best-looking (SSIMULACRA2) whose
        encoded file fits, over colour counts up to ``n_colors`` and dither levels; with a
        target, the smallest file meeting it, which must fit. Raises BudgetNotMetError (a
        QualityTooLowError) when none fits.
    **options : the method's own options, e.g. ``covariance_type`` for "gmm"

    Returns
    -------
    QuantizedImage
    """
    keywords = dict(n_colors=n_colors, method=method, speed=speed, random_state=random_state,
                    max_pixels=max_pixels, target_psnr=target_psnr, target_mse=target_mse,
                    target_ssim=target_ssim, quality=quality, min_colors=min_colors,
                    color_space=color_space, dither=dither, metrics=metrics, max_size=max_size, **options)
    if settings is None:
        settings = Settings.from_keywords(**keywords)
    elif not isinstance(settings, Settings):
        raise InvalidParameterError(f"settings must be a Settings; got {type(settings).__name__}")
    elif options or any(value != _DEFAULTS[name] for name, value in keywords.items() if name in _DEFAULTS):
        raise InvalidParameterError("give either settings= or keyword options, not both")
    return quantize_loaded(read_image(image, max_pixels=settings.max_pixels, max_frames=settings.max_frames), settings)


_DEFAULTS = dict(n_colors=None, method="kmeans", speed=DEFAULT_SPEED, random_state=0, max_pixels=DEFAULT_MAX_PIXELS,
                 target_psnr=None, target_mse=None, target_ssim=None, quality=None,
                 min_colors=MIN_COLORS, color_space=None, dither=None, metrics=(), max_size=None)


def quantize_loaded(loaded, settings: Settings) -> QuantizedImage:
    """:func:`quantize` of an image already read, with settings already checked (no
    validation: the private twin of ``quantize``)."""
    settings.method_spec.load()  # imports the method's libraries once, outside the timed part
    animation = loaded.animation
    if animation is not None:
        settings = _animation_settings(loaded, settings)
    started = time.perf_counter()
    limit = None if settings.max_size is None else settings.max_size.bytes_for(loaded.n_bytes)
    encoded = None
    with single_threaded_blas():
        trace, target_met, n_colors = (), True, settings.n_colors
        dither, color_space = settings.dither, settings.color_space
        if settings.target is None and limit is None:
            prepared = prepare(loaded.pixels, settings.color_space, exact=False, animation=animation)
            quantization = fit(prepared, n_colors, settings)
            labels = label_image(prepared, quantization, settings.dither)
        else:
            from .ratecontrol import fit_budget, smallest_meeting_target

            try:
                if settings.target is None:
                    choice = fit_budget(loaded.pixels, settings, limit, animation=animation)
                else:
                    choice = smallest_meeting_target(loaded.pixels, settings, limit, animation=animation)
            except QualityTooLowError as error:  # say which image, for runs of many
                error.message = f"{loaded.source}: {error.message}"
                error.args = (error.message,)
                raise
            except InvalidParameterError as error:  # a target this image cannot be judged by
                raise InvalidParameterError(f"{loaded.source}: {error.message}") from None
            n_colors, dither, quantization, labels = choice.n_colors, choice.dither, choice.quantization, choice.labels
            trace, target_met, encoded = choice.trace, choice.target_met, choice.encoded
            color_space = choice.color_space
    if (dither, color_space) != (settings.dither, settings.color_space):  # what the search chose
        settings = settings.with_changes(dither=dither, color_space=color_space)
    result = QuantizedImage(
        palette=quantization.palette,
        labels=labels,
        original=loaded.pixels,
        settings=settings,
        n_colors_requested=n_colors,
        seconds=time.perf_counter() - started,
        source=loaded.source,
        source_path=loaded.path,
        bytes_in=loaded.n_bytes,
        search=trace,
        target_met=target_met,
        warnings=loaded.warnings,
        byte_budget=limit,
        animation=animation,
    )
    if encoded is not None and settings.format == "png":
        result.__dict__["_png_bytes"] = encoded  # the file the search measured, not encoded twice
    return result


def _animation_settings(loaded, settings: Settings) -> Settings:
    """The settings an animation is written with: in its own kind of file when asked to keep
    it; never JPEG, which holds one frame."""
    format_name = settings.format_for(loaded.animation)
    if format_name == "jpeg":
        raise InvalidParameterError(
            f"{loaded.source}: is an animation ({loaded.animation.n_frames} frames) and JPEG holds one "
            "frame; write it as png (APNG), gif or webp")
    return settings if format_name == settings.format else settings.with_changes(format=format_name)


@dataclass(frozen=True)
class CurveResult:
    """Quality against colour count for each method: ``points`` are ``(count, value)``;
    ``chosen`` is the count the target chose and its value, None where it was not reached
    (``errors`` says why), absent without a target."""

    metric: str
    points: dict
    chosen: dict
    errors: dict


def quality_curves(image, settings: Settings, *, methods=None, metric: str | None = None,
                   options: dict | None = None) -> CurveResult:
    """The elbow plot's figures: ``metric`` (default: the target's, else PSNR) at the counts
    of ``search.CURVE_COUNTS`` up to ``settings.n_colors``, for each of ``methods`` (default:
    every registered method), with the count the target chooses when there is one.
    ``options`` are method options, each given to the methods that take it."""
    from .methods import METHODS
    from .metrics import METRICS

    metric = metric or (settings.target.metric if settings.target else "psnr")
    if metric not in METRICS:
        raise InvalidParameterError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    if settings.target is not None and metric != settings.target.metric:
        raise InvalidParameterError(
            f"metric {metric} differs from the target's metric {settings.target.metric}")
    loaded = read_image(image, max_pixels=settings.max_pixels, frames="first")
    prepared = prepare(loaded.pixels, settings.color_space)
    points, chosen, errors = {}, {}, {}
    with single_threaded_blas():
        for method in methods or list(METHODS):
            accepted = {option.name for option in METHODS[method].options}
            method_settings = settings.with_changes(method=method, method_options=tuple(
                (name, value) for name, value in (options or {}).items() if name in accepted))
            points[method] = quality_curve(prepared, loaded.pixels, method_settings, metric)
            if settings.target is None:
                continue
            try:
                found = search_n_colors(prepared, loaded.pixels, method_settings)
            except QualityTooLowError as error:
                chosen[method], errors[method] = None, str(error)
            else:
                chosen[method] = (found.n_colors, next(
                    step.value for step in found.trace if step.n_colors == found.n_colors))
    return CurveResult(metric=metric, points=points, chosen=chosen, errors=errors)
