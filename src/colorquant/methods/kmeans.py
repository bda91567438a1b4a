"""K-Means (scikit-learn ``KMeans``) on the weighted distinct colours.

Fitting on distinct colours weighted by their pixel counts minimises exactly the same
objective as fitting on every pixel, at a cost that follows the number of distinct colours.
Photographs can still have hundreds of thousands of them, so above ``MAX_FIT_COLORS`` the
fit runs on a pixel-weighted sample, and a few Lloyd steps on the full histogram then move
the centres to where all the colours pull them.

Lloyd's algorithm stops in a local minimum that depends on its start: scikit-learn's own
fits of one photo at one count differ by about 0.1 dB between random states. After Lloyd, a
few *swaps* move one centre from where it is least needed to where the error is largest
(the targeted form of Fränti's random-swap clustering) and are kept only if they lower the
error; on CQ100 that gains 0.064, 0.042 and 0.027 dB at 16, 64 and 256 colours, and a
colour or two in the auto-K search.

The k-means++ seeds come from a small pixel-weighted sample (8,192 draws) that does not
depend on the colour count, and they are grown one at a time, so the first ``k`` seeds are
the same whether ``k`` or 256 are asked for; the points Lloyd runs on depend on the count
only through a coarse size tier (16k, 32k or 64k draws). The auto-K search, which fits one
image at many counts, therefore seeds once and draws each tier's sample once, and starts
Lloyd at each count from a prefix of the same seeds; a fixed-count run computes exactly
the same start, so it gets exactly the same palette as the search saw.
"""

from __future__ import annotations

import functools
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
# k-means++ seeds are drawn from a pixel-weighted sample of this many draws. Seeding costs
# points x seeds x trials and Lloyd moves the seeds anyway: on CQ100 at 256 colours seeding
# on the 64k-draw sample took 0.4 s of 1.0 s per photo, and seeding on 8,192 draws gave the
# same PSNR at 16, 64 and 256 colours (within 0.005 dB) in 35% less time at 256 colours.
SEED_DRAWS = 8192
# Full-histogram Lloyd steps after a sampled fit (the final remap is one more assignment).
REFINE_STEPS = 2
# Lloyd's iterations from the seeds: the last of scikit-learn's default 300 move the centres
# by hundredths of a level, and the swaps and full-histogram steps that follow go on from
# wherever it stops (measured on CQ100 at 16/64/256 colours: no loss of PSNR at 20, and 15%
# less time at 256 colours).
LLOYD_MAX_ITER = 20
# Swaps tried after Lloyd, and the Lloyd iterations that settle each before it is judged.
# With 2, the auto-K answer for ball_caps at 35 dB was 75 or 76 colours depending on the
# random state; with 3, 75 for each of six; 4 cost the search another 15%.
SWAP_ATTEMPTS = 3
SWAP_LLOYD_ITER = 5


class _Shared:
    """What fits of one histogram share (the auto-K search fits it at many counts)."""

    def __init__(self, histogram: ColorHistogram):
        self.weights = histogram.counts.astype(np.float64)  # every colour's pixel count
        self.seedings: dict[int, GreedySeeding] = {}  # by random_state
        self.starts: dict[tuple[int | None, int], _Start] = {}  # by (draws, random_state)


# histogram -> _Shared; dropped with the histogram.
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _shared(histogram: ColorHistogram) -> _Shared:
    if histogram not in _SHARED:
        _SHARED[histogram] = _Shared(histogram)
    return _SHARED[histogram]


def fit_palette(
    histogram: ColorHistogram, n_colors: int, *, random_state: int = 0
) -> PaletteFit:
    """K-Means centres of the histogram's colours, weighted by pixel count."""
    start = _start_for(histogram, n_colors, random_state)
    seeds = _seeding_for(histogram, random_state).first(n_colors)
    if len(seeds) < n_colors:
        # The seeding sample holds fewer distinct colours than wanted (one colour covering
        # nearly every pixel): seed on the fit's own points, which hold more.
        seeds = start.seeds.first(n_colors)

    with warnings.catch_warnings():
        # Fewer distinct points than clusters only means some centres coincide; we dedupe.
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=len(seeds), init=seeds, n_init=1, max_iter=LLOYD_MAX_ITER)
        model.fit(start.points, sample_weight=start.weights)
        # Seeded by the fit (not by the search's path), so a count gets the same palette
        # whether it is asked for or tried by the search.
        rng = np.random.default_rng([random_state, n_colors])
        centres = swap_refine(start.points, start.weights, model, rng, SWAP_ATTEMPTS)
    centres = centres.astype(np.float64)

    if start.sampled:
        centres = lloyd_refine(histogram.features, _shared(histogram).weights, centres, REFINE_STEPS,
                               histogram.color_space)
    return PaletteFit(palette=centres)


def sample_draws(n_colors: int) -> int:
    """Sample size for ``n_colors`` clusters: 1,024 draws each, as a power of two in bounds."""
    wanted = SAMPLE_DRAWS_PER_COLOR * max(1, n_colors)
    return min(MAX_SAMPLE_DRAWS, max(MIN_SAMPLE_DRAWS, 1 << (wanted - 1).bit_length()))


class _Start:
    """The points one size tier fits on."""

    def __init__(self, histogram: ColorHistogram, draws: int | None, random_state: int):
        self.rng = np.random.default_rng([random_state, draws or 0])
        self.sampled = draws is not None
        if self.sampled:
            indices, self.weights = weighted_sample(histogram, draws, self.rng)
            points = histogram.features[indices]
        else:
            points, self.weights = histogram.features, _shared(histogram).weights
        self.points = np.ascontiguousarray(points, dtype=np.float32)

    @functools.cached_property
    def seeds(self) -> GreedySeeding:
        """Seeds grown on these points, for when the seeding sample runs out of colours."""
        return GreedySeeding(self.points, self.weights, self.rng)


def _seeding_for(histogram: ColorHistogram, random_state: int) -> GreedySeeding:
    """The histogram's k-means++ seeds, shared by every count: grown on ``SEED_DRAWS``
    pixel-weighted draws, or on every colour when there are no more than that."""
    seedings = _shared(histogram).seedings
    if random_state not in seedings:
        rng = np.random.default_rng(random_state)
        if histogram.n_distinct > SEED_DRAWS:
            indices, weights = weighted_sample(histogram, SEED_DRAWS, rng)
            points = histogram.features[indices]
        else:
            points, weights = histogram.features, _shared(histogram).weights
        seedings[random_state] = GreedySeeding(np.ascontiguousarray(points, dtype=np.float32), weights, rng)
    return seedings[random_state]


def _start_for(histogram: ColorHistogram, n_colors: int, random_state: int) -> _Start:
    draws = sample_draws(n_colors) if histogram.n_distinct > MAX_FIT_COLORS else None
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


def swap_refine(
    points: np.ndarray, weights: np.ndarray, model: KMeans, rng: np.random.Generator, attempts: int
) -> np.ndarray:
    """Centres of a fitted ``model`` after up to ``attempts`` swaps that each lowered its error.

    A swap merges the two clusters whose merge adds the least error (Ward's cost
    ``w_i w_j / (w_i + w_j) |c_i - c_j|^2``; an empty cluster costs nothing to merge) and puts
    the freed centre at a point of the cluster with the largest squared error, drawn with
    probability proportional to weight x squared distance (k-means++ within that cluster).
    A few Lloyd iterations settle the swap; it is kept only if the weighted error fell.
    """
    centres, labels, inertia = model.cluster_centers_, model.labels_, model.inertia_
    n_clusters = len(centres)
    if n_clusters < 3:
        return centres
    for _ in range(attempts):
        squared_error = np.einsum("nc,nc->n", points - centres[labels], points - centres[labels])
        cluster_error = np.bincount(labels, weights * squared_error, n_clusters)
        cluster_weight = np.bincount(labels, weights, n_clusters)

        gaps = centres.astype(np.float64)
        gaps = np.einsum("ijc,ijc->ij", gaps[:, None] - gaps[None], gaps[:, None] - gaps[None])
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
        new_centre = points[members[min(np.searchsorted(potential, rng.random() * potential[-1]),
                                        len(members) - 1)]]
        trial = centres.copy()
        if pair_weight[kept, freed] > 0:
            trial[kept] = (cluster_weight[kept] * centres[kept] + cluster_weight[freed] * centres[freed]
                           ) / pair_weight[kept, freed]
        trial[freed] = new_centre
        settled = KMeans(n_clusters=n_clusters, init=trial, n_init=1, max_iter=SWAP_LLOYD_ITER)
        settled.fit(points, sample_weight=weights)
        if settled.inertia_ < inertia:
            centres, labels, inertia = settled.cluster_centers_, settled.labels_, settled.inertia_
    return centres


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
