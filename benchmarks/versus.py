"""colorquant against pngquant, libimagequant, Pillow and scikit-learn (issues 4 and 14).

    python benchmarks/versus.py                  # CQ100 at 16, 64, 256 colours + a 24 MP photo
    python benchmarks/versus.py --smoke          # 2 crops, 16 colours, a 1 MP photo; CI

Per tool and colour count, over the same images in one go: median seconds per image,
mean PSNR and SSIM (decoded output against the input), total output bytes, bits per pixel,
peak memory, and ratios against pngquant. No dithering anywhere (pngquant --nofs).

How each is timed:
* in-process (library call on decoded pixels, imports and warm-up excluded): colorquant
  kmeans / minibatch / gmm (quantize + palette PNG), scikit-learn KMeans on every pixel
  (`--naive-images` images only: minutes per image at 256), libimagequant via the PyPI
  `imagequant` package, Pillow median cut and fast octree (those three saved with Pillow's
  PNG encoder, optimize=True);
* whole process (start-up, decoding and writing included), with peak memory (VmHWM):
  pngquant 2.x (Debian package `pngquant`); `colorquant compress` on one photo at a time
  against `pngquant --nofs N` on the same photo, alternating, at 16 and 256 colours (with
  the start-up floor of any Python tool, `python -c "import numpy, PIL.Image"`); and
  `colorquant compress` over all the images in one call (both cores) against
  `pngquant --nofs N` over the same files in one call.
Then a photo of at least --big-megapixels made by upscaling the first image (Lanczos):
`colorquant compress -k 256 -m METHOD` for each method against `pngquant --nofs 256`,
whole process, seconds and peak memory.
Writes results/versus.{json,md} and two plots: PSNR against seconds, PSNR against bits
per pixel.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (benchmark_parser, Timer, find_images, load_rgb, machine, markdown_table, psnr,  # noqa: E402
                     run_measured)

import colorquant as cq  # noqa: E402
from colorquant.metrics import ssim  # noqa: E402


def decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pil_png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def tool_colorquant(method, speed: int = 4):
    def run(pixels, n_colors):
        with Timer() as timer:
            result = cq.quantize(pixels, n_colors=n_colors, method=method, speed=speed)
            data = result.encode()
        return timer.seconds, data
    return run


def tool_naive(pixels, n_colors):
    from sklearn.cluster import KMeans

    from colorquant.encoding import encode_image

    flat = pixels.reshape(-1, 3).astype(np.float32)
    with Timer() as timer:
        model = KMeans(n_clusters=n_colors, random_state=0).fit(flat)
        labels = model.predict(flat).astype(np.uint8).reshape(pixels.shape[:2])
        palette = np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)
        data = encode_image(labels, palette)
    return timer.seconds, data


def tool_imagequant(pixels, n_colors):
    import imagequant
    from PIL import Image

    image = Image.fromarray(pixels)
    with Timer() as timer:
        quantized = imagequant.quantize_pil_image(image, dithering_level=0.0, max_colors=n_colors)
        data = pil_png(quantized)
    return timer.seconds, data


def tool_pillow(method_name):
    def run(pixels, n_colors):
        from PIL import Image

        method = getattr(Image.Quantize, method_name)
        with Timer() as timer:
            data = pil_png(Image.fromarray(pixels).quantize(n_colors, method=method, dither=Image.Dither.NONE))
        return timer.seconds, data
    return run


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--colors", default="16,64,256")
    parser.add_argument("--naive-images", type=int, default=3)
    parser.add_argument("--big-megapixels", type=float, default=24.0)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.colors.split(",")]
    paths = find_images(args.images, 2 if args.smoke else args.limit)
    if args.smoke:
        counts, args.naive_images, args.big_megapixels = [16], 1, 1.0
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        print("pngquant is missing: apt-get install pngquant (its figures are left out)", file=sys.stderr)

    from PIL import Image

    scratch = Path(tempfile.mkdtemp(prefix="colorquant-versus-"))
    inputs = []
    for path in paths:
        pixels = load_rgb(path)
        if args.smoke:
            pixels = pixels[:128, :192]
        target = scratch / "in" / f"{path.stem}.png"
        target.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(target)
        inputs.append((target, pixels))

    tools = {
        "colorquant kmeans": tool_colorquant("kmeans"),
        "colorquant kmeans --speed 1": tool_colorquant("kmeans", speed=1),
        "colorquant minibatch": tool_colorquant("minibatch"),
        "colorquant gmm": tool_colorquant("gmm"),
        "scikit-learn KMeans, every pixel": tool_naive,
        "libimagequant (imagequant)": tool_imagequant,
        "Pillow median cut": tool_pillow("MEDIANCUT"),
        "Pillow fast octree": tool_pillow("FASTOCTREE"),
    }
    for run in tools.values():  # warm-up: imports, first calls
        run(inputs[0][1][:32, :32], 4)

    rows = []
    for n_colors in counts:
        for name, run in tools.items():
            subset = inputs[: args.naive_images] if name.startswith("scikit-learn") else inputs
            seconds, psnrs, ssims, sizes, pixels_total = [], [], [], [], 0
            for _, pixels in subset:
                elapsed, data = run(pixels, n_colors)
                output = decode(data)
                seconds.append(elapsed)
                psnrs.append(psnr(pixels, output))
                ssims.append(ssim(pixels, output))
                sizes.append(len(data))
                pixels_total += pixels.shape[0] * pixels.shape[1]
            rows.append({"tool": name, "colors": n_colors, "timing": "in-process", "images": len(subset),
                         "median_s": float(np.median(seconds)), "psnr": float(np.mean(psnrs)),
                         "ssim": float(np.mean(ssims)), "bytes": int(sum(sizes)),
                         "bpp": 8.0 * sum(sizes) / pixels_total, "peak_mib": None})
            print(rows[-1], file=sys.stderr)
        if pngquant:
            seconds, psnrs, ssims, sizes, peaks, pixels_total = [], [], [], [], [], 0
            for path, pixels in inputs:
                output_path = scratch / f"pq-{n_colors}-{path.name}"
                elapsed, peak, status = run_measured([pngquant, "--nofs", "--force", "--output",
                                                      str(output_path), str(n_colors), str(path)])
                data = output_path.read_bytes()
                output = decode(data)
                seconds.append(elapsed)
                peaks.append(peak)
                psnrs.append(psnr(pixels, output))
                ssims.append(ssim(pixels, output))
                sizes.append(len(data))
                pixels_total += pixels.shape[0] * pixels.shape[1]
            rows.append({"tool": "pngquant --nofs", "colors": n_colors, "timing": "whole process",
                         "images": len(inputs), "median_s": float(np.median(seconds)),
                         "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
                         "bytes": int(sum(sizes)), "bpp": 8.0 * sum(sizes) / pixels_total,
                         "peak_mib": float(max(peaks))})
            print(rows[-1], file=sys.stderr)

    # one photo per process, both tools alternating, and the start-up floor of Python tools
    floor = float(np.median([run_measured([sys.executable, "-c", "import numpy, PIL.Image"])[0]
                             for _ in range(5 if args.smoke else 15)]))
    singles = []
    for n_colors in sorted({16, 256} & set(counts) or set(counts)):
        cq_runs, pq_runs = [], []
        for path, _ in inputs:
            output = scratch / f"single-{n_colors}-{path.name}"
            cq_runs.append(run_measured([sys.executable, "-m", "colorquant", "compress", "-q", "-k", str(n_colors),
                                         "--force", "--output", str(output), str(path)]))
            if pngquant:
                pq_runs.append(run_measured([pngquant, "--nofs", "--force", "--output", str(output) + ".pq.png",
                                             str(n_colors), str(path)]))
        entry = {"colors": n_colors, "images": len(inputs),
                 "colorquant_s": float(np.median([r[0] for r in cq_runs])),
                 "colorquant_peak_mib": float(max(r[1] for r in cq_runs))}
        if pq_runs:
            entry.update(pngquant_s=float(np.median([r[0] for r in pq_runs])),
                         pngquant_peak_mib=float(max(r[1] for r in pq_runs)))
            entry["ratio"] = entry["colorquant_s"] / entry["pngquant_s"]
        singles.append(entry)
        print(entry, file=sys.stderr)

    # whole process over all images in one call, both tools
    batches = []
    for n_colors in counts:
        out_dir = scratch / f"cq-{n_colors}"
        cq_seconds, cq_peak, _ = run_measured([sys.executable, "-m", "colorquant", "compress", "-q", "-k",
                                               str(n_colors), "-o", str(out_dir), "--force",
                                               *[str(p) for p, _ in inputs]])
        entry = {"colors": n_colors, "images": len(inputs), "colorquant_s": cq_seconds, "colorquant_peak_mib": cq_peak}
        if pngquant:
            pq_seconds, pq_peak, _ = run_measured([pngquant, "--nofs", "--force", "--ext", f"-pq{n_colors}.png",
                                                   str(n_colors), *[str(p) for p, _ in inputs]])
            entry.update(pngquant_s=pq_seconds, pngquant_peak_mib=pq_peak, ratio=cq_seconds / pq_seconds)
        batches.append(entry)
        print(entry, file=sys.stderr)

    # one big photo at 256 colours
    big_pixels = inputs[0][1]
    scale = (args.big_megapixels * 1e6 / (big_pixels.shape[0] * big_pixels.shape[1])) ** 0.5
    size = (int(np.ceil(big_pixels.shape[1] * scale)), int(np.ceil(big_pixels.shape[0] * scale)))
    big_path = scratch / "big.png"
    big_image = np.asarray(Image.fromarray(big_pixels).resize(size, Image.Resampling.LANCZOS))
    Image.fromarray(big_image).save(big_path, compress_level=1)
    big = {"size": f"{size[0]}x{size[1]}", "megapixels": size[0] * size[1] / 1e6}

    def big_psnr(output: Path) -> float | None:
        return psnr(big_image, decode(output.read_bytes())) if output.exists() else None

    for method in ("kmeans", "minibatch", "gmm"):
        output = scratch / f"big-{method}.png"
        seconds, peak, status = run_measured([sys.executable, "-m", "colorquant", "compress", "-q", "-k", "256",
                                              "-m", method, "--force", "--output", str(output), str(big_path)])
        big[method] = {"seconds": seconds, "peak_mib": peak, "status": status, "psnr": big_psnr(output)}
    if pngquant:
        output = scratch / "big-pq.png"
        seconds, peak, _ = run_measured([pngquant, "--nofs", "--force", "--output", str(output), "256", str(big_path)])
        big["pngquant"] = {"seconds": seconds, "peak_mib": peak, "psnr": big_psnr(output)}
    print(big, file=sys.stderr)

    pq = {r["colors"]: r for r in rows if r["tool"] == "pngquant --nofs"}
    table_rows = []
    for r in rows:
        reference = pq.get(r["colors"])
        table_rows.append([
            r["tool"], r["colors"], r["timing"], r["images"], f"{r['median_s']:.3f}", f"{r['psnr']:.2f}",
            f"{r['ssim']:.4f}", f"{r['bytes'] / 1024:.0f} KiB", f"{r['bpp']:.3f}",
            "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}",
            "" if not reference else f"{r['psnr'] - reference['psnr']:+.2f} dB",
            "" if not reference or r["images"] != reference["images"] else f"{r['bytes'] / reference['bytes']:.3f}",
        ])
    batch_rows = [[b["colors"], b["images"], f"{b['colorquant_s']:.2f}", f"{b.get('pngquant_s', float('nan')):.2f}",
                   f"{b.get('ratio', float('nan')):.2f}x", f"{b['colorquant_peak_mib']:.0f}",
                   f"{b.get('pngquant_peak_mib', float('nan')):.0f}"] for b in batches]
    single_rows = [[s["colors"], s["images"], f"{s['colorquant_s']:.3f}", f"{s.get('pngquant_s', float('nan')):.3f}",
                    f"{s.get('ratio', float('nan')):.2f}x", f"{s['colorquant_peak_mib']:.1f}",
                    f"{s.get('pngquant_peak_mib', float('nan')):.1f}"] for s in singles]
    big_rows = [[name, f"{big[name]['seconds']:.2f}", f"{big[name]['peak_mib']:.0f}",
                 "" if big[name]["psnr"] is None else f"{big[name]['psnr']:.2f}",
                 f"{big[name]['seconds'] / big['pngquant']['seconds']:.2f}x" if "pngquant" in big else "",
                 f"{big[name]['peak_mib'] / big['pngquant']['peak_mib']:.2f}x" if "pngquant" in big else ""]
                for name in ("kmeans", "minibatch", "gmm", "pngquant") if name in big]
    markdown = "\n".join([
        f"Versus benchmark: {len(inputs)} images from {args.images.name}{' (smoke crops)' if args.smoke else ''}; "
        f"{machine()}; no dithering. Seconds are medians per image.",
        "",
        markdown_table(["tool", "colours", "timing", "images", "seconds", "PSNR dB", "SSIM", "bytes", "bpp",
                        "peak MiB", "PSNR vs pngquant", "bytes vs pngquant"], table_rows),
        "",
        "One photo per process (`colorquant compress PHOTO` against `pngquant --nofs N PHOTO`, "
        "alternating; median seconds, largest peak memory):",
        "",
        markdown_table(["colours", "photos", "colorquant s", "pngquant s", "ratio", "colorquant peak MiB",
                        "pngquant peak MiB"], single_rows),
        "",
        f"Start-up floor of any Python tool (`python -c \"import numpy, PIL.Image\"`, median): {floor:.3f} s.",
        "",
        "Whole process over all images in one call (`colorquant compress`, both cores, against "
        "`pngquant --nofs N`):",
        "",
        markdown_table(["colours", "images", "colorquant s", "pngquant s", "ratio", "colorquant peak MiB",
                        "pngquant peak MiB"], batch_rows),
        "",
        f"One {big['size']} photo ({big['megapixels']:.1f} MP) at 256 colours, whole process:",
        "",
        markdown_table(["tool", "seconds", "peak MiB", "PSNR dB", "time vs pngquant", "memory vs pngquant"],
                       big_rows),
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "versus-smoke" if args.smoke else "versus"
    plot(rows, args.out / f"{stem}-psnr-time.png", "median_s", "seconds per image (log)")
    plot(rows, args.out / f"{stem}-psnr-bpp.png", "bpp", "bits per pixel")
    from _common import write_results

    write_results(stem, {"summary": {"machine": machine(), "images": len(inputs), "rows": rows,
                                     "singles": singles, "floor_s": floor, "batches": batches, "big": big}},
                  markdown, args.out)
    print(markdown)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def plot(rows, path: Path, key: str, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4.5))
    for tool in dict.fromkeys(r["tool"] for r in rows):
        points = sorted((r[key], r["psnr"], r["colors"]) for r in rows if r["tool"] == tool)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=tool)
    if key == "median_s":
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("mean PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
