"""Every choice about one image in one frozen value, checked once.

``quantize()``'s keyword arguments, the command line and the web form each build a
:class:`Settings`; everything below them (the search, the fit, encoding, measuring, batch)
receives it unchanged and never checks it again. The bounds and vocabularies live here and
nowhere else: the CLI's argument types, the web form and the error messages read them.

This module imports neither numpy nor Pillow, so ``colorquant --help`` can use it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

from .effort import DEFAULT_SPEED, MAX_SPEED, MIN_SPEED
from .errors import InvalidParameterError

__all__ = [
    "Settings", "QualityTarget", "MIN_COLORS", "MAX_COLORS", "DEFAULT_COLORS",
    "DEFAULT_MAX_PIXELS", "FORMATS", "COLOR_SPACES", "quality_to_psnr", "parse_quality",
]

MIN_COLORS, MAX_COLORS, DEFAULT_COLORS = 2, 256, 16
DEFAULT_MAX_PIXELS = 100_000_000
MAX_SEED = 2**32 - 1
FORMATS = ("png", "gif", "webp", "jpeg")
COLOR_SPACES = ("mixed", "rgb", "oklab")
# MSE and PSNR count sRGB error: a target of theirs is met with fewest colours in rgb.
_SRGB_ERROR_METRICS = ("mse", "psnr")


@dataclass(frozen=True)
class QualityTarget:
    """A figure the output must reach: ``metric`` at least ``value`` (at most, for figures
    where lower is better, such as MSE)."""

    metric: str
    value: float

    def __post_init__(self):
        from .metrics import METRICS

        spec = METRICS.get(self.metric)
        if spec is None or spec.target_bounds is None:
            usable = ", ".join(name for name, m in METRICS.items() if m.target_bounds)
            raise InvalidParameterError(f"target metric must be one of {usable}; got {self.metric!r}")
        value = self.value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise InvalidParameterError(f"target_{self.metric} must be a finite number; got {value!r}")
        low, high, low_inclusive = spec.target_bounds
        if not ((value >= low) if low_inclusive else (value > low)) or value > high:
            interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
            raise InvalidParameterError(f"target_{self.metric} must be in {interval}; got {value!r}")
        object.__setattr__(self, "value", float(value))

    @property
    def higher_is_better(self) -> bool:
        from .metrics import METRICS

        return METRICS[self.metric].higher_is_better

    def met_by(self, measured: float) -> bool:
        return measured >= self.value if self.higher_is_better else measured <= self.value

    def describe(self) -> str:
        from .metrics import METRICS

        spec = METRICS[self.metric]
        unit = f" {spec.unit}" if spec.unit else ""
        return f"{spec.title} {'>=' if self.higher_is_better else '<='} {self.value:g}{unit}"


def quality_to_psnr(quality: float) -> float:
    """pngquant-style quality (0-100) as a PSNR target: 20 dB + quality / 4.

    So quality 60 asks for 35 dB, 100 for 45 dB (MSE 2.06), 0 for 20 dB (MSE 650).
    """
    return 20.0 + quality / 4.0


def parse_quality(quality) -> tuple[float, float]:
    """pngquant's quality range as ``(min, max)``: a pair of numbers, or text "MIN-MAX",
    "MAX", "MIN-" or "-MAX", each 0-100."""
    if isinstance(quality, str):
        low_text, _, high_text = quality.partition("-") if "-" in quality else ("", "", quality)
        try:
            low = float(low_text) if low_text.strip() else 0.0
            high = float(high_text) if high_text.strip() else 100.0
        except ValueError:
            raise InvalidParameterError(
                f"quality must be MIN-MAX with numbers 0-100; got {quality!r}") from None
    else:
        try:
            low, high = quality
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"quality must be (min, max) or 'MIN-MAX'; got {quality!r}") from None
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (low, high)) \
            or not 0 <= low <= high <= 100:
        raise InvalidParameterError(
            f"quality must be MIN-MAX with 0 <= MIN <= MAX <= 100; got {quality!r}")
    return float(low), float(high)


def _check_int(value, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidParameterError(f"{name} must be an int {bounds}; got {value!r}")
    return int(value)


def _check_choice(value, name: str, choices) -> str:
    if isinstance(value, str):
        value = value.lower()
    if value not in choices:
        raise InvalidParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """How to quantize, encode and measure one image.

    n_colors : int in [2, 256]; default 16, or 256 with a quality target, where it is the
        upper bound of the search
    method : a registered method ("kmeans", "minibatch", "gmm", ...)
    method_options : that method's options as sorted ``(name, value)`` pairs; every option
        of the method is present (defaults filled in), others are refused
    speed : pngquant's scale, 1 (slowest, best) to 11 (fastest), default 4: the size of the
        sample k-means fits on, its iterations and swaps, and the PNG's deflate level
    random_state : seed of every random choice (same settings, same bytes)
    color_space : where clustering and remapping happen: "mixed" (sRGB and Oklab distances,
        the default: what people see, at the PSNR of a plain fit), "rgb" (the PSNR-optimal
        fit), "oklab"; with a PSNR or MSE target and no space given, "rgb"
    dither : strength of error diffusion, 0 (none) to 1
    target : the fewest colours in ``[min_colors, n_colors]`` whose output meets it
    fallback : with a target, accept ``n_colors`` colours when the target is missed but this
        is met (the lower end of pngquant's ``--quality MIN-MAX``)
    max_pixels : refuse larger images, judged from the header before decoding
    format : output format ("png", "gif", "webp", "jpeg")
    skip_if_larger : refuse to write an output that is not smaller than its input
    metrics : figures to compute beyond those every record has (MSE, PSNR); a target's
        figure is always among them
    """

    n_colors: int | None = None
    method: str = "kmeans"
    method_options: tuple = ()
    speed: int = DEFAULT_SPEED
    random_state: int = 0
    color_space: str | None = None
    dither: float = 0.0
    target: QualityTarget | None = None
    fallback: QualityTarget | None = None
    min_colors: int = MIN_COLORS
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str = "png"
    skip_if_larger: bool = False
    metrics: tuple = field(default=())

    def __post_init__(self):
        from .methods import get_method
        from .metrics import METRICS

        def settle(name, value):
            object.__setattr__(self, name, value)

        if self.n_colors is None:
            settle("n_colors", MAX_COLORS if self.target is not None else DEFAULT_COLORS)
        settle("n_colors", _check_int(self.n_colors, "n_colors", MIN_COLORS, MAX_COLORS))
        spec = get_method(self.method)
        settle("method", spec.name)
        # Kept with the settings (and pickled with them), so that a worker process runs the
        # method from its spec even if it was registered only in the process that asked.
        settle("_method_spec", spec)
        settle("method_options", spec.check_options(dict(self.method_options)))
        settle("speed", _check_int(self.speed, "speed", MIN_SPEED, MAX_SPEED))
        settle("random_state", _check_int(self.random_state, "random_state", 0, MAX_SEED))
        if self.color_space is None:
            srgb_target = self.target is not None and self.target.metric in _SRGB_ERROR_METRICS
            settle("color_space", "rgb" if srgb_target else "mixed")
        settle("color_space", _check_choice(self.color_space, "color_space", COLOR_SPACES))
        dither = self.dither
        if isinstance(dither, bool) or not isinstance(dither, numbers.Real) or not 0 <= dither <= 1:
            raise InvalidParameterError(f"dither must be a number in [0, 1]; got {dither!r}")
        settle("dither", float(dither))
        for name in ("target", "fallback"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, QualityTarget):
                raise InvalidParameterError(f"{name} must be a QualityTarget or None; got {value!r}")
        if self.fallback is not None:
            if self.target is None:
                raise InvalidParameterError("a fallback needs a target")
            if self.fallback.metric != self.target.metric:
                raise InvalidParameterError("the fallback must be of the target's metric")
        settle("min_colors", _check_int(self.min_colors, "min_colors", MIN_COLORS, MAX_COLORS))
        if self.target is not None and self.min_colors > self.n_colors:
            raise InvalidParameterError(
                f"min_colors ({self.min_colors}) must not exceed n_colors ({self.n_colors})")
        settle("max_pixels", _check_int(self.max_pixels, "max_pixels", 1, None))
        settle("format", _check_choice(self.format, "format", FORMATS))
        if self.target is not None and self.format == "jpeg":
            raise InvalidParameterError(
                "quality targets need a lossless output format (png, webp or gif), not jpeg, "
                "whose own loss would decide the figure")
        if not isinstance(self.skip_if_larger, bool):
            raise InvalidParameterError(f"skip_if_larger must be True or False; got {self.skip_if_larger!r}")
        wanted = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
        for name in wanted:
            _check_choice(name, "metrics", tuple(METRICS))
        if self.target is not None:  # a target's figure is reported with the output
            wanted += (self.target.metric,)
        settle("metrics", tuple(sorted(set(wanted) - {n for n, m in METRICS.items() if m.default})))

    @classmethod
    def from_keywords(
        cls, *, n_colors=None, method="kmeans", speed=DEFAULT_SPEED, random_state=0, color_space=None, dither=0.0,
        min_colors=MIN_COLORS, quality=None, max_pixels=DEFAULT_MAX_PIXELS, format="png",  # noqa: A002
        skip_if_larger=False, metrics=(), **others,
    ) -> "Settings":
        """Settings from flat keyword arguments, as :func:`colorquant.quantize` takes them:
        ``target_<metric>=value`` for a quality target (at most one), ``quality=(min, max)``
        for pngquant's range, and the method's own options by name."""
        from .metrics import METRICS

        targets = {}
        for name in list(others):
            if name.startswith("target_") and name[len("target_"):] in METRICS:
                value = others.pop(name)
                if value is not None:
                    targets[name[len("target_"):]] = value
        if len(targets) + (quality is not None) > 1:
            given = [f"target_{m}" for m in targets] + (["quality"] if quality is not None else [])
            raise InvalidParameterError(f"give one quality target, not {' and '.join(given)}")
        target = fallback = None
        if quality is not None:
            low, high = parse_quality(quality)
            target = QualityTarget("psnr", quality_to_psnr(high))
            fallback = QualityTarget("psnr", quality_to_psnr(low))
        elif targets:
            (metric, value), = targets.items()
            target = QualityTarget(metric, value)
        return cls(
            n_colors=n_colors, method=method, method_options=tuple(sorted(others.items())),
            speed=speed, random_state=random_state, color_space=color_space, dither=dither, target=target,
            fallback=fallback, min_colors=min_colors, max_pixels=max_pixels, format=format,
            skip_if_larger=skip_if_larger, metrics=metrics,
        )

    @property
    def method_spec(self):
        """The :class:`~colorquant.methods.MethodSpec` of ``method``."""
        return self.__dict__["_method_spec"]

    @property
    def options(self) -> dict:
        """The method's options as keyword arguments."""
        return dict(self.method_options)

    def with_changes(self, **changes) -> "Settings":
        """A copy with ``changes`` applied, checked again."""
        return replace(self, **changes)

    def output_fingerprint(self) -> dict:
        """Every setting that decides the output's bytes, as plain values (for hashing)."""
        return {
            "n_colors": self.n_colors, "method": self.method,
            "method_options": [list(pair) for pair in self.method_options],
            "speed": self.speed,
            "random_state": self.random_state, "color_space": self.color_space,
            "dither": self.dither,
            "target": None if self.target is None else [self.target.metric, self.target.value],
            "fallback": None if self.fallback is None else [self.fallback.metric, self.fallback.value],
            "min_colors": self.min_colors if self.target is not None else None,
            "max_pixels": self.max_pixels, "format": self.format,
            "skip_if_larger": self.skip_if_larger,
        }
