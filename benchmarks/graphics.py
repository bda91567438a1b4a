"""Charts, screenshots and icons (issue 29): bytes and looks against pngquant, and how much
oxipng still finds in our files, on graphics and on photographs.

    python benchmarks/graphics.py                  # the set of graphics_set.py, and CQ100
    python benchmarks/graphics.py --smoke          # a chart, an icon, 2 photo crops; what CI runs

Graphics: the set `graphics_set.py` draws (charts, screenshots, icons with transparency),
made afresh in a scratch folder. For each one, `colorquant compress -k 256` and
`pngquant --nofs 256` (the same colour budget, no dithering), then the defaults
(`colorquant compress` and `pngquant`), all whole processes; SSIMULACRA2 of every file as
written against the original (images with transparency composited over two greys, the
lower score kept). Then `oxipng -o2` (PyPI `pyoxipng`) on our files: what it still takes off.

Encoder: the PNG encoder in-process on the labels of those `-k 256` outputs and of CQ100
photos at 256 colours, the palette as the fit left it (before) against the order written now;
bytes, encode seconds, and what `oxipng -o2` takes off each. Writes results/graphics.{json,md}.
"""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, find_images, machine, markdown_table, smoke_crops, write_results  # noqa: E402
from graphics_set import make_graphics  # noqa: E402

from colorquant.metrics import ssimulacra2  # noqa: E402

CLI = [sys.executable, "-m", "colorquant"]


def pixels_of(data: bytes, channels: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., :channels]


def reference_of(path: Path) -> np.ndarray:
    pixels = pixels_of(path.read_bytes(), 4)
    return pixels if (pixels[..., 3] < 255).any() else pixels[..., :3]


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    return time.perf_counter() - started, done


def colours_used(data: bytes) -> int:
    from PIL import Image

    return len(Image.open(io.BytesIO(data)).getcolors(256))


def graphic_rows(paths: list[Path], pngquant: str | None, work: Path) -> list[dict]:
    import oxipng

    rows = []
    for path in paths:
        reference = reference_of(path)
        channels = reference.shape[-1]
        row = {"image": path.name, "distinct": len(np.unique(reference.reshape(-1, channels), axis=0)),
               "megapixels": reference.shape[0] * reference.shape[1] / 1e6}
        for name, options in (("k256", ["-k", "256"]), ("default", [])):
            out = work / f"{name}.png"
            seconds, done = timed([*CLI, "compress", str(path), *options, "--output", str(out), "--force"])
            assert done.returncode == 0, done.stderr
            data = out.read_bytes()
            row[name] = {"bytes": len(data), "colors": colours_used(data), "seconds": seconds,
                         "score": ssimulacra2(reference, pixels_of(data, channels)),
                         "oxipng_bytes": len(oxipng.optimize_from_memory(data, level=2))}
            if pngquant:
                theirs = work / f"pq-{name}.png"
                pq_options = ["--nofs", "256"] if name == "k256" else []
                pq_seconds, done = timed([pngquant, *pq_options, "--force", "--output", str(theirs), str(path)])
                assert done.returncode in (0, 99), done.stderr
                pq = theirs.read_bytes()
                row[f"pngquant_{name}"] = {"bytes": len(pq), "colors": colours_used(pq), "seconds": pq_seconds,
                                           "score": ssimulacra2(reference, pixels_of(pq, channels))}
        rows.append(row)
        print(row, flush=True)
    return rows


def encoder_rows(label_sets: list[tuple[str, str, np.ndarray, np.ndarray]]) -> list[dict]:
    """Before (the fit's order) and now (the order written), at the default speed's settings."""
    import oxipng

    from colorquant.effort import effort_for
    from colorquant.encoding import encode_png

    effort = effort_for(4)
    rows = []
    for kind, name, labels, palette in label_sets:
        row = {"kind": kind, "image": name}
        for label, orders in (("before", "given"), ("now", effort.palette_orders)):
            best, data = float("inf"), b""
            for _ in range(3):  # the fastest of three: the machine's noise out
                started = time.perf_counter()
                data = encode_png(labels, palette, deflate_level=effort.deflate_level_for(labels.size),
                                  bit_depths=effort.bit_depths, palette_orders=orders)
                best = min(best, time.perf_counter() - started)
            row[label] = {"bytes": len(data), "seconds": best,
                          "oxipng_bytes": len(oxipng.optimize_from_memory(data, level=2))}
        rows.append(row)
    return rows


def fitted_labels(paths: list[Path], kind: str) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    import colorquant as cq

    sets = []
    for path in paths:
        result = cq.quantize(path, n_colors=256, dither=0)
        sets.append((kind, path.name, result.labels, result.palette))
    return sets


def summarise(graphics: list[dict], encoder: list[dict]) -> tuple[dict, str]:
    summary: dict = {}
    lines = []
    if graphics:
        table = []
        for row in graphics:
            ours, theirs = row["k256"], row.get("pngquant_k256")
            table.append([row["image"], row["distinct"], ours["colors"], f"{ours['bytes']:,}",
                          theirs["colors"] if theirs else "-", f"{theirs['bytes']:,}" if theirs else "-",
                          f"{ours['bytes'] / theirs['bytes']:.3f}" if theirs else "-",
                          ours["score"], theirs["score"] if theirs else "-",
                          f"{1 - ours['oxipng_bytes'] / ours['bytes']:.1%}"])
        with_pq = [r for r in graphics if "pngquant_k256" in r]
        ours_total = sum(r["k256"]["bytes"] for r in graphics)
        oxipng_total = sum(r["k256"]["oxipng_bytes"] for r in graphics)
        summary["k256"] = {
            "bytes_vs_pngquant": (sum(r["k256"]["bytes"] for r in with_pq)
                                  / sum(r["pngquant_k256"]["bytes"] for r in with_pq)) if with_pq else None,
            "score": statistics.mean(r["k256"]["score"] for r in graphics),
            "pngquant_score": statistics.mean(r["pngquant_k256"]["score"] for r in with_pq) if with_pq else None,
            "oxipng_takes": 1 - oxipng_total / ours_total,
            "oxipng_takes_worst": max(1 - r["k256"]["oxipng_bytes"] / r["k256"]["bytes"] for r in graphics),
        }
        s = summary["k256"]
        table.append(["all", "", "", f"{ours_total:,}", "",
                      f"{sum(r['pngquant_k256']['bytes'] for r in with_pq):,}" if with_pq else "-",
                      f"{s['bytes_vs_pngquant']:.3f}" if with_pq else "-", s["score"],
                      s["pngquant_score"] if with_pq else "-", f"{s['oxipng_takes']:.1%}"])
        lines += ["`-k 256` against `pngquant --nofs 256`: distinct colours of the original, colours used, bytes, "
                  "SSIMULACRA2 of the file written, and what `oxipng -o2` still takes off ours.", "",
                  markdown_table(["image", "distinct", "ours: colours", "bytes", "pngquant: colours", "bytes",
                                  "bytes ours/pngquant", "SSIMULACRA2 ours", "pngquant", "oxipng -o2 takes"],
                                 table), ""]
        if with_pq:
            default = {
                "score": statistics.mean(r["default"]["score"] for r in with_pq),
                "pngquant_score": statistics.mean(r["pngquant_default"]["score"] for r in with_pq),
                "bytes_vs_pngquant": (sum(r["default"]["bytes"] for r in with_pq)
                                      / sum(r["pngquant_default"]["bytes"] for r in with_pq)),
                "worst_score_gap": min(r["default"]["score"] - r["pngquant_default"]["score"] for r in with_pq),
                "seconds": sum(r["default"]["seconds"] for r in with_pq),
                "pngquant_seconds": sum(r["pngquant_default"]["seconds"] for r in with_pq),
            }
            summary["default"] = default
            lines += ["The defaults on graphics (`colorquant compress x.png` against `pngquant x.png`, "
                      "256 colours dithered): mean SSIMULACRA2, the worst image's difference, total bytes, "
                      "total whole-process seconds.", "",
                      markdown_table(["", "SSIMULACRA2", "worst difference", "bytes", "seconds"], [
                          ["colorquant", default["score"], f"{default['worst_score_gap']:+.3f}",
                           f"{sum(r['default']['bytes'] for r in with_pq):,}", default["seconds"]],
                          ["pngquant", default["pngquant_score"], "",
                           f"{sum(r['pngquant_default']['bytes'] for r in with_pq):,}", default["pngquant_seconds"]],
                          ["difference, ratio", f"{default['score'] - default['pngquant_score']:+.3f}", "",
                           f"{default['bytes_vs_pngquant']:.3f}",
                           f"{default['seconds'] / default['pngquant_seconds']:.2f}x"]]), ""]
    if encoder:
        table = []
        for kind in ("graphics", "photos"):
            rows = [r for r in encoder if r["kind"] == kind]
            if not rows:
                continue
            entry = {}
            for label in ("before", "now"):
                total = sum(r[label]["bytes"] for r in rows)
                entry[label] = {
                    "bytes": total, "seconds": sum(r[label]["seconds"] for r in rows),
                    "oxipng_takes": 1 - sum(r[label]["oxipng_bytes"] for r in rows) / total,
                    "oxipng_takes_worst": max(1 - r[label]["oxipng_bytes"] / r[label]["bytes"] for r in rows),
                    "worst_image": max(rows, key=lambda r: 1 - r[label]["oxipng_bytes"] / r[label]["bytes"])["image"],
                }
            summary[f"encoder_{kind}"] = entry
            for label in ("before", "now"):
                e = entry[label]
                table.append([f"{kind} ({len(rows)}), {label}", f"{e['bytes']:,}",
                              f"{e['bytes'] / entry['before']['bytes']:.3f}",
                              f"{e['seconds'] / entry['before']['seconds']:.2f}x", f"{e['oxipng_takes']:.1%}",
                              f"{e['oxipng_takes_worst']:.1%} ({e['worst_image']})"])
        lines += ["The PNG encoder at the default speed, in-process, on the labels of 256-colour fits: total bytes, "
                  "encode time (fastest of 3), and what `oxipng -o2` takes off overall and off the worst file. "
                  "Before: entries in the fit's order; now: in order of use.", "",
                  markdown_table(["set", "bytes", "bytes vs before", "encode time vs before", "oxipng -o2 takes",
                                  "worst file"], table), ""]
    return summary, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "a chart, an icon and 2 photo crops")
    parser.add_argument("--photos", type=int, default=25, help="CQ100 photos in the encoder part")
    args = parser.parse_args(argv)
    pngquant = shutil.which("pngquant")
    if not pngquant:
        print("pngquant is not installed (apt-get install pngquant): its columns are left out", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        photos = find_images(args.images, 2 if args.smoke else args.photos)
        if args.smoke:  # a chart and an icon; photo crops
            from graphics_set import make_charts, make_icons

            (work / "set").mkdir()
            graphics = [make_charts(work / "set")[1],
                        *[p for p in make_icons(work / "set") if p.name == "icon-cog-64.png"]]
            photos = smoke_crops(photos, work)
        else:
            graphics = make_graphics(work / "set")
        rows = graphic_rows(graphics, pngquant, work)
        encoder = encoder_rows(fitted_labels(graphics, "graphics") + fitted_labels(photos, "photos"))
    summary, table = summarise(rows, encoder)
    summary["images"], summary["photos"] = len(rows), len(photos)
    header = (f"Graphics: {len(rows)} images drawn by benchmarks/graphics_set.py, and {len(photos)} photos from "
              f"{args.images.name}; {machine()}; kmeans at the default speed; whole-process times.\n\n")
    name = "graphics-smoke" if args.smoke else "graphics"
    path = write_results(name, {"summary": summary, "graphics": rows, "encoder": encoder}, header + table, args.out)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
