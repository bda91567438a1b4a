"""Perceptual figures (issue 8): colour spaces and dithering at 16 colours.

    python benchmarks/perceptual.py            # CQ100, writes results/perceptual.{json,md}
    python benchmarks/perceptual.py --smoke    # 2 small crops; what CI runs

Per image, kmeans at 16 colours: clustering in rgb, lab and oklab (mean CIEDE2000, PSNR,
seconds), and rgb with and without Floyd-Steinberg dithering (PSNR, blurred PSNR: Gaussian
sigma 1 px on both images, seconds). Then one photo of at least 24 MP (a CQ100 image upscaled
by Lanczos) at 256 colours: quantization seconds against dithering seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, Timer, find_images, load_rgb, machine,  # noqa: E402
                     markdown_table, write_results)

import colorquant as cq  # noqa: E402
from colorquant.metrics import blurred_psnr, mean_ciede2000  # noqa: E402


def upscaled(pixels: np.ndarray, megapixels: float) -> np.ndarray:
    from PIL import Image

    height, width = pixels.shape[:2]
    scale = (megapixels * 1e6 / (height * width)) ** 0.5
    size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--colors", type=int, default=16)
    parser.add_argument("--big-megapixels", type=float, default=24.0)
    args = parser.parse_args(argv)
    paths = find_images(args.images, 2 if args.smoke else args.limit)
    images = [load_rgb(p) for p in paths]
    if args.smoke:
        images = [image[:96, :128] for image in images]
        args.big_megapixels = 0.05

    cq.quantize(images[0], n_colors=4, dither=1.0)  # warm-up: imports, numba compile
    rows = []
    for path, pixels in zip(paths, images):
        row = {"image": path.stem}
        for space in ("rgb", "lab", "oklab"):
            result = cq.quantize(pixels, n_colors=args.colors, color_space=space)
            output = result.to_array()
            row[f"{space}_ciede2000"] = mean_ciede2000(pixels, output)
            row[f"{space}_psnr"] = result.metrics.psnr
            row[f"{space}_s"] = result.seconds
            if space == "rgb":
                row["plain_blurred_psnr"] = blurred_psnr(pixels, output)
        dithered = cq.quantize(pixels, n_colors=args.colors, dither=1.0)
        row["dither_psnr"] = dithered.metrics.psnr
        row["dither_blurred_psnr"] = blurred_psnr(pixels, dithered.to_array())
        row["dither_ciede2000"] = mean_ciede2000(pixels, dithered.to_array())
        row["dither_s"] = dithered.seconds
        rows.append(row)
        print(f"{path.stem}: dE00 rgb {row['rgb_ciede2000']:.2f} lab {row['lab_ciede2000']:.2f} "
              f"oklab {row['oklab_ciede2000']:.2f}; blurred PSNR {row['plain_blurred_psnr']:.2f} -> "
              f"{row['dither_blurred_psnr']:.2f}", file=sys.stderr)

    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    big = upscaled(images[0], args.big_megapixels)
    from colorquant.dither import floyd_steinberg

    with Timer() as quantize_timer:
        big_result = cq.quantize(big, n_colors=256)
    with Timer() as dither_timer:
        floyd_steinberg(big, big_result.palette, 1.0)

    summary = {"machine": machine(), "images": len(rows), "colors": args.colors}
    for key in ("rgb_ciede2000", "lab_ciede2000", "oklab_ciede2000", "rgb_psnr", "lab_psnr", "oklab_psnr",
                "rgb_s", "lab_s", "oklab_s", "plain_blurred_psnr", "dither_psnr", "dither_blurred_psnr",
                "dither_ciede2000", "dither_s"):
        summary[key] = mean(key)
    summary["lab_ciede2000_change"] = summary["lab_ciede2000"] / summary["rgb_ciede2000"] - 1
    summary["oklab_ciede2000_change"] = summary["oklab_ciede2000"] / summary["rgb_ciede2000"] - 1
    summary["dither_blurred_psnr_gain"] = summary["dither_blurred_psnr"] - summary["plain_blurred_psnr"]
    summary["big_image"] = f"{paths[0].stem} upscaled to {big.shape[1]}x{big.shape[0]}"
    summary["big_quantize_256_s"] = quantize_timer.seconds
    summary["big_dither_256_s"] = dither_timer.seconds

    table = markdown_table(
        ["variant (kmeans, 16 colours)", "mean CIEDE2000", "PSNR dB", "blurred PSNR dB", "seconds"],
        [["rgb", summary["rgb_ciede2000"], summary["rgb_psnr"], summary["plain_blurred_psnr"], summary["rgb_s"]],
         ["lab", summary["lab_ciede2000"], summary["lab_psnr"], "", summary["lab_s"]],
         ["oklab", summary["oklab_ciede2000"], summary["oklab_psnr"], "", summary["oklab_s"]],
         ["rgb + dither", summary["dither_ciede2000"], summary["dither_psnr"], summary["dither_blurred_psnr"],
          summary["dither_s"]]])
    markdown = "\n".join([
        f"Perceptual benchmark: {len(rows)} images from {args.images.name}"
        f"{' (smoke: 96x128 crops)' if args.smoke else ''}; {machine()}; means per image; seconds in-process.",
        "",
        table,
        "",
        f"CIEDE2000 against rgb: lab {100 * summary['lab_ciede2000_change']:+.1f}%, "
        f"oklab {100 * summary['oklab_ciede2000_change']:+.1f}%; PSNR cost: lab "
        f"{summary['lab_psnr'] - summary['rgb_psnr']:+.2f} dB, oklab {summary['oklab_psnr'] - summary['rgb_psnr']:+.2f} dB.",
        f"Dithering: blurred PSNR {summary['dither_blurred_psnr_gain']:+.2f} dB, plain PSNR "
        f"{summary['dither_psnr'] - summary['rgb_psnr']:+.2f} dB.",
        f"{summary['big_image']} at 256 colours: quantization {summary['big_quantize_256_s']:.2f} s, "
        f"dithering {summary['big_dither_256_s']:.2f} s.",
    ])
    write_results("perceptual-smoke" if args.smoke else "perceptual", {"summary": summary, "rows": rows},
                  markdown, args.out)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
