"""The distinct-colour histogram and its pixel-weighted samples."""

from __future__ import annotations

import numpy as np

from colorquant.histogram import color_histogram


def test_color_histogram_counts_and_inverse(coffee):
    pixels = coffee.reshape(-1, 3)
    histogram = color_histogram(pixels)
    assert histogram.counts.sum() == len(pixels)
    assert np.array_equal(histogram.colors[histogram.inverse], pixels)
    assert len(np.unique(pixels, axis=0)) == histogram.n_distinct


def test_weighted_sample_is_systematic_and_unbiased(coffee):
    from colorquant.histogram import weighted_sample

    histogram = color_histogram(coffee.reshape(-1, 3))
    n_draws = 4096
    indices, weights = weighted_sample(histogram, n_draws, np.random.default_rng(0))
    assert weights.sum() == n_draws
    step = histogram.counts.sum() / n_draws
    # every colour is drawn floor or ceil of count / step times (0 for absent ones)
    drawn = np.zeros(histogram.n_distinct)
    drawn[indices] = weights
    expected = histogram.counts / step
    assert np.all(drawn >= np.floor(expected)) and np.all(drawn <= np.ceil(expected))


def test_histogram_equals_numpy_unique_for_every_channel_count(coffee):
    rng = np.random.default_rng(5)
    cases = [coffee.reshape(-1, 3),  # a photo: tens of thousands of colours
             np.concatenate([coffee.reshape(-1, 3), rng.integers(0, 256, (coffee.shape[0] * coffee.shape[1], 1), np.uint8)], axis=1),
             rng.integers(0, 256, (3000, 1), np.uint8), rng.integers(0, 4, (3000, 2), np.uint8),
             np.zeros((1, 3), np.uint8)]
    for pixels in cases:
        histogram = color_histogram(np.ascontiguousarray(pixels))
        colors, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
        assert histogram.inverse.dtype == np.int32
        assert np.array_equal(histogram.colors, colors)
        assert np.array_equal(histogram.counts, counts)
        assert np.array_equal(histogram.inverse, inverse.reshape(-1))
