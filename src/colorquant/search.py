"""The smallest colour count whose output meets a quality target (PSNR, MSE or SSIM).

Every candidate count is fitted exactly as a fixed-count run would fit it (same seed, same
code), so the value seen for a count during the search is the value its written output has.
PSNR and MSE come from the histogram without touching the pixels; SSIM is measured on the
remapped image.

The search predicts and checks. Quality grows roughly linearly in log(colours) (high-rate
theory: MSE ~ K^(-2/3) for 3-D colour, about 2 dB of PSNR per doubling), so after a cheap
first count (16) the next count is where the line through the two nearest known counts, on
that scale, reaches the target. A predicted count that passes is most likely the answer or
one above it, so the count just below is tried next (just above, for one that fails); a
right prediction closes the bracket ``[K-1, K]`` in two fits. When a round of prediction
does not halve the bracket, the next count bisects it, so the worst case stays logarithmic.
On the benchmark photos 6 to 8 counts were fitted, two of them small and cheap.

Quality is not exactly monotonic in K (each count is a separate local optimum of k-means),
so once the bracket closes on ``[K-1, K]`` the count ``K-2`` is checked too, and the answer
moves down while a count within two below it passes: a count is accepted once the two counts
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

    # Bracket: a cheap first count, then counts predicted from the two largest counts known.
    failing, passing = min_colors, None
    candidate, predicted = min(ceiling, max(min_colors * 2, 16)), False
    last_prediction = None  # (count, passed) of the last count placed by prediction
    while passing is None:
        passed = evaluator.meets(candidate)
        if predicted:
            last_prediction = (candidate, passed)
        if passed:
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
            candidate, predicted = _extrapolate(evaluator, target, failing, ceiling), True

    # Narrow [failing, passing]. A predicted count that passes is most likely the answer, so
    # the count just below it is tried next (and just above one that fails): when the
    # prediction is right that closes the bracket at once. Otherwise predict again; if a
    # round of prediction leaves more than half of the bracket, bisect instead, so that a
    # badly curved stretch costs no more than bisection would.
    width_before_prediction = None  # bracket width when the last prediction was made
    while passing - failing > 1:
        if last_prediction is not None:
            count, passed = last_prediction
            neighbour = count - 1 if passed else count + 1
            if failing < neighbour < passing:
                if evaluator.meets(neighbour):
                    passing = neighbour
                else:
                    failing = neighbour
            if passing - failing <= 1:
                break
        guess = _interpolate(evaluator, target, failing, passing)
        halved = width_before_prediction is None or passing - failing <= width_before_prediction // 2
        if guess is None or not halved:
            guess = (failing + passing) // 2
        width_before_prediction = passing - failing
        passed = evaluator.meets(guess)
        if passed:
            passing = guess
        else:
            failing = guess
        last_prediction = (guess, passed)

    # Non-monotonic guard: accept `passing` only once the counts just below it fail too.
    answer, probe = passing, passing - 2
    while probe >= min_colors and answer - probe <= _CHECK_BELOW:
        if evaluator.meets(probe):
            answer = probe
        probe -= 1
    return answer, evaluator.fits[answer], evaluator.trace()


def _log_crossing(target: QualityTarget, point0: tuple[int, float], point1: tuple[int, float]) -> float | None:
    """The count where the line through two (count, value) points, on the scale of
    :func:`_scale` against log(count), reaches the target; None if the line does not rise."""
    (k0, v0), (k1, v1) = point0, point1
    s0, s1 = _scale(target, v0), _scale(target, v1)
    if s1 <= s0 or k1 == k0:
        return None
    goal = _scale(target, target.value)
    return math.exp(math.log(k0) + (goal - s0) * (math.log(k1) - math.log(k0)) / (s1 - s0))


def _interpolate(evaluator: _Evaluator, target: QualityTarget, failing: int, passing: int) -> int | None:
    """Next count inside the open bracket: the predicted crossing rounded up, kept inside;
    None when the values do not rise across the bracket (then bisect)."""
    crossing = _log_crossing(target, (failing, evaluator.values[failing]),
                             (passing, evaluator.values[passing]))
    if crossing is None:
        return None
    return min(passing - 1, max(failing + 1, math.ceil(crossing)))


def _extrapolate(evaluator: _Evaluator, target: QualityTarget, failing: int, ceiling: int) -> int:
    """Next count above ``failing``, the largest count tried (nothing passes yet): the crossing
    predicted by the line through it and a count at least 20% smaller (adjacent counts differ
    by less than their fits' noise, which would make the slope wild); doubling when the line
    does not rise."""
    known = sorted(evaluator.values.items())
    below = [point for point in known if point[0] <= failing / 1.2] or known[:-1]
    crossing = _log_crossing(target, below[-1], known[-1]) if below else None
    guess = failing * 2 if crossing is None else max(math.ceil(min(crossing, ceiling)), failing + 1)
    return min(guess, ceiling)


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
