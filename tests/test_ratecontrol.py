"""Byte budgets (--max-size) and targets that minimise bytes: parsing, fits-or-99 on real
photos, nothing written on 99, determinism, batch with a percentage budget, the default."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from colorquant import quantize
from colorquant.errors import InvalidParameterError, QualityTooLowError
from colorquant.metrics import ssimulacra2
from colorquant.ratecontrol import BudgetNotMetError
from colorquant.settings import FRONT_END_COLORS, ByteBudget, Settings, parse_byte_budget

from .conftest import assert_one_line_error, files_in, save_image


@pytest.mark.parametrize("text, limit", [
    ("150000", 150_000), ("100KB", 100_000), ("100kB", 100_000), ("2MB", 2_000_000), ("1GB", 10**9),
    ("64KiB", 65_536), ("1.5MiB", 1_572_864), ("64k", 65_536), ("64K", 65_536), ("2M", 2_097_152),
    (" 512 b ", 512), ("0.5KB", 500), (150000, 150_000),
])
def test_budget_sizes_with_every_unit(text, limit):
    assert parse_byte_budget(text) == ByteBudget(limit=limit)


@pytest.mark.parametrize("text, share", [("30%", 0.30), ("100%", 1.0), ("0.5%", 0.005)])
def test_budget_as_a_share_of_the_input(text, share):
    budget = parse_byte_budget(text)
    assert budget.share == pytest.approx(share) and budget.limit is None
    assert budget.bytes_for(200_000) == int(200_000 * share)


@pytest.mark.parametrize("text", ["lots", "0", "-5", "150%", "1e999", "", "0%", "nan", "inf", "12 XB",
                                  "2TB", "10KB5", True, 1.5, None])
def test_bad_budgets_are_refused(text):
    with pytest.raises(InvalidParameterError, match="max_size"):
        parse_byte_budget(text)


@pytest.mark.parametrize("text", ["lots", "0", "-5", "150%", "1e999"])
def test_a_bad_budget_is_a_usage_error_before_any_file_is_read(run_cli, tmp_path, text):
    result = run_cli("compress", tmp_path / "missing.png", f"--max-size={text}")
    assert_one_line_error(result, 2, "--max-size")
    assert files_in(tmp_path) == set()


def test_a_share_of_the_input_needs_an_input_file(coffee):
    with pytest.raises(InvalidParameterError, match="share of the input"):
        quantize(coffee, max_size="30%")


def plain_256_bytes(path) -> int:
    return len(quantize(path, n_colors=256, dither=0).encode())


@pytest.mark.parametrize("share", [0.35, 0.6, 0.85])
def test_the_output_fits_its_budget_and_is_the_best_looking_candidate(tmp_path, coffee, share):
    photo = save_image(tmp_path / "coffee.png", coffee)
    limit = int(share * plain_256_bytes(photo))
    result = quantize(photo, max_size=limit)
    data = result.encode()
    assert 0.9 * limit <= len(data) <= limit
    assert result.byte_budget == limit
    # one candidate per colour space (plain at the default speed), each the largest count
    # that fits; the output is the one that scored best, and its score is the file's
    assert {(step.color_space, step.dither) for step in result.search} == {("mixed", 0.0), ("oklab", 0.0)}
    assert all(step.bytes <= limit for step in result.search)
    best = max(result.search, key=lambda step: (step.value, -step.bytes))
    assert (result.n_colors_requested, result.dither, result.color_space) == (best.n_colors, best.dither,
                                                                              best.color_space)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert ssimulacra2(coffee, decoded) == pytest.approx(best.value, abs=1e-3)


def test_slow_speeds_search_dither_levels_and_the_largest_count_exactly(tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    limit = int(0.5 * plain_256_bytes(photo))
    result = quantize(photo, max_size=limit, speed=3, color_space="mixed")
    assert [step.dither for step in result.search] == [0.0, 0.5, 1.0]
    for step in result.search:
        assert step.bytes <= limit
        over = quantize(photo, n_colors=step.n_colors + 1, speed=3, color_space="mixed", dither=step.dither)
        assert len(over.encode()) > limit


def test_a_given_space_and_level_are_kept(tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    result = quantize(photo, max_size="10%", color_space="rgb", dither=0.5)
    assert [(step.color_space, step.dither) for step in result.search] == [("rgb", 0.5)]
    assert (result.color_space, result.dither) == ("rgb", 0.5)


def test_a_budget_is_deterministic(tmp_path, astronaut):
    photo = save_image(tmp_path / "astronaut.png", astronaut)
    first = quantize(photo, max_size="20%").encode()
    assert quantize(photo, max_size="20%").encode() == first


def test_nothing_fits_exit_99_nothing_written_and_the_smallest_size_named(run_cli, tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    out = tmp_path / "out"
    result = run_cli("compress", photo, "--max-size", "300", "-o", out)
    assert_one_line_error(result, 99, "no output fits in 300 bytes", "the smallest, with 2 colours, is")
    assert not out.exists()
    with pytest.raises(BudgetNotMetError) as raised:
        quantize(photo, max_size=300)
    assert isinstance(raised.value, QualityTooLowError) and raised.value.smallest > 300


def test_compress_writes_within_the_budget_and_reports_it(run_cli, tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    result = run_cli("compress", photo, "--max-size", "60KB", "-o", tmp_path / "out", "--json")
    assert result.status == 0, result
    record = json.loads(result.out)
    assert record["max_bytes"] == 60_000 and record["bytes_out"] <= 60_000
    assert record["dither"] == 0.0
    written = tmp_path / "out" / f"coffee-kmeans-k{record['colors']}.png"
    assert written.stat().st_size == record["bytes_out"]


def test_a_target_gives_the_smallest_file_that_meets_it(tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    plain = quantize(photo, target_ssimulacra2=60, dither=0)
    chosen = quantize(photo, target_ssimulacra2=60)
    assert len(chosen.encode()) <= len(plain.encode())
    decoded = np.asarray(Image.open(io.BytesIO(chosen.encode())).convert("RGB"))
    assert ssimulacra2(coffee, decoded) >= 60
    # every dithered level tried was scored, and the result is the smallest that met it
    met = [step for step in chosen.search if step.meets_target and step.bytes is not None]
    assert len(chosen.encode()) == min(step.bytes for step in met)


def test_a_target_with_a_budget_too_small_is_99(run_cli, tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    result = run_cli("compress", photo, "--target-psnr", "30", "--max-size", "5KB", "-o", tmp_path / "out")
    assert_one_line_error(result, 99, "PSNR >= 30 dB needs", "over the budget of 5,000")
    assert not (tmp_path / "out").exists()
    fits = run_cli("compress", photo, "--target-psnr", "30", "--max-size", "90%", "-o", tmp_path / "out", "--json")
    record = json.loads(fits.out)
    assert fits.status == 0 and record["psnr"] >= 30 and record["bytes_out"] <= record["max_bytes"]


def test_batch_applies_a_percentage_budget_to_each_image(run_cli, tmp_path, coffee, astronaut):
    folder = tmp_path / "in"
    folder.mkdir()
    inputs = [save_image(folder / "coffee.png", coffee), save_image(folder / "astronaut.png", astronaut)]
    out = tmp_path / "out"
    result = run_cli("batch", folder, "-o", out, "--max-size", "25%", "--jobs", "1")
    assert result.status == 0, result
    sizes = {path.name: path.stat().st_size for path in inputs}
    for path in inputs:
        (written,) = out.glob(f"{path.stem}-kmeans-k*.png")
        assert written.stat().st_size <= int(0.25 * sizes[path.name])
    csv_file = tmp_path / "status.csv"
    assert run_cli("batch", "--status", out, "--csv", csv_file).status == 0
    rows = list(csv.DictReader(csv_file.open()))
    assert {row["input"] for row in rows} == {"coffee.png", "astronaut.png"}
    for row in rows:
        assert int(row["max_bytes"]) == int(0.25 * sizes[row["input"]])
        assert int(row["bytes_out"]) <= int(row["max_bytes"]) and float(row["dither"]) == 0.0


def test_without_colours_target_or_budget_the_front_ends_default_applies(run_cli, tmp_path, coffee):
    photo = save_image(tmp_path / "coffee.png", coffee)
    result = run_cli("compress", photo, "-o", tmp_path / "out", "--json")
    assert json.loads(result.out)["colors"] == FRONT_END_COLORS
    assert (tmp_path / "out" / f"coffee-kmeans-k{FRONT_END_COLORS}.png").is_file()
    # a budget alone searches up to 256 colours
    budget = run_cli("compress", photo, "--max-size", "90%", "-o", tmp_path / "budget", "--json")
    assert json.loads(budget.out)["colors"] > FRONT_END_COLORS


def test_a_version_2_manifest_gains_the_budget_columns(tmp_path):
    import sqlite3

    from colorquant.manifest import _SCHEMA, Manifest
    from colorquant.outcome import Outcome

    path = tmp_path / "colorquant.sqlite"
    added = ("dither REAL", "max_bytes INTEGER", "color_space TEXT")
    version_2 = "\n".join(line for line in _SCHEMA.splitlines() if not line.strip().startswith(added))
    db = sqlite3.connect(path)
    db.executescript(version_2)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    db.execute("INSERT INTO files (input, status, colors, settings_hash, created_at, updated_at) "
               "VALUES ('old.png', 'done', 16, 'h', 'then', 'then')")
    db.commit()
    db.close()
    with Manifest(path) as manifest:
        old = manifest.rows()["old.png"].outcome
        assert (old.colors, old.dither, old.max_bytes, old.color_space) == (16, None, None, None)
        manifest.record(Outcome(input="new.png", colors=40, dither=1.0, max_bytes=50_000, color_space="oklab"),
                        settings_hash="h")
    with Manifest(path) as manifest:
        new = manifest.rows()["new.png"].outcome
        assert (new.dither, new.max_bytes, new.color_space) == (1.0, 50_000, "oklab")


def test_the_web_api_takes_a_budget_and_says_it(coffee):
    from fastapi.testclient import TestClient

    from colorquant.web import create_app

    from .conftest import encoded

    client = TestClient(create_app())
    photo = encoded(coffee)
    response = client.post("/api/compress", files={"file": ("coffee.png", photo, "image/png")},
                           data={"max_size": "40KB"})
    assert response.status_code == 200, response.text
    assert len(response.content) <= 40_000
    assert response.headers["X-Colorquant-Max-Bytes"] == "40000"
    assert float(response.headers["X-Colorquant-Dither"]) == 0.0
    share = client.post("/api/compress/json", files={"file": ("coffee.png", photo, "image/png")},
                        data={"max_size": "10%"})
    record = share.json()[0] if isinstance(share.json(), list) else share.json()
    assert record["max_bytes"] == int(0.1 * len(photo)) and record["bytes_out"] <= record["max_bytes"]
    bad = client.post("/api/compress", files={"file": ("coffee.png", photo, "image/png")}, data={"max_size": "lots"})
    assert bad.status_code == 422 and "max_size" in bad.text
    tiny = client.post("/api/compress", files={"file": ("coffee.png", photo, "image/png")}, data={"max_size": "200"})
    assert tiny.status_code == 422 and "no output fits in 200 bytes" in tiny.text
