"""Property-based tests (hypothesis): any size, mode, alpha and colour count gives a valid
palette image of the same size with at most the asked colours, whose labels map back to the
palette exactly."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import colorquant as cq


@st.composite
def images(draw):
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    channels = draw(st.sampled_from([1, 3, 4]))
    n_levels = draw(st.sampled_from([2, 5, 256]))  # few distinct values, or any
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = np.linspace(0, 255, n_levels).round().astype(np.uint8)
    pixels = levels[rng.integers(0, n_levels, size=(height, width, channels))]
    if channels == 4 and draw(st.booleans()):
        pixels[..., 3] = draw(st.sampled_from([0, 255]))  # all clear or all opaque
    return pixels[..., 0] if channels == 1 else pixels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pixels=images(), n_colors=st.integers(2, 256), method=st.sampled_from(["kmeans", "minibatch", "gmm"]))
def test_any_image_gives_valid_palette_image(pixels, n_colors, method):
    result = cq.quantize(pixels, n_colors=n_colors, method=method)
    height, width = pixels.shape[:2]
    assert result.labels.shape == (height, width)
    assert 1 <= result.n_colors <= n_colors
    assert int(result.labels.max()) < result.n_colors
    assert np.array_equal(result.to_array(), result.palette[result.labels])

    decoded = Image.open(io.BytesIO(result.encode()))
    assert decoded.mode == "P" and decoded.size == (width, height)
    rgba = np.asarray(decoded.convert("RGBA"))
    expected = result.to_array()
    if expected.shape[2] == 3:
        assert np.all(rgba[..., 3] == 255)
        rgba = rgba[..., :3]
    assert np.array_equal(rgba, expected)

    # colour counts: never more than asked; lossless when the image has few enough colours
    flat = pixels.reshape(height * width, -1)
    visible = flat if flat.shape[1] != 4 else flat[flat[:, 3] > 0]
    n_distinct = len(np.unique(visible, axis=0)) + int(len(visible) < len(flat))
    if n_distinct <= n_colors and (flat.shape[1] != 4 or len(visible) == len(flat)):
        assert result.metrics.mse == 0


def test_fuzz_target_short_run():
    """A short atheris run of fuzz/fuzz_compress.py: any exception other than colorquant's own
    errors crashes the fuzzer and fails this test. Longer runs by hand: see the script."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_compress.py"
    process = subprocess.run([sys.executable, str(script), "-runs=10000", "-seed=1"],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert re.search(r"Done 10000 runs", process.stderr), process.stderr[-2000:]
