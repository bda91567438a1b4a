"""Auto-K figures (issue 3): the colour count found for a PSNR target, against the naive loop.

    python benchmarks/autok.py                  # CQ100 + scikit-image photos, 35 dB
    python benchmarks/autok.py --smoke          # tiny crops, seconds; what CI runs

The naive loop is what a notebook does: K = 4, 5, 6, ... refitting scikit-learn KMeans on
every pixel, until the MSE of the remapped image meets the target. It is run on the images
whose answer (by colorquant) is at most --naive-max-k, the first --naive-images of them, since
it takes minutes per image beyond that. colorquant's seconds include the whole search
(histogram, every fit tried, the remap); the naive loop's include every fit and predict.
For the images compared with the naive loop, `colorquant compress --target-psnr` is also
timed as a whole process (start-up, decoding, search, encoding and writing).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, Timer, find_images, load_rgb, machine,  # noqa: E402
                     markdown_table, write_results)

import colorquant as cq  # noqa: E402
from colorquant.metrics import psnr_from_mse  # noqa: E402


def naive_loop(pixels: np.ndarray, target_psnr: float, max_k: int) -> tuple[int | None, float, float]:
    from sklearn.cluster import KMeans

    flat = pixels.reshape(-1, 3).astype(np.float32)
    target_mse = 255.0**2 / 10 ** (target_psnr / 10)
    with Timer() as timer:
        for n_colors in range(4, max_k + 1):
            model = KMeans(n_clusters=n_colors, random_state=0).fit(flat)
            palette = np.clip(np.rint(model.cluster_centers_), 0, 255)
            error = float(np.mean((palette[model.predict(flat)] - flat) ** 2))
            if error <= target_mse:
                break
        else:
            n_colors = None
    return n_colors, psnr_from_mse(error), timer.seconds


def whole_process(pixels: np.ndarray, target_psnr: float, method: str) -> float:
    """Seconds of `colorquant compress PHOTO --target-psnr X` as a process, start-up included."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / "photo.png"
        Image.fromarray(pixels).save(photo)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "colorquant", "compress", str(photo), "-q", "-m", method,
                        "--target-psnr", str(target_psnr), "-o", scratch], check=True)
        return time.perf_counter() - started


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--no-skimage", action="store_true", help="leave out scikit-image's photos")
    parser.add_argument("--target-psnr", type=float, default=35.0)
    parser.add_argument("--method", default="kmeans")
    parser.add_argument("--naive-images", type=int, default=5)
    parser.add_argument("--naive-max-k", type=int, default=100)
    args = parser.parse_args(argv)

    named = [(p.stem, load_rgb(p)) for p in find_images(args.images, 2 if args.smoke else None)]
    if not args.no_skimage:
        from skimage import data

        named = [(name, getattr(data, name)()) for name in ("astronaut", "coffee", "chelsea")] + named
    if args.smoke:
        named = [(name, pixels[:96, :128]) for name, pixels in named[:3]]
        args.naive_images, args.naive_max_k, args.target_psnr = 2, 24, 30.0

    cq.quantize(named[0][1][:64, :64], n_colors=8, method=args.method)  # warm-up
    rows, naive_runs = [], 0
    for name, pixels in named:
        row = {"image": name}
        try:
            result = cq.quantize(pixels, target_psnr=args.target_psnr, method=args.method)
            row.update(colors=result.n_colors, psnr=result.metrics.psnr, seconds=result.seconds,
                       fits=len(result.search))
        except cq.QualityTooLowError as error:
            row.update(colors=None, psnr=error.best_value, seconds=None, fits=None)
        if row["colors"] is not None and row["colors"] <= args.naive_max_k and naive_runs < args.naive_images:
            naive_runs += 1
            row["naive_colors"], row["naive_psnr"], row["naive_seconds"] = naive_loop(
                pixels, args.target_psnr, args.naive_max_k)
            row["whole_seconds"] = whole_process(pixels, args.target_psnr, args.method)
        rows.append(row)
        print(row, file=sys.stderr)

    compared = [r for r in rows if r.get("naive_colors") is not None]
    table_rows = []
    for r in rows:
        naive = compared and r in compared
        table_rows.append([
            r["image"], r["colors"] if r["colors"] is not None else "not reached (<=256)",
            f"{r['psnr']:.2f}" if r["psnr"] is not None else "",
            r["fits"] if r["fits"] is not None else "",
            f"{r['seconds']:.3f}" if r["seconds"] is not None else "",
            r["naive_colors"] if naive else "", f"{r['naive_seconds']:.1f}" if naive else "",
            f"{r['naive_seconds'] / r['seconds']:.0f}x" if naive else "",
            f"{r['whole_seconds']:.2f}" if naive else "",
            f"{r['naive_seconds'] / r['whole_seconds']:.0f}x" if naive else "",
        ])
    summary = {
        "machine": machine(),
        "target_psnr": args.target_psnr,
        "method": args.method,
        "images": len(rows),
        "reached": sum(r["colors"] is not None for r in rows),
        "compared_with_naive": len(compared),
        "max_extra_colours_vs_naive": max((r["colors"] - r["naive_colors"] for r in compared), default=None),
        "min_speedup_vs_naive": min((r["naive_seconds"] / r["seconds"] for r in compared), default=None),
        "min_whole_process_speedup_vs_naive": min((r["naive_seconds"] / r["whole_seconds"] for r in compared),
                                                  default=None),
        "median_seconds": float(np.median([r["seconds"] for r in rows if r["seconds"] is not None])),
    }
    markdown = "\n".join([
        f"Auto-K benchmark: target PSNR {args.target_psnr:g} dB, method {args.method}; {machine()}; "
        f"in-process seconds for the whole search.",
        "",
        markdown_table(["image", "colours found", "PSNR dB", "fits", "seconds", "naive loop colours",
                        "naive loop seconds", "speed-up", "whole process s", "speed-up, whole process"],
                       table_rows),
        "",
        f"Against the naive loop on {len(compared)} images: at most "
        f"{summary['max_extra_colours_vs_naive']} colour(s) more, at least "
        f"{summary['min_speedup_vs_naive'] or 0:.0f}x faster in-process and "
        f"{summary['min_whole_process_speedup_vs_naive'] or 0:.0f}x as a whole process. Median search time "
        f"{summary['median_seconds']:.3f} s.",
    ])
    write_results("autok-smoke" if args.smoke else "autok", {"summary": summary, "rows": rows}, markdown, args.out)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
