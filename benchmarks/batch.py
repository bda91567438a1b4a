"""Batch figures (issue 5): throughput with 1 and 2 jobs, manifest overhead, flat memory.

    python benchmarks/batch.py              # CQ100 + 1,000 and 10,000 small synthetic images
    python benchmarks/batch.py --smoke      # tiny; what CI runs

* Throughput: `colorquant batch` over the CQ100 folder (16 colours), each run in a fresh
  process into an empty output folder, with --jobs 1 and --jobs 2. Reported two ways: the
  whole process (start-up and imports included) and the steady rate (from the first result
  to the last, read from the manifest's timestamps).
* Manifest overhead: milliseconds per row written (one transaction each, WAL), and per file
  checked as up to date on a re-run.
* Memory: the submitting process's peak resident memory (VmHWM) for batches of 1,000 and
  10,000 small generated images (48x64 px), with 2 jobs.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, Timer, machine, markdown_table, write_results  # noqa: E402

_RUNNER = """
import json, sys
from colorquant.cli import main
status = main(sys.argv[1:])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({"status": status, "peak_kib": int(hwm)}), file=sys.stderr)
sys.exit(status)
"""


def run_batch_process(source: Path, output: Path, *extra: str) -> dict:
    with Timer() as timer:
        process = subprocess.run([sys.executable, "-c", _RUNNER, "batch", str(source), "-o", str(output),
                                  "-q", *extra], capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(f"batch failed: {process.stderr[-2000:]}")
    report = json.loads(process.stderr.strip().splitlines()[-1])
    report["seconds"] = timer.seconds
    return report


def steady_rate(output: Path) -> float:
    with sqlite3.connect(output / "colorquant.sqlite") as db:
        stamps = sorted(datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp()
                        for row in db.execute("SELECT updated_at FROM files WHERE status = 'done'"))
    if len(stamps) < 2:
        return float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def manifest_overhead(folder: Path, n_rows: int) -> float:
    from colorquant.manifest import Manifest
    from colorquant.outcome import Outcome

    with Manifest(folder / "overhead.sqlite") as manifest, Timer() as timer:
        for index in range(n_rows):
            outcome = Outcome(
                f"folder/image{index:06d}.png", "done", output=f"folder/image{index:06d}-kmeans-k16.png",
                method="kmeans", colors=16, metrics={"mse": 65.0, "psnr": 30.0, "ssim": 0.9},
                bytes_in=123456, bytes_out=23456, bpp=1.0, seconds=0.1, input_size=123456,
                input_mtime_ns=time.time_ns(), input_hash="0" * 32, output_hash="1" * 32)
            manifest.record(outcome, settings_hash="0123456789abcdef")
    return 1000.0 * timer.seconds / n_rows


def make_small_images(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    for index in range(count):
        pixels = np.kron(np.roll(base, index, axis=1), np.ones((8, 8, 1), np.uint8))  # 48x64 blocks
        Image.fromarray(pixels).save(folder / f"s{index:05d}.png", compress_level=1)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--small-counts", default="1000,10000")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.small_counts.split(",")]
    if args.smoke:
        counts = [20, 40]

    with tempfile.TemporaryDirectory(prefix="colorquant-bench-") as scratch:
        scratch = Path(scratch)
        source = args.images
        if args.smoke:  # two small crops of the given images
            from PIL import Image

            source = scratch / "smoke"
            source.mkdir()
            for path in sorted(args.images.glob("*.png"))[:2]:
                with Image.open(path) as image:
                    image.convert("RGB").crop((0, 0, 160, 120)).save(source / path.name)
        n_inputs = len([p for p in source.iterdir() if p.suffix.lower() == ".png"])
        throughput = {}
        for jobs in (1, 2):
            output = scratch / f"out-{jobs}"
            report = run_batch_process(source, output, "--jobs", str(jobs))
            throughput[jobs] = {"whole_process_s": report["seconds"],
                                "whole_process_rate": n_inputs / report["seconds"],
                                "steady_rate": steady_rate(output)}
            print(f"jobs {jobs}: {throughput[jobs]}", file=sys.stderr)
        rerun = run_batch_process(source, scratch / "out-2", "--jobs", "2")
        check_ms = 1000.0 * rerun["seconds"] / n_inputs

        write_ms = manifest_overhead(scratch, 200 if args.smoke else 5000)

        memory = {}
        for count in counts:
            folder = scratch / f"small-{count}"
            make_small_images(folder, count)
            report = run_batch_process(folder, scratch / f"small-out-{count}", "--jobs", "2")
            memory[count] = {"peak_mib": report["peak_kib"] / 1024, "seconds": report["seconds"]}
            print(f"{count} small images: {memory[count]}", file=sys.stderr)

    summary = {
        "machine": machine(), "images": n_inputs, "throughput": throughput,
        "whole_process_speedup": throughput[2]["whole_process_rate"] / throughput[1]["whole_process_rate"],
        "steady_speedup": throughput[2]["steady_rate"] / throughput[1]["steady_rate"],
        "manifest_write_ms_per_row": write_ms, "rerun_ms_per_up_to_date_file": check_ms,
        "memory": memory,
    }
    rows = [[f"{jobs} job{'s' if jobs > 1 else ''}", t["whole_process_s"], t["whole_process_rate"], t["steady_rate"]]
            for jobs, t in throughput.items()]
    memory_rows = [[f"{count:,}", m["peak_mib"], m["seconds"], count / m["seconds"]] for count, m in memory.items()]
    markdown = "\n".join([
        f"Batch benchmark: {n_inputs} images from {args.images.name}{' (smoke crops)' if args.smoke else ''}, "
        f"16 colours; {machine()}.",
        "",
        markdown_table(["jobs", "whole process s", "images/s (whole process)", "images/s (steady)"], rows),
        "",
        f"2 jobs against 1: {summary['steady_speedup']:.2f}x steady, {summary['whole_process_speedup']:.2f}x "
        f"whole process (start-up included).",
        f"Manifest: {write_ms:.2f} ms per row written; a re-run of the finished batch took "
        f"{check_ms:.1f} ms per up-to-date file, process start-up included.",
        "",
        markdown_table(["small images (48x64)", "peak memory of the batch process MiB", "seconds", "images/s"],
                       memory_rows),
    ])
    write_results("batch-smoke" if args.smoke else "batch", {"summary": summary}, markdown, args.out)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
