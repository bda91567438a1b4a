"""Peak memory and time of every figure on a big photo, and of the web server under heavy
requests (issue #24, D1).

CLI: ``colorquant compress`` of a 9.8 MP photo (a CQ100 photo enlarged to 3840x2560 with
Lanczos and saved as JPEG q92: CQ100 has no larger photos) with each ``--metrics`` value,
each in a fresh process: the whole process's wall time and its peak resident memory (the
process reads its own ``ru_maxrss`` when done).

Server: ``colorquant serve`` in its own process; its VmHWM (peak resident memory, from
/proc) after (1) a 37 KB PNG of a smooth 3200x3200 gradient with
``metrics=ssimulacra2,ciede2000``, (2) a 40 MP JPEG with ``colors=256 dither=1
metrics=ssimulacra2``, then (3) 50 mixed requests (CQ100 photos, every method, targets,
dithering, figures), two at a time.

    python benchmarks/memory.py                   # ../shared/cq100, about 6 minutes
    python benchmarks/memory.py --smoke           # small sizes, seconds
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import benchmark_parser, find_images, machine, markdown_table, write_results  # noqa: E402

FIGURES = ("", "ssim", "ssimulacra2", "ciede2000", "blurred_psnr", "all")

# Runs main() and prints its own peak memory (VmHWM: ru_maxrss would count the memory of the
# process that forked it, which Linux carries across exec): a fresh process per measurement.
_MEASURED = ("import re, sys, time; started = time.perf_counter(); from colorquant.cli import main; "
             "status = main(sys.argv[1:]); seconds = time.perf_counter() - started; "
             "peak = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
             "print(status, seconds, peak / 1024)")


def make_photo(source: Path, size: tuple[int, int], path: Path) -> Path:
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").resize(size, Image.LANCZOS).save(path, "JPEG", quality=92)
    return path


def make_gradient(side: int, path: Path) -> Path:
    from PIL import Image

    y, x = np.mgrid[0:side, 0:side]
    top = side - 1
    gradient = np.dstack([x * 255 // top, y * 255 // top, (x + y) * 255 // (2 * top)]).astype(np.uint8)
    Image.fromarray(gradient).save(path, optimize=True)
    return path


def cli_figures(photo: Path, folder: Path) -> list[dict]:
    rows = []
    for figure in FIGURES:
        output = folder / f"out-{figure or 'plain'}.png"
        argv = ["compress", str(photo), "--output", str(output), "--force", *(["--metrics", figure] if figure else [])]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _MEASURED, *argv], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        status, _, peak = done.stdout.split()[-3:]
        rows.append({"metrics": figure or "(default: MSE, PSNR)", "status": int(status), "seconds": wall,
                     "peak_mib": float(peak)})
        print(rows[-1], flush=True)
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(port: int, data: bytes, fields: dict, name: str = "image.png") -> int:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
             for key, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        connection.request("POST", "/api/compress/json", body=body,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 503:  # busy: the pixel budget or the slots; wait as Retry-After says
            return response.status
        time.sleep(1)


def _vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _described(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    size = f"{path.stat().st_size / 1024:.0f} KB"
    return f"{size} {image.format}, {width}x{height} ({width * height / 1e6:.1f} MP)"


def server_figures(gradient: Path, big: Path, photos: list[Path], n_mixed: int) -> list[dict]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "colorquant", "serve", "--port", str(port),
                               "--max-upload-mb", "100"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        for label, path, fields in (
                (f"gradient {_described(gradient)}, metrics=ssimulacra2,ciede2000", gradient,
                 {"metrics": "ssimulacra2,ciede2000"}),
                (f"photo {_described(big)}, colors=256 dither=1 metrics=ssimulacra2", big,
                 {"colors": "256", "dither": "1", "metrics": "ssimulacra2"})):
            started = time.perf_counter()
            status = _post(port, path.read_bytes(), fields, path.name)
            rows.append({"requests": label, "statuses": str(status), "seconds": time.perf_counter() - started,
                         "vm_hwm_mib": _vm_hwm_mib(server.pid)})
            print(rows[-1], flush=True)
        mixes = [{"method": "kmeans", "colors": "64"}, {"method": "minibatch", "metrics": "ssimulacra2"},
                 {"method": "gmm", "colors": "16"}, {"dither": "1", "colors": "256", "metrics": "all"},
                 {"target_psnr": "35"}, {"target_ssimulacra2": "50", "metrics": "ciede2000"}]
        jobs = [(photos[index % len(photos)].read_bytes(), mixes[index % len(mixes)]) for index in range(n_mixed)]
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(lambda job: _post(port, *job), jobs))
        counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
        rows.append({"requests": f"then {n_mixed} mixed requests, two at a time", "statuses": json.dumps(counts),
                     "seconds": time.perf_counter() - started, "vm_hwm_mib": _vm_hwm_mib(server.pid)})
        print(rows[-1], flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return rows


def main() -> None:
    parser = benchmark_parser(__doc__, "small sizes (1 MP photo, 800 px gradient, 4 MP JPEG, 4 mixed requests)")
    args = parser.parse_args()
    photos = find_images(args.images)
    photo_size, gradient_side, big_size, n_mixed = ((3840, 2560), 3200, (7744, 5164), 50)
    if args.smoke:
        photo_size, gradient_side, big_size, n_mixed = ((1200, 800), 800, (2400, 1600), 4)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        photo = make_photo(photos[0], photo_size, folder / "photo.jpg")
        gradient = make_gradient(gradient_side, folder / "gradient.png")
        big = make_photo(photos[min(1, len(photos) - 1)], big_size, folder / "big.jpg")
        cli = cli_figures(photo, folder)
        server = server_figures(gradient, big, photos[:10], n_mixed)
    megapixels = photo_size[0] * photo_size[1] / 1e6
    markdown = (f"`colorquant compress` of a {megapixels:.1f} MP photo, whole process, fresh process each:\n\n"
                + markdown_table(["--metrics", "seconds", "peak MiB"],
                                 [[row["metrics"], row["seconds"], row["peak_mib"]] for row in cli])
                + "\n\n`colorquant serve`, peak resident memory (VmHWM) after each step:\n\n"
                + markdown_table(["requests", "HTTP statuses", "seconds", "VmHWM MiB"],
                                 [[row["requests"], row["statuses"], row["seconds"], row["vm_hwm_mib"]]
                                  for row in server])
                + f"\n\n{machine()}")
    name = "memory-smoke" if args.smoke else "memory"
    path = write_results(name, {"machine": machine(), "cli": cli, "server": server,
                                "summary": {"images": 2 + len(photos[:10])}}, markdown, args.out)
    print(path.read_text())


if __name__ == "__main__":
    main()
