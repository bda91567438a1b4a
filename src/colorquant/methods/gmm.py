"""Gaussian mixture (scikit-learn ``GaussianMixture``) on a bounded pixel sample.

Each distinct colour goes to its most probable component, and a component's palette colour
is the mean of the pixels it received (not the Gaussian's mean, which a broad component can
place away from its pixels). The fit runs in float64 on at most ``MAX_FIT_SAMPLES`` pixels
drawn with the histogram's weights, with a ``reg_covar`` of one intensity level squared so
that flat images (a few colours repeated many times) cannot make a covariance singular.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.mixture import GaussianMixture

from ..colorspace import lightness_range
from ..histogram import ColorHistogram
from ..remap import palette_means
from . import PaletteFit

# The covariance types and the default (spherical, the best of the four on CQ100 at 16
# colours: benchmarks/core.py, README) are declared with the method in methods/__init__.py.
MAX_FIT_SAMPLES = 20000
# Variance added to every covariance, in (0..255 intensity levels)^2 (scaled for other spaces).
REG_COVAR = 1.0
# Rows per predict call, to bound the (rows x components) responsibility matrices.
_PREDICT_CHUNK = 65536


def fit_palette(
    histogram: ColorHistogram,
    n_colors: int,
    *,
    random_state: int = 0,
    covariance_type: str = "spherical",
) -> PaletteFit:
    """Mixture components of a pixel sample; palette = mean of the pixels each one takes."""
    rng = np.random.default_rng(random_state)
    colors = histogram.features.astype(np.float64)  # the mixture is fitted in float64
    n_pixels = int(histogram.counts.sum())
    if n_pixels > MAX_FIT_SAMPLES:
        # Uniformly drawn pixels: each colour with probability proportional to its count.
        drawn = histogram.inverse[rng.integers(0, n_pixels, size=MAX_FIT_SAMPLES)]
        sample = colors[np.sort(drawn)]
    else:
        sample = np.repeat(colors, histogram.counts, axis=0)

    model = GaussianMixture(
        n_components=n_colors,
        covariance_type=covariance_type,
        reg_covar=REG_COVAR * (lightness_range(histogram.color_space) / 255.0) ** 2,
        random_state=random_state,
        max_iter=100,
    )
    with warnings.catch_warnings():
        # Flat images: k-means initialisation may find fewer distinct clusters than asked.
        warnings.simplefilter("ignore")
        model.fit(sample)
    color_labels = np.concatenate(
        [
            model.predict(colors[start : start + _PREDICT_CHUNK])
            for start in range(0, len(colors), _PREDICT_CHUNK)
        ]
    )
    means, _ = palette_means(colors, histogram.counts.astype(np.float64), color_labels, n_colors)
    return PaletteFit(palette=means, color_labels=color_labels)
