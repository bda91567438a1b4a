"""Fuzz target (atheris): the loader and the whole compress path on arbitrary bytes.

Any exception other than colorquant's own errors is a failure.

    python fuzz/fuzz_compress.py -atheris_runs=20000          # a longer run by hand
    python fuzz/fuzz_compress.py -max_total_time=600 corpus/  # ten minutes, keeping a corpus

The seed inputs are small valid images of every allowed format, made here, so the mutations
start from real headers and chunk structures.
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np
    from PIL import Image

    import colorquant as cq
    from colorquant.errors import ColorquantError
    from colorquant.imageio import read_image

# Small enough that a mutated header cannot make a single input take long or use much memory.
MAX_PIXELS = 64 * 64


def seed_inputs() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    seeds = []
    for format_name in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format_name)
        seeds.append(buffer.getvalue())
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([pixels, pixels[..., :1]])).save(buffer, "PNG")
    seeds.append(buffer.getvalue())
    return seeds


def test_one_input(data: bytes) -> None:
    try:
        loaded = read_image(data, max_pixels=MAX_PIXELS)
        result = cq.quantize(loaded, n_colors=4, method="kmeans")
        result.encode("png")
    except ColorquantError:
        pass  # refusing a bad file with our own error is the expected outcome


def main(argv: list[str]) -> None:
    seeds = seed_inputs()
    for seed in seeds:  # every seed must pass before fuzzing starts
        test_one_input(seed)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        # No corpus folder given: start from the seeds in a temporary one.
        import tempfile

        corpus = tempfile.mkdtemp(prefix="colorquant-fuzz-")
        for index, seed in enumerate(seeds):
            with open(f"{corpus}/seed-{index}", "wb") as handle:
                handle.write(seed)
        argv = [*argv, corpus]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
