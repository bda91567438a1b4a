"""The exact nearest-colour remap and the distinct-colour histogram."""

from __future__ import annotations

import numpy as np

from colorquant.histogram import color_histogram
from colorquant.metrics import histogram_mse, mse
from colorquant.remap import nearest_palette_index


def test_nearest_palette_index_matches_brute_force():
    rng = np.random.default_rng(7)
    colors = rng.integers(0, 256, size=(50_000, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    labels = nearest_palette_index(colors, palette)
    distances = ((colors[:, None, :].astype(np.int64) - palette[None].astype(np.int64)) ** 2).sum(-1)
    # exact: the chosen entry is at the minimum distance, and ties go to the lower index
    assert np.array_equal(labels, distances.argmin(axis=1))


def test_nearest_palette_index_handles_rgba():
    colors = np.array([[10, 10, 10, 0], [10, 10, 10, 255]], dtype=np.uint8)
    palette = np.array([[10, 10, 10, 255], [10, 10, 10, 0]], dtype=np.uint8)
    assert nearest_palette_index(colors, palette).tolist() == [1, 0]


def test_color_histogram_counts_and_inverse(coffee):
    pixels = coffee.reshape(-1, 3)
    histogram = color_histogram(pixels)
    assert histogram.counts.sum() == len(pixels)
    assert np.array_equal(histogram.colors[histogram.inverse], pixels)
    assert len(np.unique(pixels, axis=0)) == histogram.n_distinct


def test_histogram_mse_equals_pixel_mse(coffee):
    pixels = coffee.reshape(-1, 3)
    histogram = color_histogram(pixels)
    palette = np.array([[0, 0, 0], [128, 100, 90], [250, 240, 230]], dtype=np.uint8)
    color_labels = nearest_palette_index(histogram.colors, palette)
    quantized = palette[color_labels[histogram.inverse]]
    expected = mse(pixels, quantized)
    got = histogram_mse(histogram.colors, histogram.counts, palette, color_labels, len(pixels), 3)
    assert abs(got - expected) < 1e-9 * expected


def test_banded_ssim_equals_whole_image_ssim(coffee, monkeypatch):
    from skimage.metrics import structural_similarity

    import colorquant.metrics as metrics

    quantized = metrics.comparable(coffee // 32 * 32)
    whole = structural_similarity(coffee, quantized, channel_axis=-1, data_range=255)
    monkeypatch.setattr(metrics, "_SSIM_BAND_PIXELS", 3000)  # bands of 7 rows
    assert abs(metrics.ssim(coffee, quantized) - whole) < 1e-6


def test_mse_is_exact_in_bands(coffee, monkeypatch):
    import colorquant.metrics as metrics

    other = coffee[::-1]
    expected = np.mean((coffee.astype(np.float64) - other) ** 2)
    monkeypatch.setattr(metrics, "_MSE_CHUNK", 5000)
    assert metrics.mse(coffee, other) == expected
