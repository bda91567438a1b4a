"""Shared fixtures: real photographs from scikit-image, tiny synthetic images, a CLI runner."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorquant.cli import main

# The methods colorquant ships (a test may register more).
METHODS = ("kmeans", "minibatch", "gmm")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()


def flat_logo(n_colors: int = 3, size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """A flat graphic: vertical bands of ``n_colors`` distinct colours."""
    rng = np.random.default_rng(seed)
    colours = rng.choice(256, size=(n_colors * 4, 3)).astype(np.uint8)
    colours = np.unique(colours, axis=0)[:n_colors]
    assert len(colours) == n_colors
    height, width = size
    bands = (np.arange(width) * n_colors // width)[None, :].repeat(height, axis=0)
    return colours[bands]


def save_image(path: Path, pixels_or_image, format_name: str = "PNG", **options) -> Path:
    image = pixels_or_image if isinstance(pixels_or_image, Image.Image) else Image.fromarray(pixels_or_image)
    image.save(path, format_name, **options)
    return path


def encoded(pixels: np.ndarray, format_name: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format_name, **options)
    return buffer.getvalue()


@pytest.fixture
def photo_png(tmp_path, coffee) -> Path:
    """A real photograph (scikit-image 'coffee', 400x600) as a truecolour PNG."""
    return save_image(tmp_path / "coffee.png", coffee)


@pytest.fixture
def photo_jpeg(tmp_path, astronaut) -> Path:
    return save_image(tmp_path / "astronaut.jpg", astronaut, "JPEG", quality=90)


class CliResult:
    def __init__(self, status: int, out: str, err: str):
        self.status, self.out, self.err = status, out, err

    def __repr__(self):
        return f"CliResult(status={self.status}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run_cli(capsys):
    """Run the real CLI in-process; returns status, stdout and stderr together."""

    def run(*argv) -> CliResult:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(int(status), captured.out, captured.err)

    return run


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def fourth_method():
    """A fourth method (Pillow's median cut, defined in test_methods.py) registered for one
    test: every front end must offer it with no other file touched."""
    from colorquant.methods import METHODS, register_method

    from .test_methods import FOURTH

    register_method(FOURTH)
    yield FOURTH
    del METHODS[FOURTH.name]


def assert_one_line_error(result, status, *fragments):
    """The CLI's promise for a user's mistake: the status, one 'colorquant:' line on stderr
    naming what went wrong, no traceback."""
    assert result.status == status, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("colorquant: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def png_claiming(width: int, height: int, idat_bytes: int = 300_000) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with a few hundred kB of
    compressed zero rows: a decompression bomb if anything decoded it."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    data = b""
    while len(data) < idat_bytes:
        data += compressor.compress(row * 64)
    data += compressor.flush(zlib.Z_SYNC_FLUSH)
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
