"""Batch compression: mirrored outputs, the manifest row by row, resume after SIGKILL,
failures recorded, links and concurrent runs refused, and the Dask path on a LocalCluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from colorquant.batch import LOCK_NAME, settings_hash
from colorquant.settings import Settings

from .conftest import assert_one_line_error


def make_tree(root: Path, coffee: np.ndarray, n_images: int = 4) -> Path:
    """A small photo folder: images at the top and in a subfolder, plus a non-image."""
    source = root / "photos"
    (source / "trip").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(n_images):
        top, left = rng.integers(0, 200), rng.integers(0, 300)
        crop = coffee[top : top + 120, left : left + 160]
        folder = source if index % 2 == 0 else source / "trip"
        Image.fromarray(crop).save(folder / f"img{index:03d}.png")
    (source / "notes.txt").write_text("not an image")
    return source


def manifest_rows(output: Path) -> dict:
    """The manifest's rows by input, its figures unpacked from JSON into the row."""
    with sqlite3.connect(output / "colorquant.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = {row["input"]: dict(row) for row in db.execute("SELECT * FROM files")}
    for row in rows.values():
        row.update(json.loads(row.pop("metrics")))
    return rows


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_batch_mirrors_tree_and_fills_manifest(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    result = run_cli("batch", source, "-o", output, "--recursive", "-k", "8", "--jobs", "2")
    assert result.status == 0, result
    assert sorted(snapshot(output)) == ["img000-kmeans-k8.png", "img002-kmeans-k8.png",
                                        "trip/img001-kmeans-k8.png", "trip/img003-kmeans-k8.png"]
    rows = manifest_rows(output)
    assert sorted(rows) == ["img000.png", "img002.png", "trip/img001.png", "trip/img003.png"]
    expected_hash = settings_hash(Settings(n_colors=8))
    for relpath, row in rows.items():
        stat = (source / relpath).stat()
        assert row["status"] == "done" and row["error"] is None and row["attempts"] == 1
        assert row["input_size"] == stat.st_size == row["bytes_in"]
        assert row["input_mtime_ns"] == stat.st_mtime_ns
        assert len(row["input_hash"]) == 32 and row["settings_hash"] == expected_hash
        written = output / row["output"]
        assert row["bytes_out"] == written.stat().st_size
        assert Image.open(written).mode == "P" and row["colors"] == 8
        assert 20 < row["psnr"] < 50 and 0 < row["ssim"] <= 1 and row["seconds"] > 0
        assert row["created_at"] <= row["updated_at"]
    assert "done now" in result.out and "4" in result.out


def test_batch_rerun_touches_nothing_and_redoes_changes(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output, "--recursive").status == 0
    before, rows_before = snapshot(output), manifest_rows(output)
    again = run_cli("batch", source, "-o", output, "--recursive")
    assert again.status == 0 and "4 up to date, 0 to do" in again.err
    assert snapshot(output) == before and manifest_rows(output) == rows_before

    # touched but unchanged: still up to date (content hash), only the mtime is remembered
    os.utime(source / "img000.png", ns=(1, 1))
    assert "4 up to date" in run_cli("batch", source, "-o", output, "--recursive").err
    assert snapshot(output) == before
    # changed content: redone; changed settings: every file redone and old outputs replaced
    Image.fromarray(coffee[:50, :50]).save(source / "img002.png")
    changed = run_cli("batch", source, "-o", output, "--recursive")
    assert "3 up to date, 1 to do" in changed.err
    assert manifest_rows(output)["img002.png"]["attempts"] == 2
    recoloured = run_cli("batch", source, "-o", output, "--recursive", "-k", "4")
    assert "0 up to date, 4 to do" in recoloured.err
    assert sorted(snapshot(output)) == ["img000-kmeans-k4.png", "img002-kmeans-k4.png",
                                        "trip/img001-kmeans-k4.png", "trip/img003-kmeans-k4.png"]


def test_batch_records_failures_and_continues(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    (source / "broken.png").write_bytes((source / "img000.png").read_bytes()[:500])
    output = tmp_path / "out"
    result = run_cli("batch", source, "-o", output)
    assert result.status == 3, result
    rows = manifest_rows(output)
    assert rows["broken.png"]["status"] == "failed" and "truncated" in rows["broken.png"]["error"]
    assert rows["img000.png"]["status"] == "done" and rows["img002.png"]["status"] == "done"
    assert "broken.png" in result.err

    # failed inputs are not retried unless asked
    assert "3 up to date, 0 to do" in run_cli("batch", source, "-o", output).err
    Image.fromarray(coffee[:40, :40]).save(source / "fixed.png")
    (source / "broken.png").unlink()
    (source / "broken.png").write_bytes((source / "img000.png").read_bytes())
    os.utime(source / "broken.png", ns=(rows["broken.png"]["input_mtime_ns"] or 0,
                                        rows["broken.png"]["input_mtime_ns"] or 0))
    retried = run_cli("batch", source, "-o", output, "--retry-failed")
    assert retried.status == 0, retried
    assert manifest_rows(output)["broken.png"]["status"] == "done"
    assert manifest_rows(output)["broken.png"]["attempts"] == 2

    status = run_cli("batch", "--status", output, "--csv", tmp_path / "rows.csv")
    assert status.status == 0 and "failed    0" in status.out
    with open(tmp_path / "rows.csv", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert sorted(r["input"] for r in exported) == ["broken.png", "fixed.png", "img000.png", "img002.png"]


def test_batch_skip_if_larger_is_recorded(run_cli, tmp_path):
    source = tmp_path / "flat"
    source.mkdir()
    # our own palette PNG cannot get smaller with the same settings
    import colorquant as cq

    cq.quantize(np.asarray(Image.new("RGB", (64, 64), (10, 20, 30)))).save(source / "tiny.png")
    result = run_cli("batch", source, "-o", tmp_path / "out", "--skip-if-larger")
    assert result.status == 0, result
    row = manifest_rows(tmp_path / "out")["tiny.png"]
    assert row["status"] == "skipped" and "not smaller" in row["error"] and row["output"] is None


def test_batch_refuses_links_leading_outside(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    outside = tmp_path / "secret.png"
    Image.fromarray(coffee[:30, :30]).save(outside)
    (source / "escape.png").symlink_to(outside)
    (source / "inside.png").symlink_to(source / "img000.png")
    (source / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    output = tmp_path / "out"
    result = run_cli("batch", source, "-o", output, "--recursive")
    assert result.status == 3
    rows = manifest_rows(output)
    assert rows["escape.png"]["status"] == "failed"
    assert "link leads outside the input folder" in rows["escape.png"]["error"]
    assert rows["inside.png"]["status"] == "done"
    assert not any("linked-folder" in relpath for relpath in rows)
    written = {p.resolve() for p in tmp_path.rglob("*-kmeans-k16.png")}
    assert all(path.is_relative_to(output.resolve()) for path in written)


def test_batch_output_inside_input_is_not_rescanned(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    assert run_cli("batch", source, "-o", source / "small", "--recursive").status == 0
    again = run_cli("batch", source, "-o", source / "small", "--recursive")
    assert "4 images: 4 up to date" in again.err


def test_batch_second_run_on_same_folder_refuses(run_cli, tmp_path, coffee):
    import fcntl

    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    output.mkdir()
    with open(output / LOCK_NAME, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("batch", source, "-o", output)
    assert_one_line_error(result, 75, "another colorquant batch", "is writing here")
    assert not (output / "colorquant.sqlite").exists()


def test_batch_usage_errors(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    assert_one_line_error(run_cli("batch", source), 2, "needs -o/--output-dir")
    assert_one_line_error(run_cli("batch", source, "-o", source), 2, "must differ")
    assert_one_line_error(run_cli("batch", tmp_path / "nowhere", "-o", tmp_path / "o"), 2, "not a folder")
    assert_one_line_error(run_cli("batch", "--status", tmp_path), 3, "no manifest here")


def test_batch_survives_sigkill_and_resumes(tmp_path, coffee):
    source = tmp_path / "many"
    source.mkdir()
    rng = np.random.default_rng(1)
    for index in range(40):
        top, left = rng.integers(0, 250), rng.integers(0, 400)
        Image.fromarray(coffee[top : top + 150, left : left + 200]).save(source / f"p{index:02d}.png")
    output = tmp_path / "out"
    command = [sys.executable, "-m", "colorquant", "batch", str(source), "-o", str(output),
               "--jobs", "2", "-k", "32", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and done < 8:
        time.sleep(0.2)
        try:
            done = len([r for r in manifest_rows(output).values() if r["status"] == "done"])
        except sqlite3.Error:
            done = 0
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its workers, mid-run
    process.wait()
    assert 8 <= done < 40, done

    resumed = subprocess.run(command[:-1], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    rows = manifest_rows(output)
    assert len(rows) == 40 and all(r["status"] == "done" for r in rows.values())
    outputs = sorted(output.glob("*.png"))
    assert len(outputs) == 40  # no duplicates
    for path in outputs:
        assert Image.open(path).mode == "P"  # none corrupt
        Image.open(path).load()
    assert not list(output.glob(".*.part"))  # no temporary files left behind
    assert sum(r["attempts"] for r in rows.values()) >= 40

    # and a finished batch run again touches nothing
    before = snapshot(output)
    again = subprocess.run(command[:-1], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "40 up to date, 0 to do" in again.stderr
    assert snapshot(output) == before


def test_batch_on_dask_local_cluster(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    result = run_cli("batch", source, "-o", output, "--recursive", "--scheduler", "local",
                     "--jobs", "2", "-k", "8")
    assert result.status == 0, result
    rows = manifest_rows(output)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows.values())
    # the same bytes as the local pool
    pool_output = tmp_path / "pool"
    assert run_cli("batch", source, "-o", pool_output, "--recursive", "--jobs", "2", "-k", "8").status == 0
    for relpath, row in rows.items():
        assert (output / row["output"]).read_bytes() == (pool_output / row["output"]).read_bytes()


def test_batch_unreachable_dask_scheduler_is_a_clear_error(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    result = run_cli("batch", source, "-o", tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9")
    assert_one_line_error(result, 2, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_a_bug_fails_that_file_and_the_run_exits_1(run_cli, tmp_path, coffee, monkeypatch):
    import colorquant.batch

    source = make_tree(tmp_path, coffee)
    real = colorquant.batch.compress_file

    def buggy(path, *args, **kwargs):
        if path.name == "img002.png":
            raise RuntimeError("a bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(colorquant.batch, "compress_file", buggy)
    result = run_cli("batch", source, "-o", tmp_path / "out", "--jobs", "1")
    assert result.status == 1, result
    rows = manifest_rows(tmp_path / "out")
    assert rows["img002.png"]["status"] == "failed" and "internal error: RuntimeError" in rows["img002.png"]["error"]
    assert rows["img000.png"]["status"] == "done"
