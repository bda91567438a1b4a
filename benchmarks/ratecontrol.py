"""Rate control (issue 25): byte budgets, the default, and targets that minimise bytes.

    python benchmarks/ratecontrol.py                 # CQ100: budgets, the default, targets
    python benchmarks/ratecontrol.py --parts budget,default   # the other parts' last results kept
    python benchmarks/ratecontrol.py --smoke         # 2 crops; what CI runs

Budgets: for every photo, budgets at 0.35, 0.6 and 0.85 of the size of its plain 256-colour
output. `colorquant compress --max-size N` runs as a whole process (timed, start-up
included) against a plain `-k 256` run of the same photo in the same loop; its file is
scored (SSIMULACRA2 of the file written). Against it: the best fixed colour count that fits
(the largest K whose plain output fits, found by bisection: what a user's shell loop would
do) and pngquant's default (dithered) at the largest colour count that fits.

The default: `colorquant compress photo.png` (no options) against `pngquant photo.png`
(its default: 256 colours, dithered, speed 4), both whole processes, alternating.

Targets: `--target-ssimulacra2` 60, 70 and 80, the smallest file over counts and dither
levels against the fewest colours without dithering (what a target gave before), scores
computed on the files written. Writes results/ratecontrol.{json,md}.
"""

from __future__ import annotations

import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, find_images, load_rgb, machine, markdown_table, smoke_crops, write_results  # noqa: E402

import colorquant as cq  # noqa: E402
from colorquant.metrics import ssimulacra2  # noqa: E402

SHARES = (0.35, 0.6, 0.85)
TARGETS = (60, 70, 80)
CLI = [sys.executable, "-m", "colorquant"]


def decoded(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    return time.perf_counter() - started, done


def largest_fitting(size_of, limit: int) -> int | None:
    """The largest K in [2, 256] with size_of(K) <= limit, by bisection (None if 2 does not fit)."""
    if size_of(256) <= limit:
        return 256
    if size_of(2) > limit:
        return None
    low, high = 2, 256
    while high - low > 1:
        middle = (low + high) // 2
        if size_of(middle) <= limit:
            low = middle
        else:
            high = middle
    return low


def pngquant_bytes(pngquant: str, path: Path, n_colors: int) -> bytes:
    return subprocess.run([pngquant, str(n_colors), "-"], input=path.read_bytes(), capture_output=True,
                          check=True).stdout


def budget_rows(paths, pngquant, work: Path) -> list[dict]:
    rows = []
    for path in paths:
        reference = load_rgb(path)
        plain_file = work / "plain.png"
        plain_seconds, done = timed([*CLI, "compress", str(path), "-k", "256", "--output", str(plain_file), "--force"])
        assert done.returncode == 0, done.stderr
        plain_bytes = plain_file.stat().st_size
        fixed_cache, pngquant_cache = {}, {}

        def fixed(k):
            if k not in fixed_cache:
                fixed_cache[k] = cq.quantize(path, n_colors=k, dither=0).encode()
            return fixed_cache[k]

        def pq(k):
            if k not in pngquant_cache:
                pngquant_cache[k] = pngquant_bytes(pngquant, path, k)
            return pngquant_cache[k]

        for share in SHARES:
            limit = int(share * plain_bytes)
            out = work / "budget.png"
            seconds, done = timed([*CLI, "compress", str(path), "--max-size", str(limit), "--output", str(out),
                                   "--force", "--json"])
            record = json.loads(done.stdout) if done.returncode == 0 else None
            data = out.read_bytes() if record else b""
            k_fixed = largest_fitting(lambda k: len(fixed(k)), limit)
            k_pq = largest_fitting(lambda k: len(pq(k)), limit) if pngquant else None
            rows.append({
                "image": path.name, "share": share, "limit": limit, "status": done.returncode,
                "bytes": len(data), "colors": record and record["colors"], "dither": record and record["dither"],
                "score": ssimulacra2(reference, decoded(data)) if data else None,
                "seconds": seconds, "plain_seconds": plain_seconds,
                "fixed_k": k_fixed, "fixed_score": ssimulacra2(reference, decoded(fixed(k_fixed))) if k_fixed else None,
                "pngquant_k": k_pq,
                "pngquant_score": ssimulacra2(reference, decoded(pq(k_pq))) if k_pq else None,
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def default_rows(paths, pngquant, work: Path) -> list[dict]:
    rows = []
    for path in paths:
        reference = load_rgb(path)
        ours, theirs = work / "default.png", work / "pngquant.png"
        seconds, done = timed([*CLI, "compress", str(path), "--output", str(ours), "--force", "--json"])
        assert done.returncode == 0, done.stderr
        pq_seconds, pq_done = timed([pngquant, "--force", "--output", str(theirs), str(path)])
        assert pq_done.returncode == 0, pq_done.stderr
        rows.append({"image": path.name, "colors": json.loads(done.stdout)["colors"],
                     "bytes": ours.stat().st_size, "score": ssimulacra2(reference, decoded(ours.read_bytes())),
                     "seconds": seconds, "pngquant_bytes": theirs.stat().st_size,
                     "pngquant_score": ssimulacra2(reference, decoded(theirs.read_bytes())),
                     "pngquant_seconds": pq_seconds})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def target_rows(paths) -> list[dict]:
    rows = []
    for path in paths:
        reference = load_rgb(path)
        for target in TARGETS:
            row = {"image": path.name, "target": target}
            for name, keywords in (("before", {"dither": 0}), ("now", {})):
                started = time.perf_counter()
                try:
                    result = cq.quantize(path, target_ssimulacra2=target, **keywords)
                except cq.QualityTooLowError:
                    row[name] = None
                    continue
                data = result.encode()
                row[name] = {"bytes": len(data), "colors": result.n_colors_requested, "dither": result.dither,
                             "score": ssimulacra2(reference, decoded(data)),
                             "seconds": time.perf_counter() - started}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def summarise(budget, default, targets) -> tuple[dict, str]:
    summary, lines = {}, []
    if budget:
        table = []
        for share in SHARES:
            rows = [r for r in budget if r["share"] == share]
            fits = [r for r in rows if r["status"] == 0 and r["bytes"] <= r["limit"]]
            gains = [r["score"] - r["fixed_score"] for r in fits if r["fixed_score"] is not None]
            vs_pq = [r["score"] - r["pngquant_score"] for r in fits if r["pngquant_score"] is not None]
            use = [r["bytes"] / r["limit"] for r in fits]
            times = [r["seconds"] / r["plain_seconds"] for r in rows]
            entry = {"share": share, "fits": len(fits), "images": len(rows), "mean_use": statistics.mean(use),
                     "gain_vs_fixed": statistics.mean(gains), "worst_vs_fixed": min(gains),
                     "gain_vs_pngquant": statistics.mean(vs_pq) if vs_pq else None,
                     "median_time_vs_plain": statistics.median(times),
                     "dithered": sum(1 for r in fits if r["dither"]), "score": statistics.mean(r["score"] for r in fits)}
            summary.setdefault("budget", []).append(entry)
            table.append([f"{share:.2f}", f"{len(fits)}/{len(rows)}", entry["mean_use"], entry["score"],
                          entry["gain_vs_fixed"], entry["worst_vs_fixed"],
                          "n/a" if entry["gain_vs_pngquant"] is None else entry["gain_vs_pngquant"],
                          f"{entry['dithered']}", f"{entry['median_time_vs_plain']:.2f}x"])
        lines += ["Byte budgets (share of the plain 256-colour output): fits, mean bytes/budget, mean "
                  "SSIMULACRA2, its gain over the best fixed count that fits (mean, worst) and over "
                  "pngquant's default at the largest count that fits, outputs dithered, median whole-process "
                  "time against a plain -k 256 run.", "",
                  markdown_table(["budget", "fits", "use", "SSIMULACRA2", "vs fixed K", "worst vs fixed K",
                                  "vs pngquant", "dithered", "time vs plain"], table), ""]
    if default:
        ours, theirs = sum(r["bytes"] for r in default), sum(r["pngquant_bytes"] for r in default)
        entry = {"score": statistics.mean(r["score"] for r in default),
                 "pngquant_score": statistics.mean(r["pngquant_score"] for r in default),
                 "bytes_ratio": ours / theirs,
                 "time_ratio": sum(r["seconds"] for r in default) / sum(r["pngquant_seconds"] for r in default)}
        summary["default"] = entry
        lines += ["The default (no options) against pngquant's default (256 colours, dithered): mean "
                  "SSIMULACRA2, total bytes, total whole-process time.", "",
                  markdown_table(["", "SSIMULACRA2", "bytes", "seconds"], [
                      ["colorquant compress photo.png", entry["score"], f"{ours:,}",
                       sum(r["seconds"] for r in default)],
                      ["pngquant photo.png", entry["pngquant_score"], f"{theirs:,}",
                       sum(r["pngquant_seconds"] for r in default)],
                      ["difference, ratio", f"{entry['score'] - entry['pngquant_score']:+.3f}", f"{entry['bytes_ratio']:.3f}",
                       f"{entry['time_ratio']:.2f}x"]]), ""]
    if targets:
        table = []
        for target in TARGETS:
            rows = [r for r in targets if r["target"] == target]
            both = [r for r in rows if r["before"] and r["now"]]
            before = sum(r["before"]["bytes"] for r in both)
            now = sum(r["now"]["bytes"] for r in both)
            met = sum(1 for r in rows if r["now"] and r["now"]["score"] >= target)
            only_now = sum(1 for r in rows if r["now"] and not r["before"])
            entry = {"target": target, "both": len(both), "bytes_ratio": now / before if before else None,
                     "met": met, "reached_only_now": only_now, "images": len(rows),
                     "dithered": sum(1 for r in rows if r["now"] and r["now"]["dither"])}
            summary.setdefault("targets", []).append(entry)
            table.append([target, f"{len(both)}", "n/a" if not before else f"{now / before:.3f}",
                          f"{met}/{sum(1 for r in rows if r['now'])}", only_now, entry["dithered"]])
        lines += ["Targets: --target-ssimulacra2 T, total bytes now against the fewest colours without "
                  "dithering (images both reached), outputs meeting T on the file written, images "
                  "only reachable now (with dithering), outputs dithered.", "",
                  markdown_table(["target", "images", "bytes now / before", "met", "reached only now",
                                  "dithered"], table), ""]
    return summary, "\n".join(lines)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, smoke_help="two crops, one budget share, one target")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--parts", default="budget,default,targets")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    pngquant = shutil.which("pngquant")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        paths = find_images(args.images, 2 if args.smoke else args.limit)
        if args.smoke:  # crops: seconds, not minutes
            paths = smoke_crops(paths, work)
            global SHARES, TARGETS
            SHARES, TARGETS = (0.6,), (60,)
        budget = budget_rows(paths, pngquant, work) if "budget" in parts else []
        default = default_rows(paths, pngquant, work) if "default" in parts and pngquant else []
        targets = target_rows(paths) if "targets" in parts else []
    earlier = args.out / f"{'ratecontrol-smoke' if args.smoke else 'ratecontrol'}.json"
    if earlier.exists():  # parts not run this time keep their last results
        import json as _json

        kept = _json.loads(earlier.read_text())
        budget = budget or ([] if "budget" in parts else kept.get("budget", []))
        default = default or ([] if "default" in parts else kept.get("default", []))
        targets = targets or ([] if "targets" in parts else kept.get("targets", []))
    summary, table = summarise(budget, default, targets)
    summary["images"] = len(paths)
    header = (f"Rate control: {len(paths)} images from {args.images.name}; {machine()}; kmeans at the "
              "default speed; whole-process times.\n\n")
    path = write_results("ratecontrol-smoke" if args.smoke else "ratecontrol",
                         {"summary": summary, "budget": budget, "default": default, "targets": targets},
                         header + table, args.out)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
