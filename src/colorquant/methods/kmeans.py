"""K-Means on the weighted distinct colours: k-means++ seeds, Lloyd's algorithm, swaps.

colorquant's own weighted k-means in numpy (no scikit-learn at run time: importing it took
1.0 s, five times the work of compressing a photo). scikit-learn's ``KMeans`` stays the
reference: on the same weighted points from the same seeds, the error of this fit is within
0.5% of KMeans's (tests/test_methods.py, on every CQ100 photo at 16, 64 and 256 colours).

Fitting on distinct colours weighted by their pixel counts minimises exactly the same
objective as fitting on every pixel, at a cost that follows the number of distinct colours.
Photographs still have hundreds of thousands of them, so above ``MAX_FIT_COLORS`` the fit
runs on a pixel-weighted sample whose size ``--speed`` sets (see ``effort.py``), and a few
Lloyd steps on the full histogram then move the centres to where all the colours pull them.

Lloyd's algorithm stops in a local minimum that depends on its start. After Lloyd, a few
*swaps* move one centre from where it is least needed to where the error is largest (the
targeted form of Fränti's random-swap clustering) and are kept only if they lower the error.

The k-means++ seeds come from a small pixel-weighted sample (8,192 draws) that does not
depend on the colour count, and they are grown one at a time, so the first ``k`` seeds are
the same whether ``k`` or 256 are asked for; the points Lloyd runs on depend on the count
only through a coarse size tier. The auto-K search, which fits one image at many counts,
therefore seeds once and draws each tier's sample once, and starts Lloyd at each count from
a prefix of the same seeds; a fixed-count run computes exactly the same start, so it gets
exactly the same palette as the search saw.
"""

from __future__ import annotations

import functools
import math
import weakref

import numpy as np

from ..colorspace import to_features, to_srgb8
from ..effort import DEFAULT_SPEED, effort_for
from ..histogram import ColorHistogram, weighted_sample
from ..remap import nearest_palette_index, palette_means
from . import PaletteFit

# Above this many distinct colours the seeding and Lloyd iterations run on a sample.
MAX_FIT_COLORS = 16384
# k-means++ seeds are drawn from a pixel-weighted sample of ``Effort.seed_draws`` draws.
# Seeding costs points x seeds x trials and Lloyd moves the seeds anyway: on CQ100 at 256
# colours seeding on a 64k-draw sample took 0.4 s of 1.0 s per photo, and seeding on 8,192
# draws gave the same PSNR at 16, 64 and 256 colours (within 0.005 dB) in 35% less time.
# Lloyd stops early once no centre moves by more than this (in feature units: 0..255 levels
# for sRGB; scaled for the other spaces).
SHIFT_TOLERANCE = 0.01
# Rows per chunk of the distance products: chunk x 256 float32 distances stay near 2 MiB
# (8,192 rows took 8 MiB of the peak memory of compressing a photo, for no gain in speed).
_CHUNK_ROWS = 2048
# Centres up to which the assignment packs each centre's index into its distance (see
# _Assigner), and the distances per chunk then.
_PACKED_MAX_CENTRES = 128
_PACKED_CHUNK_DISTANCES = 1 << 16


class _Shared:
    """What fits of one histogram share (the auto-K search fits it at many counts)."""

    def __init__(self, histogram: ColorHistogram):
        self.histogram = weakref.ref(histogram)
        self.seedings: dict[tuple, GreedySeeding] = {}  # by (random state, draws)
        self.starts: dict[tuple[int | None, int], _Start] = {}  # by (draws, random_state)

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """Every colour's pixel count as float64, for fits on every colour. Made only for
        histograms small enough for that: a photo's (sampled) keeps only its int counts."""
        return self.histogram().counts.astype(np.float64)


# histogram -> _Shared; dropped with the histogram.
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shared(histogram: ColorHistogram) -> _Shared:
    if histogram not in _SHARED:
        _SHARED[histogram] = _Shared(histogram)
    return _SHARED[histogram]


def fit_palette(
    histogram: ColorHistogram, n_colors: int, *, random_state: int = 0, speed: int = DEFAULT_SPEED
) -> PaletteFit:
    """K-Means centres of the histogram's colours, weighted by pixel count."""
    effort = effort_for(speed)
    start = _start_for(histogram, n_colors, random_state, effort)
    tolerance = SHIFT_TOLERANCE * _scale(histogram.color_space)
    best = None
    for restart in range(effort.restarts):
        seeding_state = random_state if restart == 0 else [random_state, restart]
        seeds = _seeding_for(histogram, seeding_state, effort.seed_draws).first(n_colors)
        if len(seeds) < n_colors:
            # The seeding sample holds fewer distinct colours than wanted (one colour covering
            # nearly every pixel): seed on the fit's own points, which hold more.
            seeds = start.seeds.first(n_colors)
        fitted = lloyd(start.points, start.weights, seeds, effort.lloyd_iterations, tolerance)
        # Seeded by the fit (not by the search's path), so a count gets the same palette
        # whether it is asked for or tried by the search.
        rng = np.random.default_rng([random_state, n_colors, restart])
        swapped = swap_refine(start.points, start.weights, fitted, rng, effort.swaps,
                              effort.swap_iterations, tolerance)
        if best is None or swapped.inertia < best.inertia:
            best = swapped
    centres = best.centres
    if start.sampled and effort.refine_steps:
        centres = lloyd_refine(histogram.features, histogram.counts, centres,
                               effort.refine_steps, histogram.color_space)
    return PaletteFit(palette=centres)


def _scale(color_space: str) -> float:
    from ..colorspace import lightness_range

    return lightness_range(color_space) / 255.0


class _Start:
    """The points one size tier fits on."""

    def __init__(self, histogram: ColorHistogram, draws: int | None, random_state: int):
        self.rng = np.random.default_rng([random_state, draws or 0])
        self.sampled = draws is not None
        if self.sampled:
            indices, self.weights = weighted_sample(histogram, draws, self.rng)
            points = histogram.features_of(indices)
        else:
            points, self.weights = histogram.features, _shared(histogram).weights
        self.points = np.ascontiguousarray(points, dtype=np.float32)

    @functools.cached_property
    def seeds(self) -> GreedySeeding:
        """Seeds grown on these points, for when the seeding sample runs out of colours."""
        return GreedySeeding(self.points, self.weights, self.rng)


def _seeding_for(histogram: ColorHistogram, random_state, draws: int) -> GreedySeeding:
    """The histogram's k-means++ seeds, shared by every count: grown on ``draws``
    pixel-weighted draws, or on every colour when there are no more than that."""
    seedings = _shared(histogram).seedings
    key = (str(random_state), draws)
    if key not in seedings:
        rng = np.random.default_rng(random_state)
        if histogram.n_distinct > draws:
            indices, weights = weighted_sample(histogram, draws, rng)
            points = histogram.features_of(indices)
        else:
            points, weights = histogram.features, _shared(histogram).weights
        seedings[key] = GreedySeeding(np.ascontiguousarray(points, dtype=np.float32), weights, rng)
    return seedings[key]


def _start_for(histogram: ColorHistogram, n_colors: int, random_state: int, effort) -> _Start:
    draws = effort.sample_draws(n_colors) if histogram.n_distinct > MAX_FIT_COLORS else None
    starts = _shared(histogram).starts
    key = (draws, random_state)
    if key not in starts:
        starts[key] = _Start(histogram, draws, random_state)
    return starts[key]


class GreedySeeding:
    """k-means++ seeds of weighted points (greedy, as scikit-learn's), grown on demand.

    Each new seed is the best of a few candidates drawn with probability proportional to
    weight x squared distance to the nearest seed so far ("best" = lowest total weighted
    distance afterwards). The number of candidates depends on the seed's index, not on how many
    seeds are wanted, so ``first(k)`` is a prefix of ``first(m)`` for any ``m > k``.
    scikit-learn's ``kmeans_plusplus`` draws its candidates per call for a fixed total and
    cannot be resumed, hence this small class.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray, rng: np.random.Generator):
        self.points = points.astype(np.float64)
        self.weights = weights
        self.rng = rng
        self.squared_norms = np.einsum("nc,nc->n", self.points, self.points)
        self.centres: list[np.ndarray] = []
        self.closest: np.ndarray | None = None  # squared distance of each point to its nearest seed

    def first(self, k: int) -> np.ndarray:
        """The first ``k`` seeds (fewer when the points run out of distinct positions)."""
        while len(self.centres) < k and self._add():
            pass
        return np.array(self.centres[:k], dtype=np.float32)

    def _distances(self, indices: np.ndarray) -> np.ndarray:
        """Squared distances of every point to the points at ``indices``, (len(indices), n)."""
        candidates = self.points[indices]
        cross = candidates @ self.points.T
        return np.maximum(self.squared_norms[indices, None] - 2 * cross + self.squared_norms[None, :], 0.0)

    def _add(self) -> bool:
        if self.closest is None:
            first = self.rng.choice(len(self.points), p=self.weights / self.weights.sum())
            self.closest = self._distances(np.array([first]))[0]
            self.centres.append(self.points[first])
            return True
        potential = self.closest * self.weights
        total = potential.sum()
        if total <= 0:
            return False  # every point already coincides with a seed
        n_trials = 2 + int(math.log(len(self.centres) + 1))
        cumulative = np.cumsum(potential)
        candidates = np.searchsorted(cumulative, self.rng.random(n_trials) * total)
        candidates = np.minimum(candidates, len(self.points) - 1)
        trial_closest = np.minimum(self.closest[None, :], self._distances(candidates))
        best = int(np.argmin(trial_closest @ self.weights))
        self.closest = trial_closest[best]
        self.centres.append(self.points[candidates[best]])
        return True


class Fitted:
    """Centres of a Lloyd run with the labels and the weighted error they give."""

    def __init__(self, centres: np.ndarray, labels: np.ndarray, inertia: float):
        self.centres, self.labels, self.inertia = centres, labels, inertia


class _Assigner:
    """Nearest centre of every point, with buffers reused between iterations.

    Distances come from one matrix product per chunk. Up to ``_PACKED_MAX_CENTRES`` centres
    the product gives whole squared distances (``|x|^2 - 2 x.c + |c|^2``, centres by rows,
    points by columns) and the nearest centre of each point is found by one ``minimum``
    down the columns, with each centre's index written over the low 8 bits of its distance:
    non-negative float32 values order as their int32 bits, and numpy's ``argmin`` along short
    rows costs a call per row (16,384 points, 64 centres: 0.77 ms per assignment against
    1.19 ms; 16 centres: 0.17 against 0.80). Distances within 2^-15 of each other count as
    ties there, which moves no point that matters. For more centres ``argmin`` along rows of
    ``-2 x.c + |c|^2`` is faster.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray):
        self.points, self.weights = points, weights
        self.norms = np.einsum("nc,nc->n", points.astype(np.float64), points.astype(np.float64))
        self.labels = np.empty(len(points), dtype=np.intp)
        self.squared = np.empty(len(points))  # squared distance of each point to its centre
        self._by_rows = self._by_columns = None

    def __call__(self, centres: np.ndarray) -> float:
        """Label every point with its nearest centre; returns the weighted squared error."""
        if len(centres) <= _PACKED_MAX_CENTRES:
            self._assign_packed(centres.astype(np.float32))
        else:
            self._assign_argmin(centres.astype(np.float32))
        np.maximum(self.squared, 0.0, out=self.squared)  # rounding below zero
        return float(self.squared @ self.weights)

    def _assign_packed(self, centres: np.ndarray) -> None:
        n_points, n_channels = self.points.shape
        if self._by_columns is None:
            self._by_columns = np.empty((n_channels + 2, n_points), dtype=np.float32)
            self._by_columns[:n_channels] = self.points.T
            self._by_columns[n_channels] = 1.0
            self._by_columns[n_channels + 1] = self.norms
        terms = np.empty((len(centres), n_channels + 2), dtype=np.float32)
        terms[:, :n_channels] = -2.0 * centres
        terms[:, n_channels] = np.einsum("kc,kc->k", centres, centres)
        terms[:, n_channels + 1] = 1.0
        # the distances of a chunk stay in the L2 cache (64K of them): twice that, 64 centres
        # took twice as long
        rows = min(max(_PACKED_CHUNK_DISTANCES // len(centres), 256), 4096)
        distances = np.empty((len(centres), min(rows, n_points)), dtype=np.float32)
        bits = distances.view(np.int32)
        index = np.arange(len(centres), dtype=np.int32)[:, None]
        best = np.empty(distances.shape[1], dtype=np.int32)
        high = np.int32(~0xFF)
        for start in range(0, n_points, rows):
            n = min(rows, n_points - start)
            np.matmul(terms, self._by_columns[:, start : start + n], out=distances[:, :n])
            np.bitwise_and(bits[:, :n], high, out=bits[:, :n])
            np.bitwise_or(bits[:, :n], index, out=bits[:, :n])
            np.minimum.reduce(bits[:, :n], axis=0, out=best[:n])
            self.labels[start : start + n] = best[:n] & 0xFF
            np.bitwise_and(best[:n], high, out=best[:n])
            self.squared[start : start + n] = best[:n].view(np.float32)

    def _assign_argmin(self, centres: np.ndarray) -> None:
        n_points, n_channels = self.points.shape
        if self._by_rows is None:
            self._by_rows = np.ones((n_points, n_channels + 1), dtype=np.float32)
            self._by_rows[:, :n_channels] = self.points
        terms = np.vstack([-2.0 * centres.T, np.einsum("kc,kc->k", centres, centres)[None, :]])
        rows = min(_CHUNK_ROWS, n_points)
        distances = np.empty((rows, len(centres)), dtype=np.float32)
        for start in range(0, n_points, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n_points)
            chunk = distances[: stop - start]
            np.matmul(self._by_rows[start:stop], terms, out=chunk)
            np.argmin(chunk, axis=1, out=self.labels[start:stop])
            self.squared[start:stop] = np.take_along_axis(chunk, self.labels[start:stop, None], 1)[:, 0]
        self.squared += self.norms


def _means(points, weights, labels, n_clusters, previous):
    """Weighted mean of each cluster; an empty cluster keeps its previous centre (marked)."""
    totals = np.bincount(labels, weights=weights, minlength=n_clusters)
    centres = np.empty_like(previous)
    for channel in range(points.shape[1]):
        sums = np.bincount(labels, weights=weights * points[:, channel], minlength=n_clusters)
        with np.errstate(invalid="ignore", divide="ignore"):
            centres[:, channel] = np.where(totals > 0, sums / totals, previous[:, channel])
    return centres, totals


def lloyd(points: np.ndarray, weights: np.ndarray, seeds: np.ndarray, max_iterations: int,
          tolerance: float = 0.0) -> Fitted:
    """Weighted Lloyd iterations from ``seeds``: at most ``max_iterations``, stopping when no
    centre moves by more than ``tolerance``; the labels and error returned are those of the
    centres returned.

    An emptied cluster is moved to the point that adds most to the error (weight times
    squared distance to its centre), as scikit-learn does, so no centre is wasted.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float64)
    centres = np.asarray(seeds, dtype=np.float64).copy()
    assign = _Assigner(points, weights)
    inertia = assign(centres)
    for _ in range(max_iterations):
        updated, totals = _means(points, weights, assign.labels, len(centres), centres)
        empty = np.flatnonzero(totals == 0)
        if len(empty):
            contribution = weights * assign.squared
            farthest = np.argsort(-contribution, kind="stable")[: len(empty)]
            updated[empty[: len(farthest)]] = points[farthest]
        shift = float(np.max(np.abs(updated - centres))) if len(centres) else 0.0
        centres = updated
        inertia = assign(centres)
        if shift <= tolerance:
            break
    return Fitted(centres, assign.labels.copy(), inertia)


def swap_refine(points: np.ndarray, weights: np.ndarray, fitted: Fitted, rng: np.random.Generator,
                attempts: int, settle_iterations: int = 5, tolerance: float = 0.0) -> Fitted:
    """A Lloyd fit after up to ``attempts`` swaps that each lowered its error.

    A swap merges the two clusters whose merge adds the least error (Ward's cost
    ``w_i w_j / (w_i + w_j) |c_i - c_j|^2``; an empty cluster costs nothing to merge) and puts
    the freed centre at a point of the cluster with the largest squared error, drawn with
    probability proportional to weight x squared distance (k-means++ within that cluster).
    ``settle_iterations`` of Lloyd settle the swap; it is kept only if the weighted error fell.
    """
    centres, labels, inertia = fitted.centres, fitted.labels, fitted.inertia
    n_clusters = len(centres)
    if n_clusters < 3:
        return fitted
    points64 = points.astype(np.float64)
    for _ in range(attempts):
        offsets = points64 - centres[labels]
        squared_error = np.einsum("nc,nc->n", offsets, offsets)
        cluster_error = np.bincount(labels, weights * squared_error, n_clusters)
        cluster_weight = np.bincount(labels, weights, n_clusters)

        norms = np.einsum("kc,kc->k", centres, centres)
        gaps = np.maximum(norms[:, None] + norms[None, :] - 2.0 * (centres @ centres.T), 0.0)
        pair_weight = cluster_weight[:, None] + cluster_weight[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            merge_cost = np.where(pair_weight > 0,
                                  cluster_weight[:, None] * cluster_weight[None, :] / pair_weight, 0.0) * gaps
        np.fill_diagonal(merge_cost, np.inf)
        kept, freed = np.unravel_index(np.argmin(merge_cost), merge_cost.shape)
        worst = next(int(c) for c in np.argsort(-cluster_error, kind="stable") if c not in (kept, freed))

        members = np.flatnonzero(labels == worst)
        potential = np.cumsum(weights[members] * squared_error[members])
        if len(members) == 0 or potential[-1] <= 0:
            break  # no error left to split off: every cluster is a single colour
        new_centre = points64[members[min(np.searchsorted(potential, rng.random() * potential[-1]),
                                          len(members) - 1)]]
        trial = centres.copy()
        if pair_weight[kept, freed] > 0:
            trial[kept] = (cluster_weight[kept] * centres[kept] + cluster_weight[freed] * centres[freed]
                           ) / pair_weight[kept, freed]
        trial[freed] = new_centre
        settled = lloyd(points, weights, trial, settle_iterations, tolerance)
        if settled.inertia < inertia:
            centres, labels, inertia = settled.centres, settled.labels, settled.inertia
    return Fitted(centres, labels, inertia)


def lloyd_refine(
    features: np.ndarray, weights: np.ndarray, centres: np.ndarray, steps: int, color_space: str
) -> np.ndarray:
    """Lloyd iterations on the full weighted histogram, assigning on rounded centres.

    Assigning on the centres rounded to 8-bit sRGB is what the final remap will do, so each
    step lowers the error of the palette that is actually written.
    """
    for _ in range(steps):
        rounded = to_features(to_srgb8(centres, color_space), color_space)
        labels = nearest_palette_index(features, rounded)
        means, totals = palette_means(features, weights, labels, len(centres))
        centres = np.where(totals[:, None] > 0, means, centres)
    return centres
