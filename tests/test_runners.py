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


def square_or_die(task: int) -> int:
    """A task for the pool: task 5 kills its own worker, as the out-of-memory killer would."""
    if task == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.02)
    return task * task


@pytest.mark.parametrize("ordered", [True, False])
def test_a_killed_worker_loses_its_task_only_and_the_pool_is_rebuilt(ordered):
    from colorquant.errors import WorkerLostError
    from colorquant.settings import Settings

    lost = []

    def on_lost(task, error):
        assert isinstance(error, WorkerLostError)
        lost.append(task)
        return None

    tasks = list(range(12))
    results = list(runners.run_tasks(square_or_die, tasks, Settings(), jobs=2, ordered=ordered, lost=on_lost))
    assert lost == [5]
    expected = [task * task if task != 5 else None for task in tasks]
    assert (results if ordered else sorted(results, key=lambda r: -1 if r is None else r)) == \
        (expected if ordered else sorted(expected, key=lambda r: -1 if r is None else r))


class PoolThatBreaksBetweenWaits:
    """A pool whose worker dies after the results before it were taken: the break shows at
    the next ``submit`` (as ProcessPoolExecutor raises it), not at a wait. Task 9 breaks it
    once; run again, it is done."""
    broke = False

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, function, task):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        if task == 9 and not PoolThatBreaksBetweenWaits.broke:
            PoolThatBreaksBetweenWaits.broke = True
            raise BrokenProcessPool("A child process terminated abruptly")
        future = Future()
        future.set_result(function(task))
        return future

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.mark.parametrize("ordered", [True, False])
def test_a_pool_that_broke_between_waits_has_its_tasks_run_again(ordered, monkeypatch):
    from colorquant.settings import Settings

    monkeypatch.setattr(PoolThatBreaksBetweenWaits, "broke", False)
    monkeypatch.setattr(runners, "worker_pool", PoolThatBreaksBetweenWaits)
    monkeypatch.setattr(runners, "usable_cores", lambda: 2)
    tasks = list(range(12))
    results = list(runners.run_tasks(lambda task: task * task, tasks, Settings(), jobs=2, ordered=ordered,
                                     lost=lambda task, error: pytest.fail(f"task {task} lost")))
    assert PoolThatBreaksBetweenWaits.broke
    assert sorted(results) == [task * task for task in tasks]
    if ordered:
        assert results == [task * task for task in tasks]


def _workers_of(run) -> list[int]:
    """The run's live workers: descendants forked from it (they carry its command line) or
    from its fork server (the children of the process running multiprocessing.forkserver)."""
    def read(pid, name):
        with open(f"/proc/{pid}/{name}", "rb") as found:
            return found.read()

    own = read(run.pid, "cmdline")
    below = {}
    for pid in descendants(run.pid):
        try:
            below[pid] = (read(pid, "cmdline"), int(read(pid, "stat").rsplit(b")", 1)[1].split()[1]))
        except (OSError, ValueError, IndexError):
            pass
    servers = {pid for pid, (line, _) in below.items() if b"multiprocessing.forkserver" in line}
    return [pid for pid, (line, parent) in below.items()
            if (line == own or parent in servers) and alive(pid)]


def test_compress_goes_on_when_a_worker_is_killed(tmp_path, coffee):
    # A real run: once the small photos are done, the worker still busy with the big one is
    # killed (SIGKILL, as the OOM killer does); the big photo is tried again alone, and that
    # worker is killed too. That input fails with a reason, the others are done, exit 3.
    inputs = photos(tmp_path / "in", coffee, 3)
    big = save_image(tmp_path / "in" / "big.png", np.tile(coffee, (5, 5, 1)))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "colorquant", "compress", *map(str, inputs[:2]), str(big),
               str(inputs[2]), "-o", str(output), "--jobs", "2", "--dither", "-k", "256"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    small_outputs = [output / f"{path.stem}-kmeans-k256.png" for path in inputs]
    deadline = time.time() + 120
    while run.poll() is None and time.time() < deadline and not all(p.exists() for p in small_outputs):
        time.sleep(0.01)
    killed = set()
    for _ in range(2):  # the worker under the big photo, then the one that tries it again
        while run.poll() is None and time.time() < deadline:
            workers = [pid for pid in _workers_of(run) if pid not in killed]
            if workers:
                break
            time.sleep(0.01)
        assert run.poll() is None, "the big photo was done before its worker was killed"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    out, err = run.communicate(timeout=120)
    err = err.decode()
    assert run.returncode == 3, err
    assert "big.png: its worker process died" in err and "Traceback" not in err
    assert sorted(p.name for p in output.iterdir()) == sorted(p.name for p in small_outputs)
