"""The batch manifest: outcomes stored and read back whole, attempts counted, figures as JSON
(a new figure needs no new column), the summary and the CSV export."""

from __future__ import annotations

import csv

import pytest

from colorquant.errors import ImageWriteError
from colorquant.manifest import Manifest
from colorquant.metrics import METRICS
from colorquant.outcome import Outcome


def done(name: str, psnr: float = 30.0) -> Outcome:
    return Outcome(name, "done", output=name.replace(".png", "-kmeans-k16.png"), method="kmeans",
                   colors=16, metrics={"mse": 65.0, "psnr": psnr, "ssim": 0.9}, bytes_in=1000,
                   bytes_out=300, bpp=1.5, seconds=0.2, input_size=1000, input_mtime_ns=7,
                   input_hash="a" * 32, output_hash="b" * 32)


def test_outcomes_round_trip(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.record(done("a.png"), settings_hash="s1")
        failed = Outcome("b.png", "failed", error="b.png: truncated", error_kind="ImageReadError")
        manifest.record(failed, settings_hash="s1")
        rows = manifest.rows()
    stored = rows["a.png"]
    assert stored.outcome == done("a.png").with_changes(
        metrics={**{name: None for name in METRICS}, "mse": 65.0, "psnr": 30.0, "ssim": 0.9})
    assert stored.settings_hash == "s1" and stored.attempts == 1
    assert rows["b.png"].outcome.error_kind == "ImageReadError" and rows["b.png"].outcome.output is None


def test_recording_again_counts_the_attempt_and_keeps_the_creation_time(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.record(done("a.png"), settings_hash="s1")
        first = manifest.rows()["a.png"]
        manifest.record(done("a.png", psnr=31.0), settings_hash="s2")
        second = manifest.rows()["a.png"]
    assert second.attempts == 2 and second.settings_hash == "s2"
    assert second.created_at == first.created_at <= second.updated_at
    assert second.outcome.metrics["psnr"] == 31.0


def test_refused_status_is_a_bug(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as manifest, pytest.raises(ValueError, match="status must be"):
        manifest.record(done("a.png").with_changes(status="ok"), settings_hash="s")


def test_summary_and_csv_export(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.record(done("a.png", 30.0), settings_hash="s")
        manifest.record(done("b.png", 32.0), settings_hash="s")
        manifest.record(Outcome("c.png", "failed", error="c.png: truncated"), settings_hash="s")
        summary = manifest.summary()
        data, count = manifest.csv_bytes()
        assert count == 3
    (tmp_path / "rows.csv").write_bytes(data)
    assert summary["counts"] == {"done": 2, "skipped": 0, "failed": 1} and summary["outputs"] == 2
    assert summary["bytes_in"] == 2000 and summary["bytes_out"] == 600
    assert summary["mean_psnr"] == pytest.approx(31.0)
    assert summary["failures"] == [("c.png", "c.png: truncated")]
    with open(tmp_path / "rows.csv", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert [row["input"] for row in exported] == ["a.png", "b.png", "c.png"]
    assert set(METRICS) <= set(exported[0]) and exported[1]["psnr"] == "32.0"


def test_readonly_manifest_cannot_be_written(tmp_path):
    with Manifest(tmp_path / "m.sqlite") as manifest:
        manifest.record(done("a.png"), settings_hash="s")
    with Manifest(tmp_path / "m.sqlite", readonly=True) as manifest:
        assert list(manifest.rows()) == ["a.png"]
        with pytest.raises(ImageWriteError, match="cannot use the manifest .*readonly"):
            manifest.record(done("b.png"), settings_hash="s")
