"""Floyd-Steinberg dithering: what it gains, that it is exact where it should be, and the
candidate grid that narrows its search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.dither import floyd_steinberg
from colorquant.metrics import blurred_psnr

from .conftest import assert_one_line_error


def test_dither_raises_blurred_psnr_and_keeps_the_palette(astronaut):
    plain = cq.quantize(astronaut, n_colors=16)
    dithered = cq.quantize(astronaut, n_colors=16, dither=1.0)
    assert np.array_equal(plain.palette, dithered.palette)
    assert not np.array_equal(plain.labels, dithered.labels)
    assert dithered.metrics.psnr < plain.metrics.psnr
    plain_blurred = blurred_psnr(astronaut, plain.to_array())
    dithered_blurred = blurred_psnr(astronaut, dithered.to_array())
    assert dithered_blurred > plain_blurred + 1.0  # 32.47 against 30.06 dB when measured
    half = blurred_psnr(astronaut, cq.quantize(astronaut, n_colors=16, dither=0.5).to_array())
    assert plain_blurred < half < dithered_blurred + 0.5


def test_dither_zero_is_the_plain_remap(coffee):
    plain = cq.quantize(coffee, n_colors=8)
    assert np.array_equal(cq.quantize(coffee, n_colors=8, dither=0.0).labels, plain.labels)


def test_dither_with_level_zero_matches_nearest_entry(coffee):
    plain = cq.quantize(coffee, n_colors=8, color_space="rgb")
    labels = floyd_steinberg(coffee, plain.palette, 0.0)
    # the same distance to the chosen entry (an exact tie may pick the other entry)
    palette = plain.palette.astype(np.int64)
    def distance(chosen):
        return ((coffee.astype(np.int64) - palette[chosen]) ** 2).sum(axis=-1)
    assert np.array_equal(distance(labels), distance(plain.labels))


@pytest.mark.parametrize("n_colors", [32, 256])
def test_dither_candidate_grid_matches_direct_search(coffee, monkeypatch, n_colors):
    from colorquant import dither

    palette = cq.quantize(coffee, n_colors=n_colors).palette
    direct = floyd_steinberg(coffee, palette, 1.0)
    monkeypatch.setattr(dither, "_GRID_WORK", 0)  # force the candidate grid
    assert np.array_equal(floyd_steinberg(coffee, palette, 1.0), direct)


def test_candidate_grid_keeps_every_possible_nearest_entry():
    from colorquant.dither import candidate_grid
    from colorquant.remap import nearest_palette_index

    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, size=(200, 3)).astype(np.float32)
    cell_starts, cell_entries = candidate_grid(palette)
    colors = rng.integers(0, 256, size=(20_000, 3), dtype=np.uint8)
    nearest = nearest_palette_index(colors, palette.astype(np.uint8))
    cells = (colors[:, 0] >> 3).astype(int) << 10 | (colors[:, 1] >> 3).astype(int) << 5 | (colors[:, 2] >> 3)
    for color_cell, entry in zip(cells, nearest):
        assert entry in cell_entries[cell_starts[color_cell]:cell_starts[color_cell + 1]]
    assert len(cell_entries) / len(cell_starts) < 40  # far fewer than all 200 per cell


def test_dither_is_deterministic_and_keeps_transparency(astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:64, :, 3] = 0
    first = cq.quantize(rgba, n_colors=16, dither=1.0)
    second = cq.quantize(rgba, n_colors=16, dither=1.0)
    assert first.encode() == second.encode()
    assert np.all(first.to_array()[:64, :, 3] == 0)
    assert np.all(first.to_array()[64:, :, 3] == 255)


@pytest.mark.parametrize("options, fragment", [
    ({"dither": -0.1}, "dither must be a number in [0, 1]"),
    ({"dither": 1.5}, "got 1.5"),
    ({"color_space": "hsv"}, "color_space must be one of mixed, rgb, oklab; got 'hsv'"),
])
def test_bad_perceptual_options(coffee, options, fragment):
    with pytest.raises(cq.InvalidParameterError) as caught:
        cq.quantize(coffee, **options)
    assert fragment in str(caught.value)


def test_cli_dither_and_colour_space(run_cli, photo_png, tmp_path):
    result = run_cli("compress", photo_png, "--dither", "--color-space", "oklab", "-o", tmp_path, "--json",
                     "--metrics", "ciede2000,blurred_psnr")
    assert result.status == 0, result
    record = json.loads(result.out)
    assert record["ciede2000"] > 0 and record["blurred_psnr"] > record["psnr"] and record["ssim"] is None
    plain = run_cli("compress", photo_png, "--color-space", "oklab", "-o", tmp_path / "plain", "--json",
                    "--metrics", "all")
    assert json.loads(plain.out)["blurred_psnr"] < record["blurred_psnr"]


@pytest.mark.parametrize("argv, fragment", [
    (["--dither", "2"], "--dither must be in [0, 1]; got 2"),
    (["--dither", "lots"], "--dither must be a number"),
    (["--color-space", "hsv"], "invalid choice: 'hsv'"),
])
def test_cli_bad_perceptual_options(run_cli, photo_png, argv, fragment):
    assert_one_line_error(run_cli("compress", photo_png, *argv), 2, fragment)


def test_cli_target_with_dither_is_met_on_disk(run_cli, photo_png, tmp_path):
    result = run_cli("compress", photo_png, "--dither", "--target-psnr", "28", "-o", tmp_path, "--json")
    assert result.status == 0, result
    record = json.loads(result.out)
    written = np.asarray(Image.open(record["output"]).convert("RGB")).astype(float)
    original = np.asarray(Image.open(photo_png).convert("RGB")).astype(float)
    assert 10 * np.log10(255**2 / np.mean((written - original) ** 2)) >= 28


def test_the_dither_map_keeps_dithering_for_flat_areas():
    from colorquant.dither import MAP_STRENGTH, dither_map

    # left half: a smooth ramp the plain remap turns into two wide bands (flat: dithered);
    # right half: noise, whose plain remap changes entry from pixel to pixel (no dithering)
    rng = np.random.default_rng(0)
    pixels = np.zeros((32, 64, 3), np.uint8)
    pixels[:, :32] = np.linspace(60, 70, 32).astype(np.uint8)[None, :, None]
    pixels[:, 32:] = rng.integers(0, 256, size=(32, 32, 3))
    plain = np.zeros((32, 64), np.uint8)
    plain[:, 16:32] = 1
    plain[:, 32:] = rng.integers(0, 8, size=(32, 32))
    levels = dither_map(pixels, plain)
    assert levels[4:-4, 2:14].min() > 230  # long runs, alike above and below, flat
    assert levels[4:-4, 36:60].mean() < 255 * (1 - MAP_STRENGTH) + 60  # runs of one pixel


def test_selective_dithering_costs_fewer_bytes_than_dithering_everywhere(coffee, monkeypatch):
    from colorquant import dither

    selective = cq.quantize(coffee, n_colors=16, dither=1.0)
    monkeypatch.setattr(dither, "MAP_MAX_PIXELS", 0)  # every pixel takes all of its error
    everywhere = cq.quantize(coffee, n_colors=16, dither=1.0)
    assert len(selective.encode()) < len(everywhere.encode())


@pytest.mark.parametrize("space", ["rgb", "oklab", "mixed"])
def test_dithering_happens_in_the_space_of_the_fit(coffee, space):
    """Where level 0 means the plain remap of that space: the nearest entry by its distance."""
    from colorquant.colorspace import to_features

    result = cq.quantize(coffee, n_colors=12, color_space=space)
    labels = floyd_steinberg(coffee, result.palette, 0.0, color_space=space)
    features = to_features(coffee.reshape(-1, 3), space)
    entries = to_features(result.palette, space)
    distances = ((features[:, None, :] - entries[None]) ** 2).sum(-1)
    chosen = distances[np.arange(len(features)), labels.reshape(-1)]
    assert np.allclose(chosen, distances.min(axis=1), atol=1e-6 if space == "rgb" else 1e-4)


def _reference_floyd_steinberg(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Serpentine Floyd-Steinberg in plain Python, written from the module's documented rules
    alone, for sRGB without a dither map at level 1: 7/16 ahead, 3/16 below-behind, 5/16
    below, 1/16 below-ahead; 15/16 of the error passed on; a carried error whose squared
    length is under 2 levels^2 not applied; the carried colour clamped to 10% beyond 0..255;
    the nearest entry (lowest index on ties) searched at the carried colour rounded to whole
    levels. float32 throughout, as the kernel computes."""
    f32 = np.float32
    height, width, channels = pixels.shape
    entries = palette.astype(f32)
    low, high = f32(-25.5), f32(280.5)
    weights = {"ahead": f32(7 / 16), "below_behind": f32(3 / 16), "below": f32(5 / 16), "below_ahead": f32(1 / 16)}
    error_here = np.zeros((width + 2, channels), f32)  # index x + 1: room for both edges
    error_below = np.zeros((width + 2, channels), f32)
    labels = np.zeros((height, width), np.uint8)
    for y in range(height):
        forward = y % 2 == 0
        step = 1 if forward else -1
        for x in (range(width) if forward else range(width - 1, -1, -1)):
            carried = error_here[x + 1] * f32(15 / 16)
            applied = carried if float(np.sum(carried.astype(np.float64) ** 2)) >= 2.0 else np.zeros_like(carried)
            actual = np.clip(pixels[y, x].astype(f32) + applied, low, high).astype(f32)
            wanted = np.floor(actual + f32(0.5))
            distances = ((wanted[None, :] - entries) ** 2).sum(axis=1)
            best = int(np.argmin(distances))
            labels[y, x] = best
            error = actual - entries[best]
            error_here[x + 1 + step] += error * weights["ahead"]
            error_below[x + 1 - step] += error * weights["below_behind"]
            error_below[x + 1] += error * weights["below"]
            error_below[x + 1 + step] += error * weights["below_ahead"]
        error_here, error_below = error_below, np.zeros_like(error_below)
    return labels


def test_dither_kernel_equals_a_plain_python_floyd_steinberg(coffee):
    # A crop with smooth and busy parts and a palette too small for it: every rule above
    # decides some labels (swapping two of the weights changes about 15% of them).
    crop = np.ascontiguousarray(coffee[150:182, 250:298])
    palette = cq.quantize(crop, n_colors=6, color_space="rgb").palette
    expected = _reference_floyd_steinberg(crop, palette)
    labels = floyd_steinberg(crop, palette, 1.0, color_space="rgb")
    assert labels.shape == crop.shape[:2]
    assert np.array_equal(labels, expected), f"{np.mean(labels != expected):.1%} of labels differ"


def test_dither_a_hand_worked_row():
    # One row of grey 100 onto black and white. 100 -> black, error 100, of which
    # 7/16 x 15/16 = 41.02 reaches the next pixel: 141.02 -> white, error -113.98; -46.75
    # reaches the third: 53.25 -> black, error 53.25; 21.84 reaches the fourth: 121.84 -> black.
    row = np.full((1, 4, 3), 100, np.uint8)
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    assert floyd_steinberg(row, palette, 1.0, color_space="rgb").tolist() == [[0, 1, 0, 0]]


@pytest.mark.parametrize("space", ["rgb", "oklab", "mixed"])
def test_the_compiled_kernel_computes_the_features_of_the_colour_space(space):
    from colorquant import _diffuse
    from colorquant.colorspace import lightness_range, to_features
    from colorquant.dither import _SPACE_CODES, _oklab_constants

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    expected = to_features(pixels, space) * (255.0 / lightness_range(space))
    got = _diffuse.features(pixels, _SPACE_CODES[space], *_oklab_constants())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)


def test_dithering_compiles_and_writes_nothing_at_run_time(tmp_path):
    # the kernel is a compiled extension built by the install: a run neither compiles (numba
    # did, 2.3 s on the first run after an install) nor leaves a cache file in the package
    import subprocess
    import sys

    import colorquant

    package = Path(colorquant.__file__).parent
    before = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    script = ("import sys; from skimage import data; from colorquant import quantize; "
              "quantize(data.coffee()[:64, :64], n_colors=16, dither=1.0); "
              "import colorquant._diffuse as kernel; print(kernel.__file__); print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    kernel_file, numba_loaded = done.stdout.split()
    assert kernel_file.endswith(".so") and numba_loaded == "False"
    after = sorted(p.relative_to(package) for p in package.rglob("*") if "__pycache__" not in p.parts)
    assert after == before
