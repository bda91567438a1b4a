"""quantize(): colour counts, quality floors, determinism, lossless paths, alpha, validation."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.errors import InvalidParameterError

from .conftest import METHODS, flat_logo

# PSNR of each method on scikit-image's astronaut at 16 colours, seed 0, default speed,
# measured with this code on 2026-11-29, in the default (mixed) space and in rgb (kmeans
# 27.26 and 27.59, minibatch 27.03 and 27.31, gmm 26.64 and 26.39 dB); the floors leave
# 0.2 dB for library versions. Pillow's median cut reaches 24.6 dB on it.
ASTRONAUT_PSNR_FLOOR_16 = {("kmeans", None): 27.06, ("minibatch", None): 26.83, ("gmm", None): 26.44,
                           ("kmeans", "rgb"): 27.39, ("minibatch", "rgb"): 27.11, ("gmm", "rgb"): 26.19}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_colors", [2, 16, 256])
def test_quantize_respects_colour_count(astronaut, method, n_colors):
    result = cq.quantize(astronaut, n_colors=n_colors, method=method)
    assert 1 <= result.n_colors <= n_colors
    assert result.labels.shape == astronaut.shape[:2]
    assert result.labels.dtype == np.uint8
    assert int(result.labels.max()) < result.n_colors
    assert result.palette.shape == (result.n_colors, 3)
    # no duplicate entries, and every entry is used
    assert len(np.unique(result.palette, axis=0)) == result.n_colors
    assert len(np.unique(result.labels)) == result.n_colors
    decoded = Image.open(io.BytesIO(result.encode()))
    assert decoded.mode == "P"
    assert len(decoded.getcolors(256)) <= n_colors


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("space", [None, "rgb"])
def test_quantize_quality_floor_on_astronaut(astronaut, method, space):
    result = cq.quantize(astronaut, n_colors=16, method=method, color_space=space, metrics=["ssim"])
    assert result.metrics.psnr >= ASTRONAUT_PSNR_FLOOR_16[method, space]
    assert result.metrics.ssim > 0.75
    assert cq.quantize(astronaut, n_colors=16, method=method).metrics.ssim is None  # not asked


def test_quantize_kmeans_beats_pillow_median_cut(astronaut):
    ours = cq.quantize(astronaut, n_colors=16, color_space="rgb").metrics.psnr
    pillow = np.asarray(Image.fromarray(astronaut).quantize(16, method=Image.Quantize.MEDIANCUT).convert("RGB"))
    theirs = 10 * math.log10(255**2 / np.mean((pillow.astype(float) - astronaut) ** 2))
    assert ours > theirs + 2.0


@pytest.mark.parametrize("method", METHODS)
def test_quantize_is_deterministic(coffee, method):
    first = cq.quantize(coffee, n_colors=32, method=method, random_state=3)
    second = cq.quantize(coffee, n_colors=32, method=method, random_state=3)
    assert np.array_equal(first.palette, second.palette)
    assert first.encode() == second.encode()


@pytest.mark.parametrize("method", METHODS)
def test_quantize_keeps_few_colours_exactly(method):
    logo = flat_logo(5)
    result = cq.quantize(logo, n_colors=16, method=method)
    assert result.n_colors == 5
    assert np.array_equal(result.to_array(), logo)
    assert result.metrics.mse == 0 and math.isinf(result.metrics.psnr)


def _many_flat_colours():
    # 40 flat colours into 16: plain float32 GaussianMixture fails here with
    # "ill-defined empirical covariance".
    return flat_logo(40, size=(64, 200))


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_gmm_survives_flat_images(covariance):
    result = cq.quantize(_many_flat_colours(), n_colors=16, method="gmm", covariance_type=covariance)
    assert 2 <= result.n_colors <= 16
    assert result.metrics.psnr > 15


@pytest.mark.parametrize("method", ["kmeans", "minibatch"])
def test_kmeans_methods_survive_flat_images(method):
    result = cq.quantize(_many_flat_colours(), n_colors=16, method=method)
    assert 2 <= result.n_colors <= 16
    assert result.metrics.psnr > 15


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1), (2, 2)])
def test_quantize_tiny_images(method, shape):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    result = cq.quantize(pixels, n_colors=4, method=method)
    assert result.labels.shape == shape
    assert result.n_colors <= 4
    decoded = np.asarray(Image.open(io.BytesIO(result.encode())).convert("RGB"))
    assert np.array_equal(decoded, result.to_array())
    if min(shape) < 3:
        assert result.measure(result.encode(), metrics=["ssim"]).ssim is None


def test_quantize_single_colour_image():
    pixels = np.full((20, 30, 3), (12, 200, 7), dtype=np.uint8)
    result = cq.quantize(pixels, n_colors=2)
    assert result.n_colors == 1
    assert np.array_equal(result.to_array(), pixels)


def test_quantize_greyscale_gives_grey_palette(tmp_path, astronaut):
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    result = cq.quantize(path, n_colors=8)
    assert result.palette.shape == (8, 3)
    assert np.all(result.palette[:, 0] == result.palette[:, 1])
    assert np.all(result.palette[:, 1] == result.palette[:, 2])


def test_quantize_keeps_alpha(astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0              # fully transparent band
    rgba[100:200, :, 3] = 128         # half transparent band
    result = cq.quantize(rgba, n_colors=16)
    assert result.palette.shape[1] == 4
    assert result.n_colors <= 16
    assert np.array_equal(result.palette[0], [0, 0, 0, 0])  # the one shared transparent entry
    assert (result.palette[:, 3] == 0).sum() == 1
    decoded = np.asarray(Image.open(io.BytesIO(result.encode())).convert("RGBA"))
    assert np.all(decoded[:100, :, 3] == 0)
    assert np.all(np.abs(decoded[100:200, :, 3].astype(int) - 128) <= 8)
    assert np.all(decoded[200:, :, 3] == 255)
    assert np.array_equal(decoded, result.to_array())


def test_labels_map_back_to_palette(coffee):
    result = cq.quantize(coffee, n_colors=12)
    assert np.array_equal(result.to_array(), result.palette[result.labels])
    assert np.array_equal(np.asarray(result.to_pil().convert("RGB")), result.to_array())


def test_kmeans_labels_are_exactly_nearest(coffee):
    result = cq.quantize(coffee, n_colors=24, color_space="rgb")  # nearest by sRGB distance
    pixels = coffee.reshape(-1, 3).astype(np.int64)
    sample = pixels[:: 97]
    distances = ((sample[:, None, :] - result.palette[None, :, :].astype(np.int64)) ** 2).sum(-1)
    best = distances.min(axis=1)
    chosen = distances[np.arange(len(sample)), result.labels.reshape(-1)[::97]]
    assert np.array_equal(chosen, best)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"n_colors": 1}, "n_colors must be an int in [2, 256]; got 1"),
        ({"n_colors": 257}, "got 257"),
        ({"n_colors": 16.0}, "got 16.0"),
        ({"n_colors": True}, "got True"),
        ({"method": "dbscan"}, "method must be one of kmeans, minibatch, gmm; got 'dbscan'"),
        ({"method": "gmm", "covariance_type": "round"}, "covariance_type must be one of"),
        ({"method": "kmeans", "covariance_type": "full"}, "unexpected options"),
        ({"random_state": -1}, "random_state must be an int in [0, 4294967295]; got -1"),
    ],
)
def test_quantize_rejects_bad_parameters(coffee, options, fragment):
    with pytest.raises(InvalidParameterError) as caught:
        cq.quantize(coffee, **options)
    assert fragment in str(caught.value)


def test_quantize_rejects_bad_arrays():
    with pytest.raises(InvalidParameterError, match="dtype uint8"):
        cq.quantize(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(InvalidParameterError, match="shape"):
        cq.quantize(np.zeros((4, 4, 2), dtype=np.uint8))


def test_every_mistake_a_caller_can_make_is_a_colorquant_error(tmp_path):
    # A NaN sample has no colour: refused, not crushed to two colours with psnr=inf.
    with_nan = Image.fromarray(np.array([[0.5, np.nan], [0.2, 0.1]], np.float32), mode="F")
    with pytest.raises(cq.ImageReadError, match="NaN or infinite samples"):
        cq.quantize(with_nan)
    # A lazily opened PNG whose data ends early decodes inside quantize: our error, not OSError.
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    lazy = Image.open(io.BytesIO(buffer.getvalue()[:3000]))
    with pytest.raises(cq.ImageReadError, match="truncated"):
        cq.quantize(lazy)
    for bad in ("abc", 0, 2.5, True):
        with pytest.raises(InvalidParameterError, match="max_pixels must be an int >= 1"):
            cq.quantize(np.zeros((4, 4, 3), np.uint8), max_pixels=bad)


def test_premultiplied_modes_are_read():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(8)[None, :] * 30 + 10
    for mode in ("La", "RGBa"):
        image = Image.fromarray(rgba).convert("LA" if mode == "La" else "RGBA").convert(mode)
        result = cq.quantize(image, n_colors=4)
        assert result.palette.shape[1] == 4 and 2 <= result.n_colors <= 4


def test_max_pixels_applies_to_arrays_too():
    with pytest.raises(cq.ImageTooLargeError, match="8x4 is 32 pixels, over the limit of 31"):
        cq.quantize(np.zeros((4, 8, 3), np.uint8), max_pixels=31)
    assert cq.quantize(np.zeros((4, 8, 3), np.uint8), max_pixels=32).n_colors == 1


def test_format_names_are_case_insensitive(coffee, tmp_path):
    result = cq.quantize(coffee[:40, :40], n_colors=8)
    assert result.encode("GIF")[:3] == b"GIF"
    assert result.save(tmp_path / "x.bin", format="GIF").read_bytes()[:3] == b"GIF"
    assert cq.Settings(format="WebP").format == "webp"
