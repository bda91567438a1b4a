"""K-Means (scikit-learn ``KMeans``) on the weighted distinct colours.

Fitting on distinct colours weighted by their pixel counts minimises exactly the same
objective as fitting on every pixel, at a cost that follows the number of distinct colours.
Photographs can still have hundreds of thousands of them, so above ``max_fit_colors`` the
fit runs on a pixel-weighted sample, and a few Lloyd steps on the full histogram then move
the centres to where all the colours pull them.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans

from ..colorspace import to_features, to_srgb8
from ..histogram import ColorHistogram, weighted_sample
from ..remap import nearest_palette_index, palette_means
from . import PaletteFit

# Above this many distinct colours the k-means++ start and Lloyd iterations run on a sample.
MAX_FIT_COLORS = 16384
# Pixels drawn for that sample (repeats fold into weights, so it holds fewer distinct colours):
# about 1,024 per cluster, within these bounds. More clusters need more points to place well;
# at 94 colours 16k draws lost 0.1 dB to KMeans on every pixel, 64k draws none (astronaut).
SAMPLE_DRAWS_PER_COLOR = 1024
MIN_SAMPLE_DRAWS, MAX_SAMPLE_DRAWS = 16384, 65536
# Full-histogram Lloyd steps after a sampled fit (the final remap is one more assignment).
REFINE_STEPS = 2


def fit_palette(
    histogram: ColorHistogram, n_colors: int, *, random_state: int = 0
) -> PaletteFit:
    """K-Means centres of the histogram's colours, weighted by pixel count."""
    rng = np.random.default_rng(random_state)
    features, weights = histogram.features, histogram.counts.astype(np.float64)
    sampled = histogram.n_distinct > MAX_FIT_COLORS
    if sampled:
        n_draws = min(MAX_SAMPLE_DRAWS, max(MIN_SAMPLE_DRAWS, SAMPLE_DRAWS_PER_COLOR * n_colors))
        indices, fit_weights = weighted_sample(histogram, n_draws, rng)
        fit_colors = features[indices]
    else:
        fit_colors, fit_weights = features, weights
    n_clusters = min(n_colors, len(fit_colors))

    model = KMeans(n_clusters=n_clusters, init="k-means++", n_init=1, random_state=random_state)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters only means some centres coincide; we dedupe.
        warnings.simplefilter("ignore")
        model.fit(fit_colors.astype(np.float32), sample_weight=fit_weights)
    centres = model.cluster_centers_.astype(np.float64)

    if sampled:
        centres = lloyd_refine(features, weights, centres, REFINE_STEPS, histogram.color_space)
    return PaletteFit(palette=centres)


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
