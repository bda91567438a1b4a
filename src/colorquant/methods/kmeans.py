"""K-Means (scikit-learn ``KMeans``) on the weighted distinct colours.

Fitting on distinct colours weighted by their pixel counts minimises exactly the same
objective as fitting on every pixel, at a cost that follows the number of distinct colours.
Photographs can still have hundreds of thousands of them, so above ``MAX_FIT_COLORS`` the
fit runs on a pixel-weighted sample, and a few Lloyd steps on the full histogram then move
the centres to where all the colours pull them.

The points fitted on and the k-means++ seeds depend on the colour count only through a
coarse size tier (16k, 32k or 64k sample draws), and the seeds are grown one at a time, so
the first ``k`` seeds are the same whether ``k`` or 256 are asked for. The auto-K search,
which fits one image at many counts, therefore draws the sample and seeds it once per tier
and starts Lloyd at each count from a prefix of the same seeds; a fixed-count run computes
exactly the same start, so it gets exactly the same palette as the search saw.
"""

from __future__ import annotations

import math
import warnings
import weakref

import numpy as np
from sklearn.cluster import KMeans

from ..colorspace import to_features, to_srgb8
from ..histogram import ColorHistogram, weighted_sample
from ..remap import nearest_palette_index, palette_means
from . import PaletteFit

# Above this many distinct colours the seeding and Lloyd iterations run on a sample.
MAX_FIT_COLORS = 16384
# Pixels drawn for that sample (repeats fold into weights, so it holds fewer distinct colours):
# about 1,024 per cluster, rounded up to a power of two within these bounds. More clusters
# need more points to place well; at 94 colours 16k draws lost 0.1 dB to KMeans on every
# pixel, 64k draws none (astronaut).
SAMPLE_DRAWS_PER_COLOR = 1024
MIN_SAMPLE_DRAWS, MAX_SAMPLE_DRAWS = 16384, 65536
# Full-histogram Lloyd steps after a sampled fit (the final remap is one more assignment).
REFINE_STEPS = 2

# histogram -> {(draws, random_state): _Start}; dropped with the histogram.
_STARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fit_palette(
    histogram: ColorHistogram, n_colors: int, *, random_state: int = 0
) -> PaletteFit:
    """K-Means centres of the histogram's colours, weighted by pixel count."""
    start = _start_for(histogram, n_colors, random_state)
    seeds = start.seeds.first(n_colors)

    model = KMeans(n_clusters=len(seeds), init=seeds, n_init=1, random_state=random_state)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters only means some centres coincide; we dedupe.
        warnings.simplefilter("ignore")
        model.fit(start.points, sample_weight=start.weights)
    centres = model.cluster_centers_.astype(np.float64)

    if start.sampled:
        centres = lloyd_refine(histogram.features, start.histogram_weights, centres, REFINE_STEPS,
                               histogram.color_space)
    return PaletteFit(palette=centres)


def sample_draws(n_colors: int) -> int:
    """Sample size for ``n_colors`` clusters: 1,024 draws each, as a power of two in bounds."""
    wanted = SAMPLE_DRAWS_PER_COLOR * max(1, n_colors)
    return min(MAX_SAMPLE_DRAWS, max(MIN_SAMPLE_DRAWS, 1 << (wanted - 1).bit_length()))


class _Start:
    """The points one size tier fits on, with their k-means++ seeds."""

    def __init__(self, histogram: ColorHistogram, draws: int | None, random_state: int):
        rng = np.random.default_rng(random_state)
        self.sampled = draws is not None
        self.histogram_weights = histogram.counts.astype(np.float64)  # every colour's, for refining
        if self.sampled:
            indices, self.weights = weighted_sample(histogram, draws, rng)
            points = histogram.features[indices]
        else:
            points, self.weights = histogram.features, self.histogram_weights
        self.points = np.ascontiguousarray(points, dtype=np.float32)
        self.seeds = GreedySeeding(self.points, self.weights, rng)


def _start_for(histogram: ColorHistogram, n_colors: int, random_state: int) -> _Start:
    draws = sample_draws(n_colors) if histogram.n_distinct > MAX_FIT_COLORS else None
    starts = _STARTS.setdefault(histogram, {})
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
