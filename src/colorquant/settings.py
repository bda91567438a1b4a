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
import re
from dataclasses import dataclass, field, replace

from .effort import DEFAULT_SPEED, MAX_SPEED, MIN_SPEED
from .errors import InvalidParameterError

__all__ = [
    "Settings", "QualityTarget", "MIN_COLORS", "MAX_COLORS", "DEFAULT_COLORS",
    "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_FRAMES", "FORMATS", "COLOR_SPACES", "quality_to_psnr", "parse_quality",
    "ByteBudget", "parse_byte_budget", "DITHER_LEVELS", "FRONT_END_COLORS", "FRONT_END_SPACE",
]

MIN_COLORS, MAX_COLORS, DEFAULT_COLORS = 2, 256, 16
# What compress, batch and the page give with no --colors, target or budget (the library's
# quantize() keeps DEFAULT_COLORS): 200 colours fitted in Oklab, chosen on CQ100 against
# pngquant's default output (256 dithered colours): SSIMULACRA2 +0.4 in 0.79x its bytes, where
# 256 in the mixed space took 0.82x and 192 in Oklab scored 0.2 lower. README, "The default".
FRONT_END_COLORS = 200
FRONT_END_SPACE = "oklab"
# Dither levels a budget or a perceptual target searches when --dither is not given: off,
# partial, full. On CQ100 half strength cost 5% fewer bytes than full for most of its look.
DITHER_LEVELS = (0.0, 0.5, 1.0)
# Colour spaces they search when --color-space is not given: at equal bytes the oklab fit
# scored 1.5 SSIMULACRA2 points over mixed on average (up to 12 on some photos, 7 under on
# others), so both are tried and the better kept.
SEARCH_SPACES = ("mixed", "oklab")
DEFAULT_MAX_PIXELS = 100_000_000
# Frames of one animation: each costs a canvas of memory (a 5-minute GIF at 10 fps has 3000).
DEFAULT_MAX_FRAMES = 1000
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


# --max-size's units: 1000-based KB, MB, GB; 1024-based KiB, MiB, GiB and the bare letters.
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2,
               "gib": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3}
_MAX_BUDGET = 1 << 40  # a tebibyte: no palette image comes near it


@dataclass(frozen=True)
class ByteBudget:
    """How many bytes an output may take: ``limit`` bytes, or ``share`` (0-1] of its input
    file's size (jpegoptim's ``--size 30%``)."""

    limit: int | None = None
    share: float | None = None

    def __post_init__(self):
        if (self.limit is None) == (self.share is None):
            raise InvalidParameterError("a byte budget is a number of bytes or a share of the input, one of them")

    def bytes_for(self, input_bytes: int | None) -> int:
        """The budget of one image whose input file had ``input_bytes``."""
        if self.limit is not None:
            return self.limit
        if input_bytes is None:
            raise InvalidParameterError(
                f"max_size {self} is a share of the input file, and this image came from no file; "
                "give a number of bytes")
        return max(1, math.floor(input_bytes * self.share))

    def __str__(self) -> str:
        return f"{self.share * 100:g}%" if self.share is not None else f"{self.limit} bytes"


def parse_byte_budget(value) -> ByteBudget:
    """A byte budget from bytes (``150000``), a size with a unit (``100KB``, ``1.5MiB``, ``64k``)
    or a share of the input (``30%``); a :class:`ByteBudget` passes through."""
    if isinstance(value, ByteBudget):
        return value
    problem = (f"max_size must be bytes (150000), a size with a unit (100KB, 2MiB, 64k) or a share "
               f"of the input (30%); got {value!r}")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number, unit = int(value), ""
    elif isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|[a-zA-Z]*)\s*", value)
        if found is None or found[2].lower() not in (*_SIZE_UNITS, "%"):
            raise InvalidParameterError(problem)
        number, unit = float(found[1]), found[2].lower()
    else:
        raise InvalidParameterError(problem)
    if unit == "%":
        if not 0 < number <= 100:
            raise InvalidParameterError(f"max_size as a share of the input must be above 0% and at most "
                                        f"100%; got {value!r}")
        return ByteBudget(share=number / 100)
    limit = math.floor(number * _SIZE_UNITS[unit])
    if not 1 <= limit <= _MAX_BUDGET:
        raise InvalidParameterError(f"max_size must be at least 1 byte and at most 1 TiB; got {value!r}")
    return ByteBudget(limit=limit)


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
    dither : strength of error diffusion, 0 (none) to 1; None (the default) is none, and lets
        a byte budget or a perceptual target choose among ``DITHER_LEVELS``
    target : the fewest colours in ``[min_colors, n_colors]`` whose output meets it
    fallback : with a target, accept ``n_colors`` colours when the target is missed but this
        is met (the lower end of pngquant's ``--quality MIN-MAX``)
    max_pixels : refuse larger images, judged from the header before decoding
    format : output format ("png", "gif", "webp", "jpeg"); an animation is written as APNG,
        GIF or animated WebP (never JPEG)
    keep_animation_format : write an animation in its own kind of file (GIF as GIF, APNG as
        APNG, WebP as WebP) rather than ``format``: what the command line does when no format
        is asked for
    max_frames : refuse animations with more frames, judged from the header before decoding
    skip_if_larger : refuse to write an output that is not smaller than its input
    metrics : figures to compute beyond those every record has (MSE, PSNR); a target's
        figure is always among them
    max_size : a :class:`ByteBudget` (or text such as "100KB", "30%"): the best-looking output
        (SSIMULACRA2) whose file fits it; with a target, the smallest file meeting the target,
        if it fits
    """

    n_colors: int | None = None
    method: str = "kmeans"
    method_options: tuple = ()
    speed: int = DEFAULT_SPEED
    random_state: int = 0
    color_space: str | None = None
    dither: float | None = None
    target: QualityTarget | None = None
    fallback: QualityTarget | None = None
    min_colors: int = MIN_COLORS
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str = "png"
    skip_if_larger: bool = False
    metrics: tuple = field(default=())
    max_size: ByteBudget | None = None
    keep_animation_format: bool = False
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self):
        from .methods import get_method
        from .metrics import METRICS

        def settle(name, value):
            object.__setattr__(self, name, value)

        if self.max_size is not None:
            settle("max_size", parse_byte_budget(self.max_size))
        if self.n_colors is None:
            searched = self.target is not None or self.max_size is not None
            settle("n_colors", MAX_COLORS if searched else DEFAULT_COLORS)
        settle("n_colors", _check_int(self.n_colors, "n_colors", MIN_COLORS, MAX_COLORS))
        spec = get_method(self.method)
        settle("method", spec.name)
        # Kept with the settings (and pickled with them), so that a worker process runs the
        # method from its spec even if it was registered only in the process that asked.
        settle("_method_spec", spec)
        settle("method_options", spec.check_options(dict(self.method_options)))
        settle("speed", _check_int(self.speed, "speed", MIN_SPEED, MAX_SPEED))
        settle("random_state", _check_int(self.random_state, "random_state", 0, MAX_SEED))
        settle("_color_space_given", self.color_space is not None)
        if self.color_space is None:
            srgb_target = self.target is not None and self.target.metric in _SRGB_ERROR_METRICS
            settle("color_space", "rgb" if srgb_target else "mixed")
        settle("color_space", _check_choice(self.color_space, "color_space", COLOR_SPACES))
        settle("_dither_given", self.dither is not None)
        dither = 0.0 if self.dither is None else self.dither
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
        if (self.target is not None or self.max_size is not None) and self.min_colors > self.n_colors:
            raise InvalidParameterError(
                f"min_colors ({self.min_colors}) must not exceed n_colors ({self.n_colors})")
        settle("max_pixels", _check_int(self.max_pixels, "max_pixels", 1, None))
        settle("format", _check_choice(self.format, "format", FORMATS))
        settle("max_frames", _check_int(self.max_frames, "max_frames", 1, None))
        if not isinstance(self.keep_animation_format, bool):
            raise InvalidParameterError(
                f"keep_animation_format must be True or False; got {self.keep_animation_format!r}")
        if self.target is not None and self.format == "jpeg":
            raise InvalidParameterError(
                "quality targets need a lossless output format (png, webp or gif), not jpeg, "
                "whose own loss would decide the figure")
        if self.max_size is not None and self.format == "jpeg":
            raise InvalidParameterError(
                "a byte budget needs a palette output format (png, webp or gif), not jpeg")
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
        cls, *, n_colors=None, method="kmeans", speed=DEFAULT_SPEED, random_state=0, color_space=None, dither=None,
        min_colors=MIN_COLORS, quality=None, max_pixels=DEFAULT_MAX_PIXELS, format="png",  # noqa: A002
        skip_if_larger=False, metrics=(), max_size=None, keep_animation_format=False,
        max_frames=DEFAULT_MAX_FRAMES, **others,
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
            skip_if_larger=skip_if_larger, metrics=metrics, max_size=max_size,
            keep_animation_format=keep_animation_format, max_frames=max_frames,
        )

    def format_for(self, animation) -> str:
        """The output format of an input: ``format``, or for an animation (an
        :class:`~colorquant.animation.Animation`) its own kind with ``keep_animation_format``."""
        if animation is not None and self.keep_animation_format:
            return animation.source_format
        return self.format

    @property
    def method_spec(self):
        """The :class:`~colorquant.methods.MethodSpec` of ``method``."""
        return self.__dict__["_method_spec"]

    @property
    def searches_colors(self) -> bool:
        """Whether the colour count is found (by a target or a byte budget), not given."""
        return self.target is not None or self.max_size is not None

    @property
    def dither_given(self) -> bool:
        """Whether a dither level was asked for (else a budget or target may choose one)."""
        return self.__dict__["_dither_given"]

    @property
    def perceptual_search(self) -> bool:
        """Whether a budget or a target is judged by eye (SSIMULACRA2): then the colour space
        and the dither level are searched too, where not given."""
        from .metrics import METRICS

        return self.max_size is not None or (self.target is not None and METRICS[self.target.metric].dither_helps)

    @property
    def dither_levels(self) -> tuple[float, ...]:
        """The dither levels a byte budget or a target chooses among: the one asked for; else
        for a perceptual search off, partial and full at speeds 1-3, and at the default speed
        and faster off and full for a SSIMULACRA2 target, off for a budget (at equal bytes
        full dithering gained 0.3 points over the better space's plain output on CQ100, for
        a third score and dithering each count tried); else none (see
        ``METRICS[...].dither_helps``)."""
        if self.dither_given:
            return (self.dither,)
        if not self.perceptual_search:
            return (0.0,)
        if self.speed <= 3:
            return DITHER_LEVELS
        return (0.0,) if self.target is None else (DITHER_LEVELS[0], DITHER_LEVELS[-1])

    @property
    def search_variants(self) -> tuple[tuple[str, float], ...]:
        """The (colour space, dither level) pairs a budget or a target searches, the asked-for
        or default space's plain one first."""
        spaces = (self.color_space,)
        if self.perceptual_search and not self.__dict__["_color_space_given"]:
            spaces = SEARCH_SPACES
        return tuple((space, level) for space in spaces for level in self.dither_levels)

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
            "dither": self.dither if self.dither_given else None,
            "color_space_given": self.__dict__["_color_space_given"],
            "max_size": None if self.max_size is None else [self.max_size.limit, self.max_size.share],
            "target": None if self.target is None else [self.target.metric, self.target.value],
            "fallback": None if self.fallback is None else [self.fallback.metric, self.fallback.value],
            "min_colors": self.min_colors if self.target is not None or self.max_size is not None else None,
            "max_pixels": self.max_pixels, "format": self.format,
            "skip_if_larger": self.skip_if_larger,
            "keep_animation_format": self.keep_animation_format, "max_frames": self.max_frames,
        }
