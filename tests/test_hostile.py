"""Hostile and odd files: every one gets one clear line, the documented exit status, no
traceback and no output file; memory stays bounded where it matters."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_one_line_error, files_in, png_chunk, png_claiming

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


def encode(pixels, format_name, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format_name, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.coffee()[::2, ::2].copy()  # 200x300 keeps the corpus quick


def check_refused(run_cli, path: Path, *fragments, status=3):
    before = files_in(path.parent)
    result = run_cli("compress", path)
    assert_one_line_error(result, status, str(path), *fragments)
    assert files_in(path.parent) == before, "no output, no temporary file"
    return result


@pytest.mark.parametrize("format_name", FORMATS)
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_files_are_refused(run_cli, tmp_path, photo, format_name, fraction):
    data = encode(photo, format_name)
    path = tmp_path / f"cut.{format_name.lower()}"
    path.write_bytes(data[: int(len(data) * fraction)])
    check_refused(run_cli, path)


@pytest.mark.parametrize("seed", range(12))
def test_bit_flipped_png_is_refused(run_cli, tmp_path, photo, seed):
    data = bytearray(encode(photo, "PNG"))
    rng = np.random.default_rng(seed)
    position = int(rng.integers(8, len(data)))  # anywhere after the signature
    data[position] ^= 1 << int(rng.integers(0, 8))
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    check_refused(run_cli, path)


def test_png_without_image_data_is_refused(run_cli, tmp_path, photo):
    data = encode(photo, "PNG")
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    path = tmp_path / "no-idat.png"
    path.write_bytes(data[:start] + data[start + 12 + length :])
    check_refused(run_cli, path)


def test_pixel_bomb_is_refused_from_header_with_small_memory(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(50_000, 50_000))
    assert path.stat().st_size < 400_000
    code = (
        "import sys\n"
        "from colorquant.cli import main\n"
        f"status = main(['compress', {str(path)!r}])\n"
        # VmHWM is this process's own peak; ru_maxrss would include the forked parent's
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('peak_kib', hwm)\n"
        "sys.exit(status)\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 3
    assert "over the limit of 100,000,000" in process.stderr
    assert "2,500,000,000 pixels" in process.stderr  # the size claimed by the header
    assert "200,000,000" not in process.stderr  # Pillow's own limit is not ours to quote
    assert "Traceback" not in process.stderr
    peak_mib = int(process.stdout.split("peak_kib")[1]) / 1024
    assert peak_mib < 250, f"peak memory {peak_mib:.0f} MiB on a refused bomb"
    assert files_in(tmp_path) == {"bomb.png"}


def test_pillow_bomb_warning_is_an_error(run_cli, tmp_path):
    # 12,000 x 10,000 = 120 MP is within Pillow's error threshold but over our limit of 100 MP.
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(12_000, 10_000, idat_bytes=50_000))
    check_refused(run_cli, path, "over the limit of 100,000,000")


def test_text_chunk_bomb_is_refused(run_cli, tmp_path, photo):
    data = encode(photo, "PNG")
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 50_000_000, 9))
    path = tmp_path / "text-bomb.png"
    path.write_bytes(data[:33] + bomb + data[33:])
    check_refused(run_cli, path, "Decompressed data too large")


@pytest.mark.parametrize("content, name", [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "eps.png"),
    (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", "doc.jpg"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>", "vector.png"),
    (b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + b"\0" * 64, "icon.gif"),
])
def test_formats_outside_the_allow_list_are_refused_by_content(run_cli, tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    check_refused(run_cli, path, "not a supported image")


def test_gif_zip_polyglot_reads_image_and_drops_trailing_bytes(run_cli, tmp_path, photo):
    trailing = b"PK\x03\x04" + b"secret-archive-member" * 50
    path = tmp_path / "polyglot.gif"
    path.write_bytes(encode(photo, "GIF") + trailing)
    result = run_cli("compress", path, "-k", "8", "--json")
    assert result.status == 0, result
    output = Path(json.loads(result.out)["output"]).read_bytes()
    assert b"secret-archive-member" not in output and output.endswith(b"IEND\xaeB`\x82")


@pytest.mark.parametrize("format_name", ["GIF", "PNG", "WEBP"])
def test_reading_only_the_first_frame_says_so(tmp_path, format_name):
    # what the figures of compare and curve take of an animation (compress keeps every frame)
    from colorquant.imageio import read_image

    frames = [Image.new("RGB", (40, 30), color) for color in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    path = tmp_path / f"anim.{format_name.lower()}"
    options = {"lossless": True} if format_name == "WEBP" else {}
    frames[0].save(path, format_name, save_all=True, append_images=frames[1:], duration=100, **options)
    loaded = read_image(path, frames="first")
    assert loaded.animation is None
    assert any("animated image with 3 frames; using the first" in note for note in loaded.warnings)
    assert np.all(loaded.pixels == (250, 0, 0))


def test_animation_frames_count_toward_pixel_limit(run_cli, tmp_path):
    frames = [Image.new("RGB", (100, 100), (i * 20, 0, 0)) for i in range(10)]
    path = tmp_path / "long.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    before = files_in(tmp_path)
    result = run_cli("compress", path, "--max-pixels", "50000")
    assert_one_line_error(result, 3, "over the limit of 50,000")
    assert files_in(tmp_path) == before


def test_16_bit_tiff_keeps_brightness(run_cli, tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    path = tmp_path / "ramp16.tif"
    Image.fromarray(ramp).save(path)
    result = run_cli("compress", path, "-k", "256", "--json")
    assert result.status == 0, result
    output = np.asarray(Image.open(json.loads(result.out)["output"]).convert("L")).astype(float)
    assert abs(output.mean() - 127.5) < 2  # not clipped to white
    record = json.loads(result.out)
    assert record["mse"] == 0 and record["psnr"] is None  # 256 grey levels fit: lossless


def test_broken_icc_profile_is_ignored_with_a_warning(run_cli, tmp_path, photo):
    path = tmp_path / "icc.jpg"
    Image.fromarray(photo).save(path, "JPEG", icc_profile=b"not really an ICC profile" * 4)
    result = run_cli("compress", path, "--json")
    assert result.status == 0, result
    assert "ignored unusable ICC profile" in result.err


def test_icc_profile_goes_through_colour_management(tmp_path, photo):
    from PIL import ImageCms

    from colorquant.imageio import read_image

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    path = tmp_path / "srgb.png"
    Image.fromarray(photo).save(path, icc_profile=srgb.tobytes())
    loaded = read_image(path)
    # converted by LittleCMS from the embedded profile to sRGB: no warning, and for an sRGB
    # profile the pixels stay within rounding of the original
    assert loaded.warnings == ()
    assert np.abs(loaded.pixels.astype(int) - photo).max() <= 2


@pytest.mark.parametrize("mode", ["1", "LA", "P"])  # PA: no file format stores it; see test_imageio
def test_odd_modes_keep_transparency(run_cli, tmp_path, mode):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:16, :, 3] = 255  # top half opaque white, bottom half fully transparent
    image = Image.fromarray(rgba)
    if mode == "1":  # white top half, black bottom half; black is the transparent value
        image = Image.fromarray(rgba[..., 3] > 0).convert("1")
    elif mode != "P":
        image = image.convert(mode)
    path = tmp_path / f"odd-{mode}.png"
    if mode == "P":
        image = Image.fromarray(rgba).quantize(2)
        transparent = int(np.asarray(image)[20, 0])
        image.save(path, transparency=transparent)
    elif mode == "1":
        image.save(path, transparency=0)
    else:
        image.save(path)
    result = run_cli("compress", path, "--json")
    assert result.status == 0, result
    output = np.asarray(Image.open(json.loads(result.out)["output"]).convert("RGBA"))
    assert np.all(output[16:, :, 3] == 0) and np.all(output[:16, :, 3] == 255)
    assert np.all(output[:16, :, :3] == 255)


@pytest.mark.parametrize("name", ["-leading-dash.png", "ünïcødé 写真.png", "x" * 200 + ".png"])
def test_odd_file_names(run_cli, tmp_path, photo, name):
    path = tmp_path / name
    Image.fromarray(photo).save(path, "PNG")
    result = run_cli("compress", "-o", tmp_path / "out", "--json", "--", path)
    assert result.status == 0, result
    output = Path(json.loads(result.out)["output"])
    assert output.parent == tmp_path / "out" and output.exists()
    assert len(output.name.encode()) <= 255


def test_very_long_name_is_shortened_to_fit_the_file_system(run_cli, tmp_path, photo):
    name = "é" * 125 + ".png"  # 250 bytes: with "-kmeans-k200.png" it would pass 255
    path = tmp_path / name
    Image.fromarray(photo).save(path, "PNG")
    result = run_cli("compress", path, "--json")
    assert result.status == 0, result
    output = Path(json.loads(result.out)["output"])
    assert output.name.endswith("-kmeans-k200.png") and len(output.name.encode()) <= 255


def test_write_failure_in_read_only_file_system_leaves_nothing(run_cli, photo_png):
    # /proc refuses new files even for root: a real write failure, not a simulated one.
    result = run_cli("compress", photo_png, "--output", "/proc/colorquant-test.png")
    assert_one_line_error(result, 4, "/proc/colorquant-test.png")
    assert not Path("/proc/colorquant-test.png").exists()


def test_write_failure_keeps_older_output_and_no_temporary(run_cli, photo_png, tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    assert run_cli("compress", photo_png, "--output", target).status == 0
    old = target.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("colorquant.storage.os.fsync", full_disk)
    result = run_cli("compress", photo_png, "--output", target, "--force", "-k", "4")
    assert_one_line_error(result, 4, "No space left on device")
    assert target.read_bytes() == old
    assert files_in(tmp_path) == {"coffee.png", "out.png"}


def short_image_data_png(width: int = 768, height: int = 512, rows: int = 100) -> bytes:
    """A PNG whose one IDAT is a complete zlib stream of only ``rows`` of its rows: every
    chunk and CRC is right, the image data just ends early."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data = zlib.compress(b"".join(b"\0" + bytes([90, 140, 200]) * width for _ in range(rows)))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def test_png_whose_image_data_ends_early_is_refused(run_cli, tmp_path):
    path = tmp_path / "short.png"
    path.write_bytes(short_image_data_png())
    check_refused(run_cli, path, "corrupt or truncated image", "too short")
    from fastapi.testclient import TestClient

    from colorquant.web import create_app

    with TestClient(create_app()) as client:
        response = client.post("/api/compress", files={"file": ("short.png", path.read_bytes())})
    assert response.status_code == 415 and "truncated" in response.json()["error"]


def test_a_huge_file_that_is_no_image_is_refused_from_its_first_bytes(tmp_path):
    # a sparse 1 GB file: refused after reading 64 bytes, not 1 GB (peak memory of a fresh
    # process that runs the command)
    import subprocess
    import sys

    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as handle:
        handle.write(b"not an image at all")
        handle.truncate(1 << 30)
    # VmHWM, not ru_maxrss: Linux carries the forking process's memory into the latter
    script = ("import re, sys; from colorquant.cli import main; status = main(['compress', sys.argv[1]]); "
              "print(status, int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024)")
    result = subprocess.run([sys.executable, "-c", script, str(sparse)], capture_output=True, text=True, timeout=120)
    status, peak_mib = map(int, result.stdout.split())
    assert status == 3 and "not a supported image" in result.stderr, result.stderr
    assert peak_mib < 400, f"peak memory {peak_mib} MiB"
