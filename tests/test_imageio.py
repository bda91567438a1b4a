"""Reading every supported format and mode, encoding palette files, atomic writes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import colorquant as cq
from colorquant.errors import ImageReadError
from colorquant.imageio import read_image

from .conftest import flat_logo


def png_chunks(data: bytes) -> list[str]:
    names, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset : offset + 4])[0]
        names.append(data[offset + 4 : offset + 8].decode("ascii"))
        offset += 12 + length
    return names


@pytest.mark.parametrize("format_name", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_read_every_allowed_format(format_name, coffee):
    buffer = io.BytesIO()
    Image.fromarray(coffee).save(buffer, format_name)
    loaded = read_image(buffer.getvalue())
    assert loaded.pixels.shape == coffee.shape and loaded.pixels.dtype == np.uint8
    assert loaded.format == format_name


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "YCbCr"])
def test_read_modes_become_rgb(mode, coffee):
    image = Image.fromarray(coffee).convert(mode)
    loaded = read_image(image)
    assert loaded.pixels.shape == (*coffee.shape[:2], 3)
    assert np.array_equal(loaded.pixels, np.asarray(image.convert("RGB")))


@pytest.mark.parametrize("mode", ["LA", "RGBA", "PA"])
def test_read_modes_with_alpha_become_rgba(mode):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.arange(8)[None, :] * 32
    image = Image.fromarray(rgba).convert(mode)
    loaded = read_image(image)
    assert loaded.pixels.shape[2] == 4
    assert np.array_equal(loaded.pixels[..., 3], np.asarray(image.convert("RGBA"))[..., 3])


def test_read_palette_with_transparency_keeps_it(tmp_path):
    image = Image.fromarray(flat_logo(4)).convert("P")
    image.info["transparency"] = 0
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    loaded = read_image(path)
    assert loaded.pixels.shape[2] == 4
    assert set(np.unique(loaded.pixels[..., 3])) == {0, 255}


def test_read_16_bit_keeps_brightness(tmp_path):
    ramp = (np.linspace(0, 65535, 256).astype(np.uint16)[None, :]).repeat(4, axis=0)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    loaded = read_image(path)
    # a 16-bit ramp keeps its brightness when scaled to 8 bits, instead of clipping to white
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(loaded.pixels[..., 0], expected)
    assert loaded.pixels.mean() == pytest.approx(127.5, abs=1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_applies_exif_orientation(orientation, tmp_path):
    # A non-square image with a marked corner; after transposition the mark is top-left.
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:5, :5] = 255
    upright = Image.fromarray(pixels)
    # Store the image as a camera would: the inverse transform, plus the EXIF tag to undo it.
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_270}[orientation]
    stored = upright if inverse is None else upright.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    stored.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    loaded = read_image(path)
    assert loaded.pixels.shape == (20, 40, 3)
    assert loaded.pixels[:5, :5].mean() > 200 and loaded.pixels[-5:, -5:].mean() < 50


def test_read_cmyk_jpeg(tmp_path, coffee):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(coffee).convert("CMYK").save(path, "JPEG", quality=95)
    loaded = read_image(path)
    assert loaded.pixels.shape == coffee.shape
    assert np.abs(loaded.pixels.astype(int) - coffee).mean() < 12


def test_read_refuses_too_many_pixels_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000)).save(path)
    with pytest.raises(ImageReadError, match="over the limit of 1,000,000"):
        read_image(path, max_pixels=1_000_000)


def test_png_output_is_palette_at_smallest_bit_depth():
    # oxipng keeps whichever depth gives the smaller file; on a 16x32 image 8 bits can beat
    # 4 by a byte, so the images here are big enough for the depth to matter.
    for n_colors, bits in ((2, 1), (4, 2), (16, 4), (17, 8), (200, 8)):
        pixels = flat_logo(n_colors, size=(64, 400))
        data = cq.quantize(pixels, n_colors=max(n_colors, 2)).encode()
        assert data[25] == 3, "colour type 3 (palette)"
        assert data[24] == bits, (n_colors, data[24])


def test_png_output_has_no_metadata(tmp_path, coffee):
    path = tmp_path / "meta.png"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret " * 100)
    Image.fromarray(coffee).save(path, pnginfo=info)
    data = cq.quantize(path, n_colors=8).encode()
    assert set(png_chunks(data)) <= {"IHDR", "PLTE", "tRNS", "IDAT", "IEND"}
    assert b"secret" not in data


def test_png_transparency_chunk_is_short(astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:50, :, 3] = 0
    data = cq.quantize(rgba, n_colors=16).encode()
    assert "tRNS" in png_chunks(data)
    # translucent entries are stored first, so tRNS does not list every entry (oxipng may
    # reorder the palette for size, which can cost one byte here)
    offset = data.index(b"tRNS")
    assert struct.unpack(">I", data[offset - 4 : offset])[0] <= 2


def test_read_refuses_crc_damage(tmp_path, coffee):
    buffer = io.BytesIO()
    Image.fromarray(coffee[:32, :32]).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[29] ^= 0xFF  # inside IHDR's CRC-protected data
    with pytest.raises(ImageReadError):
        read_image(bytes(data))


def test_read_refuses_corrupt_image_data(coffee):
    buffer = io.BytesIO()
    Image.fromarray(coffee).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 4
    data[start + 100 : start + 400] = zlib.compress(b"garbage")[:300].ljust(300, b"\0")
    with pytest.raises(ImageReadError):
        read_image(bytes(data))


def _keyed_png(bit_depth: int, color_type: int, *, orientation: int | None = None) -> tuple[bytes, np.ndarray]:
    """A 6x4 greyscale (type 0) or truecolour (type 2) PNG with a tRNS colour key, and the
    mask of the pixels the key makes transparent."""
    from .conftest import png_chunk

    height, width = 4, 6
    top = (1 << bit_depth) - 1
    y, x = np.mgrid[0:height, 0:width]
    if color_type == 0:
        samples = (x + y) % (top + 1)
        key, mask = struct.pack(">H", 1), samples == 1
        if bit_depth < 8:
            rows = [np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth:].ravel()).tobytes()
                    for row in samples]
        else:
            rows = [row.astype(">u2" if bit_depth == 16 else np.uint8).tobytes() for row in samples]
    else:
        samples = np.stack([x * 40, y * 60, (x + y) * 20], axis=2) * (257 if bit_depth == 16 else 1)
        key_colour = samples[1, 2]
        key = struct.pack(">HHH", *key_colour)
        mask = (samples == key_colour).all(axis=2)
        rows = [row.astype(">u2" if bit_depth == 16 else np.uint8).tobytes() for row in samples]
    chunks = [png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)),
              png_chunk(b"tRNS", key)]
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        chunks.append(png_chunk(b"eXIf", exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()))
    chunks.append(png_chunk(b"IDAT", zlib.compress(b"".join(b"\0" + row for row in rows))))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + png_chunk(b"IEND", b""), mask


@pytest.mark.parametrize("bit_depth, color_type", [(1, 0), (2, 0), (4, 0), (8, 0), (16, 0), (8, 2), (16, 2)])
def test_a_png_colour_key_makes_its_pixels_transparent_at_every_depth(bit_depth, color_type):
    data, mask = _keyed_png(bit_depth, color_type)
    pixels = read_image(data).pixels
    assert pixels.shape[2] == 4
    assert np.array_equal(pixels[:, :, 3] == 0, mask) and (pixels[:, :, 3][~mask] == 255).all()
    result = cq.quantize(data, n_colors=4)
    assert np.array_equal(result.to_array()[:, :, 3] == 0, mask)  # kept through to the output


def test_a_colour_key_follows_the_exif_orientation():
    data, mask = _keyed_png(16, 0, orientation=6)
    pixels = read_image(data).pixels
    assert pixels.shape[:2] == (6, 4)
    assert np.array_equal(pixels[:, :, 3] == 0, np.rot90(mask, -1))


@pytest.mark.parametrize("n_colors", [2, 3, 4, 9, 16, 17, 256])
@pytest.mark.parametrize("bit_depths", ["packed", "byte"])
def test_png_header_declares_the_depth_its_rows_are_packed_at(n_colors, bit_depths):
    # Each depth asked for (images under 64k pixels get both tried and the smaller kept, so
    # this one is larger), at a width that leaves a partly filled last byte; Pillow must read
    # back exactly the labels written.
    from colorquant.encoding import _TRY_BOTH_DEPTHS_BELOW, encode_png

    rng = np.random.default_rng(n_colors)
    labels = rng.integers(0, n_colors, size=(256, 263)).astype(np.uint8)
    assert labels.size >= _TRY_BOTH_DEPTHS_BELOW
    palette = rng.integers(0, 256, size=(n_colors, 3)).astype(np.uint8)
    data = encode_png(labels, palette, bit_depths=bit_depths, palette_orders="given")
    expected_bits = 8 if bit_depths == "byte" else next(d for d in (1, 2, 4, 8) if n_colors <= 1 << d)
    assert data[24] == expected_bits and data[25] == 3
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P"
        assert np.array_equal(np.asarray(image), labels)
        assert np.array_equal(np.asarray(image.convert("RGB")), palette[labels])


@pytest.mark.parametrize("orders", ["popularity", "both"])
def test_png_entries_are_written_in_order_of_use_with_the_translucent_first(orders):
    from colorquant.encoding import encode_png

    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, size=(40, 4)).astype(np.uint8)
    palette[:, 3] = 255
    palette[[7, 30], 3] = [0, 128]  # two translucent entries, not at the front
    labels = np.minimum(rng.geometric(0.08, size=(300, 260)) - 1, 39).astype(np.uint8)
    labels = (labels * 13 % 40).astype(np.uint8)  # the most used entries scattered over the palette
    data = encode_png(labels, palette, palette_orders=orders)
    with Image.open(io.BytesIO(data)) as image:
        written = np.asarray(image)
        assert np.array_equal(np.asarray(image.convert("RGBA")), palette[labels])  # the same pixels
        alpha = np.frombuffer(image.info["transparency"], dtype=np.uint8)
    assert sorted(alpha.tolist()) == [0, 128]  # tRNS holds exactly the translucent entries
    counts = np.bincount(written.ravel(), minlength=40)[2:]
    if orders == "popularity":
        assert (np.diff(counts) <= 0).all()  # the opaque entries, most used first


def test_a_palette_png_whose_last_alpha_is_10_keeps_it():
    # Pillow matches tRNS against ^\xff*\x00\xff*$, and $ matches before a final b"\n" (10):
    # it read alphas [0, 10] as "entry 0 transparent, entry 1 opaque"
    from colorquant.encoding import encode_png
    from colorquant.imageio import read_image

    data = encode_png(np.array([[0, 1, 1]], np.uint8), np.array([[0, 0, 0, 0], [16, 92, 225, 10]], np.uint8),
                      palette_orders="given")
    assert read_image(data).pixels.tolist() == [[[0, 0, 0, 0], [16, 92, 225, 10], [16, 92, 225, 10]]]
