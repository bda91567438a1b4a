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

