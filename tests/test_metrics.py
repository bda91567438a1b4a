"""The figures: exact MSE in bands, banded SSIM equal to the whole-image call and independent
of threads, the histogram MSE, and the registry every record is built from."""

from __future__ import annotations

import numpy as np
import pytest

from colorquant.histogram import color_histogram
from colorquant.metrics import histogram_mse, mse
from colorquant.remap import nearest_palette_index


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


def test_ssimulacra2_is_100_for_identical_images_and_falls_with_fewer_colours(coffee):
    import colorquant as cq
    from colorquant.metrics import ssimulacra2

    small = coffee[::2, ::2].copy()
    assert ssimulacra2(small, small) == 100.0
    scores = [cq.quantize(small, n_colors=k, metrics=["ssimulacra2"]).metrics.ssimulacra2 for k in (4, 16, 64)]
    assert scores[0] < scores[1] < scores[2] < 100
    assert ssimulacra2(small[:7], small[:7]) is None  # under 8 pixels on a side


def test_ssimulacra2_is_the_packages_score_and_judges_alpha_over_two_backgrounds(coffee):
    import io

    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    from colorquant.metrics import ssimulacra2

    reference = coffee[:64, :96].copy()
    distorted = (reference // 16 * 16).astype(np.uint8)

    def png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        buffer.seek(0)
        return buffer

    assert ssimulacra2(reference, distorted) == pytest.approx(compute_ssimulacra2(png(reference), png(distorted)))
    # a difference only in transparent pixels' colour cannot be seen; in alpha it can
    opaque = np.dstack([reference, np.full(reference.shape[:2], 255, np.uint8)])
    hidden = opaque.copy()
    hidden[:, :48, 3] = 0
    recoloured = hidden.copy()
    recoloured[:, :48, :3] = 0
    assert ssimulacra2(hidden, recoloured) == 100.0
    assert ssimulacra2(opaque, hidden) < 90


def test_psnr_of_a_known_error():
    from colorquant.metrics import measure, psnr_from_mse

    # 10 log10(255^2 / MSE): 48.1308 dB for MSE 1, 20 log10(255) - 20 log10(4) for MSE 16
    assert psnr_from_mse(1.0) == pytest.approx(48.130803608679, abs=1e-9)
    assert psnr_from_mse(16.0) == pytest.approx(48.130803608679 - 12.041199826559, abs=1e-9)
    assert psnr_from_mse(0.0) == float("inf")
    reference = np.full((8, 8, 3), 100, np.uint8)
    test = reference.copy()
    test[::2] += 4  # half the pixels off by 4 in every channel: MSE 8
    figures = measure(reference, test, ["mse", "psnr"])
    assert figures["mse"] == 8.0
    assert figures["psnr"] == pytest.approx(10 * np.log10(255.0**2 / 8.0), abs=1e-9)
    assert figures["psnr"] == pytest.approx(39.0999, abs=1e-4)


@pytest.mark.parametrize("shape", [(131, 97), (64, 300), (9, 40)])
def test_banded_figures_equal_the_whole_image_ones(coffee, monkeypatch, shape):
    # Bands of 16 rows (odd heights and widths: partial bands and the odd edge that
    # SSIMULACRA2's downsampling averages alone) against the libraries' whole-image calls.
    from scipy.ndimage import gaussian_filter
    from skimage.color import deltaE_ciede2000, rgb2lab
    from ssimulacra2 import ssimulacra2 as package

    from colorquant import banded
    from colorquant.metrics import blurred_psnr, mean_ciede2000, psnr_from_mse, ssimulacra2

    height, width = shape
    reference = np.ascontiguousarray(coffee[:height, :width])
    test = (reference // 24 * 24 + 7).astype(np.uint8)
    monkeypatch.setattr(banded, "BAND_PIXELS", 1)  # 16 rows a band

    expected = _package_ssimulacra2(package, reference, test)
    assert ssimulacra2(reference, test) == pytest.approx(expected, abs=1e-5)
    expected_de = float(np.mean(deltaE_ciede2000(rgb2lab(reference), rgb2lab(test))))
    assert mean_ciede2000(reference, test) == pytest.approx(expected_de, rel=1e-12)
    blurred = [gaussian_filter(image.astype(np.float64), (1, 1, 0)) for image in (reference, test)]
    expected_psnr = psnr_from_mse(float(np.mean((blurred[0] - blurred[1]) ** 2)))
    assert blurred_psnr(reference, test) == pytest.approx(expected_psnr, abs=1e-9)


def _package_ssimulacra2(package, reference, test):
    """The package's own whole-image score (it reads files: lossless PNGs in memory)."""
    import io

    from PIL import Image

    def png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        buffer.seek(0)
        return buffer

    return package.compute_ssimulacra2(png(reference), png(test))


def test_every_figure_of_a_4_mp_photo_stays_in_bounded_memory(tmp_path, coffee):
    # Whole-image float64 copies cost SSIMULACRA2 about 500 bytes a pixel (4.9 GB for 9.8 MP);
    # in bands the peak is the images and a few bands. A fresh process reads its own VmHWM.
    import subprocess
    import sys

    from PIL import Image

    photo = np.tile(coffee, (5, 4, 1))[:2000, :2000]  # 4 MP
    Image.fromarray(photo).save(tmp_path / "photo.png")
    script = (
        "import re, sys, numpy as np; from PIL import Image; from colorquant.metrics import measure; "
        "a = np.asarray(Image.open(sys.argv[1]).convert('RGB')); b = (a // 24 * 24 + 7).astype(np.uint8); "
        "names = ['ssim', 'ssimulacra2', 'ciede2000', 'blurred_psnr']; values = measure(a, b, names); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024, "
        "sum(values[name] is None for name in names))")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "photo.png")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peak_mib, missing = map(int, result.stdout.split())
    assert missing == 0
    assert peak_mib < 600, f"peak {peak_mib} MiB"  # about 300 here; the whole-image figures took over 2 GB
