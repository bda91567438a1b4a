"""Is the SSIMULACRA2 implementation colorquant uses (PyPI `ssimulacra2`) scoring as the
reference does? (issue 15)

    python benchmarks/ssimulacra2_check.py           # CQ100
    python benchmarks/ssimulacra2_check.py --smoke   # 2 crops; CI

The reference implementation (libjxl, tools/ssimulacra2) publishes what typical outputs of
libjpeg-turbo score: 4:2:0 quality 14 -> 10, quality 20 -> 30, quality 35 -> 50, quality 70
-> 70; 4:2:2 quality 85 -> 80; 4:4:4 quality 90 -> 85. This saves every photo with Pillow's
libjpeg-turbo at those settings and reports the mean and median score of each against the
published value, with the seconds per score. Writes results/ssimulacra2_check.{json,md}.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, find_images, load_rgb, machine, markdown_table, write_results  # noqa: E402

from colorquant.metrics import ssimulacra2  # noqa: E402

# (libjpeg-turbo quality, Pillow subsampling: 2 = 4:2:0, 1 = 4:2:2, 0 = 4:4:4, published score)
PUBLISHED = [(14, 2, 10), (20, 2, 30), (35, 2, 50), (70, 2, 70), (85, 1, 80), (90, 0, 85)]
SUBSAMPLING = {2: "4:2:0", 1: "4:2:2", 0: "4:4:4"}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, smoke_help="two crops")
    args = parser.parse_args(argv)
    from PIL import Image

    images = [load_rgb(path) for path in find_images(args.images, 2 if args.smoke else None)]
    if args.smoke:
        images = [np.ascontiguousarray(image[:128, :192]) for image in images]
    rows, seconds = [], []
    for quality, subsampling, published in PUBLISHED:
        scores = []
        for pixels in images:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            started = time.perf_counter()
            scores.append(ssimulacra2(pixels, decoded))
            seconds.append(time.perf_counter() - started)
        rows.append({"jpeg": f"libjpeg-turbo {SUBSAMPLING[subsampling]} quality {quality}", "published": published,
                     "mean": float(np.mean(scores)), "median": float(np.median(scores))})
        print(rows[-1], file=sys.stderr, flush=True)
    summary = {"machine": machine(), "images": len(images), "rows": rows,
               "seconds_per_score": float(np.mean(seconds)),
               "largest_difference": max(abs(r["mean"] - r["published"]) for r in rows)}
    markdown = "\n".join([
        f"SSIMULACRA2 check: {len(images)} images from {args.images.name}{' (smoke crops)' if args.smoke else ''}; "
        f"{machine()}; PyPI ssimulacra2 against the reference README's typical scores.",
        "",
        markdown_table(["JPEG", "published typical score", "mean here", "median here"],
                       [[r["jpeg"], r["published"], f"{r['mean']:.1f}", f"{r['median']:.1f}"] for r in rows]),
        "",
        f"Largest difference of a mean from the published value: {summary['largest_difference']:.1f}; "
        f"{summary['seconds_per_score']:.2f} s per score.",
    ])
    write_results("ssimulacra2_check-smoke" if args.smoke else "ssimulacra2_check", {"summary": summary},
                  markdown, args.out)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
