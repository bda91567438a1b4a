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
from .metrics import METRICS, ImagePair, psnr_from_mse
from .pipeline import PreparedImage, Quantization, fit, label_image
from .settings import QualityTarget, Settings

__all__ = ["SearchStep", "SearchResult", "search_n_colors", "quality_curve", "CURVE_COUNTS"]

# Colour counts of the quality curve (elbow plot): dense where the curve bends.
CURVE_COUNTS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)

# Counts below the answer that must fail before it is accepted (non-monotonic quality).
_CHECK_BELOW = 2


@dataclass(frozen=True)
class SearchStep:
    """One colour count tried by the quality search, with the value its output reached."""

    n_colors: int
    value: float | None
    meets_target: bool
    dither: float = 0.0
    bytes: int | None = None  # the encoded file, where the search encoded it
    color_space: str | None = None  # where rate control tried several


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The count chosen, its fit, every count tried, and whether the target itself was met
    (False when the fallback of ``--quality MIN-MAX`` accepted the largest count)."""

    n_colors: int
    quantization: Quantization
    trace: tuple[SearchStep, ...]
    target_met: bool


class _Evaluator:
    """Fits and measures each colour count once, keeping the trace."""

    def __init__(self, prepared: PreparedImage, original: np.ndarray, settings: Settings, metric: str,
                 fits: dict | None = None, values: dict | None = None):
        self.prepared, self.original, self.settings = prepared, original, settings
        self.metric = metric
        # shared by the searches of one image at several dither levels: a count's fit does
        # not depend on the level, and a value once measured is not measured again
        self.fits: dict[int, Quantization] = {} if fits is None else fits
        self.values: dict[int, float] = {} if values is None else values
        self.order: list[int] = list(self.values)

    def value(self, n_colors: int) -> float:
        if n_colors not in self.values:
            if n_colors not in self.fits:
                self.fits[n_colors] = fit(self.prepared, n_colors, self.settings)
            self.values[n_colors] = self._measure(self.fits[n_colors])
            self.order.append(n_colors)
        return self.values[n_colors]

    def _measure(self, quantization: Quantization) -> float:
        if self.metric in ("mse", "psnr") and not self.settings.dither:
            # exact from the histogram: every pixel of a colour takes the same entry
            error = quantization.mse
            return error if self.metric == "mse" else psnr_from_mse(error)
        labels = label_image(self.prepared, quantization, self.settings.dither)
        measured = METRICS[self.metric].function(ImagePair(self.original, quantization.palette[labels]))
        if measured is None:  # tiny images: no window of the figure fits; nothing to see
            return METRICS[self.metric].identical
        return measured


class _TargetEvaluator(_Evaluator):
    def __init__(self, prepared, original, settings: Settings, fits=None, values=None):
        super().__init__(prepared, original, settings, settings.target.metric, fits, values)
        self.target = settings.target

    def meets(self, n_colors: int) -> bool:
        return self.target.met_by(self.value(n_colors))

    def trace(self) -> tuple[SearchStep, ...]:
        return tuple(SearchStep(k, self.values[k], self.target.met_by(self.values[k]), self.settings.dither)
                     for k in self.order)


def _scale(target: QualityTarget, value: float) -> float:
    """Quality on a scale roughly linear in log(colours): dB for MSE and PSNR."""
    if target.metric == "mse":
        return psnr_from_mse(value) if value > 0 else 200.0
    if target.metric == "psnr":
        return min(value, 200.0)
    return value


def search_n_colors(prepared: PreparedImage, original: np.ndarray, settings: Settings, *,
                    fits: dict | None = None, values: dict | None = None) -> SearchResult:
    """The smallest count in ``[settings.min_colors, settings.n_colors]`` whose quantization
    meets ``settings.target`` at ``settings.dither``.

    fits, values : caches shared with other searches of this image (fits by count; values
    by count, of this dither level)

    When even the largest count misses the target but meets ``settings.fallback``, that
    count is the answer (``target_met`` False). Otherwise raises :class:`QualityTooLowError`
    with the best value reached.
    """
    target, min_colors, max_colors = settings.target, settings.min_colors, settings.n_colors
    metric = METRICS[target.metric]
    height, width = original.shape[:2]
    if min(height, width) < metric.min_side:
        # The figure does not exist for this image: a made-up perfect score would "meet" any
        # target (2 colours at 11.7 dB for a 5x5 image). Refused instead.
        raise InvalidParameterError(
            f"{width}x{height}: {metric.title} is not defined for images under {metric.min_side} "
            f"pixels on a side, so a {metric.title} target cannot be judged; use a PSNR or MSE target")
    evaluator = _TargetEvaluator(prepared, original, settings, fits, values)
    # At or above the number of distinct colours the result is lossless: nothing to search.
    ceiling = max(min_colors, min(max_colors, prepared.n_distinct))

    if evaluator.meets(min_colors):
        return SearchResult(min_colors, evaluator.fits[min_colors], evaluator.trace(), True)

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
            reached = evaluator.values[candidate]
            if settings.fallback is not None and settings.fallback.met_by(reached):
                # pngquant's --quality MIN-MAX: MAX missed, MIN met: keep the most colours.
                return SearchResult(candidate, evaluator.fits[candidate], evaluator.trace(), False)
            best = (max if target.higher_is_better else min)(evaluator.values.values())
            best_at = next(k for k in evaluator.order if evaluator.values[k] == best)
            goal = target if settings.fallback is None else settings.fallback
            raise QualityTooLowError(
                f"{goal.describe()} not reached with up to {max_colors} colours "
                f"(best {METRICS[target.metric].title} {best:.4g} at {best_at} colours)",
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
    return SearchResult(answer, evaluator.fits[answer], evaluator.trace(), True)


def _log_crossing(target: QualityTarget, point0: tuple[int, float], point1: tuple[int, float]) -> float | None:
    """The count where the line through two (count, value) points, on the scale of
    :func:`_scale` against log(count), reaches the target; None if the line does not rise."""
    (k0, v0), (k1, v1) = point0, point1
    s0, s1 = _scale(target, v0), _scale(target, v1)
    if s1 <= s0 or k1 == k0:
        return None
    goal = _scale(target, target.value)
    return math.exp(math.log(k0) + (goal - s0) * (math.log(k1) - math.log(k0)) / (s1 - s0))


def _interpolate(evaluator: _TargetEvaluator, target: QualityTarget, failing: int, passing: int) -> int | None:
    """Next count inside the open bracket: the predicted crossing rounded up, kept inside;
    None when the values do not rise across the bracket (then bisect)."""
    crossing = _log_crossing(target, (failing, evaluator.values[failing]),
                             (passing, evaluator.values[passing]))
    if crossing is None:
        return None
    return min(passing - 1, max(failing + 1, math.ceil(crossing)))


def _extrapolate(evaluator: _TargetEvaluator, target: QualityTarget, failing: int, ceiling: int) -> int:
    """Next count above ``failing``, the largest count tried (nothing passes yet): the crossing
    predicted by the line through it and a count at least 20% smaller (adjacent counts differ
    by less than their fits' noise, which would make the slope wild); doubling when the line
    does not rise."""
    known = sorted(evaluator.values.items())
    below = [point for point in known if point[0] <= failing / 1.2] or known[:-1]
    crossing = _log_crossing(target, below[-1], known[-1]) if below else None
    guess = failing * 2 if crossing is None else max(math.ceil(min(crossing, ceiling)), failing + 1)
    return min(guess, ceiling)


def quality_curve(prepared: PreparedImage, original: np.ndarray, settings: Settings,
                  metric: str = "psnr") -> list[tuple[int, float]]:
    """``(colour count, metric value)`` for the counts of ``CURVE_COUNTS`` up to
    ``settings.n_colors``, each fitted as a fixed-count run would be."""
    evaluator = _Evaluator(prepared, original, settings, metric)
    counts = sorted({min(k, settings.n_colors) for k in CURVE_COUNTS})
    return [(k, evaluator.value(k)) for k in counts]
