"""The exact nearest-colour remap, on any number of threads."""

from __future__ import annotations

import numpy as np
import pytest

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



def test_label_pixels_is_the_exact_nearest_entry_of_every_pixel(coffee):
    from colorquant.remap import label_pixels

    pixels = coffee.reshape(-1, 3)
    palette = np.random.default_rng(3).integers(0, 256, size=(200, 3), dtype=np.uint8)
    labels = label_pixels(pixels, palette)
    sample = pixels[::11].astype(np.int64)
    distances = ((sample[:, None, :] - palette[None].astype(np.int64)) ** 2).sum(-1)
    assert np.array_equal(labels[::11], distances.argmin(axis=1))


def test_big_images_are_fitted_on_a_sample_and_labelled_exactly(coffee, monkeypatch):
    import colorquant as cq
    import colorquant.pipeline as pipeline

    monkeypatch.setattr(pipeline, "SAMPLED_ABOVE_PIXELS", 100_000)  # coffee has 240,000
    monkeypatch.setattr(pipeline, "SAMPLE_PIXELS", 30_000)
    result = cq.quantize(coffee, n_colors=24, color_space="rgb")  # nearest by sRGB distance
    pixels = coffee.reshape(-1, 3).astype(np.int64)
    distances = ((pixels[::7, None, :] - result.palette[None].astype(np.int64)) ** 2).sum(-1)
    assert np.array_equal(result.labels.reshape(-1)[::7], distances.argmin(axis=1))
    exact = cq.quantize(coffee, n_colors=24, quality=(0, 100))  # a target needs the exact path
    assert exact.n_colors == 24 and not exact.target_met
    again = cq.quantize(coffee, n_colors=24, color_space="rgb")
    assert abs(result.metrics.psnr - again.metrics.psnr) < 1e-9  # deterministic
    mixed = cq.quantize(coffee, n_colors=24)  # the default space, through the same table
    assert mixed.settings.color_space == "mixed" and mixed.metrics.psnr > result.metrics.psnr - 1.0
