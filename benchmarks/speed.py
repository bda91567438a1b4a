"""What each --speed level costs and gives (issue 14): seconds, PSNR and bytes on CQ100.

    python benchmarks/speed.py                  # levels 1-11 at 16, 64 and 256 colours
    python benchmarks/speed.py --color-space rgb --levels 1,4   # the PSNR-optimal fit
    python benchmarks/speed.py --smoke          # 2 crops, levels 1, 4, 11, 16 colours; CI

For each level and colour count, over the same photos: the mean in-process seconds per
photo (quantize and encode the palette PNG, kmeans; imports and warm-up excluded), the mean
PSNR of the written PNG, and the total bytes; against `pngquant --nofs N` (Debian package)
run on the same photos in the same run: PSNR difference and byte ratio. Writes
results/speed.{json,md}.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, benchmark_parser, find_images, load_rgb, machine, markdown_table, psnr, write_results  # noqa: E402

import colorquant as cq  # noqa: E402
from colorquant.effort import EFFORTS  # noqa: E402


def pngquant_figures(pngquant: str, paths, images, n_colors: int, scratch: Path) -> tuple[float, int]:
    """Mean PSNR and total bytes of ``pngquant --nofs N`` on the photos."""
    from PIL import Image

    psnrs, total = [], 0
    for path, pixels in zip(paths, images):
        output = scratch / f"pq-{n_colors}-{path.stem}.png"
        subprocess.run([pngquant, "--nofs", "--force", "--output", str(output), str(n_colors), str(path)],
                       check=True)
        total += output.stat().st_size
        psnrs.append(psnr(pixels, np.asarray(Image.open(output).convert("RGB"))))
    return float(np.mean(psnrs)), total


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, smoke_help="two crops, levels 1, 4 and 11, 16 colours")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--colors", default="16,64,256")
    parser.add_argument("--levels", default=",".join(str(level) for level in EFFORTS))
    parser.add_argument("--color-space", default=None, help="default: colorquant's default (mixed)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.colors.split(",")]
    levels = [int(level) for level in args.levels.split(",")]
    paths = find_images(args.images, 2 if args.smoke else args.limit)
    if args.smoke:
        counts, levels = [16], [1, 4, 11]
    from PIL import Image

    scratch = Path(tempfile.mkdtemp(prefix="colorquant-speed-"))
    images = []
    for index, path in enumerate(paths):
        pixels = load_rgb(path)
        if args.smoke:
            pixels = pixels[:128, :192]
            path = scratch / f"crop{index}.png"
            Image.fromarray(pixels).save(path)
            paths[index] = path
        images.append(pixels)
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        print("pngquant is missing: apt-get install pngquant (its figures are left out)", file=sys.stderr)
    cq.quantize(images[0][:32, :32], n_colors=4).encode()  # warm-up: imports, first calls

    rows = []
    for n_colors in counts:
        reference = pngquant_figures(pngquant, paths, images, n_colors, scratch) if pngquant else None
        for level in levels:
            seconds, psnrs, total = [], [], 0
            for pixels in images:
                with Timer() as timer:
                    result = cq.quantize(pixels, n_colors=n_colors, speed=level, color_space=args.color_space)
                    data = result.encode()
                seconds.append(timer.seconds)
                psnrs.append(result.metrics.psnr)
                total += len(data)
            row = {"speed": level, "colors": n_colors, "images": len(images),
                   "seconds": float(np.mean(seconds)), "psnr": float(np.mean(psnrs)), "bytes": total}
            if reference:
                row.update(psnr_vs_pngquant=row["psnr"] - reference[0], bytes_vs_pngquant=total / reference[1],
                           pngquant_psnr=reference[0], pngquant_bytes=reference[1])
            rows.append(row)
            print(row, file=sys.stderr, flush=True)

    table = [[r["speed"] if r["speed"] != 4 else "4 (default)", r["colors"], f"{r['seconds']:.3f}", f"{r['psnr']:.2f}",
              f"{r['bytes'] / 1024:.0f} KiB",
              f"{r['psnr_vs_pngquant']:+.2f} dB" if "psnr_vs_pngquant" in r else "",
              f"{r['bytes_vs_pngquant']:.3f}" if "bytes_vs_pngquant" in r else ""] for r in rows]
    markdown = "\n".join([
        f"Speed benchmark: {len(images)} images from {args.images.name}{' (smoke crops)' if args.smoke else ''}; "
        f"{machine()}; kmeans, colour space {args.color_space or 'default (mixed)'}, no dithering; in-process seconds per image (quantize and encode), mean PSNR, "
        "total bytes; pngquant --nofs on the same photos in the same run.",
        "",
        markdown_table(["speed", "colours", "seconds", "PSNR dB", "bytes", "PSNR vs pngquant", "bytes vs pngquant"],
                       table),
    ])
    stem = ("speed-smoke" if args.smoke else "speed") + (f"-{args.color_space}" if args.color_space else "")
    write_results(stem, {"summary": {"machine": machine(), "images": len(images), "rows": rows}}, markdown, args.out)
    print(markdown)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
