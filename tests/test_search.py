"""Auto-K: the fewest colours meeting a PSNR, MSE or SSIM target."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.pipeline import fit, prepare
from colorquant.search import search_n_colors
from colorquant.settings import QualityTarget, Settings

from .conftest import assert_one_line_error


@pytest.fixture(scope="module")
def small_coffee(coffee_module):
    # half-size photo keeps the exhaustive scans of these tests fast
    return np.asarray(Image.fromarray(coffee_module).resize((300, 200), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def coffee_module():
    from skimage import data

    return data.coffee()


def exhaustive_answer(pixels, method, metric, value, low, high):
    """The first count from ``low`` upward that meets the target (the naive loop's answer)."""
    prepared = prepare(pixels)
    target = QualityTarget(metric, value)
    settings = Settings(method=method, color_space="rgb")  # a PSNR or MSE target fits in rgb
    for n_colors in range(low, high + 1):
        quantization = fit(prepared, n_colors, settings)
        if metric == "psnr":
            measured = cq.quantize(pixels, n_colors=n_colors, method=method, color_space="rgb").metrics.psnr
            assert math.isclose(measured, 10 * math.log10(255**2 / quantization.mse)), "histogram MSE is exact"
        else:
            measured = quantization.mse
        if target.met_by(measured):
            return n_colors
    return None


@pytest.mark.parametrize("method, metric, value", [
    ("kmeans", "psnr", 31.0),
    ("kmeans", "mse", 40.0),
    ("minibatch", "psnr", 30.0),
    ("gmm", "psnr", 28.0),
])
def test_search_matches_exhaustive_scan(small_coffee, method, metric, value):
    result = cq.quantize(small_coffee, method=method, **{f"target_{metric}": value}, n_colors=48)
    expected = exhaustive_answer(small_coffee, method, metric, value, 2, 48)
    # The search accepts a count once the two below it fail; the scan takes the first that
    # passes. They differ only if a count three or more below passes by a lucky fit, which
    # these photographs do not show; equality is asserted.
    assert result.n_colors == expected
    assert len(result.search) < 15  # far fewer fits than the scan


def test_search_trace_and_target_met(small_coffee):
    result = cq.quantize(small_coffee, target_psnr=32)
    assert result.metrics.psnr >= 32
    tried = {step.n_colors: step for step in result.search}
    assert tried[result.n_colors].meets_target
    assert not tried[result.n_colors - 1].meets_target
    assert all(step.meets_target == (step.value >= 32) for step in result.search)


def test_search_ssim_target(small_coffee):
    result = cq.quantize(small_coffee, target_ssim=0.9)
    assert result.metrics.ssim >= 0.9
    below = cq.quantize(small_coffee, n_colors=result.n_colors - 1, metrics=["ssim"])
    assert below.metrics.ssim < 0.9


def test_search_stops_at_distinct_colours():
    pixels = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0]]], dtype=np.uint8).repeat(5, axis=0)
    result = cq.quantize(pixels, target_psnr=99)
    assert result.n_colors == 3 and math.isinf(result.metrics.psnr)


def test_search_unreachable_target_raises_with_best_value(small_coffee):
    with pytest.raises(cq.QualityTooLowError) as caught:
        cq.quantize(small_coffee, target_psnr=60, n_colors=8)
    fixed = cq.quantize(small_coffee, n_colors=8, color_space="rgb")  # a PSNR target fits in rgb
    assert caught.value.best_value == pytest.approx(fixed.metrics.psnr)
    assert "not reached with up to 8 colours" in str(caught.value)


@pytest.mark.parametrize("options, fragment", [
    ({"target_psnr": -1}, "target_psnr must be in (0, 100]"),
    ({"target_psnr": 101}, "got 101"),
    ({"target_ssim": 1.5}, "target_ssim must be in (0, 1]"),
    ({"target_mse": -3}, "target_mse must be in [0, 65025]"),
    ({"target_psnr": 30, "target_ssim": 0.9}, "give one quality target"),
    ({"target_psnr": 30, "min_colors": 40, "n_colors": 20}, "min_colors (40) must not exceed"),
])
def test_search_rejects_bad_targets(small_coffee, options, fragment):
    with pytest.raises(cq.InvalidParameterError) as caught:
        cq.quantize(small_coffee, **options)
    assert fragment in str(caught.value)


def test_cli_target_writes_file_that_meets_it(run_cli, photo_png, tmp_path):
    result = run_cli("compress", photo_png, "--target-psnr", "31", "-o", tmp_path / "out", "--json")
    assert result.status == 0, result
    record = json.loads(result.out)
    output = Path(record["output"])
    assert output.name == f"coffee-kmeans-k{record['colors']}.png"
    written = np.asarray(Image.open(output).convert("RGB")).astype(np.float64)
    original = np.asarray(Image.open(photo_png).convert("RGB")).astype(np.float64)
    psnr = 10 * math.log10(255**2 / np.mean((written - original) ** 2))
    assert psnr >= 31 and psnr == pytest.approx(record["psnr"], abs=1e-4)


def test_cli_unreachable_target_exits_99_and_writes_nothing(run_cli, photo_png, tmp_path):
    out = tmp_path / "out"
    result = run_cli("compress", photo_png, "--target-psnr", "60", "-k", "8", "-o", out, "--json")
    assert result.status == 99, result
    record = json.loads(result.out)
    assert record["status"] == "skipped" and "best PSNR" in record["error"]
    assert not out.exists()  # nothing written, not even the folder made for it


def test_cli_quality_range_keeps_max_colours_when_min_is_met(run_cli, photo_png, tmp_path):
    # MAX 100 (45 dB) is out of reach at 8 colours; MIN 0 (20 dB) is met: 8 colours written
    result = run_cli("compress", photo_png, "--quality", "0-100", "-k", "8", "-o", tmp_path, "--json")
    assert result.status == 0, result
    assert json.loads(result.out)["colors"] == 8
    result = run_cli("compress", photo_png, "--quality", "90-100", "-k", "8", "-o", tmp_path / "b", "--json")
    assert result.status == 99


@pytest.mark.parametrize("argv, fragment", [
    (["--target-psnr", "-2"], "--target-psnr must be in (0, 100]"),
    (["--target-psnr", "120"], "got 120"),
    (["--target-ssim", "1.2"], "--target-ssim must be in (0, 1]"),
    (["--target-mse", "-1"], "--target-mse must be in [0, 65025]"),
    (["--target-psnr", "abc"], "must be a number"),
    (["--quality", "80-60"], "--quality must be MIN-MAX"),
    (["--target-psnr", "30", "--target-ssim", "0.9"], "not allowed with argument"),
    (["--target-psnr", "30", "--format", "jpeg"], "lossless output format"),
    (["--target-psnr", "30", "--min-colors", "50", "-k", "20"], "--min-colors (50) must not exceed"),
    (["--min-colors", "5"], "--min-colors goes with a quality target"),
])
def test_cli_bad_targets_are_usage_errors(run_cli, photo_png, argv, fragment):
    before = sorted(p.name for p in photo_png.parent.iterdir())
    result = run_cli("compress", photo_png, *argv)
    assert_one_line_error(result, 2, fragment)
    assert sorted(p.name for p in photo_png.parent.iterdir()) == before


def test_cli_curve_figure(run_cli, photo_png, tmp_path):
    figure = tmp_path / "curve.png"
    result = run_cli("curve", photo_png, "--target-psnr", "30", "-k", "64", "-o", figure)
    assert result.status == 0, result
    assert Image.open(figure).size[0] > 500
    assert "K-Means psnr: 2:" in result.out and "chosen" in result.out


def test_search_n_colors_direct_call(small_coffee):
    prepared = prepare(small_coffee)
    found = search_n_colors(prepared, small_coffee, Settings(target=QualityTarget("psnr", 30.0)))
    assert found.quantization.palette.shape[0] <= found.n_colors
    assert found.trace[0].n_colors == 2 and found.target_met


def test_quality_range_is_one_search_with_its_trace(small_coffee):
    # MAX (45 dB) out of reach at 8 colours, MIN (20 dB) met: the 8-colour fit the search
    # already made is the answer; the trace is kept and says the target was missed.
    result = cq.quantize(small_coffee, quality=(0, 100), n_colors=8)
    assert result.n_colors == 8 and not result.target_met
    assert result.search[-1].n_colors == 8 and not result.search[-1].meets_target
    assert np.array_equal(result.palette, cq.quantize(small_coffee, n_colors=8, color_space="rgb").palette)
    assert cq.quantize(small_coffee, quality="30-60", n_colors=64).target_met
    with pytest.raises(cq.QualityTooLowError, match="PSNR >= 42.5 dB not reached"):
        cq.quantize(small_coffee, quality=(90, 100), n_colors=8)


def test_search_fits_each_count_once(small_coffee, monkeypatch):
    import colorquant.search as search

    fitted = []
    real_fit = search.fit
    monkeypatch.setattr(search, "fit", lambda prepared, n, settings: fitted.append(n) or real_fit(prepared, n, settings))
    result = cq.quantize(small_coffee, quality=(0, 100), n_colors=8)
    assert sorted(fitted) == sorted(set(fitted)) == sorted(step.n_colors for step in result.search)


def test_ssimulacra2_target_in_python_cli_and_web(small_coffee, run_cli, tmp_path):
    from colorquant.metrics import ssimulacra2

    result = cq.quantize(small_coffee, target_ssimulacra2=60)
    assert result.metrics.ssimulacra2 >= 60 and result.color_space == "mixed"
    below = cq.quantize(small_coffee, n_colors=result.n_colors - 1, metrics=["ssimulacra2"])
    assert below.metrics.ssimulacra2 < 60

    photo = tmp_path / "coffee.png"
    Image.fromarray(small_coffee).save(photo)
    written = run_cli("compress", photo, "--target-ssimulacra2", "60", "-o", tmp_path / "out", "--json")
    assert written.status == 0, written
    record = json.loads(written.out)
    assert record["colors"] == result.n_colors and record["ssimulacra2"] >= 60
    output = np.asarray(Image.open(record["output"]).convert("RGB"))
    assert ssimulacra2(small_coffee, output) == pytest.approx(record["ssimulacra2"], abs=1e-3)
    missed = run_cli("compress", photo, "--target-ssimulacra2", "99", "-k", "8", "-o", tmp_path / "x")
    assert_one_line_error(missed, 99, "SSIMULACRA2 >= 99 not reached with up to 8 colours", str(photo))

    from fastapi.testclient import TestClient

    from colorquant.web import create_app

    with TestClient(create_app()) as client:
        response = client.post("/api/compress/json", files={"file": ("c.png", photo.read_bytes())},
                               data={"target_ssimulacra2": "60"})
    assert response.status_code == 200 and response.json()["colors"] == result.n_colors


@pytest.mark.parametrize("metric, side", [("ssimulacra2", 7), ("ssim", 2)])
def test_a_target_whose_figure_is_undefined_for_the_image_is_refused(run_cli, tmp_path, metric, side):
    # --target-ssimulacra2 99 on a 5x5 random image once wrote 2 colours at 11.7 dB, "met"
    pixels = np.random.default_rng(0).integers(0, 256, size=(side, side + 3, 3), dtype=np.uint8)
    path = tmp_path / "tiny.png"
    Image.fromarray(pixels).save(path)
    result = run_cli("compress", path, f"--target-{metric}", "0.99" if metric == "ssim" else "99")
    assert_one_line_error(result, 2, "tiny.png", "not defined for images under", "PSNR or MSE target")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.png"]
    with pytest.raises(cq.InvalidParameterError, match="not defined"):
        cq.quantize(pixels, **{f"target_{metric}": 0.99 if metric == "ssim" else 99})
