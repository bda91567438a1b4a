"""Helpers shared by the benchmark scripts: image discovery, timing, tables, results files."""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_IMAGES = HERE.parent.parent / "shared" / "cq100"
RESULTS = HERE / "results"


def benchmark_parser(description: str, smoke_help: str | None = None) -> argparse.ArgumentParser:
    """The options every benchmark has: --images DIR, --smoke (what CI runs), --out DIR."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    paths = sorted(p for p in Path(folder).iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"))
    if not paths:
        raise SystemExit(f"no images in {folder}; pass --images DIR")
    return paths[:limit] if limit else paths


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def smoke_crops(paths: list[Path], folder: Path, height: int = 96, width: int = 128) -> list[Path]:
    """The top-left corner of each image saved as a PNG in ``folder``: what a --smoke run measures."""
    from PIL import Image

    crops = []
    for path in paths:
        crop = folder / f"crop-{path.stem}.png"
        Image.fromarray(load_rgb(path)[:height, :width]).save(crop)
        crops.append(crop)
    return crops


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0**2 / error)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def run_measured(command: list[str]) -> tuple[float, float, int]:
    """Whole-process (seconds, peak MiB, exit status) of ``command``.

    Peak memory is the child's VmHWM, polled from /proc while it runs: wait4()'s ru_maxrss
    would include this (large) Python process, which the child was forked from.
    """
    import subprocess

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    return seconds, peak_kib / 1024, process.returncode


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_results(name: str, payload: dict, markdown: str, out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    md_path = out_dir / f"{name}.md"
    md_path.write_text(markdown + "\n")
    return md_path
