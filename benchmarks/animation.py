"""Animations (issue 26): GIF against gifsicle, APNG and animated WebP against their
full-colour sources, conformance files kept whole, and a bomb refused.

    python benchmarks/animation.py               # clips of 6 CQ100 photos (3 pan, 3 sprite)
    python benchmarks/animation.py --smoke       # 2 small clips, 6 frames; what CI runs

Clips (``animation_set.py``): 24 frames of 384x256 at 80 ms, a window panning and zooming
over a photo, or a still photo with a piece of another moving over it; each saved as a
full-colour APNG, a lossless WebP and a GIF with Pillow's own palette per frame.

- GIF: ``colorquant compress clip.gif -k K`` against ``gifsicle -O3 --colors K clip.gif`` at 64
  and 256 colours: bytes, and the mean over frames of SSIMULACRA2 against the full-colour
  frames (and the input GIF's own, the most a tool starting from it can reach); whole
  processes, the time at 256 colours the median of 3 runs, alternated.
- APNG and WebP: ``colorquant compress clip.png|clip.webp -k 256``: bytes against the source's,
  mean SSIMULACRA2.
- Conformance (``animation_set.conformance_files``): each file compressed to its own kind and
  read back: frames, durations and the loop count kept (for WebP, what plays: libwebp merges
  a frame equal to the one before into its duration).
- Bomb: a GIF of 60 frames of 2000x2000 (a few kilobytes) under ``--max-pixels 100000000``:
  the exit status and the whole process's time.

Writes results/animation.{json,md}.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, find_images, machine, markdown_table, write_results  # noqa: E402
from animation_set import conformance_files, gif_file, make_clips  # noqa: E402

from colorquant.imageio import read_image  # noqa: E402
from colorquant.metrics import ssimulacra2  # noqa: E402

CLI = [sys.executable, "-m", "colorquant"]


def timed(command: list) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([str(part) for part in command], capture_output=True)
    return time.perf_counter() - started, done


def mean_score(path: Path, frames: list[np.ndarray]) -> float:
    loaded = read_image(path.read_bytes())
    pixels = loaded.pixels[..., :3]
    height = frames[0].shape[0]
    assert loaded.animation is not None and loaded.animation.n_frames == len(frames), path
    return float(np.mean([ssimulacra2(frame, pixels[i * height:(i + 1) * height]) for i, frame in enumerate(frames)]))


def measure_clip(clip: dict, work: Path, repeats: int) -> dict:
    gif = clip["paths"]["gif"]
    row = {"clip": clip["name"], "frames": len(clip["frames"]), "size": list(clip["frames"][0].shape[1::-1]),
           "gif_in_bytes": gif.stat().st_size,
           # the GIF both tools start from, against the full-colour frames: the most either can reach
           "gif_in_ssimulacra2": mean_score(gif, clip["frames"])}
    for colors in (64, 256):
        ours, theirs = work / f"{clip['name']}-cq{colors}.gif", work / f"{clip['name']}-gs{colors}.gif"
        our_times, their_times = [], []
        for _ in range(repeats if colors == 256 else 1):
            seconds, done = timed([*CLI, "compress", gif, "-k", colors, "--output", ours, "--force", "-q"])
            assert done.returncode == 0, done.stderr
            our_times.append(seconds)
            seconds, done = timed(["gifsicle", "-O3", "--colors", colors, gif, "-o", theirs])
            assert done.returncode == 0, done.stderr
            their_times.append(seconds)
        row[f"gif{colors}"] = {
            "bytes": ours.stat().st_size, "gifsicle_bytes": theirs.stat().st_size,
            "ssimulacra2": mean_score(ours, clip["frames"]), "gifsicle_ssimulacra2": mean_score(theirs, clip["frames"]),
            "seconds": statistics.median(our_times), "gifsicle_seconds": statistics.median(their_times)}
    for format_name in ("png", "webp"):
        source = clip["paths"][format_name]
        out = work / f"{clip['name']}-cq256.{format_name}"
        seconds, done = timed([*CLI, "compress", source, "-k", 256, "--output", out, "--force", "-q"])
        assert done.returncode == 0, done.stderr
        row[format_name] = {"bytes": out.stat().st_size, "source_bytes": source.stat().st_size,
                            "ssimulacra2": mean_score(out, clip["frames"]), "seconds": seconds}
    return row


def conformance(work: Path) -> list[dict]:
    rows = []
    for case in conformance_files():
        kind = {"gif": ".gif", "apng": ".png", "webp": ".webp"}[case["name"].split("-")[0]]
        source, out = work / f"{case['name']}{kind}", work / f"{case['name']}-out{kind}"
        source.write_bytes(case["data"])
        _, done = timed([*CLI, "compress", source, "-k", 16, "--output", out, "--force", "-q"])
        assert done.returncode == 0, done.stderr
        back = read_image(out).animation
        plays = [(duration) for duration in case["durations"]]
        if kind == ".webp":  # what plays: frames equal to the one before merge into it
            frames_kept = sum(back.durations) == sum(plays) and back.n_frames <= len(plays)
        else:
            frames_kept = back.n_frames == len(plays) and list(back.durations) == plays
        rows.append({"file": case["name"], "frames": len(plays), "frames_written": back.n_frames,
                     "durations_kept": frames_kept, "loop_kept": back.plays == case["plays"]})
    return rows


def bomb(work: Path) -> dict:
    single = gif_file(2000, 2000, [(0, 0, 0), (255, 255, 255)], [{"indices": np.zeros((2000, 2000), np.uint8)}])
    frame = single[single.index(b"!\xf9"):-1]
    path = work / "bomb.gif"
    path.write_bytes(single[:single.index(b"!\xf9")] + frame * 60 + b";")
    seconds, done = timed([*CLI, "compress", path, "--max-pixels", 100_000_000])
    return {"file_bytes": path.stat().st_size, "exit": done.returncode, "seconds": seconds,
            "message": done.stderr.decode().strip()}


def main() -> None:
    parser = benchmark_parser(__doc__, "2 clips of 6 frames at 96x64 from 2 photos")
    parser.add_argument("--photos", type=int, default=6)
    args = parser.parse_args()
    if shutil.which("gifsicle") is None:
        raise SystemExit("gifsicle is needed (Debian package gifsicle; scripts/test installs it)")
    photos = find_images(args.images, 2 if args.smoke else args.photos)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.smoke:
            clips = make_clips(photos, work, n_frames=6, size=(96, 64))
        else:
            clips = make_clips(photos, work)
        rows = [measure_clip(clip, work, 1 if args.smoke else 3) for clip in clips]
        conformance_rows = conformance(work)
        bomb_row = bomb(work)

    table = []
    for row in rows:
        for colors in (64, 256):
            gif = row[f"gif{colors}"]
            table.append([row["clip"], f"GIF {colors}", gif["bytes"], round(gif["bytes"] / gif["gifsicle_bytes"], 3),
                          round(gif["ssimulacra2"], 2), round(gif["gifsicle_ssimulacra2"], 2),
                          round(gif["ssimulacra2"] - gif["gifsicle_ssimulacra2"], 2),
                          round(row["gif_in_ssimulacra2"] - gif["gifsicle_ssimulacra2"], 2),
                          round(gif["seconds"], 3), round(gif["seconds"] / gif["gifsicle_seconds"], 2)])
    gif_md = markdown_table(["clip", "output", "bytes", "x gifsicle", "SSIMULACRA2 (mean)", "gifsicle",
                             "difference", "input GIF's own - gifsicle", "seconds", "x gifsicle time"], table)
    source_md = markdown_table(
        ["clip", "APNG bytes", "x source", "SSIMULACRA2", "WebP bytes", "x source", "SSIMULACRA2"],
        [[row["clip"], row["png"]["bytes"], round(row["png"]["bytes"] / row["png"]["source_bytes"], 3),
          round(row["png"]["ssimulacra2"], 2), row["webp"]["bytes"],
          round(row["webp"]["bytes"] / row["webp"]["source_bytes"], 3), round(row["webp"]["ssimulacra2"], 2)]
         for row in rows])
    conformance_md = markdown_table(["file", "frames", "frames written", "durations kept", "loop kept"],
                                    [[r["file"], r["frames"], r["frames_written"], r["durations_kept"], r["loop_kept"]]
                                     for r in conformance_rows])
    worst = {colors: min(row[f"gif{colors}"]["ssimulacra2"] - row[f"gif{colors}"]["gifsicle_ssimulacra2"] for row in rows)
             for colors in (64, 256)}
    most_bytes = {colors: max(row[f"gif{colors}"]["bytes"] / row[f"gif{colors}"]["gifsicle_bytes"] for row in rows)
                  for colors in (64, 256)}
    time_ratio = statistics.median(row["gif256"]["seconds"] / row["gif256"]["gifsicle_seconds"] for row in rows)
    summary = [
        f"GIF, every clip: SSIMULACRA2 at least {worst[64]:+.2f} (64 colours) and {worst[256]:+.2f} (256) over "
        f"gifsicle -O3 --colors K; bytes at most {most_bytes[64]:.3f}x (64) and {most_bytes[256]:.3f}x (256) gifsicle's.",
        f"Time at 256 colours: median {time_ratio:.2f}x gifsicle's (whole processes).",
        f"APNG at 256 colours: at most {max(r['png']['bytes'] / r['png']['source_bytes'] for r in rows):.3f}x the "
        f"source's bytes, mean SSIMULACRA2 at least {min(r['png']['ssimulacra2'] for r in rows):.2f}.",
        f"WebP at 256 colours: at most {max(r['webp']['bytes'] / r['webp']['source_bytes'] for r in rows):.3f}x the "
        "lossless source's bytes.",
        f"Conformance: {sum(r['durations_kept'] and r['loop_kept'] for r in conformance_rows)} of "
        f"{len(conformance_rows)} files kept every frame, duration and loop count.",
        f"Bomb ({bomb_row['file_bytes']:,} bytes, 60 frames of 2000x2000): exit {bomb_row['exit']} in "
        f"{bomb_row['seconds']:.2f} s: {bomb_row['message']}",
    ]
    markdown = "\n\n".join([
        f"# Animations ({'smoke' if args.smoke else 'CQ100 clips'})", f"Machine: {machine()}",
        "\n".join(f"- {line}" for line in summary), "## GIF against gifsicle", gif_md,
        "## APNG and WebP against their full-colour sources", source_md, "## Conformance files", conformance_md])
    name = "animation-smoke" if args.smoke else "animation"
    figures = {"images": len(rows), "lines": summary, "worst_gif_ssimulacra2_gain": worst,
               "most_gif_bytes_vs_gifsicle": most_bytes, "median_gif256_time_vs_gifsicle": time_ratio,
               "conformance_kept": sum(r["durations_kept"] and r["loop_kept"] for r in conformance_rows),
               "conformance_files": len(conformance_rows), "bomb_exit": bomb_row["exit"],
               "bomb_seconds": bomb_row["seconds"]}
    path = write_results(name, {"machine": machine(), "clips": rows, "conformance": conformance_rows, "bomb": bomb_row,
                                "summary": figures}, markdown, args.out)
    print(markdown)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
