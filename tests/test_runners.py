"""Where files run: the local worker pool's start methods, and workers that never outlive
the run that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from colorquant import runners

from .conftest import save_image


def photos(folder, coffee, count: int):
    """``count`` distinct photographs (crops of 'coffee') as PNG files."""
    folder.mkdir(exist_ok=True)
    return [save_image(folder / f"p{index}.png", np.ascontiguousarray(coffee[index * 7 :, index * 11 :]))
            for index in range(count)]


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "forkserver"])
def test_both_start_methods_give_the_bytes_of_one_process(fork, monkeypatch, run_cli, tmp_path, coffee):
    inputs = photos(tmp_path / "in", coffee, 3)
    assert run_cli("compress", *inputs, "-k", "24", "-o", tmp_path / "one", "--jobs", "1", "-q").status == 0
    monkeypatch.setattr(runners, "_fork_is_safe", lambda: fork)
    assert run_cli("compress", *inputs, "-k", "24", "-o", tmp_path / "two", "--jobs", "2", "-q").status == 0
    for path in inputs:
        name = path.stem + "-kmeans-k24.png"
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_no_fork_while_another_thread_runs():
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not runners._fork_is_safe()
    finally:
        release.set()
        other.join()


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the parent-death signal is Linux's")
@pytest.mark.parametrize("fork", [True, False], ids=["fork", "forkserver"])
def test_workers_exit_when_the_run_is_killed(fork, tmp_path, coffee):
    inputs = photos(tmp_path / "in", coffee, 12)
    script = ("import sys; from colorquant import runners; "
              f"runners._fork_is_safe = lambda: {fork}; "
              "from colorquant.cli import main; sys.exit(main(sys.argv[1:]))")
    run = subprocess.Popen([sys.executable, "-c", script, "compress", *map(str, inputs), "-k", "256",
                            "--speed", "1", "-o", str(tmp_path / "out"), "--jobs", "2", "-q"])
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.05)
            workers = descendants(run.pid)
        assert len(workers) >= 2 and run.poll() is None, "the run never started two workers"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = {pid: open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:150] for pid in workers if alive(pid)}
        assert not left, f"outlived the killed run: {left}"
        # each stopped worker removed the temporary file it was writing
        assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".part")]
    finally:
        if run.poll() is None:
            run.kill()
