"""Core figures (issue 2): colorquant's methods against scikit-learn fitted on every pixel.

    python benchmarks/core.py                 # all of ../shared/cq100, writes results/core.{json,md}
    python benchmarks/core.py --smoke         # 2 images, seconds; what CI runs

Measures, per image (768x512 CQ100 photographs by default):
  * kmeans at 16 colours in sRGB (``--color-space rgb``, the objective scikit-learn fits): PSNR
    and seconds, against KMeans(16, random_state=0) fitted on every pixel (the naive way) then
    predicting every pixel; both in-process, after a warm-up.
  * gmm at 16 colours: seconds against GaussianMixture fitted on every pixel (on the first
    --naive-gmm-images images only: it takes tens of seconds each), and the covariance types.
  * gmm on flat synthetic images (few colours repeated) for every covariance type: no failure.
  * output size: every image at 16, 32 and 64 colours as a palette PNG against the same pixels
    as a 24-bit PNG (Pillow, optimize=True).
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, Timer, find_images, load_rgb, machine,  # noqa: E402
                     markdown_table, psnr, write_results)

import colorquant as cq  # noqa: E402


def naive_kmeans(pixels: np.ndarray, n_colors: int) -> tuple[float, float]:
    from sklearn.cluster import KMeans

    flat = pixels.reshape(-1, 3).astype(np.float32)
    with Timer() as timer:
        model = KMeans(n_clusters=n_colors, random_state=0).fit(flat)
        labels = model.predict(flat)
    palette = np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)
    return timer.seconds, psnr(pixels, palette[labels].reshape(pixels.shape))


def naive_gmm(pixels: np.ndarray, n_colors: int) -> tuple[float, float]:
    from sklearn.mixture import GaussianMixture

    flat = pixels.reshape(-1, 3).astype(np.float64)
    with Timer() as timer, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(n_components=n_colors, random_state=0, reg_covar=1e-3).fit(flat)
        labels = model.predict(flat)
    palette = np.clip(np.rint(model.means_), 0, 255).astype(np.uint8)
    return timer.seconds, psnr(pixels, palette[labels].reshape(pixels.shape))


def ours(pixels: np.ndarray, n_colors: int, method: str, **options) -> tuple[float, object]:
    # In sRGB, the space scikit-learn fits in: the same objective on both sides. (The default
    # colour space, mixed, trades a little PSNR for what people see: see perceptual.py.)
    result = cq.quantize(pixels, n_colors=n_colors, method=method, color_space="rgb", **options)
    return result.seconds, result


def truecolour_png_bytes(pixels: np.ndarray) -> int:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", optimize=True)
    return len(buffer.getvalue())


def flat_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = []
    for n_flat in (3, 20, 40, 120):
        colours = rng.integers(0, 256, size=(n_flat, 3), dtype=np.uint8)
        bands = (np.arange(512) * n_flat // 512)[None, :].repeat(256, axis=0)
        images.append(colours[bands])
    return images


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, "2 images, 1 naive GMM on a crop")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--naive-gmm-images", type=int, default=3)
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.naive_gmm_images = 2, 1
    paths = find_images(args.images, args.limit)
    images = [load_rgb(p) for p in paths]
    if args.smoke:
        images = [image[:128, :192] for image in images]

    ours(images[0], 16, "kmeans")  # warm-up: imports and first-call costs
    naive_kmeans(images[0][:64, :64], 4)

    per_image = []
    for path, pixels in zip(paths, images):
        row = {"image": path.stem}
        row["naive_kmeans_s"], row["naive_kmeans_psnr"] = naive_kmeans(pixels, 16)
        seconds, result = ours(pixels, 16, "kmeans")
        row["kmeans_s"], row["kmeans_psnr"] = seconds, result.metrics.psnr
        for covariance in ("full", "tied", "diag", "spherical"):
            seconds, result = ours(pixels, 16, "gmm", covariance_type=covariance)
            row[f"gmm_{covariance}_s"], row[f"gmm_{covariance}_psnr"] = seconds, result.metrics.psnr
        row["truecolour_png_bytes"] = truecolour_png_bytes(pixels)
        for n_colors in (16, 32, 64):
            row[f"palette_png_bytes_k{n_colors}"] = len(cq.quantize(pixels, n_colors=n_colors).encode())
        per_image.append(row)
        print(f"{path.stem}: naive {row['naive_kmeans_psnr']:.2f} dB {row['naive_kmeans_s']:.3f} s, "
              f"kmeans {row['kmeans_psnr']:.2f} dB {row['kmeans_s']:.3f} s", file=sys.stderr)

    naive_gmm_rows = []
    for path, pixels in list(zip(paths, images))[: args.naive_gmm_images]:
        naive_s, naive_psnr = naive_gmm(pixels, 16)
        seconds, result = ours(pixels, 16, "gmm")
        naive_gmm_rows.append({"image": path.stem, "naive_gmm_s": naive_s, "naive_gmm_psnr": naive_psnr,
                               "gmm_s": seconds, "gmm_psnr": result.metrics.psnr})
        print(f"{path.stem}: naive gmm {naive_s:.1f} s {naive_psnr:.2f} dB; gmm {seconds:.2f} s", file=sys.stderr)

    flat_failures = []
    for index, image in enumerate(flat_images()):
        for covariance in ("full", "tied", "diag", "spherical"):
            try:
                cq.quantize(image, n_colors=16, method="gmm", covariance_type=covariance)
            except Exception as error:  # noqa: BLE001 - counting failures is the point
                flat_failures.append(f"flat image {index} / {covariance}: {error!r}")

    def mean(key, rows=per_image):
        return float(np.mean([r[key] for r in rows]))

    summary = {
        "machine": machine(),
        "images": len(per_image),
        "naive_kmeans_psnr": mean("naive_kmeans_psnr"),
        "naive_kmeans_s": mean("naive_kmeans_s"),
        "kmeans_psnr": mean("kmeans_psnr"),
        "kmeans_s": mean("kmeans_s"),
        "gmm_psnr_by_covariance": {c: mean(f"gmm_{c}_psnr") for c in ("full", "tied", "diag", "spherical")},
        "gmm_s_by_covariance": {c: mean(f"gmm_{c}_s") for c in ("full", "tied", "diag", "spherical")},
        "naive_gmm_s": mean("naive_gmm_s", naive_gmm_rows),
        "naive_gmm_psnr": mean("naive_gmm_psnr", naive_gmm_rows),
        "gmm_s_on_naive_subset": mean("gmm_s", naive_gmm_rows),
        "gmm_psnr_on_naive_subset": mean("gmm_psnr", naive_gmm_rows),
        "flat_image_gmm_failures": flat_failures,
        "palette_smaller_than_truecolour": {
            k: sum(r[f"palette_png_bytes_k{k}"] < r["truecolour_png_bytes"] for r in per_image)
            for k in (16, 32, 64)
        },
    }
    summary["kmeans_psnr_minus_naive"] = summary["kmeans_psnr"] - summary["naive_kmeans_psnr"]
    summary["kmeans_speedup"] = summary["naive_kmeans_s"] / summary["kmeans_s"]
    summary["gmm_speedup"] = summary["naive_gmm_s"] / summary["gmm_s_on_naive_subset"]

    n = len(per_image)
    rows = [
        ["scikit-learn KMeans on every pixel (naive)", 16, summary["naive_kmeans_psnr"], summary["naive_kmeans_s"], "1.0x"],
        ["colorquant kmeans (--color-space rgb)", 16, summary["kmeans_psnr"], summary["kmeans_s"], f"{summary['kmeans_speedup']:.1f}x"],
    ]
    for covariance in ("full", "tied", "diag", "spherical"):
        rows.append([f"colorquant gmm, covariance {covariance}", 16, summary["gmm_psnr_by_covariance"][covariance],
                     summary["gmm_s_by_covariance"][covariance], ""])
    markdown = "\n".join([
        f"Core benchmark: {n} images from {args.images.name}{' (smoke: 128x192 crops)' if args.smoke else ''}; "
        f"{machine()}; in-process seconds per image (mean), PSNR mean.",
        "",
        markdown_table(["method", "colours", "PSNR dB", "seconds", "speed-up"], rows),
        "",
        f"kmeans PSNR minus naive: {summary['kmeans_psnr_minus_naive']:+.3f} dB; "
        f"{summary['kmeans_speedup']:.1f}x faster.",
        "",
        f"GaussianMixture on every pixel ({len(naive_gmm_rows)} images): {summary['naive_gmm_s']:.1f} s, "
        f"{summary['naive_gmm_psnr']:.2f} dB; colorquant gmm (default covariance) on the same: "
        f"{summary['gmm_s_on_naive_subset']:.2f} s, {summary['gmm_psnr_on_naive_subset']:.2f} dB: "
        f"{summary['gmm_speedup']:.0f}x faster.",
        f"GMM failures on flat images (4 images x 4 covariance types): {len(flat_failures)}.",
        "",
        "Palette PNG smaller than the same pixels as a 24-bit PNG: "
        + ", ".join(f"{summary['palette_smaller_than_truecolour'][k]}/{n} at {k} colours" for k in (16, 32, 64))
        + ".",
    ])
    write_results("core-smoke" if args.smoke else "core", {"summary": summary, "per_image": per_image,
                                                            "naive_gmm": naive_gmm_rows}, markdown, args.out)
    print(markdown)
    failed = flat_failures or any(summary["palette_smaller_than_truecolour"][k] < n for k in (16, 32, 64))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
