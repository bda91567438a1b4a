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
import pytest
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
    result = run_cli("batch", source, "-o", output, "--recursive", "-k", "8", "--jobs", "2", "--metrics", "ssim")
    assert result.status == 0, result
    assert sorted(snapshot(output)) == ["img000-kmeans-k8.png", "img002-kmeans-k8.png",
                                        "trip/img001-kmeans-k8.png", "trip/img003-kmeans-k8.png"]
    rows = manifest_rows(output)
    assert sorted(rows) == ["img000.png", "img002.png", "trip/img001.png", "trip/img003.png"]
    expected_hash = settings_hash(Settings(n_colors=8, keep_animation_format=True))  # no --format given
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
    written = {p.resolve() for p in tmp_path.rglob("*-kmeans-k200.png")}
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
    real = colorquant.batch.compress_image

    def buggy(loaded, settings):
        if loaded.source == "img002.png":
            raise RuntimeError("a bug")
        return real(loaded, settings)

    monkeypatch.setattr(colorquant.batch, "compress_image", buggy)
    result = run_cli("batch", source, "-o", tmp_path / "out", "--jobs", "1")
    assert result.status == 1, result
    rows = manifest_rows(tmp_path / "out")
    assert rows["img002.png"]["status"] == "failed" and "internal error: RuntimeError" in rows["img002.png"]["error"]
    assert rows["img000.png"]["status"] == "done"


# --------------------------------------------------------------------------- nothing lost


def image_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.png")}


def test_status_csv_never_overwrites_without_force_nor_the_manifest_or_an_input(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    photo = source / "img000.png"
    before = photo.read_bytes()
    notes = source / "notes.txt"
    assert_one_line_error(run_cli("batch", "--status", output, "--csv", notes), 4, "already exists",
                          "--force replaces it")
    assert notes.read_text() == "not an image"
    for protected, fragment in ((photo, "a file the manifest names"),
                                (output / "colorquant.sqlite", "is the manifest")):
        assert_one_line_error(run_cli("batch", "--status", output, "--csv", protected, "--force"), 4, fragment)
    assert photo.read_bytes() == before
    assert len(manifest_rows(output)) == 2  # the manifest is intact
    assert run_cli("batch", "--status", output, "--csv", tmp_path / "rows.csv").status == 0
    assert run_cli("batch", "--status", output, "--csv", tmp_path / "rows.csv", "--force").status == 0


def test_only_its_own_temporary_files_are_cleaned_up(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    (source / "trip" / ".draft.part").write_text("someone's draft")
    (tmp_path / ".video.mkv.part").write_text("a download in progress")
    # the output folder is the input's parent: every .part there belongs to somebody else
    result = run_cli("batch", source, "-o", tmp_path, "--recursive")
    assert result.status == 0, result
    assert (source / "trip" / ".draft.part").read_text() == "someone's draft"
    assert (tmp_path / ".video.mkv.part").read_text() == "a download in progress"
    # a leftover of this folder's own (a killed run's) is removed, and counted
    with sqlite3.connect(tmp_path / "colorquant.sqlite") as db:
        token = db.execute("SELECT value FROM meta WHERE key = 'temp_token'").fetchone()[0]
    leftover = tmp_path / f".img000-kmeans-k200.png.{token}.abc123_x.part"
    leftover.write_bytes(b"half a png")
    again = run_cli("batch", source, "-o", tmp_path, "--recursive")
    assert not leftover.exists() and "temporaries removed" in again.out
    assert (tmp_path / ".video.mkv.part").exists()


def test_new_settings_that_skip_or_fail_keep_the_earlier_output(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    before = {name: (output / name).read_bytes() for name in image_files(output)}
    again = run_cli("batch", source, "-o", output, "--target-psnr", "60", "-k", "32")
    assert again.status == 0, again  # skipping is what was asked for
    assert {name: (output / name).read_bytes() for name in image_files(output)} == before
    assert "earlier output img000-kmeans-k200.png kept" in again.err
    assert "earlier outputs kept" in again.out
    rows = manifest_rows(output)
    assert {r["status"] for r in rows.values()} == {"skipped"}
    assert {r["output"] for r in rows.values()} == set(before)
    status = run_cli("batch", "--status", output)
    assert "outputs   2 files (2 kept from earlier runs)" in status.out


def test_missing_outputs_are_rebuilt_and_changed_ones_are_left_alone(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    good = (output / "img002-kmeans-k200.png").read_bytes()
    (output / "img000-kmeans-k200.png").unlink()
    (output / "img002-kmeans-k200.png").write_bytes(b"edited by hand")
    for extra in ((), ("--retry-failed",)):
        result = run_cli("batch", source, "-o", output, *extra)
        assert result.status == 4, result
        assert (output / "img000-kmeans-k200.png").exists()  # rebuilt
        assert (output / "img002-kmeans-k200.png").read_bytes() == b"edited by hand"  # not ours now
        row = manifest_rows(output)["img002.png"]
        assert row["status"] == "failed" and "changed since" in row["error"]
    assert "--force replaces it" in result.err
    forced = run_cli("batch", source, "-o", output, "--force")
    assert forced.status == 0, forced
    assert (output / "img002-kmeans-k200.png").read_bytes() == good


def test_a_manifest_serves_one_output_folder_and_one_input_folder(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    shared = tmp_path / "shared.sqlite"
    assert run_cli("batch", source, "-o", tmp_path / "a", "--manifest", shared).status == 0
    refused = run_cli("batch", source, "-o", tmp_path / "b", "--manifest", shared)
    assert_one_line_error(refused, 2, "belongs to the output folder", str((tmp_path / "a").resolve()))
    assert not (tmp_path / "b" / "img000-kmeans-k200.png").exists()
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(coffee[:50, :50]).save(other / "img000.png")
    refused = run_cli("batch", other, "-o", tmp_path / "a", "--manifest", shared)
    assert_one_line_error(refused, 2, "belongs to the input folder")
    # without that manifest, a's files were not written by the new one: left alone
    unbound = run_cli("batch", other, "-o", tmp_path / "a", "-q")
    assert unbound.status == 4 and "not written by this batch" in unbound.err


def test_files_it_did_not_write_are_left_alone_unless_forced(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    output.mkdir()
    (output / "img000-kmeans-k200.png").write_bytes(b"made by hand")
    result = run_cli("batch", source, "-o", output)
    assert result.status == 4, result
    assert (output / "img000-kmeans-k200.png").read_bytes() == b"made by hand"
    row = manifest_rows(output)["img000.png"]
    assert row["status"] == "failed" and "not written by this batch" in row["error"] and row["output"] is None
    assert manifest_rows(output)["img002.png"]["status"] == "done"
    assert run_cli("batch", source, "-o", output, "--retry-failed", "--force").status == 0
    assert (output / "img000-kmeans-k200.png").read_bytes()[:4] == b"\x89PNG"


def test_a_lost_manifest_is_rebuilt_and_existing_right_outputs_are_adopted(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    before = snapshot(output)
    for name in ("colorquant.sqlite", "colorquant.sqlite-wal", "colorquant.sqlite-shm"):
        (output / name).unlink(missing_ok=True)
    again = run_cli("batch", source, "-o", output)
    assert again.status == 0, again
    assert snapshot(output) == before  # the same bytes: adopted, not rewritten
    assert all(row["status"] == "done" for row in manifest_rows(output).values())


def test_a_damaged_manifest_is_one_line_naming_it_and_the_way_out(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee, n_images=8)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    manifest = output / "colorquant.sqlite"
    with sqlite3.connect(manifest) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(manifest, "r+b") as handle:
        handle.truncate(5000)
    for argv in (("batch", source, "-o", output), ("batch", "--status", output)):
        assert_one_line_error(run_cli(*argv), 3, str(manifest), "damaged manifest", "move it aside")
    manifest.rename(output / "colorquant.sqlite.damaged")
    assert run_cli("batch", source, "-o", output).status == 0


def test_a_rerun_exits_3_while_inputs_stand_failed_and_agrees_with_status(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    (source / "broken.png").write_bytes((source / "img000.png").read_bytes()[:400])
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 3
    again = run_cli("batch", source, "-o", output)
    assert again.status == 3, again
    assert "failed                1 (0 now, 1 from earlier runs" in again.out
    assert "already up to date    2\n" in again.out  # the failed one is not up to date
    status = run_cli("batch", "--status", output)
    assert status.status == 3 and "failed    1" in status.out


def test_fifos_and_devices_are_refused_without_blocking(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    os.mkfifo(source / "pipe.png")
    started = time.monotonic()
    result = run_cli("batch", source, "-o", tmp_path / "out")
    assert result.status == 3, result
    assert "pipe.png: is a named pipe, not a regular file" in result.err
    assert manifest_rows(tmp_path / "out")["pipe.png"]["status"] == "failed"
    compressed = run_cli("compress", source / "pipe.png")
    assert_one_line_error(compressed, 3, "is a named pipe, not a regular file")
    assert_one_line_error(run_cli("compress", "/dev/zero"), 3, "is a device, not a regular file")
    assert time.monotonic() - started < 60


def test_outputs_of_deleted_inputs_are_kept_and_counted(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    (source / "img002.png").unlink()
    again = run_cli("batch", source, "-o", output)
    assert again.status == 0 and "inputs gone           1" in again.out
    assert manifest_rows(output)["img002.png"]["input_gone"] == 1
    status = run_cli("batch", "--status", output)
    assert "outputs   2 files" in status.out and "gone      1 inputs no longer there" in status.out
    assert len(image_files(output)) == 2


def test_what_is_read_as_input(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    Image.fromarray(coffee[:40, :40]).save(source / "no-suffix", "PNG")  # an image by content
    (source / "README").write_text("not an image")
    Image.fromarray(coffee[:40, :40]).save(source / ".hidden.png")
    Image.fromarray(coffee[:40, :40]).save(source / "._img000.png")
    (source / ".cache").mkdir()
    Image.fromarray(coffee[:40, :40]).save(source / ".cache" / "thumb.png")
    earlier = source / "old-outputs"
    assert run_cli("batch", source, "-o", earlier).status == 0  # an output folder inside the input
    result = run_cli("batch", source, "-o", tmp_path / "out", "--recursive")
    assert result.status == 0, result
    rows = manifest_rows(tmp_path / "out")
    assert sorted(rows) == ["img000.png", "img002.png", "no-suffix", "trip/img001.png", "trip/img003.png"]
    assert "hidden, not read      3" in result.out and "not images, not read  2" in result.out
    hidden = run_cli("batch", source, "-o", tmp_path / "all", "--recursive", "--include-hidden")
    assert sorted(manifest_rows(tmp_path / "all")) == [
        ".cache/thumb.png", ".hidden.png", "img000.png", "img002.png", "no-suffix",
        "trip/img001.png", "trip/img003.png"]
    assert hidden.status == 0
    assert_one_line_error(run_cli("batch", earlier, "-o", tmp_path / "x"), 2, "holds a colorquant manifest")


def test_inputs_sharing_a_stem_get_distinct_names_that_stay(run_cli, tmp_path, coffee):
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(coffee[:60, :80]).save(source / "x.png")
    Image.fromarray(coffee[100:160, :80]).save(source / "x.jpg")
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    assert image_files(output) == {"x-kmeans-k200.png", "x-png-kmeans-k200.png"}
    rows = manifest_rows(output)
    assert rows["x.jpg"]["output"] == "x-kmeans-k200.png" and rows["x.png"]["output"] == "x-png-kmeans-k200.png"
    # a newcomer sorting first does not take a name already given
    Image.fromarray(coffee[200:260, :80]).save(source / "x.bmp")
    assert run_cli("batch", source, "-o", output).status == 0
    assert manifest_rows(output)["x.bmp"]["output"] == "x-bmp-kmeans-k200.png"
    assert len(image_files(output)) == 3 and "outputs   3 files" in run_cli("batch", "--status", output).out


def test_a_version_1_manifest_is_migrated_and_its_outputs_stay_owned(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    output.mkdir()
    Image.fromarray(coffee[:10, :10]).save(output / "img000-kmeans-k200.png")  # written by the old version
    with sqlite3.connect(output / "colorquant.sqlite") as db:
        db.executescript("""
            CREATE TABLE files (relpath TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                content_hash TEXT, settings_hash TEXT NOT NULL, status TEXT NOT NULL, output_path TEXT,
                colors INTEGER, psnr REAL, ssim REAL, bytes_in INTEGER, bytes_out INTEGER, seconds REAL,
                error TEXT, attempts INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            INSERT INTO files VALUES ('img000.png', 1, 1, 'x', 'old', 'done', 'img000-kmeans-k200.png',
                16, 30.0, 0.9, 1, 1, 0.1, NULL, 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
        """)
    result = run_cli("batch", source, "-o", output)
    assert result.status == 0, result  # the old output was this folder's: replaced, not refused
    rows = manifest_rows(output)
    assert rows["img000.png"]["attempts"] == 2 and rows["img000.png"]["status"] == "done"
    assert Image.open(output / "img000-kmeans-k200.png").size == (160, 120)


def test_an_output_edited_in_place_at_the_same_length_is_not_taken_as_up_to_date(run_cli, tmp_path, coffee):
    # Size alone must not vouch for an output: an edit that keeps the length (one byte
    # flipped, as an editor's "save" of a same-size change does) is a change like any other.
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    target = output / "img002-kmeans-k200.png"
    good = target.read_bytes()
    edited = bytearray(good)
    edited[len(edited) // 2] ^= 0xFF
    target.write_bytes(bytes(edited))
    written = manifest_rows(output)["img002.png"]["output_mtime_ns"]
    os.utime(target, ns=(written + 2_000_000_000, written + 2_000_000_000))  # coarse clocks too
    assert target.stat().st_size == len(good)
    result = run_cli("batch", source, "-o", output)
    assert result.status == 4, result
    assert target.read_bytes() == bytes(edited)  # left as it is
    row = manifest_rows(output)["img002.png"]
    assert row["status"] == "failed" and "changed since" in row["error"]
    forced = run_cli("batch", source, "-o", output, "--force")
    assert forced.status == 0, forced
    assert target.read_bytes() == good


def test_batch_with_a_read_failure_and_a_write_failure_exits_4(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    (source / "img000.png").write_bytes((source / "img002.png").read_bytes()[:500])  # truncated
    output = tmp_path / "out"
    output.mkdir()
    (output / "img002-kmeans-k200.png").write_bytes(b"made by hand")  # not ours: not replaced
    result = run_cli("batch", source, "-o", output)
    assert result.status == 4, result
    rows = manifest_rows(output)
    assert rows["img000.png"]["error_kind"] == "ImageReadError"
    assert rows["img002.png"]["error_kind"] == "ImageWriteError"


def test_an_input_that_comes_back_unchanged_is_no_longer_counted_gone(run_cli, tmp_path, coffee):
    # Found by the stateful test: the row of an input that is back, and up to date, kept its
    # "gone" mark, and --status counted it gone for ever.
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    assert run_cli("batch", source, "-o", output).status == 0
    (source / "img000.png").rename(tmp_path / "away.png")
    assert "inputs gone           1" in run_cli("batch", source, "-o", output).out
    assert manifest_rows(output)["img000.png"]["input_gone"] == 1
    (tmp_path / "away.png").rename(source / "img000.png")  # the same bytes and times
    back = run_cli("batch", source, "-o", output)
    assert back.status == 0 and "inputs gone" not in back.out, back
    assert manifest_rows(output)["img000.png"]["input_gone"] == 0


def test_nothing_is_written_through_a_linked_folder_inside_the_output(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    output = tmp_path / "out"
    output.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (output / "trip").symlink_to(elsewhere, target_is_directory=True)
    result = run_cli("batch", source, "-o", output, "--recursive")
    assert result.status == 4, result
    assert "leads outside the output folder" in result.err
    assert list(elsewhere.iterdir()) == []
    assert (output / "img000-kmeans-k200.png").exists()  # the others are done


def test_outputs_never_land_in_the_input_tree_when_it_lies_in_the_output_folder(run_cli, tmp_path, coffee):
    # batch /P/in -o /P --recursive, where /P/in/in/ exists: in/in/x.png would go to /P/in/
    parent = tmp_path / "P"
    source = parent / "in"
    (source / "in").mkdir(parents=True)
    Image.fromarray(coffee[:80, :80]).save(source / "top.png")
    Image.fromarray(coffee[80:160, :80]).save(source / "in" / "x.png")
    before = sorted(p.name for p in source.rglob("*"))
    result = run_cli("batch", source, "-o", parent, "--recursive")
    assert result.status == 4, result
    assert "inside the input folder" in result.err
    assert sorted(p.name for p in source.rglob("*")) == before
    assert (parent / "top-kmeans-k200.png").exists()
    assert run_cli("batch", source, "-o", parent, "--recursive").status == 4  # nothing new to compress


def test_long_names_that_meet_once_shortened_get_distinct_outputs_that_settle(run_cli, tmp_path, coffee):
    source = tmp_path / "in"
    source.mkdir()
    stems = ["q" * 249 + "1", "q" * 249 + "2"]
    for index, stem in enumerate(stems):
        Image.fromarray(coffee[index * 90 : index * 90 + 80, :80]).save(source / f"{stem}.png")
    output = tmp_path / "out"
    for _ in range(2):
        result = run_cli("batch", source, "-o", output, "--force")
        assert result.status == 0, result
    rows = manifest_rows(output)
    names = {row["output"] for row in rows.values()}
    assert len(names) == 2 and all(len(name.encode()) <= 255 for name in names)
    assert names == {p.name for p in output.glob("*.png")}
    assert run_cli("batch", source, "-o", output).status == 0  # settled: nothing to do, exit 0


def test_names_that_are_not_utf8_are_done_and_the_manifest_stays_true(run_cli, tmp_path, coffee):
    source = tmp_path / "in"
    source.mkdir()
    odd = os.fsdecode(b"bad\xffname.bmp")
    Image.fromarray(coffee[:60, :60]).save(source / odd, "BMP")
    Image.fromarray(coffee[60:120, :60]).save(source / "good.png")
    output = tmp_path / "out"
    result = run_cli("batch", source, "-o", output)
    assert result.status == 0, result
    written = os.fsdecode(b"bad\xffname-kmeans-k200.png")
    assert (output / written).exists()
    from colorquant.manifest import Manifest

    with Manifest(output / "colorquant.sqlite", readonly=True) as manifest:
        rows = manifest.rows()
    assert rows[odd].outcome.status == "done" and rows[odd].outcome.output == written
    again = run_cli("batch", source, "-o", output)
    assert again.status == 0 and "already up to date    2" in again.out, again
    exported = run_cli("batch", "--status", output, "--csv", tmp_path / "rows.csv")
    assert exported.status == 0, exported
    assert b"bad\xffname.bmp" in (tmp_path / "rows.csv").read_bytes()  # the name as on disk


def test_status_csv_cells_cannot_start_a_formula(run_cli, tmp_path, coffee):
    # OWASP's CSV injection: a name a spreadsheet would run is written with a quote before it
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(coffee[:60, :60]).save(source / "=HYPERLINK(1).png")
    Image.fromarray(coffee[60:120, :60]).save(source / "plain.png")
    assert run_cli("batch", source, "-o", tmp_path / "out").status == 0
    assert run_cli("batch", "--status", tmp_path / "out", "--csv", tmp_path / "rows.csv").status == 0
    with open(tmp_path / "rows.csv", newline="") as stream:
        cells = [row for row in csv.reader(stream)]
    inputs = sorted(row[0] for row in cells[1:])
    assert inputs == ["'=HYPERLINK(1).png", "plain.png"]
    assert not any(cell.startswith(("=", "+", "@")) for row in cells for cell in row)


def test_status_csv_dash_is_standard_output(run_cli, tmp_path, coffee):
    source = make_tree(tmp_path, coffee)
    assert run_cli("batch", source, "-o", tmp_path / "out").status == 0
    result = run_cli("batch", "--status", tmp_path / "out", "--csv", "-")
    assert result.status == 0, result
    rows = list(csv.reader(result.out.splitlines()))
    assert rows[0][0] == "input" and len(rows) == 3
    assert "wrote 2 rows to standard output" in result.err
    assert not (Path.cwd() / "-").exists()


@pytest.mark.parametrize("recursive", [True, False])
def test_a_folder_that_cannot_be_read_is_reported_and_the_rest_done(run_cli, tmp_path, coffee, monkeypatch, recursive):
    # As a folder of mode 000 or 711 looks to a user who is not root (the tests run as root,
    # who may read anything, so the file system's refusal is played by os.scandir and os.stat).
    source = make_tree(tmp_path, coffee)
    locked = source / "trip"
    real_scandir, real_lstat, real_stat = os.scandir, os.lstat, os.stat

    def scandir(path="."):
        if Path(os.fsdecode(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    def lstat(path, *args, **kwargs):
        if Path(os.fsdecode(path)).parent == locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_lstat(path, *args, **kwargs)

    def stat(path, *args, **kwargs):
        if isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).parent == locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "stat", stat)
    result = run_cli("batch", source, "-o", tmp_path / "out", *(["--recursive"] if recursive else []))
    assert (tmp_path / "out" / "img000-kmeans-k200.png").exists()  # the others are done
    if recursive:
        assert result.status == 3, result
        assert "trip/: cannot read this folder (Permission denied)" in result.err
    else:  # not read without --recursive, so nothing to report
        assert result.status == 0, result


def test_an_input_that_comes_back_after_its_output_was_deleted_is_done_again(run_cli, tmp_path, coffee):
    # found by test_batch_state: the input moved away, its output deleted by hand (the row
    # then owns no output), the input put back unchanged: the next run crashed (exit 1)
    source, output = tmp_path / "in", tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    Image.fromarray(coffee[:40, :60].copy()).save(source / "sub" / "c.png")
    argv = ["batch", source, "-o", output, "--recursive", "-k", "8", "--jobs", "1", "-q"]
    assert run_cli(*argv).status == 0
    (source / "sub" / "c.png").rename(source / "a.png")
    (output / "sub" / "c-kmeans-k8.png").unlink()
    assert run_cli(*argv).status == 0
    Image.fromarray(coffee[:40, :60].copy()).save(source / "sub" / "c.png")
    result = run_cli(*argv)
    assert result.status == 0, result
    assert (output / "sub" / "c-kmeans-k8.png").exists() and (output / "a-kmeans-k8.png").exists()
