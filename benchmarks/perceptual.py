"""What people see (issue 15): SSIMULACRA2, PSNR, CIEDE2000 and bytes of every variant.

    python benchmarks/perceptual.py            # CQ100 at 16, 64, 256 colours
    python benchmarks/perceptual.py --smoke    # 2 crops, 16 colours; what CI runs

For each colour count, over the same photos: colorquant's default (no options: the mixed
space), --color-space rgb, --color-space oklab, and each of those with --dither; against
`pngquant --nofs N` and pngquant's default (dithered) on the same photos in the same run.
Figures per variant: mean SSIMULACRA2 (100 = identical), mean PSNR, mean CIEDE2000, total
bytes, and the differences to both pngquant runs. Then a figure of zoomed crops of the
smoothest gradient of one photo at 16 colours (original, pngquant --nofs, colorquant
default, pngquant default, colorquant --dither), where banding and dithering show. Writes
results/perceptual.{json,md} and results/perceptual-crops.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, Timer, find_images, load_rgb, machine,  # noqa: E402
                     markdown_table, psnr, write_results)

import colorquant as cq  # noqa: E402
from colorquant.metrics import mean_ciede2000, ssimulacra2  # noqa: E402

VARIANTS = {  # name -> quantize keywords
    "colorquant default": {},
    "--color-space rgb": {"color_space": "rgb"},
    "--color-space oklab": {"color_space": "oklab"},
    "--dither": {"dither": 1.0},
    "--color-space rgb --dither": {"color_space": "rgb", "dither": 1.0},
    "--color-space oklab --dither": {"color_space": "oklab", "dither": 1.0},
}


def pngquant_run(pngquant: str, path: Path, n_colors: int, dither: bool, output: Path) -> np.ndarray:
    from PIL import Image

    command = [pngquant, "--force", "--output", str(output), str(n_colors), str(path)]
    if not dither:
        command.insert(1, "--nofs")
    subprocess.run(command, check=True)
    return np.asarray(Image.open(output).convert("RGB"))


def figures(rows: list, reference: np.ndarray, output: np.ndarray, n_bytes: int, seconds: float | None) -> None:
    rows.append({"ssimulacra2": ssimulacra2(reference, output), "psnr": psnr(reference, output),
                 "ciede2000": mean_ciede2000(reference, output), "bytes": n_bytes, "seconds": seconds})


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, smoke_help="two crops at 16 colours")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--colors", default="16,64,256")
    parser.add_argument("--crop-photo", default="king_penguin", help="the photo of the crop figure")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.colors.split(",")]
    paths = find_images(args.images, 2 if args.smoke else args.limit)
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        print("pngquant is missing: apt-get install pngquant (its figures are left out)", file=sys.stderr)
    if args.smoke:
        counts = [16]
    from PIL import Image

    scratch = Path(tempfile.mkdtemp(prefix="colorquant-perceptual-"))
    inputs = []
    for index, path in enumerate(paths):
        pixels = load_rgb(path)
        if args.smoke:
            pixels = np.ascontiguousarray(pixels[:128, :192])
        saved = scratch / f"{path.stem}.png"
        Image.fromarray(pixels).save(saved)
        inputs.append((saved, pixels))
    cq.quantize(inputs[0][1][:32, :32], n_colors=4, dither=1.0)  # warm-up: imports, numba compile

    summary_rows = []
    for n_colors in counts:
        per_variant: dict[str, list] = {name: [] for name in VARIANTS}
        if pngquant:
            per_variant["pngquant --nofs"], per_variant["pngquant (dithered)"] = [], []
        for index, (path, pixels) in enumerate(inputs):
            for name, options in VARIANTS.items():
                with Timer() as timer:
                    result = cq.quantize(pixels, n_colors=n_colors, **options)
                    data = result.encode()
                figures(per_variant[name], pixels, result.to_array(), len(data), timer.seconds)
            if pngquant:
                for name, dither in (("pngquant --nofs", False), ("pngquant (dithered)", True)):
                    output = scratch / f"pq{index}-{n_colors}-{dither}.png"
                    decoded = pngquant_run(pngquant, path, n_colors, dither, output)
                    figures(per_variant[name], pixels, decoded, output.stat().st_size, None)
        means = {name: {key: float(np.mean([r[key] for r in rows])) for key in ("ssimulacra2", "psnr", "ciede2000")}
                 | {"bytes": int(sum(r["bytes"] for r in rows)),
                    "seconds": float(np.mean([r["seconds"] for r in rows])) if rows[0]["seconds"] is not None else None}
                 for name, rows in per_variant.items()}
        for name, figure in means.items():
            row = {"variant": name, "colors": n_colors, **figure}
            dithered = "dither" in name
            for label, reference in (("nofs", "pngquant --nofs"), ("dithered", "pngquant (dithered)")):
                if reference in means:
                    row[f"ssimulacra2_vs_{label}"] = figure["ssimulacra2"] - means[reference]["ssimulacra2"]
                    row[f"psnr_vs_{label}"] = figure["psnr"] - means[reference]["psnr"]
                    row[f"bytes_vs_{label}"] = figure["bytes"] / means[reference]["bytes"]
            row["compared_with"] = "dithered" if dithered else "nofs"
            summary_rows.append(row)
            print(row, file=sys.stderr, flush=True)

    table = []
    for r in summary_rows:
        against = r["compared_with"]
        table.append([r["variant"], r["colors"], f"{r['ssimulacra2']:.2f}", f"{r['psnr']:.2f}", f"{r['ciede2000']:.2f}",
                      f"{r['bytes'] / 1024:.0f} KiB",
                      "" if r["seconds"] is None else f"{r['seconds']:.3f}",
                      f"{r[f'ssimulacra2_vs_{against}']:+.2f}" if f"ssimulacra2_vs_{against}" in r else "",
                      f"{r[f'psnr_vs_{against}']:+.2f} dB" if f"psnr_vs_{against}" in r else "",
                      f"{r[f'bytes_vs_{against}']:.3f}" if f"bytes_vs_{against}" in r else "",
                      "pngquant --nofs" if against == "nofs" else "pngquant (dithered)"])
    markdown = "\n".join([
        f"Perceptual benchmark: {len(inputs)} images from {args.images.name}{' (smoke crops)' if args.smoke else ''}; "
        f"{machine()}; kmeans at the default speed; means per image, total bytes, in-process seconds "
        "(quantize and encode). Plain variants are compared with pngquant --nofs, dithered ones with "
        "pngquant's default (dithered).",
        "",
        markdown_table(["variant", "colours", "SSIMULACRA2", "PSNR dB", "CIEDE2000", "bytes", "seconds",
                        "SSIMULACRA2 vs", "PSNR vs", "bytes vs", "compared with"], table),
    ])
    stem = "perceptual-smoke" if args.smoke else "perceptual"
    args.out.mkdir(parents=True, exist_ok=True)
    if pngquant:
        crop_photo = next((item for item in inputs if item[0].stem == args.crop_photo), inputs[0])
        crop_figure(crop_photo, min(counts), pngquant, scratch, args.out / f"{stem}-crops.png", where="difference")
    write_results(stem, {"summary": {"machine": machine(), "images": len(inputs), "rows": summary_rows}},
                  markdown, args.out)
    print(markdown)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def crop_figure(photo, n_colors: int, pngquant: str, scratch: Path, target: Path, where: str = "gradient") -> None:
    """Original, pngquant --nofs, colorquant default, pngquant dithered, colorquant --dither:
    enlarged crops of the photo's smoothest gradient (or, with ``where="difference"``, of the
    window where the plain outputs' errors differ most), each titled with its SSIMULACRA2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colorquant.plots import smooth_gradient_crop

    path, pixels = photo
    panels = [("original", pixels)]
    panels.append(("pngquant --nofs", pngquant_run(pngquant, path, n_colors, False, scratch / "crop-nofs.png")))
    panels.append(("colorquant", cq.quantize(pixels, n_colors=n_colors).to_array()))
    crop = _telling_window(pixels, panels[1][1], panels[2][1], size=96) if where == "difference" else \
        smooth_gradient_crop(pixels, size=96)
    panels.append(("pngquant (dithered)", pngquant_run(pngquant, path, n_colors, True, scratch / "crop-fs.png")))
    panels.append(("colorquant --dither", cq.quantize(pixels, n_colors=n_colors, dither=1.0).to_array()))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image[crop], interpolation="nearest")
        score = "" if title == "original" else f"\nSSIMULACRA2 {ssimulacra2(pixels, image):.1f} (whole photo)"
        ax.set_title(title + score, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    what = ("the window where the two plain outputs differ most" if where == "difference"
            else "the smoothest gradient")
    figure.suptitle(f"{n_colors} colours: {what} of {path.stem}, enlarged", fontsize=10)
    figure.savefig(target, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)


def _telling_window(original: np.ndarray, first: np.ndarray, second: np.ndarray, size: int):
    """The ``size`` x ``size`` window where the mean colour error of ``first`` exceeds that of
    ``second`` the most: where a difference between the two outputs is there to be seen."""
    excess = (np.abs(first.astype(np.float64) - original).sum(axis=2)
              - np.abs(second.astype(np.float64) - original).sum(axis=2))
    table = np.pad(excess.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return slice(top, top + size), slice(left, left + size)


if __name__ == "__main__":
    sys.exit(main())
