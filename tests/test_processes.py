"""The command as a Unix process: standard input and output, closed pipes, terminals,
Ctrl-C and SIGTERM, two inputs that would write one output, and the folders it creates."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorquant import runners

from .conftest import save_image
from .test_runners import alive, descendants, photos

COMMAND = [sys.executable, "-m", "colorquant"]


def run(*argv, stdin: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, argv)], input=stdin, capture_output=True, cwd=cwd, timeout=120)


@pytest.fixture
def photo(tmp_path, coffee) -> Path:
    return save_image(tmp_path / "coffee.png", np.ascontiguousarray(coffee[::2, ::2]))


# --------------------------------------------------------------------------- stdin and stdout


def test_output_dash_writes_the_image_to_stdout_and_every_message_to_stderr(tmp_path, photo):
    assert run("compress", photo, "--output", tmp_path / "file.png").returncode == 0
    piped = run("compress", photo, "--output", "-")
    assert piped.returncode == 0
    assert piped.stdout == (tmp_path / "file.png").read_bytes()  # the same bytes as the file
    assert b"coffee.png -> -: 200 colours" in piped.stderr
    assert not (Path.cwd() / "-").exists() and not (tmp_path / "-").exists()
    with_json = run("compress", photo, "--output", "-", "--json")
    assert with_json.stdout == piped.stdout and b'"output": "-"' in with_json.stderr


def test_dash_reads_stdin_and_writes_stdout_as_pngquant_does(tmp_path, photo):
    expected = run("compress", photo, "--output", "-").stdout
    piped = run("compress", "-", stdin=photo.read_bytes(), cwd=tmp_path)
    assert piped.returncode == 0 and piped.stdout == expected
    assert Image.open(__import__("io").BytesIO(piped.stdout)).mode == "P"
    assert os.listdir(tmp_path) == ["coffee.png"]  # nothing written beside it
    into_folder = run("compress", "-", "-o", tmp_path / "out", stdin=photo.read_bytes())
    assert into_folder.returncode == 0 and into_folder.stdout.startswith(b"stdin -> ")
    assert (tmp_path / "out" / "stdin-kmeans-k200.png").read_bytes() == expected
    named = run("compress", "-", "--output", tmp_path / "named.webp", stdin=photo.read_bytes())
    assert named.returncode == 0 and Image.open(tmp_path / "named.webp").format == "WEBP"


def test_a_broken_image_on_stdin_is_one_line_and_status_3(tmp_path):
    broken = run("compress", "-", stdin=b"hello, not an image")
    assert broken.returncode == 3 and broken.stdout == b""
    assert broken.stderr.decode().strip().splitlines() == [
        "colorquant: stdin: not a supported image (expected PNG, JPEG, WEBP, GIF, BMP, TIFF)"]
    assert run("compress", "-", stdin=b"").returncode == 3
    mixed = run("compress", "-", tmp_path / "x.png", stdin=b"")
    assert mixed.returncode == 2 and b"only input" in mixed.stderr


@pytest.mark.parametrize("argv", [["compress", "{photo}", "--output", "-"], ["compress", "-"]])
def test_a_terminal_never_receives_image_bytes(argv, photo):
    controller, terminal = pty.openpty()
    try:
        stdin = subprocess.PIPE if argv[-1] == "-" else subprocess.DEVNULL
        process = subprocess.Popen([*COMMAND, *(a.format(photo=photo) for a in argv)], stdin=stdin,
                                   stdout=terminal, stderr=subprocess.PIPE)
        _, stderr = process.communicate(photo.read_bytes() if stdin == subprocess.PIPE else None, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode == 2
    assert b"refusing to write image data to a terminal" in stderr


def test_stdin_from_a_terminal_is_refused(tmp_path):
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run([*COMMAND, "compress", "-", "--output", str(tmp_path / "o.png")],
                                 stdin=terminal, capture_output=True, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert process.returncode == 2 and b"standard input, which is a terminal" in process.stderr
    assert not (tmp_path / "o.png").exists()


def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path, coffee):
    inputs = photos(tmp_path / "in", coffee, 4)
    process = subprocess.Popen([*COMMAND, "compress", *map(str, inputs), "--json", "--jobs", "1",
                                "-o", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.read(10) == b'{"input": '
    process.stdout.close()  # as `| head -c 10` does
    stderr = process.stderr.read()
    assert process.wait(60) == 128 + signal.SIGPIPE
    assert stderr == b""  # not an "internal error"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]


# --------------------------------------------------------------------------- signals


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as line:
            return line.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


def _start(tmp_path, coffee, *argv):
    inputs = photos(tmp_path / "in", coffee, 12)
    command = [*COMMAND, *argv[:1], *(map(str, inputs) if argv[0] == "compress" else [str(tmp_path / "in")]),
               *map(str, argv[1:]), "-o", str(tmp_path / "out"), "-k", "256", "--speed", "1", "--jobs", "2", "-q"]
    # As from a terminal: SIGINT at its default, whatever this test runner inherited (a shell
    # starts background jobs with SIGINT ignored, and an ignored signal stays ignored in
    # every program it starts: colorquant rightly leaves it so).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        outputs = [p for p in (tmp_path / "out").glob("*.png")] if (tmp_path / "out").is_dir() else []
        if outputs and len(descendants(process.pid)) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    return process, inputs


@pytest.mark.parametrize("command", ["compress", "batch", "batch-dask"])
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_the_run_within_a_second(command, signal_number, tmp_path, coffee):
    dask = command == "batch-dask"
    command = "batch" if dask else command
    process, inputs = _start(tmp_path, coffee, command, *(["--scheduler", "local"] if dask else []))
    workers = descendants(process.pid)
    sent = time.monotonic()
    if signal_number == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    else:
        os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    took = time.monotonic() - sent
    assert process.returncode == 128 + signal_number
    assert took < 1.5, f"took {took:.2f} s to stop"  # within 1 s, with room for a loaded CI machine
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorquant: interrupted after "), lines
    gone_by = time.monotonic() + 2  # a process killed as the run ends may still be tearing down
    while (survivors := [pid for pid in workers if alive(pid)]) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not survivors, f"workers outlived the run: {[_command_line(pid) for pid in survivors]}"
    out = tmp_path / "out"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    written = sorted(p for p in out.glob("*.png"))
    assert 0 < len(written) < len(inputs)  # stopped, not finished first
    for path in written:
        with Image.open(path) as image:
            image.load()  # every output there is whole
            assert image.mode == "P"
    if command == "batch":  # the manifest is true: a re-run does the rest, once each
        status = run("batch", "--status", out)
        assert status.returncode == 0
        time.sleep(0.5)  # nothing may arrive after the run said it stopped (Dask's workers too)
        assert sorted(out.glob("*.png")) == written
        again = run("batch", tmp_path / "in", "-o", out, "-k", "256", "--speed", "1")
        assert again.returncode == 0, again.stderr
        assert len(list(out.glob("*.png"))) == len(inputs)
        counts = run("batch", "--status", out).stdout.decode()
        assert f"done      {len(inputs)}" in counts and f"outputs   {len(inputs)} files" in counts


# --------------------------------------------------------------------------- outputs


def test_two_inputs_that_would_write_one_output_are_refused_before_anything(tmp_path, coffee, run_cli):
    pixels = np.ascontiguousarray(coffee[::4, ::4])
    inputs = [save_image(tmp_path / "x.png", pixels), save_image(tmp_path / "x.gif", pixels, "GIF"),
              save_image(tmp_path / "y.png", pixels)]
    for extra in ([], ["--force"]):
        result = run_cli("compress", *inputs, "-o", tmp_path / "out", *extra)
        assert result.status == 4
        assert f"{inputs[0]} and {inputs[1]} would both write {tmp_path / 'out' / 'x-kmeans-k200.png'}" in result.err
        assert not (tmp_path / "out").exists()  # refused before anything, folder included
    beside = run_cli("compress", inputs[0], inputs[1], "--target-psnr", "30")
    assert beside.status == 4 and "x-kmeans-k<colours>.png" in beside.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gif", "x.png", "y.png"]


def test_output_suffix_sets_the_format_and_must_agree_with_format(tmp_path, photo, run_cli):
    assert run_cli("compress", photo, "--output", tmp_path / "o.webp").status == 0
    assert Image.open(tmp_path / "o.webp").format == "WEBP"
    assert run_cli("compress", photo, "--output", tmp_path / "o.GIF").status == 0
    assert Image.open(tmp_path / "o.GIF").format == "GIF"
    clash = run_cli("compress", photo, "--output", tmp_path / "p.webp", "--format", "png")
    assert clash.status == 2 and "ends in .webp but --format is png" in clash.err
    assert not (tmp_path / "p.webp").exists()


@pytest.mark.parametrize("where", ["--output-dir", "--output"])
def test_missing_folders_are_created_and_removed_again_when_nothing_was_written(where, tmp_path, photo, run_cli):
    target = tmp_path / "new" / "deeper"
    destination = target if where == "--output-dir" else target / "o.png"
    assert run_cli("compress", photo, where, destination).status == 0
    assert len(list(target.iterdir())) == 1
    empty = tmp_path / "empty" / "deeper"
    failed = run_cli("compress", tmp_path / "missing.png", where,
                     empty if where == "--output-dir" else empty / "o.png")
    assert failed.status == 3 and not (tmp_path / "empty").exists()
    missed = run_cli("compress", photo, "--target-psnr", "60", "-k", "8", where,
                     empty if where == "--output-dir" else empty / "o.png")
    assert missed.status == 99 and not (tmp_path / "empty").exists()


def test_jobs_are_capped_at_the_cores(monkeypatch, tmp_path, coffee, run_cli):
    asked = []
    real_pool = runners.worker_pool
    monkeypatch.setattr(runners, "worker_pool", lambda jobs, *a, **k: asked.append(jobs) or real_pool(jobs, *a, **k))
    monkeypatch.setattr(runners, "usable_cores", lambda: 2)
    inputs = photos(tmp_path / "in", coffee, 5)
    assert run_cli("compress", *inputs, "--jobs", "999", "-o", tmp_path / "out", "-q").status == 0
    assert asked == [2] and len(list((tmp_path / "out").iterdir())) == 5
