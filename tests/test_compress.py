"""One file in, one output and its outcome out: the unit of work of every front end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import colorquant.compress as compress_module
from colorquant.compress import compress_file, default_output_name
from colorquant.settings import QualityTarget, Settings

from .conftest import flat_logo, save_image


def test_done_outcome_holds_the_written_files_figures(photo_png, tmp_path):
    outcome = compress_file(photo_png, Settings(n_colors=8), output_dir=tmp_path)
    written = tmp_path / "coffee-kmeans-k8.png"
    assert outcome.status == "done" and outcome.output == str(written) and outcome.error is None
    assert outcome.bytes_out == written.stat().st_size and outcome.bytes_in == photo_png.stat().st_size
    assert outcome.colors == 8 and 20 < outcome.metrics["psnr"] < 40
    assert outcome.metrics["ciede2000"] is None  # not asked for
    assert outcome.bpp == pytest.approx(8 * outcome.bytes_out / (400 * 600))
    assert outcome.seconds > 0


def test_figures_asked_for_are_computed(photo_png, tmp_path):
    outcome = compress_file(photo_png, Settings(n_colors=8, metrics=("ciede2000",)), output_dir=tmp_path)
    assert outcome.metrics["ciede2000"] > 0 and outcome.metrics["blurred_psnr"] is None


def test_failed_and_skipped_outcomes_keep_the_error_and_write_nothing(tmp_path, photo_png):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_png.read_bytes()[:2000])
    failed = compress_file(broken, Settings())
    assert failed.status == "failed" and failed.error_kind == "ImageReadError" and "truncated" in failed.error
    assert failed.output is None
    missed = compress_file(photo_png, Settings(target=QualityTarget("psnr", 60), n_colors=4), output_dir=tmp_path)
    assert missed.status == "skipped" and missed.error_kind == "QualityTooLowError"
    logo = save_image(tmp_path / "logo.png", flat_logo(3))
    first = compress_file(logo, Settings(), output_dir=tmp_path)
    (tmp_path / "second").mkdir()
    larger = compress_file(first.output, Settings(skip_if_larger=True), output_dir=tmp_path / "second")
    assert larger.status == "skipped" and larger.error_kind == "OutputNotSmallerError"
    assert larger.bytes_out >= larger.bytes_in and math.isinf(larger.metrics["psnr"])  # figures kept
    assert list((tmp_path / "second").iterdir()) == []


def test_a_bug_is_not_turned_into_an_outcome(photo_png, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(compress_module, "compress_image", broken)
    with pytest.raises(ZeroDivisionError):
        compress_file(photo_png, Settings(), output_dir=tmp_path)


def test_existing_output_is_replaced_only_when_asked(photo_png, tmp_path):
    first = compress_file(photo_png, Settings(n_colors=8), output_dir=tmp_path)
    again = compress_file(photo_png, Settings(n_colors=8), output_dir=tmp_path)
    assert again.status == "failed" and "already exists" in again.error
    replaced = compress_file(photo_png, Settings(n_colors=8), output_dir=tmp_path, overwrite=True)
    assert replaced.status == "done" and replaced.output == first.output


def test_target_output_is_named_after_the_count_found(photo_png, tmp_path):
    outcome = compress_file(photo_png, Settings(target=QualityTarget("psnr", 30)), output_dir=tmp_path)
    assert outcome.output == str(tmp_path / f"coffee-kmeans-k{outcome.colors}.png")
    assert outcome.search and outcome.search[-1].n_colors in {step.n_colors for step in outcome.search}


def test_default_output_name_is_shortened_on_a_character_boundary():
    assert default_output_name("dir/photo.jpg", "gmm", 32, "webp") == "photo-gmm-k32.webp"
    long_name = "é" * 200 + ".png"
    name = default_output_name(long_name, "kmeans", 16, "png")
    assert len(name.encode()) <= 255 and name.endswith("-kmeans-k16.png")
    name.encode().decode("utf-8")  # whole characters only


def test_outputs_are_byte_identical_across_runs(tmp_path, coffee):
    Image.fromarray(coffee).save(tmp_path / "c.png")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = compress_file(tmp_path / "c.png", Settings(n_colors=24), output_dir=tmp_path / "a")
    second = compress_file(tmp_path / "c.png", Settings(n_colors=24), output_dir=tmp_path / "b")
    assert first.status == second.status == "done"
    assert np.array_equal(np.fromfile(first.output, np.uint8), np.fromfile(second.output, np.uint8))
