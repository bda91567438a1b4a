"""The smallest colour count whose output meets a quality target (PSNR, MSE or SSIM).

Every candidate count is fitted exactly as a fixed-count run would fit it (same seed, same
code), so the value seen for a count during the search is the value its written output has.
PSNR and MSE come from the histogram without touching the pixels; SSIM is measured on the
remapped image.

The search brackets the answer and then narrows it by interpolation. Quality grows roughly
linearly in log(colours) (high-rate theory: MSE ~ K^(-2/3) for 3-D colour, about 2 dB of PSNR
per doubling), so the next count is interpolated on that scale between the tightest failing
and passing counts, falling back to bisection whenever interpolation leaves the
bracket (and bisecting after two moves of the same end of the bracket, where interpolation
would creep). Quality is not exactly monotonic in K (each count is a separate local optimum), so
once the bracket closes on ``[K-1, K]`` the count ``K-2`` is checked too, and the answer moves
down while a count within two below it passes: a count is accepted once the two counts
below it fail. An exhaustive upward scan can still find a smaller count when a lucky fit
passes three or more counts below the rest; tests compare the two on real photographs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError, QualityTooLowError
from .metrics import comparable, mse, psnr_from_mse, ssim
from .pipeline import PreparedImage, Quantization, fit, label_image
from .result import SearchStep

__all__ = ["QualityTarget", "make_target", "search_n_colors", "quality_curve", "quality_to_psnr"]

# Colour counts of the quality curve (elbow plot): dense where the curve bends.
CURVE_COUNTS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

TARGET_METRICS = ("psnr", "mse", "ssim")
# Counts below the answer that must fail before it is accepted (non-monotonic quality).
_CHECK_BELOW = 2


@dataclass(frozen=True)
class QualityTarget:
    """A quality the output must reach: PSNR >= value, MSE <= value, or SSIM >= value."""

    metric: str
    value: float

    def met_by(self, measured: float) -> bool:
        if self.metric == "mse":
            return measured <= self.value
        return measured >= self.value

    def describe(self) -> str:
        unit = " dB" if self.metric == "psnr" else ""
        relation = "<=" if self.metric == "mse" else ">="
        return f"{self.metric.upper()} {relation} {self.value:g}{unit}"


def make_target(*, psnr=None, mse=None, ssim=None) -> QualityTarget | None:
    """Validate the at-most-one target given; None when none is."""
    given = {name: value for name, value in (("psnr", psnr), ("mse", mse), ("ssim", ssim))
             if value is not None}
    if not given:
        return None
    if len(given) > 1:
        raise InvalidParameterError(
            f"give one quality target, not {' and '.join('target_' + n for n in given)}"
        )
    (metric, value), = given.items()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameterError(f"target_{metric} must be a finite number; got {value!r}")
    bounds = {"psnr": (0.0, 100.0, False), "mse": (0.0, 255.0**2, True), "ssim": (0.0, 1.0, False)}
    low, high, low_inclusive = bounds[metric]
    if not ((value >= low) if low_inclusive else (value > low)) or value > high:
        interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
        raise InvalidParameterError(f"target_{metric} must be in {interval}; got {value!r}")
    return QualityTarget(metric, float(value))


def quality_to_psnr(quality: float) -> float:
    """pngquant-style quality (0-100) as a PSNR target: 20 dB + quality / 4.

    So quality 60 asks for 35 dB, 100 for 45 dB (MSE 2.06), 0 for 20 dB (MSE 650).
    """
    return 20.0 + quality / 4.0


class _Evaluator:
    """Fits and measures each colour count once, keeping the trace."""

    def __init__(self, prepared, original, method, target, random_state, options, dither=0.0):
        self.prepared, self.original, self.dither = prepared, original, dither
        self.method, self.target = method, target
        self.random_state, self.options = random_state, options
        self.fits: dict[int, Quantization] = {}
        self.values: dict[int, float] = {}
        self.order: list[int] = []

    def value(self, n_colors: int) -> float:
        if n_colors not in self.values:
            quantization = fit(self.prepared, n_colors, self.method,
                               random_state=self.random_state, **self.options)
            self.fits[n_colors] = quantization
            self.values[n_colors] = self._measure(quantization)
            self.order.append(n_colors)
        return self.values[n_colors]

    def meets(self, n_colors: int) -> bool:
        return self.target.met_by(self.value(n_colors))

    def _measure(self, quantization: Quantization) -> float:
        if self.target.metric in ("mse", "psnr") and not self.dither:
            # exact from the histogram: every pixel of a colour takes the same entry
            error = quantization.mse
            return error if self.target.metric == "mse" else psnr_from_mse(error)
        output = comparable(quantization.palette[label_image(self.prepared, quantization, self.dither)])
        reference = comparable(self.original)
        if self.target.metric == "mse":
            return mse(reference, output)
        if self.target.metric == "psnr":
            return psnr_from_mse(mse(reference, output))
        measured = ssim(reference, output)
        return 1.0 if measured is None else measured  # tiny images: no SSIM window fits

    def trace(self) -> tuple[SearchStep, ...]:
        return tuple(SearchStep(k, self.values[k], self.target.met_by(self.values[k]))
                     for k in self.order)


def _scale(target: QualityTarget, value: float) -> float:
    """Quality on a scale roughly linear in log(colours): dB for MSE and PSNR."""
    if target.metric == "mse":
        return psnr_from_mse(value) if value > 0 else 200.0
    if target.metric == "psnr":
        return min(value, 200.0)
    return value


def search_n_colors(
    prepared: PreparedImage,
    original: np.ndarray,
    method: str,
    target: QualityTarget,
    *,
    min_colors: int = 2,
    max_colors: int = 256,
    random_state: int = 0,
    dither: float = 0.0,
    **options,
) -> tuple[int, Quantization, tuple[SearchStep, ...]]:
    """The smallest count in ``[min_colors, max_colors]`` whose quantization meets ``target``.

    Returns the count, its quantization and the trace of counts tried. Raises
    :class:`QualityTooLowError` (with the best value reached) when even ``max_colors`` misses.
    """
    evaluator = _Evaluator(prepared, original, method, target, random_state, options, dither)
    # At or above the number of distinct colours the result is lossless: nothing to search.
    ceiling = max(min_colors, min(max_colors, prepared.n_distinct))

    if evaluator.meets(min_colors):
        return min_colors, evaluator.fits[min_colors], evaluator.trace()

    # Bracket: grow by doubling (cheap small counts first) until a count passes.
    failing, passing = min_colors, None
    candidate = min(ceiling, max(min_colors * 2, 16))
    while passing is None:
        if evaluator.meets(candidate):
            passing = candidate
        elif candidate >= ceiling:
            best = max(evaluator.values.values()) if target.metric != "mse" else min(evaluator.values.values())
            raise QualityTooLowError(
                f"{target.describe()} not reached with up to {max_colors} colours "
                f"(best {target.metric.upper()} {best:.4g} at {candidate} colours)",
                best_value=best,
            )
        else:
            failing = candidate
            candidate = min(ceiling, _interpolate(evaluator, target, failing, None, ceiling))

    # Narrow [failing, passing] by interpolation on the log scale. Interpolation tends to creep
    # up on the answer from one side; after two moves of the same end, bisect instead.
    last_moved, same_side_moves = None, 0
    while passing - failing > 1:
        if same_side_moves >= 2:
            guess = (failing + passing) // 2
        else:
            guess = _interpolate(evaluator, target, failing, passing, ceiling)
            if not failing < guess < passing:
                guess = (failing + passing) // 2
        moved = "passing" if evaluator.meets(guess) else "failing"
        if moved == "passing":
            passing = guess
        else:
            failing = guess
        same_side_moves = same_side_moves + 1 if moved == last_moved else 1
        last_moved = moved

    # Non-monotonic guard: accept `passing` only once the counts just below it fail too.
    answer, probe = passing, passing - 2
    while probe >= min_colors and answer - probe <= _CHECK_BELOW:
        if evaluator.meets(probe):
            answer = probe
        probe -= 1
    return answer, evaluator.fits[answer], evaluator.trace()


def _interpolate(evaluator: _Evaluator, target: QualityTarget, failing: int,
                 passing: int | None, ceiling: int) -> int:
    """Next count to try: where the target falls on the line through the bracket's values
    against log(colours); above the bracket, extrapolate from the two best-known counts."""
    goal = _scale(target, target.value)
    if passing is not None:
        points = [(failing, evaluator.values[failing]), (passing, evaluator.values[passing])]
    else:
        known = sorted(evaluator.values.items())
        points = known[-2:] if len(known) >= 2 else None
        if points is None:
            return min(ceiling, failing * 2)
    (k0, v0), (k1, v1) = points
    s0, s1 = _scale(target, v0), _scale(target, v1)
    if s1 <= s0 or k1 == k0:
        return min(ceiling, max(k1 * 2, k0 + 1)) if passing is None else (failing + passing) // 2
    log_k = math.log(k0) + (goal - s0) * (math.log(k1) - math.log(k0)) / (s1 - s0)
    guess = int(math.ceil(math.exp(min(log_k, math.log(ceiling)))))
    if passing is None:
        # Extrapolating: aim a little past the estimate so that the next count likely passes,
        # and never by less than one step up.
        guess = max(failing + 1, int(math.ceil(guess * 1.15)), int(math.ceil(failing * 1.25)))
    return max(1, min(guess, ceiling))


def quality_curve(
    prepared: PreparedImage, original: np.ndarray, method: str, metric: str = "psnr", *,
    max_colors: int = 256, random_state: int = 0, dither: float = 0.0, **options,
) -> list[tuple[int, float]]:
    """``(colour count, metric value)`` for the counts of ``CURVE_COUNTS`` up to ``max_colors``,
    each fitted as a fixed-count run would be."""
    if metric not in TARGET_METRICS:
        raise InvalidParameterError(f"metric must be one of {', '.join(TARGET_METRICS)}; got {metric!r}")
    # The target value is irrelevant here; it only tells the evaluator what to measure.
    evaluator = _Evaluator(prepared, original, method, QualityTarget(metric, 0.0), random_state,
                           options, dither)
    counts = sorted({min(k, max_colors) for k in CURVE_COUNTS})
    return [(k, evaluator.value(k)) for k in counts]
