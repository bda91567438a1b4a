"""Batch under a careful user's mistakes, as the storage tools test themselves: a stateful
property test (hypothesis's rule-based state machine) runs random sequences of adding,
deleting, changing and renaming inputs, deleting and damaging outputs, dropping foreign files
into the output folder, changing settings, and kill -9 in the middle of a run; after every
finished run it checks the invariants:

- every input has exactly one valid output (a palette PNG whose bytes the manifest recorded),
  or a failed row with its reason;
- no file the tool did not write was changed or removed;
- the manifest's outputs are exactly the image files in the output folder (what ``--status``
  counts), rows of inputs that are gone are marked, and no temporary file is left.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from PIL import Image

from colorquant.cli import main
from colorquant.manifest import Manifest
from colorquant.storage import file_hash

# Input names: two share a stem (their outputs must still differ), one is in a subfolder.
NAMES = ("a.png", "b.png", "b.jpg", "sub/c.png", "d.png")


def tiny_photo(seed: int) -> Image.Image:
    """A 24x32 image of a few dozen colours: quick to quantize, not trivially lossless."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(np.kron(base, np.ones((4, 4, 1), np.uint8)) + rng.integers(0, 8, (24, 32, 3), dtype=np.uint8))


class BatchMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="colorquant-state-"))
        self.input = self.root / "in"
        self.output = self.root / "out"
        self.input.mkdir()
        self.foreign: dict[Path, bytes] = {}  # files the tool did not write, with their bytes
        self.colors = 8
        self.killed = False  # a run was killed: the next run must be with the same settings

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def inputs(self) -> list[str]:
        return sorted(name for name in NAMES if (self.input / name).exists())

    def outputs(self) -> list[Path]:
        """Image files in the output folder that the tool may own (not foreign ones)."""
        if not self.output.exists():
            return []
        return sorted(p for p in self.output.rglob("*.png") if p not in self.foreign)

    def argv(self) -> list[str]:
        return ["batch", str(self.input), "-o", str(self.output), "--recursive", "-k", str(self.colors),
                "--jobs", "1", "-q"]

    # ------------------------------------------------------------------ what users do

    @initialize(seeds=st.lists(st.integers(0, 1000), min_size=len(NAMES), max_size=len(NAMES)))
    def a_folder_done_once(self, seeds):
        for name, seed in zip(NAMES, seeds):
            if seed % 3:  # about two thirds of the names
                self.add_or_change_input(name, seed)
        self.run()

    @rule(name=st.sampled_from(NAMES), seed=st.integers(0, 1000))
    def add_or_change_input(self, name, seed):
        path = self.input / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tiny_photo(seed).save(path, "PNG" if name.endswith(".png") else "JPEG", quality=95)

    @rule(data=st.data())
    def delete_input(self, data):
        if self.inputs():
            (self.input / data.draw(st.sampled_from(self.inputs()))).unlink()

    @rule(data=st.data(), new=st.sampled_from(NAMES))
    def rename_input(self, data, new):
        if self.inputs() and not (self.input / new).exists() and new.endswith(".png"):
            (self.input / new).parent.mkdir(parents=True, exist_ok=True)
            old = data.draw(st.sampled_from([n for n in self.inputs() if n.endswith(".png")] or [None]))
            if old is not None:
                (self.input / old).rename(self.input / new)

    @rule(data=st.data())
    def delete_output(self, data):
        if self.outputs():
            data.draw(st.sampled_from(self.outputs())).unlink()

    @rule(data=st.data())
    def damage_output(self, data):
        if self.outputs():
            victim = data.draw(st.sampled_from(self.outputs()))
            victim.write_bytes(b"damaged by hand")
            self.foreign[victim] = b"damaged by hand"  # its content is the user's now

    @rule(name=st.sampled_from(["a-kmeans-k8.png", "b-kmeans-k4.png", "notes.png", "sub/c-kmeans-k8.png"]))
    def drop_foreign_file(self, name):
        path = self.output / name
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a user's own file")
        self.foreign[path] = b"a user's own file"

    @precondition(lambda self: not self.killed)
    @rule(colors=st.sampled_from([4, 8]))
    def change_settings(self, colors):
        self.colors = colors

    @rule(delay=st.floats(0.0, 1.5))
    def kill_mid_run(self, delay):
        process = subprocess.Popen([sys.executable, "-m", "colorquant", *self.argv()],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.killed = True

    @rule()
    def run(self):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            status = main(self.argv())
        assert status in (0, 3, 4), status
        self.killed = False
        self.check_after_run(status)

    # ------------------------------------------------------------------ what must hold

    @invariant()
    def foreign_files_untouched(self):
        for path, data in self.foreign.items():
            if path.exists() or path.is_symlink():
                assert path.read_bytes() == data, f"{path} was changed"
            else:
                raise AssertionError(f"{path} (not written by colorquant) was removed")

    def check_after_run(self, status: int):
        with Manifest(self.output / "colorquant.sqlite", readonly=True) as manifest:
            rows = manifest.rows()
        failed = False
        for name in self.inputs():
            stored = rows[name]
            outcome = stored.outcome
            assert not stored.input_gone
            if outcome.status == "done":
                written = self.output / outcome.output
                assert file_hash(written) == outcome.output_hash
                with Image.open(written) as image:
                    assert image.mode == "P" and len(image.getcolors(256)) <= self.colors
            else:
                assert outcome.status == "failed" and outcome.error, (name, outcome)
                failed = True
        for name, stored in rows.items():  # inputs deleted or renamed away are marked
            assert bool(stored.input_gone) == (name not in self.inputs()), name
        owned = {self.output / r.outcome.output for r in rows.values() if r.outcome.output}
        assert owned == set(self.outputs()), (owned, self.outputs())
        for stored in rows.values():
            if stored.outcome.output:
                assert file_hash(self.output / stored.outcome.output) == stored.outcome.output_hash
        assert not [p for p in self.output.rglob("*.part") if p not in self.foreign]
        assert (status != 0) == failed
        with Manifest(self.output / "colorquant.sqlite", readonly=True) as manifest:
            assert manifest.summary()["outputs"] == len(self.outputs())  # what --status says


BatchMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("COLORQUANT_STATE_EXAMPLES", "25")), stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_batch_survives_a_careful_users_mistakes = BatchMachine.TestCase
