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

__all__ = ["nearest_palette_index", "palette_means"]

# Rows of colours per chunk: chunk x palette float32 distances stay near 16 MiB at 256 colours.
_CHUNK_ROWS = 16384


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
    chunk = np.ones((min(_CHUNK_ROWS, len(colors)), n_channels + 1), dtype=np.float32)
    labels = np.empty(len(colors), dtype=np.uint8)
    for start in range(0, len(colors), _CHUNK_ROWS):
        rows = min(_CHUNK_ROWS, len(colors) - start)
        chunk[:rows, :n_channels] = colors[start : start + rows]
        distances = chunk[:rows] @ palette_terms
        labels[start : start + rows] = np.argmin(distances, axis=1)
    return labels


def palette_means(
    colors: np.ndarray, weights: np.ndarray, labels: np.ndarray, n_entries: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean colour of each label, and the total weight each label received.

    Entries that received no weight come back as NaN rows with weight 0.
    """
    totals = np.bincount(labels, weights=weights, minlength=n_entries)
    means = np.empty((n_entries, colors.shape[1]), dtype=np.float64)
    for channel in range(colors.shape[1]):
        sums = np.bincount(labels, weights=weights * colors[:, channel], minlength=n_entries)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, channel] = sums / totals
    return means, totals
