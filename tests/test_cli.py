"""The real command line: outputs, JSON records, exit statuses, and every user-error path
(one line on stderr, the documented status, no output file, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_one_line_error, encoded, files_in, flat_logo, save_image

JSON_KEYS = {"input", "output", "method", "colors", "dither", "color_space", "mse", "psnr", "ssim", "ssimulacra2", "ciede2000",
             "blurred_psnr", "bytes_in", "bytes_out", "max_bytes", "bpp", "seconds", "status", "error"}


@pytest.mark.parametrize("method", ["kmeans", "minibatch", "gmm"])
def test_compress_writes_palette_png_next_to_input(run_cli, photo_png, method):
    result = run_cli("compress", photo_png, "-k", "16", "-m", method)
    assert result.status == 0, result
    output = photo_png.with_name(f"coffee-{method}-k16.png")
    assert output.exists()
    image = Image.open(output)
    assert image.mode == "P"
    assert len(image.getcolors(256)) <= 16
    assert output.stat().st_size < photo_png.stat().st_size
    assert "16 colours" in result.out and "PSNR" in result.out


def test_compress_json_record(run_cli, photo_png, tmp_path):
    out_dir = tmp_path / "out"
    result = run_cli("compress", photo_png, "-k", "8", "-o", out_dir, "--json", "--metrics", "ssim")
    assert result.status == 0, result
    record = json.loads(result.out.strip())
    assert set(record) == JSON_KEYS
    assert record["status"] == "done" and record["error"] is None
    assert record["colors"] == 8 and record["method"] == "kmeans"
    assert record["dither"] == 0.0 and record["max_bytes"] is None and record["color_space"] == "mixed"
    assert Path(record["output"]) == out_dir / "coffee-kmeans-k8.png"
    assert record["bytes_out"] == (out_dir / "coffee-kmeans-k8.png").stat().st_size
    assert record["bytes_in"] == photo_png.stat().st_size
    assert 20 < record["psnr"] < 40 and 0 < record["ssim"] < 1
    assert record["bpp"] == pytest.approx(8 * record["bytes_out"] / (400 * 600))


def test_compress_output_file_and_force(run_cli, photo_png, tmp_path):
    target = tmp_path / "small.png"
    assert run_cli("compress", photo_png, "--output", target).status == 0
    first = target.read_bytes()
    refused = run_cli("compress", photo_png, "--output", target)
    assert_one_line_error(refused, 4, "already exists", "--force")
    assert target.read_bytes() == first
    assert run_cli("compress", photo_png, "--output", target, "--force", "-k", "4").status == 0
    assert target.read_bytes() != first


def test_compress_is_byte_identical_across_runs_and_jobs(run_cli, photo_png, photo_jpeg, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("compress", photo_png, photo_jpeg, "-o", one, "--jobs", "1").status == 0
    assert run_cli("compress", photo_png, photo_jpeg, "-o", two, "--jobs", "2").status == 0
    assert files_in(one) == files_in(two) == {"coffee-kmeans-k200.png", "astronaut-kmeans-k200.png"}
    for name in files_in(one):
        assert (one / name).read_bytes() == (two / name).read_bytes()


@pytest.mark.parametrize("format_name, suffix, mode", [("gif", ".gif", "P"), ("webp", ".webp", "RGB"),
                                                      ("jpeg", ".jpg", "RGB")])
def test_compress_other_formats(run_cli, photo_png, format_name, suffix, mode):
    result = run_cli("compress", photo_png, "--format", format_name, "-k", "16", "--json")
    assert result.status == 0, result
    record = json.loads(result.out)
    output = Path(record["output"])
    assert output.suffix == suffix
    assert Image.open(output).mode == mode
    if format_name == "jpeg":
        assert "JPEG re-expands" in result.err
    else:
        assert len(Image.open(output).convert("RGB").getcolors(256)) <= 16


def test_compress_skip_if_larger_exits_98_and_writes_nothing(run_cli, tmp_path):
    # Our own output compressed again with the same settings cannot get smaller.
    source = save_image(tmp_path / "logo.png", flat_logo(3))
    assert run_cli("compress", source, "-o", tmp_path / "first").status == 0
    again = tmp_path / "first" / "logo-kmeans-k200.png"
    result = run_cli("compress", again, "-o", tmp_path / "second", "--skip-if-larger", "--json")
    assert result.status == 98, result
    record = json.loads(result.out)
    assert record["status"] == "skipped" and "not smaller" in record["error"]
    assert not (tmp_path / "second").exists()  # the folder it made for nothing is gone again


def test_compress_continues_after_a_bad_input(run_cli, photo_png, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_png.read_bytes()[:3000])
    result = run_cli("compress", broken, photo_png, "--json")
    assert result.status == 3, result
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["status"] for r in records] == ["failed", "done"]
    assert photo_png.with_name("coffee-kmeans-k200.png").exists()
    assert not broken.with_name("broken-kmeans-k200.png").exists()


def _bad_inputs(tmp_path: Path, photo: np.ndarray) -> dict:
    png = encoded(photo, "PNG")
    jpeg = encoded(photo, "JPEG", quality=90)
    (tmp_path / "a-folder.png").mkdir()
    cases = {
        "missing": (tmp_path / "nope.png", "no such file"),
        "directory": (tmp_path / "a-folder.png", "is a directory"),
        "empty": (tmp_path / "empty.png", "empty file"),
        "text": (tmp_path / "notes.png", "not a supported image"),
        "truncated png": (tmp_path / "cut.png", "truncated"),
        "truncated jpeg": (tmp_path / "cut.jpg", "truncated"),
        "unsupported format": (tmp_path / "icon.ico", "not a supported image"),
    }
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello, I am not an image\n")
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    Image.fromarray(photo[:64, :64]).save(tmp_path / "icon.ico", "ICO")
    return cases


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "truncated png",
                                  "truncated jpeg", "unsupported format"])
def test_compress_unreadable_input(run_cli, tmp_path, coffee, case):
    path, fragment = _bad_inputs(tmp_path, coffee)[case]
    before = files_in(tmp_path)
    result = run_cli("compress", path)
    assert_one_line_error(result, 3, str(path), fragment)
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("argv, fragment", [
    (["-k", "1"], "--colors must be in [2, 256]; got 1"),
    (["-k", "300"], "got 300"),
    (["-k", "many"], "must be an integer"),
    (["-m", "dbscan"], "invalid choice: 'dbscan'"),
    (["--format", "bmp"], "invalid choice: 'bmp'"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--covariance", "full"], "--covariance applies to --method gmm only"),
])
def test_compress_usage_errors_touch_nothing(run_cli, photo_png, argv, fragment):
    before = files_in(photo_png.parent)
    result = run_cli("compress", photo_png, *argv)
    assert_one_line_error(result, 2, fragment)
    assert files_in(photo_png.parent) == before


def test_compress_output_takes_one_input(run_cli, photo_png, photo_jpeg, tmp_path):
    result = run_cli("compress", photo_png, photo_jpeg, "--output", tmp_path / "x.png")
    assert_one_line_error(result, 2, "--output takes one input")


def test_compress_unwritable_output_folder(run_cli, photo_png, tmp_path):
    # A path under a regular file can never be a folder, whoever runs the test (root too).
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = run_cli("compress", photo_png, "--output", blocker / "out.png")
    assert_one_line_error(result, 4, "out.png")
    result = run_cli("compress", photo_png, "-o", blocker / "sub")
    assert_one_line_error(result, 4, "cannot create output folder")


def test_compress_never_overwrites_input(run_cli, photo_png, tmp_path):
    original = photo_png.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(photo_png)
    for target in (photo_png, link):
        result = run_cli("compress", photo_png, "--output", target, "--force")
        assert_one_line_error(result, 4, "refusing to overwrite the input")
    assert photo_png.read_bytes() == original


def test_compare_writes_one_figure(run_cli, photo_png, tmp_path):
    figure = tmp_path / "figure.png"
    result = run_cli("compare", photo_png, "-k", "8", "-o", figure)
    assert result.status == 0, result
    assert Image.open(figure).size[0] > 800
    for title in ("K-Means", "Mini-Batch", "GMM"):
        assert title in result.out


def test_demo_writes_the_documented_files(run_cli, tmp_path):
    result = run_cli("demo", "-o", tmp_path / "demo")
    assert result.status == 0, result
    names = files_in(tmp_path / "demo")
    for method in ("kmeans", "minibatch", "gmm"):
        assert f"compressed_{method}_K16.png" in names
        assert Image.open(tmp_path / "demo" / f"compressed_{method}_K16.png").mode == "P"
    assert "comparison_K16.png" in names
    assert "K-Means" in result.out and "PSNR" in result.out
    # a second run replaces nothing without --force, as compress and compare
    (tmp_path / "demo" / "original.png").write_bytes(b"a file of the user's")
    again = run_cli("demo", "-o", tmp_path / "demo")
    assert_one_line_error(again, 4, "original.png: already exists", "--force replaces it")
    assert (tmp_path / "demo" / "original.png").read_bytes() == b"a file of the user's"
    assert run_cli("demo", "-o", tmp_path / "demo", "--force").status == 0
    assert (tmp_path / "demo" / "original.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_in_a_real_process_reports_errors_without_traceback(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    process = subprocess.run([sys.executable, "-m", "colorquant", "compress", str(bad)],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 3
    assert "Traceback" not in process.stderr
    assert process.stderr.count("\n") == 1 and str(bad) in process.stderr


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from colorquant.cli import main; main(['--help'])\n"
            "heavy = [m for m in ('sklearn', 'matplotlib', 'skimage', 'PIL', 'numpy') if m in sys.modules]\n"
            "print('heavy:' + ','.join(heavy))")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert process.returncode == 0
    assert process.stdout.strip().splitlines()[-1] == "heavy:"


def test_compare_zoom(run_cli, photo_png, tmp_path):
    figure = tmp_path / "zoom.png"
    result = run_cli("compare", photo_png, "--zoom", "--dither", "-o", figure)
    assert result.status == 0, result
    assert "dE2000" in result.out and "blurred PSNR" in result.out
    plain = tmp_path / "plain.png"
    assert run_cli("compare", photo_png, "-o", plain).status == 0
    assert Image.open(figure).size[1] > Image.open(plain).size[1]  # the extra row of crops


def test_a_bug_in_the_search_is_an_internal_error_not_a_warning(run_cli, photo_png, tmp_path, monkeypatch):
    import colorquant.api

    def broken_search(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(colorquant.api, "search_n_colors", broken_search)
    result = run_cli("curve", photo_png, "--target-psnr", "30", "-k", "16", "-o", tmp_path / "c.png")
    assert_one_line_error(result, 1, "internal error: RuntimeError: a bug", "please report it")
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("argv, fragment", [(["-s", "0"], "--speed must be in [1, 11]; got 0"),
                                            (["--speed", "12"], "got 12"), (["-s", "fast"], "must be an integer")])
def test_speed_bounds_are_usage_errors(run_cli, photo_png, argv, fragment):
    assert_one_line_error(run_cli("compress", photo_png, *argv), 2, fragment)


def test_every_speed_gives_a_palette_png_and_its_own_bytes(run_cli, photo_png, tmp_path):
    written = {}
    for speed in (1, 4, 11):
        result = run_cli("compress", photo_png, "-s", speed, "-k", "32", "--output", tmp_path / f"s{speed}.png")
        assert result.status == 0, result
        written[speed] = (tmp_path / f"s{speed}.png").read_bytes()
        assert Image.open(tmp_path / f"s{speed}.png").mode == "P"
    assert len(set(written.values())) == 3
    again = run_cli("compress", photo_png, "-s", "11", "-k", "32", "--output", tmp_path / "again.png")
    assert again.status == 0 and (tmp_path / "again.png").read_bytes() == written[11]


def test_metrics_option_names_its_choices(run_cli, photo_png):
    assert_one_line_error(run_cli("compress", photo_png, "--metrics", "sharpness"), 2,
                          "--metrics takes mse, psnr, ssim, ssimulacra2, ciede2000, blurred_psnr or all")


def test_exit_statuses_rank_write_then_read_then_target_then_skip():
    from colorquant.cli.status import ExitStatus, overall_status

    order = [ExitStatus.WRITE_ERROR, ExitStatus.READ_ERROR, ExitStatus.QUALITY_TOO_LOW,
             ExitStatus.SKIPPED_LARGER]
    assert [int(status) for status in order] == [4, 3, 99, 98]  # README, "Exit status"
    for index, status in enumerate(order):
        assert overall_status(order[index:]) == status
        assert overall_status(reversed(order[index:])) == status
    assert overall_status([ExitStatus.READ_ERROR, ExitStatus.WRITE_ERROR]) == ExitStatus.WRITE_ERROR
    assert overall_status([ExitStatus.OK, ExitStatus.SKIPPED_LARGER]) == ExitStatus.SKIPPED_LARGER
    assert overall_status([ExitStatus.ERROR, ExitStatus.WRITE_ERROR]) == ExitStatus.ERROR  # a bug above all
    assert overall_status([]) == ExitStatus.OK


def test_compress_with_a_read_failure_and_a_write_failure_exits_4(run_cli, photo_png, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_png.read_bytes()[:3000])
    (tmp_path / "coffee-kmeans-k200.png").mkdir()  # where coffee's output must go: cannot be written
    result = run_cli("compress", broken, photo_png)
    assert result.status == 4, result
    assert "broken.png" in result.err and "coffee-kmeans-k200.png" in result.err


def test_an_input_of_the_call_is_never_its_output_even_with_force(run_cli, photo_png, tmp_path):
    # compress a.png a-kmeans-k200.png --force: a.png's output is the other input's name
    first = tmp_path / "a.png"
    first.write_bytes(photo_png.read_bytes())
    second = tmp_path / "a-kmeans-k200.png"
    Image.fromarray(np.asarray(Image.open(photo_png))[::-1]).save(second)
    kept = second.read_bytes()
    result = run_cli("compress", first, second, "--force")
    assert result.status == 4, result
    assert "is an input of this run" in result.err
    assert second.read_bytes() == kept  # the user's photo is still there
    assert (tmp_path / "a-kmeans-k200-kmeans-k200.png").exists()  # the other input was done


def test_long_names_that_meet_once_shortened_are_refused_before_any_work(run_cli, photo_png, tmp_path):
    stems = ["p" * 249 + "1", "p" * 249 + "2"]  # 250 bytes: shortened to 235 in the output name
    for stem in stems:
        (tmp_path / f"{stem}.png").write_bytes(photo_png.read_bytes())
    before = files_in(tmp_path)
    for extra in ((), ("--force",), ("--target-psnr", "30")):
        result = run_cli("compress", *(tmp_path / f"{stem}.png" for stem in stems), *extra)
        assert_one_line_error(result, 4, "would both write")
        assert files_in(tmp_path) == before


def test_compress_takes_a_name_that_is_not_utf8(run_cli, tmp_path, coffee):
    import os

    odd = tmp_path / os.fsdecode(b"bad\xffname.bmp")
    Image.fromarray(coffee[:60, :60]).save(odd, "BMP")
    result = run_cli("compress", odd)
    assert result.status == 0, result
    assert (tmp_path / os.fsdecode(b"bad\xffname-kmeans-k200.png")).exists()


@pytest.mark.parametrize("stdout", ["full disk", "closed"])
def test_image_to_a_standard_output_that_cannot_take_it_is_exit_4(photo_png, stdout):
    import os

    command = [sys.executable, "-m", "colorquant", "compress", str(photo_png), "--output", "-"]
    if stdout == "full disk":
        with open("/dev/full", "wb") as full:
            result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    else:
        result = subprocess.run(command, stderr=subprocess.PIPE, text=True, timeout=120,
                                pass_fds=(), preexec_fn=lambda: os.close(1))
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colorquant: ") and "standard output" in lines[0], lines


def test_names_with_control_characters_are_shown_escaped(run_cli, tmp_path, coffee):
    odd = tmp_path / "evil\x1b[31mred.png"
    Image.fromarray(coffee[:40, :40]).save(odd)
    result = run_cli("compress", odd)
    assert result.status == 0, result
    assert "\x1b" not in result.out + result.err and "evil\\x1b[31mred" in result.out


def test_output_with_a_trailing_slash_is_a_folder(run_cli, photo_png, tmp_path):
    result = run_cli("compress", photo_png, "--output", f"{tmp_path / 'small'}/")
    assert result.status == 0, result
    assert (tmp_path / "small").is_dir()
    assert (tmp_path / "small" / "coffee-kmeans-k200.png").is_file()


def test_standard_input_is_read_up_to_a_bound(tmp_path):
    # compress - < /dev/zero: refused once past what any image within --max-pixels needs
    with open("/dev/zero", "rb") as endless:
        result = subprocess.run([sys.executable, "-m", "colorquant", "compress", "-", "--max-pixels", "1000",
                                 "--output", str(tmp_path / "x.png")], stdin=endless, capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "stdin: more than 67,108,864 bytes" in result.stderr
    assert not (tmp_path / "x.png").exists()
