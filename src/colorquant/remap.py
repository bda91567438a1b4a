"""Map colours to the index of their nearest palette entry (squared Euclidean distance).

The distances are computed as ``-2 c.p + |p|^2`` (``|c|^2`` does not change the argmin) with one
matrix product per chunk.
For sRGB, colours and palette entries are integers in 0..255, so every term and every
partial sum is an integer below 2**24 and float32 represents them exactly: the nearest entry
found is the exactly nearest one (ties go to the lower index), at BLAS speed and bounded
memory. Float features (CIELAB, Oklab) get float32 precision.
"""

from __future__ import annotations

import numpy as np

from .threads import map_in_threads, thread_count

__all__ = ["nearest_palette_index", "palette_means", "label_pixels"]

# Distances per chunk (rows x palette entries, float32): 1 MiB per thread. Rows per chunk are
# 1,024 at 256 entries, more for smaller palettes. Twice that was 3% faster on one thread and
# 2 MiB more of the peak memory of compressing a photo on two.
_CHUNK_DISTANCES = 1 << 18
_MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS = 1024, 8192
# Colour-entry pairs below which a second thread does not pay. Measured right after a
# scikit-learn fit (its OpenMP threads still spinning on the cores), 230k colours on 2 cores:
# 16 entries (4M pairs) 10.1 ms on one thread, 11.2 ms on two; 64 entries (15M) 17.2 and
# 16.1 ms; 256 entries (59M) 39.2 and 28.5 ms.
_MIN_PAIRS_PER_THREAD = 1 << 24


def nearest_palette_index(colors: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for each colour.

    colors : ndarray of shape (n, c), uint8 sRGB or float features
    palette : ndarray of shape (k, c), same kind, k <= 256
    Returns ndarray of shape (n,), uint8.
    """
    if len(palette) > 256:
        raise ValueError(f"palette has {len(palette)} entries; at most 256 fit in uint8 labels")
    n_channels = palette.shape[1]
    palette_f = palette.astype(np.float32)
    # One product gives -2 c.p + |p|^2 for every pair: the colours get a column of ones and
    # the palette a row of |p|^2. (|c|^2 is the same for every entry of a row, so it does not
    # change the argmin.) No temporaries of chunk x palette beyond the product itself.
    palette_terms = np.vstack([-2.0 * palette_f.T, np.einsum("kc,kc->k", palette_f, palette_f)[None, :]])
    labels = np.empty(len(colors), dtype=np.uint8)
    if len(colors) == 0:
        return labels

    # One contiguous part of the colours per thread (the product and argmin release the
    # GIL): a 24 MP photo's 2.9 million colours took 0.49 s per remap on one thread, 0.29 s
    # on two. Small remaps stay on one thread (see _MIN_PAIRS_PER_THREAD).
    chunk_rows = min(max(_CHUNK_DISTANCES // len(palette), _MIN_CHUNK_ROWS), _MAX_CHUNK_ROWS)
    n_chunks = -(-len(colors) // chunk_rows)
    worth_threads = max(1, len(colors) * len(palette) // _MIN_PAIRS_PER_THREAD)
    step = -(-n_chunks // min(thread_count(), worth_threads, n_chunks)) * chunk_rows
    parts = [range(start, min(start + step, len(colors))) for start in range(0, len(colors), step)]
    rows = min(chunk_rows, len(colors))
    # Every buffer is made here, on the calling thread, and reused chunk after chunk: products
    # allocated on the worker threads left 30 MB more resident at 24 MP (glibc keeps freed
    # memory in per-thread arenas).
    buffers = [(np.ones((rows, n_channels + 1), dtype=np.float32),
                np.empty((rows, len(palette)), dtype=np.float32),
                np.empty(rows, dtype=np.intp)) for _ in parts]

    def label_part(part_and_buffers) -> None:
        part, (chunk, distances, nearest) = part_and_buffers
        for start in range(part.start, part.stop, chunk_rows):
            n = min(chunk_rows, part.stop - start)
            chunk[:n, :n_channels] = colors[start : start + n]
            np.matmul(chunk[:n], palette_terms, out=distances[:n])
            np.argmin(distances[:n], axis=1, out=nearest[:n])
            labels[start : start + n] = nearest[:n]

    map_in_threads(label_part, zip(parts, buffers))
    return labels


def palette_means(
    colors: np.ndarray, weights: np.ndarray, labels: np.ndarray, n_entries: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean colour of each label, and the total weight each label received.

    Entries that received no weight come back as NaN rows with weight 0.
    """
    totals = np.zeros(n_entries)
    sums = np.zeros((n_entries, colors.shape[1]))
    # a block of colours at a time: float64 weighted columns of a photo's whole histogram
    # were 5 MB of the peak memory of compressing it
    for start in range(0, len(colors), _MEANS_CHUNK):
        stop = start + _MEANS_CHUNK
        block_labels = labels[start:stop]
        block_weights = np.asarray(weights[start:stop], dtype=np.float64)
        totals += np.bincount(block_labels, weights=block_weights, minlength=n_entries)
        for channel in range(colors.shape[1]):
            sums[:, channel] += np.bincount(block_labels, weights=block_weights * colors[start:stop, channel],
                                            minlength=n_entries)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / totals[:, None], totals


_MEANS_CHUNK = 1 << 16


# Colours, and pixels, per step of label_pixels: their buffers stay a few MiB.
_PRESENT_CHUNK = 1 << 18
_PIXEL_CHUNK = 1 << 20


def label_pixels(pixels: np.ndarray, palette: np.ndarray, color_space: str = "rgb") -> np.ndarray:
    """Index of the nearest entry of ``palette`` ((k, 3) uint8 sRGB, compared in
    ``color_space``) for every pixel of ``pixels`` ((n, 3) uint8), without a histogram.

    A table over all 2^24 colours (16 MiB) first marks the colours that occur, each of those
    is remapped once, and the table, now holding their entries, labels the pixels: two
    passes over the pixels and one remap per distinct colour, with no per-pixel index.
    """
    from .colorspace import to_features
    from .histogram import pack_codes, unpack_codes

    table = np.zeros(1 << 24, dtype=np.uint8)
    for start in range(0, len(pixels), _PIXEL_CHUNK):
        table[pack_codes(pixels[start : start + _PIXEL_CHUNK])] = 1
    present = np.flatnonzero(table).astype(np.uint32)
    rgb_palette = np.ascontiguousarray(palette[:, :3])
    entries = rgb_palette if color_space == "rgb" else to_features(rgb_palette, color_space)
    for start in range(0, len(present), _PRESENT_CHUNK):
        codes = present[start : start + _PRESENT_CHUNK]
        colors = unpack_codes(codes, 3)
        features = colors if color_space == "rgb" else to_features(colors, color_space)
        table[codes] = nearest_palette_index(features, entries)
    labels = np.empty(len(pixels), dtype=np.uint8)
    for start in range(0, len(pixels), _PIXEL_CHUNK):
        labels[start : start + _PIXEL_CHUNK] = table[pack_codes(pixels[start : start + _PIXEL_CHUNK])]
    return labels
