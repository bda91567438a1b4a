"""Rate control: choices made by the size of the file, over colour count x dither level.

Two questions, both answered on the encoded file exactly as it is written:

- :func:`fit_budget` (``--max-size``): the best-looking output (SSIMULACRA2) whose file is at
  most the budget. For each dither level, the largest colour count that fits is found by a
  search on the file's size; the candidates (one per level) are then scored, and the best
  kept. More colours at one level always looked better on CQ100, so only the largest count
  that fits needs a score: three scores per image, not one per count.
- :func:`smallest_meeting_target` (a quality target): the smallest file that meets it. The
  plain output's search runs first (as :mod:`colorquant.search` does it); a dithered level is
  then searched only below the largest count whose dithered file is smaller than the best so
  far, and skipped at once when that count misses the target.

The size of a file grows about linearly in log(colours), so the size search predicts where
the budget is crossed on that scale (a secant through the bracket's ends), and bisects when
a prediction does not halve the bracket. Each count is fitted once for all levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import QualityTooLowError
from .metrics import METRICS, ImagePair
from .pipeline import PreparedImage, Quantization, fit, label_image, prepare
from .result import encode_output
from .search import SearchStep, search_n_colors
from .settings import Settings

__all__ = ["Choice", "BudgetNotMetError", "fit_budget", "smallest_meeting_target"]

# What a budget's candidates are judged by; PSNR for images too small for it.
_JUDGE = "ssimulacra2"


class BudgetNotMetError(QualityTooLowError):
    """Not even the fewest colours (or the fewest meeting the target) fit the byte budget."""

    def __init__(self, message: str, *, smallest: int | None = None):
        super().__init__(message)
        self.smallest = smallest


@dataclass(frozen=True, eq=False)
class Choice:
    """What rate control chose: a count, a dither level and a colour space, their fit and
    labels, the file's bytes, every (count, level, space) tried, and whether a target was met."""

    n_colors: int
    dither: float
    quantization: Quantization
    labels: np.ndarray
    encoded: bytes
    trace: tuple[SearchStep, ...]
    target_met: bool = True
    color_space: str = "mixed"


class _Files:
    """One colour space's fits (each count once, for every dither level), and each (count,
    level)'s labels and encoded file, once."""

    def __init__(self, prepared: PreparedImage, settings: Settings):
        self.prepared, self.settings = prepared, settings
        self.fits: dict[int, Quantization] = {}
        self._labels: dict[tuple[int, float], np.ndarray] = {}
        self._sizes: dict[tuple[int, float], int] = {}
        self._encoded: dict[tuple[int, float], bytes] = {}
        self._quick: dict[tuple[int, float], int] = {}

    def quantization(self, n_colors: int) -> Quantization:
        if n_colors not in self.fits:
            self.fits[n_colors] = fit(self.prepared, n_colors, self.settings)
        return self.fits[n_colors]

    def labels(self, n_colors: int, level: float) -> np.ndarray:
        key = (n_colors, level)
        if key not in self._labels:
            self._labels[key] = label_image(self.prepared, self.quantization(n_colors), level)
        return self._labels[key]

    def encoded(self, n_colors: int, level: float) -> bytes:
        key = (n_colors, level)
        if key not in self._encoded:
            data = encode_output(self.labels(n_colors, level), self.quantization(n_colors).palette,
                                 self.settings.speed, self.settings.format, animation=self.prepared.animation)
            self._encoded[key], self._sizes[key] = data, len(data)
        return self._encoded[key]

    def size(self, n_colors: int, level: float) -> int:
        if (n_colors, level) not in self._sizes:
            self.encoded(n_colors, level)
        return self._sizes[(n_colors, level)]

    def known_size(self, n_colors: int, level: float) -> int | None:
        return self._sizes.get((n_colors, level))

    def quick_size(self, n_colors: int, level: float) -> int:
        """The size of the fast deflate (level 6) of a count's PNG; the written size for
        other formats."""
        if self.settings.format != "png" or self.prepared.animation is not None:
            return self.size(n_colors, level)
        key = (n_colors, level)
        if key not in self._quick:
            from .encoding import encode_png

            self._quick[key] = len(encode_png(self.labels(n_colors, level), self.quantization(n_colors).palette,
                                              deflate_level=6, bit_depths="byte"))
        return self._quick[key]

    def estimated_size(self, n_colors: int, level: float) -> float:
        """The written file's size, estimated from a fast deflate (level 6: a tenth of the
        time of the written level 10) times the two sizes' ratio at the nearest count whose
        file was written: the ratio drifts with the count (0.88 at 16 colours, 0.96 at 200
        on a CQ100 photo), so it is taken nearby. Exact for formats other than PNG."""
        if self.settings.format != "png" or self.prepared.animation is not None:
            return self.size(n_colors, level)
        key = (n_colors, level)
        self.quick_size(n_colors, level)
        calibrated = [count for (count, at) in self._sizes if at == level and (count, at) in self._quick]
        if not calibrated:
            self.size(n_colors, level)
            calibrated = [n_colors]
        near = min(calibrated, key=lambda count: (abs(math.log(count) - math.log(n_colors)), count))
        return self._quick[key] * self._sizes[(near, level)] / self._quick[(near, level)]

    def forget_encodings(self, keep: set) -> None:
        """Drop the encoded files and labels of pairs not in ``keep`` (their sizes stay)."""
        for key in [key for key in self._encoded if key not in keep]:
            del self._encoded[key]
            self._labels.pop(key, None)


class _Spaces:
    """The image prepared in each colour space searched, with that space's :class:`_Files`."""

    def __init__(self, pixels: np.ndarray, settings: Settings, *, exact: bool, animation=None):
        self.pixels, self.settings, self.exact, self.animation = pixels, settings, exact, animation
        self._files: dict[str, _Files] = {}

    def files(self, space: str) -> _Files:
        if space not in self._files:
            settings = self.settings.with_changes(color_space=space)
            self._files[space] = _Files(prepare(self.pixels, space, exact=self.exact, animation=self.animation), settings)
        return self._files[space]


def _ceiling(prepared: PreparedImage, settings: Settings) -> int:
    """The largest count worth fitting: more than the image's distinct colours is lossless."""
    return max(settings.min_colors, min(settings.n_colors, prepared.n_distinct))


def _tolerance(settings: Settings, count: int) -> int:
    """How close to the largest count that fits the size search must come: exactly at speeds
    1-3; within 4% of the count above (about 1% of the file) at the default speed and
    faster, which saves two or three fits of large counts."""
    return 1 if settings.speed <= 3 else max(1, count // 24)


def _close_enough(settings: Settings) -> float:
    """A share of the budget that ends the size search as soon as a file that fits reaches
    it: 98.5% at the default speed and faster (a count or two more would add about 1% to the
    file and 0.3 to its score, for two or three more fits), none at speeds 1-3."""
    return 1.0 if settings.speed <= 3 else 0.985


def largest_fitting(files: _Files, level: float, limit: int, low: int, high: int,
                    first: int | None = None, slope: float | None = None) -> int | None:
    """The largest count in ``[low, high]`` whose written file at ``level`` is at most
    ``limit`` bytes (to the search's tolerance), or None when ``low``'s is not.

    The search runs on estimated sizes (:meth:`_Files.estimated_size`); its answer is then
    encoded as written, and the search goes on above or below it, with the estimate
    recalibrated there, until a written file fits and the estimate says the next counts do
    not. ``first`` is tried first (a count predicted elsewhere); ``slope`` (bytes per e-fold
    of colours, from another space or level) places the second count."""
    best = None  # largest count whose written file fits
    for _ in range(6):
        estimate = lambda count: files.estimated_size(count, level)  # noqa: E731
        # counts tried before place the lines once a written size calibrates their estimates
        # (the first count tried is written, where the answer is likely to be)
        calibrated = any(at == level for (_, at) in files._sizes)
        known = {count: estimate(count) for (count, at) in list(files._quick) if at == level and calibrated}
        found = _search(estimate, limit, low, high, first, slope, files.settings, known)
        if found is None:
            if files.size(low, level) > limit:
                return best
            found = low  # the estimate was wrong at the bottom
        if files.size(found, level) <= limit:
            best = max(best or found, found)
            if found >= high or files.size(found, level) >= limit * _close_enough(files.settings):
                return best
            # the counts just above are checked as written: at the slow speeds the next one, and
            # below 32 colours (where one colour more is worth several points and a fit costs
            # little) the next two, as a file's size is not quite monotonic in the count;
            # elsewhere the estimate of the count a tolerance above decides
            if files.settings.speed <= 3 or found < 32:
                above = [count for count in (found + 1, found + 2) if count <= high][:1 if files.settings.speed <= 3 else 2]
                fitting = [count for count in above if files.size(count, level) <= limit]
                if not fitting:
                    return best
                best = max(fitting)
                if best >= high:
                    return best
                low, first = best, min(high, best + 1)
                continue
            above = min(high, found + _tolerance(files.settings, found) + 1)
            if files.estimated_size(above, level) > limit:
                return best
            low, first = found, above
        else:
            if found <= low:
                return best
            high = found - 1
            first = max(low, found - _tolerance(files.settings, found) - 1)
        if high < low:
            return best
    return best if best is not None or files.size(low, level) > limit else low


def _search(size_of, limit: float, low: int, high: int, first: int | None, slope: float | None,
            settings: Settings, known: dict) -> int | None:
    """The largest count in ``[low, high]`` whose ``size_of`` is at most ``limit``, to the
    search's tolerance; None when ``low``'s is not.

    Each next count is where the line through the two counts tried nearest the limit, size
    against log(count), reaches it (with one count, the line of ``slope``); the ends of the
    range are tried only when the line points past them (a fit of 256 colours costs ten of
    16), and a step that does not halve the bracket is followed by bisection."""
    size = dict(known)  # counts tried before: they place the lines, not the bracket
    fits_at = over_at = None  # largest count known to fit, smallest known not to
    guess = min(high, max(low, first if first is not None else low))
    width_before, predicted = None, True
    while True:
        size[guess] = size_of(guess)
        fitted = size[guess] <= limit
        if fitted:
            fits_at = guess
        else:
            over_at = guess
        if over_at is not None and over_at <= low:
            return None
        if fits_at is not None and (fits_at >= high or size[fits_at] >= limit * _close_enough(settings)):
            return fits_at
        bracketed = fits_at is not None and over_at is not None
        if bracketed and over_at - fits_at <= _tolerance(settings, fits_at):
            return fits_at
        bottom = low if fits_at is None else fits_at + 1
        top = high if over_at is None else over_at - 1
        if predicted and abs(size[guess] - limit) <= 0.03 * limit:
            # a count predicted this close is most likely just below or above the answer:
            # the count a tolerance away on the other side closes the bracket
            step = _tolerance(settings, guess)
            guess, predicted = (guess + step if fitted else guess - step), False
        else:
            guess, predicted = _crossing(size, limit, slope), True
            if bracketed:
                width = over_at - fits_at
                if guess is None or (width_before is not None and width > width_before // 2):
                    guess, predicted = (fits_at + over_at) // 2, False  # bisect: the last round did not halve it
                width_before = width
            elif guess is None:
                guess = top if over_at is None else bottom  # towards the side not yet known
        guess = min(top, max(bottom, guess))


def _crossing(size: dict, limit: float, slope: float | None) -> int | None:
    """Where the line through the two (count, size) points nearest to ``limit``, size
    against log(count), reaches it; through one point, the line of ``slope``; None when
    there is no such line, or it does not rise."""
    by_nearness = sorted(size.items(), key=lambda item: abs(item[1] - limit))
    nearest = by_nearness[:1]
    # the second point at least 20% of a count away (neighbouring counts differ by less than
    # their fits' noise, which would make the slope wild), on the limit's other side if any
    others = [item for item in by_nearness[1:] if abs(math.log(item[0]) - math.log(nearest[0][0])) >= 0.18]
    across = [item for item in others if (item[1] > limit) != (nearest[0][1] > limit)]
    if others:
        nearest = sorted(nearest + (across or others)[:1])
    if len(nearest) == 2 and nearest[1][1] > nearest[0][1]:
        (k0, s0), (k1, s1) = nearest
        slope_here = (s1 - s0) / (math.log(k1) - math.log(k0))
    elif slope is not None and slope > 0:
        (k0, s0), slope_here = nearest[0], slope
    elif nearest:
        # a file grew by about 0.35 of its size per e-fold of colours around 50 colours
        (k0, s0), slope_here = nearest[0], 0.35 * nearest[0][1]
    else:
        return None
    return int(math.exp(min(math.log(k0) + (limit - s0) / slope_here, 20.0)))


def _slope(files: _Files, level: float) -> float | None:
    """Bytes per e-fold of colours between the two largest counts written at ``level``."""
    counts = sorted(count for (count, at) in files._sizes if at == level)[-2:]
    if len(counts) < 2:
        return None
    (k0, k1) = counts
    return (files.size(k1, level) - files.size(k0, level)) / (math.log(k1) - math.log(k0))


def _first_guess(files: _Files, level: float, limit: int, low: int, high: int, known: int | None) -> int | None:
    """A count to try first: one found for another space or level (their sizes are close),
    else where a file would reach ``limit`` if it grew from 16 colours' by 0.7 of that size
    per e-fold of colours (CQ100's photos grew by 0.57 to 0.95), so that the largest count,
    the slowest to fit, is fitted only when it may fit."""
    if known is not None:
        return known
    start = min(high, max(low, 16))
    base = files.quick_size(start, level)
    if base > limit:
        return start
    return min(high, max(start, int(start * math.exp((limit / base - 1) / 0.7))))


def _judge(original: np.ndarray) -> str:
    height, width = original.shape[:2]
    return _JUDGE if min(height, width) >= METRICS[_JUDGE].min_side else "psnr"


def fit_budget(pixels: np.ndarray, settings: Settings, limit: int, *, animation=None) -> Choice:
    """The best-looking output (SSIMULACRA2; PSNR for images under 8 pixels on a side) of at
    most ``limit`` bytes among ``settings.search_variants`` (colour space x dither level) and
    counts in ``[min_colors, n_colors]``. Raises :class:`BudgetNotMetError` when none fits.
    The frames of an ``animation`` come stacked in ``pixels``: the budget is the whole file's."""
    spaces = _Spaces(pixels, settings, exact=False, animation=animation)
    judge = _judge(pixels)
    candidates, steps, found_before, slope = [], [], None, None
    for space, level in settings.search_variants:
        files = spaces.files(space)
        low, high = settings.min_colors, _ceiling(files.prepared, settings)
        first = _first_guess(files, level, limit, low, high, found_before)
        found = largest_fitting(files, level, limit, low, high, first=first, slope=slope)
        slope = slope or _slope(files, level)
        if found is not None:
            found_before = found_before or found
            candidates.append((space, found, level))
    if not candidates:
        smallest = min(spaces.files(space).size(settings.min_colors, level) for space, level in settings.search_variants)
        raise BudgetNotMetError(
            f"no output fits in {limit:,} bytes: the smallest, with {settings.min_colors} colours, is "
            f"{smallest:,} bytes", smallest=smallest)
    best = None
    for space, n_colors, level in candidates:
        files = spaces.files(space)
        files.forget_encodings({(n_colors, level)})
        labels, palette = files.labels(n_colors, level), files.quantization(n_colors).palette
        if len(palette) >= files.prepared.n_distinct and level == 0:
            value = METRICS[judge].identical  # every colour kept: lossless
        else:
            value = METRICS[judge].function(ImagePair(pixels, labels=labels, palette=palette))
        size = files.size(n_colors, level)
        steps.append(SearchStep(n_colors, value, True, level, size, space))
        if best is None or (value, -size) > best[0]:
            best = ((value, -size), space, n_colors, level)
    _, space, n_colors, level = best
    files = spaces.files(space)
    return Choice(n_colors, level, files.quantization(n_colors), files.labels(n_colors, level),
                  files.encoded(n_colors, level), tuple(steps), color_space=space)


def smallest_meeting_target(pixels: np.ndarray, settings: Settings, limit: int | None = None, *,
                            animation=None) -> Choice:
    """The smallest file meeting ``settings.target`` among ``settings.search_variants``
    (colour space x dither level) and the counts in ``[min_colors, n_colors]`` (each
    variant's fewest colours that meet it: more colours only add bytes). With ``limit``,
    that file must fit in it, else :class:`BudgetNotMetError`. Raises
    :class:`QualityTooLowError` when no variant meets the target (``--quality``'s fallback
    applies as in :func:`search_n_colors`)."""
    spaces = _Spaces(pixels, settings, exact=True, animation=animation)
    target = settings.target
    best = fallback = None
    trace, missed = [], []
    for space, level in settings.search_variants:
        files = spaces.files(space)
        variant = settings.with_changes(color_space=space, dither=level)
        values: dict[int, float] = {}  # this variant's measured counts
        try:
            found = _search_variant(files, pixels, variant, values, best)
        except QualityTooLowError as error:
            missed.append(error)
            found = None
        size = None if found is None else files.size(found.n_colors, level)
        trace += [SearchStep(count, value, target.met_by(value), level, files.known_size(count, level), space)
                  for count, value in values.items()]
        if found is None:
            continue
        chosen = _Chosen(found.n_colors, level, size, space)
        if not found.target_met:  # --quality's lower end: kept only if nothing meets the target
            fallback = fallback or chosen
        elif best is None or chosen.size < best.size:
            best = chosen
    chosen = best or fallback
    if chosen is None:
        raise max(missed, key=lambda error: error.best_value if target.higher_is_better else -error.best_value)
    if limit is not None and chosen.size > limit:
        raise BudgetNotMetError(
            f"{target.describe()} needs {chosen.size:,} bytes ({chosen.n_colors} colours"
            f"{_dither_words(chosen.dither)}), over the budget of {limit:,}", smallest=chosen.size)
    files = spaces.files(chosen.space)
    return Choice(chosen.n_colors, chosen.dither, files.quantization(chosen.n_colors),
                  files.labels(chosen.n_colors, chosen.dither), files.encoded(chosen.n_colors, chosen.dither),
                  tuple(trace), target_met=chosen is best, color_space=chosen.space)


def _search_variant(files: _Files, pixels, variant: Settings, values: dict, best):
    """The fewest colours meeting the target in one variant; with a ``best`` file so far,
    only below the largest count whose file is smaller (None when there is none, or when
    that count misses the target: fewer colours would miss it too, nearly always)."""
    from .search import _TargetEvaluator

    high = variant.n_colors
    if best is not None:
        level, low = variant.dither, variant.min_colors
        high = largest_fitting(files, level, best.size - 1, low, min(high, _ceiling(files.prepared, variant)))
        if high is None or not _TargetEvaluator(files.prepared, pixels, variant, files.fits, values).meets(high):
            return None
    return search_n_colors(files.prepared, pixels, variant.with_changes(n_colors=high), fits=files.fits, values=values)


@dataclass(frozen=True)
class _Chosen:
    n_colors: int
    dither: float
    size: int
    space: str


def _dither_words(level: float) -> str:
    return "" if level == 0 else f", dithered at {level:g}"
