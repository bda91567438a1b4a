"""`--dither` as a user feels it (issue 27): whole processes against pngquant's default
(which dithers), one photo per process, alternated, in one run.

    python benchmarks/dither.py              # 8 CQ100 photos at 256 colours, and a 10 MP photo
    python benchmarks/dither.py --smoke      # 2 small crops; what CI runs

For each photo, `colorquant compress photo -k 256 --dither` then `pngquant 256 photo`, three
times; the first colorquant run is reported on its own (the kernel is compiled at install, so
it should cost what the others do), the figures are medians. Peak memory is each process's
VmHWM. Then one 10 MP photo (a CQ100 photo enlarged) the same way. Writes
results/dither.{json,md}.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, find_images, machine, markdown_table, run_measured,  # noqa: E402
                     smoke_crops, write_results)

CLI = [sys.executable, "-m", "colorquant"]


def measure(photo: Path, work: Path, pngquant: str, repeats: int) -> dict:
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(run_measured([*CLI, "compress", str(photo), "-k", "256", "--dither", "-q", "--force",
                                  "--output", str(work / "cq.png")]))
        theirs.append(run_measured([pngquant, "256", "--force", "--output", str(work / "pq.png"), str(photo)]))
    assert all(status == 0 for _, _, status in ours + theirs), (photo, ours, theirs)
    return {"photo": photo.name, "first_seconds": ours[0][0],
            "seconds": statistics.median(run[0] for run in ours),
            "pngquant_seconds": statistics.median(run[0] for run in theirs),
            "peak_mib": max(run[1] for run in ours), "pngquant_peak_mib": max(run[1] for run in theirs),
            "bytes": (work / "cq.png").stat().st_size, "pngquant_bytes": (work / "pq.png").stat().st_size}


def enlarged(photo: Path, path: Path, pixels: int = 10_000_000) -> Path:
    from PIL import Image

    with Image.open(photo) as image:
        scale = (pixels / (image.width * image.height)) ** 0.5
        image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                    Image.Resampling.LANCZOS).save(path)
    return path


def main() -> None:
    parser = benchmark_parser(__doc__, "2 crops of 128x96, one run each")
    parser.add_argument("--limit", type=int, default=8)
    args = parser.parse_args()
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        raise SystemExit("pngquant is needed (Debian package pngquant; scripts/test installs it)")
    photos = find_images(args.images, 2 if args.smoke else args.limit)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.smoke:
            photos = smoke_crops(photos, work)
        repeats = 1 if args.smoke else 3
        rows = [measure(photo, work, pngquant, repeats) for photo in photos]
        big = None if args.smoke else measure(enlarged(photos[0], work / "big-10mp.png"), work, pngquant, repeats)
    ratios = [row["seconds"] / row["pngquant_seconds"] for row in rows]
    firsts = [row["first_seconds"] / row["pngquant_seconds"] for row in rows]
    table = markdown_table(
        ["photo", "seconds (first run)", "seconds (median)", "pngquant", "x pngquant", "peak MiB", "pngquant MiB",
         "bytes x pngquant"],
        [[row["photo"], round(row["first_seconds"], 3), round(row["seconds"], 3), round(row["pngquant_seconds"], 3),
          round(row["seconds"] / row["pngquant_seconds"], 2), round(row["peak_mib"], 1),
          round(row["pngquant_peak_mib"], 1), round(row["bytes"] / row["pngquant_bytes"], 3)]
         for row in rows + ([big] if big else [])])
    summary = {"images": len(rows), "median_ratio": statistics.median(ratios),
               "worst_first_run_ratio": max(firsts), "big": big}
    lines = [f"`--dither -k 256` against `pngquant 256` (dithered): median {summary['median_ratio']:.2f}x its time "
             f"over {len(rows)} photos, first runs at most {summary['worst_first_run_ratio']:.2f}x."]
    if big:
        lines.append(f"10 MP photo: {big['seconds']:.2f} s and {big['peak_mib']:.0f} MiB against pngquant's "
                     f"{big['pngquant_seconds']:.2f} s and {big['pngquant_peak_mib']:.0f} MiB.")
    markdown = "\n\n".join([f"# Dithering ({'smoke' if args.smoke else 'CQ100'})", f"Machine: {machine()}",
                            "\n".join(f"- {line}" for line in lines), table])
    path = write_results("dither-smoke" if args.smoke else "dither", {"machine": machine(), "rows": rows,
                                                                      "summary": summary}, markdown, args.out)
    print(markdown)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
