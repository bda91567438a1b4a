"""One image in, one encoded output and its figures out: the unit of work of ``compress``,
``batch`` and the web app.

:func:`compress_image` quantizes, encodes and measures (the one place where that happens);
:func:`compress_file` adds reading a file and writing its output atomically, and returns an
:class:`~colorquant.outcome.Outcome` instead of raising for a problem with the file: the
front ends map its error to their own exit or HTTP status in one place each. A bug (any
exception that is not a :class:`ColorquantError`) is not caught here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import ColorquantError, OutputNotSmallerError, QualityTooLowError
from .encoding import suffix_for
from .imageio import read_image
from .memory import return_free_memory
from .storage import check_destination, write_atomic
from .outcome import DONE, FAILED, SKIPPED, Outcome
from .settings import Settings

__all__ = ["compress_image", "compress_file", "compress_to_bytes", "default_output_name", "output_name", "outcome_of",
           "Compressed"]


class Compressed:
    """A quantized image, its encoding in the settings' format, and that encoding's figures."""

    def __init__(self, result, encoded: bytes, figures):
        self.result, self.encoded, self.figures = result, encoded, figures


def compress_image(loaded, settings: Settings) -> Compressed:
    """Quantize an image already read, encode it and measure the encoding."""
    from .api import quantize_loaded

    result = quantize_loaded(loaded, settings)
    return_free_memory()  # the fit's buffers, before the encoder allocates its own
    format_name = result.settings.format  # an animation's own kind, where it is kept
    encoded = result.encode(format_name)
    return Compressed(result, encoded, result.measure(encoded, format_name))


def outcome_of(name: str, compressed: Compressed, *, output: str | None, seconds: float) -> Outcome:
    """The record of a done image."""
    result, figures = compressed.result, compressed.figures
    return Outcome(
        input=name, status=DONE, output=output, method=result.method, colors=figures.n_colors,
        metrics=dict(figures.values), bytes_in=result.bytes_in, bytes_out=figures.bytes,
        bpp=figures.bpp, seconds=seconds, warnings=tuple(result.warnings), search=result.search,
        dither=result.dither, max_bytes=result.byte_budget, color_space=result.color_space,
        frames=None if figures.frames is None else figures.frames["count"],
        frame_metrics={} if figures.frames is None else {key: dict(figures.frames[key]) for key in ("mean", "worst")},
    )


# Most file systems cap a name at 255 bytes.
_MAX_NAME_BYTES = 255


def default_output_name(input_name: str, method: str, n_colors: int, format_name: str) -> str:
    """``<stem>-<method>-k<colours>.<ext>`` for an input file's name."""
    return output_name(Path(input_name).stem, method, n_colors, format_name)


def output_name(stem: str, method: str, n_colors: int, format_name: str) -> str:
    """``<stem>-<method>-k<colours>.<ext>``, the stem shortened if the name would not fit."""
    ending = f"-{method}-k{n_colors}{suffix_for(format_name)}"
    return fit_stem(stem, _MAX_NAME_BYTES - len(ending.encode())) + ending


def stem_room(method: str, format_name: str) -> int:
    """Bytes of stem that an output name keeps whatever its colour count (up to 256)."""
    return _MAX_NAME_BYTES - len(f"-{method}-k256{suffix_for(format_name)}".encode())


def fit_stem(stem: str, room: int) -> str:
    """``stem`` shortened to at most ``room`` bytes of UTF-8, on a character boundary; a
    name that is not UTF-8 (its bytes kept as surrogates) is measured the way the file
    system stores it."""
    encoded = os.fsencode(stem)
    if len(encoded) <= room:
        return stem
    return os.fsdecode(encoded[:room].decode("utf-8", errors="ignore").encode())


def compress_file(
    input_path, settings: Settings, *, output_path=None, output_dir=None, overwrite: bool = False,
    protect_ids=frozenset(),
) -> Outcome:
    """Quantize ``input_path`` and write it to ``output_path`` (or the default name in
    ``output_dir``, or next to the input); an existing output is replaced only with
    ``overwrite``, the input never, nor any file of ``protect_ids`` (the run's other inputs:
    :func:`~colorquant.storage.file_identities`)."""
    started = time.perf_counter()
    input_path = Path(input_path)
    name = str(input_path)
    output = None
    try:
        loaded = read_image(input_path, max_pixels=settings.max_pixels, max_frames=settings.max_frames)
        folder = Path(output_dir) if output_dir is not None else input_path.parent
        format_name = settings.format_for(loaded.animation)
        if output_path is None and not settings.searches_colors:
            output_path = folder / default_output_name(
                input_path.name, settings.method, settings.n_colors, format_name)
        if output_path is not None:
            # Refuse before the work, not after it; write_atomic checks again without a race.
            output = str(output_path)
            check_destination(output_path, overwrite=overwrite, protect=(input_path,), protect_ids=protect_ids)
        compressed = compress_image(loaded, settings)
        if output_path is None:  # named after the colour count the search found
            output_path = folder / default_output_name(
                input_path.name, settings.method, compressed.result.n_colors_requested,
                format_name)
        output = str(output_path)
        if settings.skip_if_larger and len(compressed.encoded) >= loaded.n_bytes:
            return _not_smaller(name, loaded, compressed, started)
        write_atomic(compressed.encoded, output_path, overwrite=overwrite, protect=(input_path,),
                     protect_ids=protect_ids)
    except QualityTooLowError as error:
        return Outcome.from_error(name, SKIPPED, error, method=settings.method,
                                  seconds=time.perf_counter() - started)
    except ColorquantError as error:
        return Outcome.from_error(name, FAILED, error, method=settings.method,
                                  seconds=time.perf_counter() - started)
    return outcome_of(name, compressed, output=output, seconds=time.perf_counter() - started)


def compress_to_bytes(source, settings: Settings, *, name: str | None = None) -> tuple[Outcome, Compressed | None]:
    """Quantize ``source`` (a path or an encoded image's bytes) and return its outcome and
    the compressed image (``.encoded`` holds the output's bytes), without writing anything:
    for outputs that are not files, such as a pipe. None when the image failed or was
    skipped."""
    started = time.perf_counter()
    name = name or str(source)
    try:
        loaded = read_image(source, max_pixels=settings.max_pixels, name=name, max_frames=settings.max_frames)
        compressed = compress_image(loaded, settings)
        if settings.skip_if_larger and len(compressed.encoded) >= loaded.n_bytes:
            return _not_smaller(name, loaded, compressed, started), None
    except QualityTooLowError as error:
        return Outcome.from_error(name, SKIPPED, error, method=settings.method,
                                  seconds=time.perf_counter() - started), None
    except ColorquantError as error:
        return Outcome.from_error(name, FAILED, error, method=settings.method,
                                  seconds=time.perf_counter() - started), None
    return outcome_of(name, compressed, output=None, seconds=time.perf_counter() - started), compressed


def _not_smaller(name: str, loaded, compressed: Compressed, started: float) -> Outcome:
    """The outcome of an output that ``skip_if_larger`` does not write."""
    error = OutputNotSmallerError(
        f"{name}: output would be {len(compressed.encoded):,} bytes, not smaller "
        f"than the input's {loaded.n_bytes:,}; nothing written",
        bytes_in=loaded.n_bytes, bytes_out=len(compressed.encoded))
    measured = outcome_of(name, compressed, output=None, seconds=time.perf_counter() - started)
    failed = Outcome.from_error(name, SKIPPED, error)
    return measured.with_changes(status=SKIPPED, error=failed.error, exception=error,
                                 error_kind=failed.error_kind, remedy=failed.remedy)
