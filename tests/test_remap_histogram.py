"""The exact nearest-colour remap and the distinct-colour histogram."""

from __future__ import annotations

import numpy as np
import pytest

import colorquant as cq

from colorquant.histogram import color_histogram
from colorquant.metrics import histogram_mse, mse
from colorquant.remap import nearest_palette_index


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_nearest_palette_index_matches_brute_force(threads, monkeypatch):
    import colorquant.remap

    # 50,000 colours are 7 chunks: on 2 or 3 threads the parts are uneven
    monkeypatch.setenv("OMP_NUM_THREADS", threads)
    monkeypatch.setattr(colorquant.remap, "_MIN_PAIRS_PER_THREAD", 1)  # threads even for this size
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
    assert len(nearest_palette_index(colors[:0], palette)) == 0


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


def test_ssim_does_not_depend_on_the_number_of_threads(coffee, monkeypatch):
    import colorquant.metrics as metrics
    from colorquant.threads import thread_count

    quantized = coffee // 24 * 24
    monkeypatch.setattr(metrics, "_SSIM_BAND_PIXELS", 20000)  # about 33 bands
    figures = {}
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        assert thread_count() == int(threads)
        figures[threads] = metrics.ssim(coffee, quantized)
    assert figures["1"] == figures["2"] == figures["3"]


def test_mse_is_exact_in_bands(coffee, monkeypatch):
    import colorquant.metrics as metrics

    other = coffee[::-1]
    expected = np.mean((coffee.astype(np.float64) - other) ** 2)
    monkeypatch.setattr(metrics, "_MSE_CHUNK", 5000)
    assert metrics.mse(coffee, other) == expected


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


def test_kmeans_seeds_are_a_prefix_and_search_fits_equal_fixed_count_fits(coffee):
    from colorquant.methods.kmeans import GreedySeeding

    points = coffee.reshape(-1, 3)[::97].astype(np.float32)
    weights = np.ones(len(points))
    eight = GreedySeeding(points, weights, np.random.default_rng(3)).first(8)
    grown = GreedySeeding(points, weights, np.random.default_rng(3))
    grown.first(3)
    assert np.array_equal(grown.first(20)[:8], eight)

    found = cq.quantize(coffee, target_psnr=30)
    fixed = cq.quantize(coffee, n_colors=found.n_colors)
    assert np.array_equal(found.palette, fixed.palette)
    assert np.array_equal(found.labels, fixed.labels)


def test_swaps_move_a_wasted_centre_to_where_the_error_is():
    from sklearn.cluster import KMeans

    from colorquant.methods.kmeans import swap_refine

    # Three tight blobs; Lloyd started with two centres in the first blob and one between the
    # others stays there (a local minimum). One swap frees a centre of the first blob.
    rng = np.random.default_rng(0)
    blobs = np.array([[20, 20, 20], [120, 200, 40], [230, 60, 200]], dtype=np.float32)
    points = np.concatenate([b + rng.normal(0, 3, (300, 3)) for b in blobs]).astype(np.float32)
    weights = np.ones(len(points))
    start = np.array([[18, 20, 20], [22, 20, 20], [175, 130, 120]], dtype=np.float32)
    stuck = KMeans(n_clusters=3, init=start, n_init=1).fit(points, sample_weight=weights)
    assert stuck.inertia_ > 100 * len(points)

    centres = swap_refine(points, weights, stuck, np.random.default_rng(1), attempts=2)
    nearest_blob = ((centres[:, None] - blobs[None]) ** 2).sum(-1).argmin(axis=1)
    assert sorted(nearest_blob.tolist()) == [0, 1, 2]


def test_swaps_never_raise_the_error(coffee):
    from sklearn.cluster import KMeans

    from colorquant.methods.kmeans import swap_refine

    points = coffee.reshape(-1, 3)[::13].astype(np.float32)
    weights = np.ones(len(points))
    model = KMeans(n_clusters=12, n_init=1, max_iter=3, random_state=0).fit(points)
    centres = swap_refine(points, weights, model, np.random.default_rng(0), attempts=3)
    error = ((points[:, None] - centres[None]) ** 2).sum(-1).min(axis=1).sum()
    assert error <= model.inertia_ * (1 + 1e-6)


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

def test_kmeans_seeds_enough_colours_when_one_colour_covers_nearly_every_pixel():
    # 9,000 single-pixel colours on a flat 1 MP background: the 8,192-draw seeding sample
    # lands on about 75 of them, too few for 256 seeds; the fit's own bigger sample has more.
    rng = np.random.default_rng(2)
    pixels = np.full((1000 * 1000, 3), 128, dtype=np.uint8)
    rare = rng.choice(np.arange(1 << 24), size=9000, replace=False)
    rare = rare[rare != 0x808080]
    positions = rng.choice(len(pixels), size=len(rare), replace=False)
    pixels[positions] = np.stack([(rare >> 16) & 255, (rare >> 8) & 255, rare & 255], axis=1)
    result = cq.quantize(pixels.reshape(1000, 1000, 3), n_colors=256)
    assert result.n_colors > 200
