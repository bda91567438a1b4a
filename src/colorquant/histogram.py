"""Distinct colours and how many pixels carry each: what every method fits on.

A 768x512 photograph has about 400,000 pixels but often fewer distinct colours, and a flat
graphic has a handful. Fitting on the weighted distinct colours makes the cost follow the
palette's difficulty rather than the megapixels, and remapping the distinct colours (then
indexing by ``inverse``) is exact and cheaper than remapping every pixel.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
import numpy as np

__all__ = ["ColorHistogram", "color_histogram", "weighted_sample", "pixel_sample", "pack_codes",
           "unpack_codes"]


@dataclass(frozen=True, eq=False)
class ColorHistogram:
    """The distinct colours of an image.

    Attributes
    ----------
    colors : ndarray of shape (n_distinct, n_channels), uint8
        Each distinct colour once, in ascending order of its packed code.
    counts : ndarray of shape (n_distinct,), int64
        How many pixels carry each colour.
    inverse : ndarray of shape (n_pixels,), int32
        Index into ``colors`` of every pixel, in raster order; ``features[inverse[i::n]]``
        streams every n-th pixel without a copy of the image.
    color_space : the space the methods cluster in (see ``colorspace``)
    features : ndarray of shape (n_distinct, n_features), float32 (exact for sRGB levels; half
        the memory of float64, which the fits do not need)
        The colours in that space, computed when first used and then kept.
    """

    colors: np.ndarray
    counts: np.ndarray
    inverse: np.ndarray
    color_space: str = "rgb"

    @property
    def n_distinct(self) -> int:
        return len(self.colors)

    @cached_property
    def features(self) -> np.ndarray:
        # Not made with the histogram: a fit on a sample of a photo's colours (see
        # kmeans) needs only the sample's features while its buffers are alive, and the full
        # table (24 bytes a colour in "mixed") only afterwards, for the final Lloyd step and
        # the remap. Made up front, it was on top of the fit's peak memory.
        from .memory import return_free_memory

        return_free_memory()  # what the sampled fit freed, before the biggest table
        return self.features_of(slice(None))

    def features_of(self, indices) -> np.ndarray:
        """Features of the colours at ``indices`` (an index array or slice)."""
        from .colorspace import to_features

        return to_features(self.colors[indices], self.color_space, dtype=np.float32)

    @property
    def n_channels(self) -> int:
        return self.colors.shape[1]


def pack_codes(pixels: np.ndarray) -> np.ndarray:
    """:func:`_pack` of any number of pixels, a chunk at a time (bounded temporaries)."""
    codes = np.empty(len(pixels), dtype=np.uint32)
    for start in range(0, len(pixels), _PACK_CHUNK):
        codes[start : start + _PACK_CHUNK] = _pack(pixels[start : start + _PACK_CHUNK])
    return codes


def unpack_codes(codes: np.ndarray, n_channels: int) -> np.ndarray:
    return _unpack(codes, n_channels)


def _pack(pixels: np.ndarray) -> np.ndarray:
    """One uint32 code per pixel, so that distinct colours are distinct integers."""
    packed = np.zeros(len(pixels), dtype=np.uint32)
    for channel in range(pixels.shape[1]):
        packed <<= 8
        packed |= pixels[:, channel]
    return packed


def _unpack(codes: np.ndarray, n_channels: int) -> np.ndarray:
    colors = np.empty((len(codes), n_channels), dtype=np.uint8)
    for channel in range(n_channels):
        shift = 8 * (n_channels - 1 - channel)
        colors[:, channel] = (codes >> shift) & 0xFF
    return colors


# Pixels packed per step: the uint32 codes of a chunk stay in cache (1 MiB).
_PACK_CHUNK = 1 << 18
# From this many pixels on, RGB pixels find their colour's index in a table of all 2^24 codes
# (64 MiB, of which only the pages of codes that occur are touched) rather than by a binary
# search: 0.02 s against 0.26 s for 4 MP. Below it the search is cheap enough (20 ms more on
# a 768x512 photo) and spares the memory: a photo's colours touch most of the table's pages,
# which doubled the peak memory of compressing one.
_LOOKUP_TABLE_MIN_PIXELS = 1 << 21


def _distinct_codes(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True, return_counts=True)`` of the pixels' packed codes,
    with an int32 inverse.

    ``np.unique`` finds the inverse with an argsort, which took 3.7 s for a 24 MP photo. For
    big RGB images the codes are sorted in place (numpy's SIMD sort: 0.1 s for 24 MP), the
    runs give the distinct codes and their counts, and each pixel's index comes from a lookup
    table over all 2^24 RGB codes: 0.6 s for a 24 MP histogram with 2.9 million colours, and
    no 8-byte-per-pixel temporaries (a numba counting kernel did it in 0.3 s, but importing
    numba and loading the kernel took 0.6 s and 130 MiB). Smaller images, and images with
    alpha, sort each pixel's code together with its position (:func:`_distinct_codes_by_sort`).
    """
    n_pixels = len(pixels)
    if n_pixels < _LOOKUP_TABLE_MIN_PIXELS or (pixels.shape[1] > 3 and n_pixels < 2**31):
        return _distinct_codes_by_sort(pixels)
    codes = pack_codes(pixels)
    codes.sort()
    run_starts = np.empty(n_pixels, dtype=bool)
    run_starts[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=run_starts[1:])
    first = np.flatnonzero(run_starts)
    del run_starts
    unique_codes = codes[first]
    counts = np.diff(first, append=n_pixels)
    del codes, first

    # int32 halves the biggest array of the fit.
    inverse = np.empty(n_pixels, dtype=np.int32)
    index_of_code = np.empty(1 << (8 * pixels.shape[1]), dtype=np.int32)
    index_of_code[unique_codes] = np.arange(len(unique_codes), dtype=np.int32)
    for start in range(0, n_pixels, _PACK_CHUNK):
        chunk_codes = _pack(pixels[start : start + _PACK_CHUNK])
        inverse[start : start + len(chunk_codes)] = index_of_code[chunk_codes]
    return unique_codes, inverse, counts


def _distinct_codes_by_sort(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_distinct_codes` by one sort of ``code << 32 | position`` (uint64): the runs of
    the sorted codes give the distinct colours and counts, the positions riding along give
    each pixel its colour's index. 21 ms for a 768x512 photo, against 44 ms for a binary
    search of every pixel and 25 ms for the 2^24 table, whose pages (64 MiB) a photo's
    colours nearly all touch."""
    n_pixels = len(pixels)
    keys = np.empty(n_pixels, dtype=np.uint64)
    # Each key's two 32-bit halves, written and read in place: no copies of the codes or
    # the positions, which were a third of the peak memory of a photo's histogram.
    halves = keys.view(np.uint32).reshape(n_pixels, 2)
    low, high = (0, 1) if sys.byteorder == "little" else (1, 0)
    for start in range(0, n_pixels, _PACK_CHUNK):
        stop = min(start + _PACK_CHUNK, n_pixels)
        halves[start:stop, high] = _pack(pixels[start:stop])
        halves[start:stop, low] = np.arange(start, stop, dtype=np.uint32)
    keys.sort()
    codes, positions = halves[:, high], halves[:, low]
    run_starts = np.empty(n_pixels, dtype=bool)
    run_starts[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=run_starts[1:])
    unique_codes = codes[run_starts]
    # the codes are read: their half now takes each sorted pixel's colour index
    np.cumsum(run_starts, dtype=np.uint32, out=codes)
    del run_starts
    codes -= np.uint32(1)
    counts = np.bincount(codes, minlength=len(unique_codes))
    inverse = np.empty(n_pixels, dtype=np.int32)
    inverse[positions] = codes
    return unique_codes, inverse, counts


def color_histogram(pixels: np.ndarray, color_space: str = "rgb") -> ColorHistogram:
    """Distinct colours of ``pixels`` with their counts and each pixel's colour index, to be
    clustered in ``color_space``.

    pixels : ndarray of shape (n_pixels, 3 or 4), uint8
    """
    if pixels.ndim != 2 or pixels.shape[1] not in (1, 2, 3, 4) or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be (n, 1..4) uint8; got {pixels.shape} {pixels.dtype}")
    unique_codes, inverse, counts = _distinct_codes(pixels)
    colors = _unpack(unique_codes, pixels.shape[1])
    return ColorHistogram(
        colors=colors,
        counts=counts.astype(np.int64, copy=False),
        inverse=inverse.reshape(-1),
        color_space=color_space,
    )


def weighted_sample(
    histogram: ColorHistogram, n_draws: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a pixel-weighted sample of distinct colours, with their multiplicities.

    Systematic sampling: ``n_draws`` evenly spaced points (one random offset) along the
    cumulative pixel counts, each landing on the colour whose pixels cover it. A colour with
    ``c`` pixels is drawn ``c / step`` times, rounded up or down, so its expected
    multiplicity is exact, as with independent pixel draws, but without their scatter: every
    colour with at least ``step`` pixels is in the sample with about its true weight. At 80
    colours on CQ100 this halved what sampling costs k-means against a fit on every pixel
    (0.033 -> 0.016 dB). Folding repeats into weights keeps the sample unbiased for any
    count-weighted mean, which is what k-means minimises.
    """
    # computed per call, not kept: 1 ms for a photo's colours, and 8 bytes per colour off
    # the peak memory of fitting it
    cumulative = np.cumsum(histogram.counts)
    step = cumulative[-1] / n_draws
    positions = (rng.random() + np.arange(n_draws)) * step
    drawn = np.searchsorted(cumulative, positions, side="right")  # ascending, like positions
    indices, multiplicity = np.unique(drawn, return_counts=True)
    return indices, multiplicity.astype(np.float64)


def pixel_sample(pixels: np.ndarray, n_samples: int) -> np.ndarray:
    """About ``n_samples`` pixels spread evenly over ``pixels`` ((n, c)): every k-th pixel,
    k chosen odd so that the picks do not line up with an even image width."""
    step = max(1, len(pixels) // n_samples)
    step += step % 2 == 0 and step > 1
    return np.ascontiguousarray(pixels[step // 2 :: step])
