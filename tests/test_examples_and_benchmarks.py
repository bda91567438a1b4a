"""The examples and the benchmark scripts run (a smoke run: tiny inputs), so they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("method", ["kmeans", "minibatch", "gmm"])
def test_example_script_runs(method, tmp_path):
    output = tmp_path / f"{method}.png"
    process = subprocess.run([sys.executable, str(ROOT / "examples" / f"{method}.py"), str(output)],
                             capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert "16 colours" in process.stdout
    assert Image.open(output).mode == "P"


def _cq100_or_synthetic(tmp_path: Path) -> Path:
    """The shared CQ100 photos when present (as in CI), else two scikit-image photos."""
    shared = ROOT.parent / "shared" / "cq100"
    if shared.is_dir():
        return shared
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    return folder


def test_core_benchmark_smoke(tmp_path):
    images = _cq100_or_synthetic(tmp_path)
    process = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "core.py"), "--smoke", "--images", str(images),
         "--out", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    summary = json.loads((tmp_path / "results" / "core-smoke.json").read_text())["summary"]
    assert summary["images"] == 2
    assert summary["flat_image_gmm_failures"] == []
    assert "| colorquant kmeans (--color-space rgb) |" in (tmp_path / "results" / "core-smoke.md").read_text()


@pytest.mark.parametrize("script, name", [("autok.py", "autok-smoke"), ("perceptual.py", "perceptual-smoke"),
                                          ("batch.py", "batch-smoke"), ("versus.py", "versus-smoke"),
                                          ("speed.py", "speed-smoke"), ("ssimulacra2_check.py", "ssimulacra2_check-smoke"),
                                          ("memory.py", "memory-smoke"),
                                          ("ratecontrol.py", "ratecontrol-smoke"), ("graphics.py", "graphics-smoke"),
                                          ("animation.py", "animation-smoke"), ("dither.py", "dither-smoke")])
def test_benchmark_smoke(tmp_path, script, name):
    images = _cq100_or_synthetic(tmp_path)
    process = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--images", str(images),
         "--out", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    summary = json.loads((tmp_path / "results" / f"{name}.json").read_text())["summary"]
    assert summary["images"] >= 2
    assert "|" in (tmp_path / "results" / f"{name}.md").read_text()
