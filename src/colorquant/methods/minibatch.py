"""Mini-Batch K-Means (scikit-learn ``MiniBatchKMeans``) fed pixels in chunks.

The model sees the image through ``partial_fit`` on strided chunks of pixels: chunk ``i``
is every ``n_chunks``-th pixel starting at ``i``, so each chunk spreads over the whole image
and no shuffled copy of the pixels is ever made. At most ``MAX_CHUNKS`` chunks are fed, so
time and memory stay bounded however many megapixels the image has.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from ..histogram import ColorHistogram
from . import PaletteFit

CHUNK_PIXELS = 8192
MAX_CHUNKS = 48


def fit_palette(
    histogram: ColorHistogram, n_colors: int, *, random_state: int = 0
) -> PaletteFit:
    """Mini-Batch K-Means centres learned from strided pixel chunks."""
    # Pixel i's features are features[inverse[i]]: strided chunks of the image, no copy of it.
    pixel_colors, features = histogram.inverse, histogram.features
    n_chunks = max(1, len(pixel_colors) // CHUNK_PIXELS)
    rng = np.random.default_rng(random_state)
    chunk_order = rng.permutation(n_chunks)[:MAX_CHUNKS]

    model = MiniBatchKMeans(
        n_clusters=n_colors, batch_size=CHUNK_PIXELS, n_init=1, random_state=random_state
    )
    with warnings.catch_warnings():
        # Chunks of a flat image hold few distinct colours; coinciding centres are deduped later.
        warnings.simplefilter("ignore")
        for chunk_index in chunk_order:
            model.partial_fit(features[pixel_colors[chunk_index::n_chunks]].astype(np.float32))
    return PaletteFit(palette=model.cluster_centers_.astype(np.float64))
