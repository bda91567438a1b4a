"""Quality figures of a quantized image against its input, as data: one function and one
:class:`Metric` entry in :data:`METRICS` per figure.

Every record (``--json``, the manifest, the web API, the tables) has a key for each entry;
entries marked ``default`` (MSE and PSNR, which cost a millisecond) are computed for every
output, the others only when asked for (``Settings.metrics``, ``--metrics``), by the commands
that show them (compare, demo, curve, the web page), or when they are the quality target: SSIM
alone (scipy's filters) took longer than quantizing a photo. Entries with ``target_bounds``
can be a quality target (``target_<name>=`` in Python, ``--target-<name>`` on the command
line).

All figures are over every channel in 0..255. For images with transparency the colour of a
fully transparent pixel is invisible, so it is zeroed in both images before comparing.
numpy is imported inside the functions: the registry is read by ``colorquant --help``, which
must stay instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from .threads import map_in_threads

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Metric", "METRICS", "Metrics", "ImagePair", "measure", "mse", "psnr_from_mse", "ssim",
           "histogram_mse", "comparable", "mean_ciede2000", "blurred_psnr"]

_DATA_RANGE = 255.0


class ImagePair:
    """A reference and a test image of the same shape (H, W, C) uint8, as compared: the
    colour of fully transparent pixels zeroed. Figures that share work (PSNR from MSE) take
    it from here.

    The test image may be given as ``labels`` over a ``palette`` instead: it is then expanded
    only if a figure needs it whole, and MSE is summed a band at a time (a 24 MP photo's
    expanded copy alone is 72 MB).
    """

    def __init__(self, reference: np.ndarray, test: np.ndarray | None = None, *,
                 labels: np.ndarray | None = None, palette: np.ndarray | None = None):
        self.reference = comparable(reference)
        self._labels, self._palette = labels, palette
        if test is not None:
            self.__dict__["test"] = comparable(test)

    @cached_property
    def test(self) -> np.ndarray:
        return comparable(self._palette[self._labels])

    @cached_property
    def mse(self) -> float:
        if "test" in self.__dict__ or self.reference.shape[-1] == 4:
            return mse(self.reference, self.test)
        return mse_of_labels(self.reference, self._labels, self._palette)


@dataclass(frozen=True)
class Metric:
    """One figure of a result.

    function : ImagePair -> float, or None where the figure is undefined (SSIM of a 2-pixel
        image; the search then takes ``identical``, the value of a perfect match)
    higher_is_better : the direction of a target (PSNR >= x, MSE <= x)
    default : computed for every output; others only when asked for
    target_bounds : ``(low, high, low_inclusive)`` when the figure can be a quality target
    digits : decimals kept in records
    """

    name: str
    title: str
    function: Callable[[ImagePair], float | None]
    unit: str = ""
    higher_is_better: bool = True
    default: bool = False
    target_bounds: tuple[float, float, bool] | None = None
    digits: int = 6
    description: str = ""
    identical: float | None = None  # the value for identical images (a target is then met)
    min_side: int = 1  # images smaller on a side have no value of this figure
    # Whether error diffusion can reach a target of this figure in fewer bytes: not for MSE
    # and PSNR (the nearest entry is the least error of every pixel, so dithering only adds
    # error and bytes), nor SSIM (it scores the added grain as lost structure), but for
    # SSIMULACRA2 (banding costs it more than grain: on CQ100 at 64 colours +13 points).
    dither_helps: bool = False

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "default": self.default,
                "target": self.target_bounds is not None, "description": self.description}


def comparable(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` with the colour of fully transparent pixels zeroed (it cannot be seen)."""
    if pixels.shape[-1] != 4:
        return pixels
    hidden = pixels[..., 3] == 0
    if not hidden.any():
        return pixels
    visible = pixels.copy()
    visible[hidden] = 0
    return visible


# Elements per chunk of the MSE sum: bounded memory on very large images.
_MSE_CHUNK = 1 << 18


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels, exactly.

    A band of rows at a time (whole-image float64 copies of a 24 MP photo would take 0.6 GB
    each): the differences fit in int16 and each band's sum of squares, below 2**53, is exact
    in a float64 dot product, which BLAS does 3x faster than numpy's int64 one.
    """
    import numpy as np

    rows_per_chunk = max(1, _MSE_CHUNK // max(1, reference[0].size))
    total = 0
    for start in range(0, len(reference), rows_per_chunk):
        difference = (reference[start : start + rows_per_chunk].astype(np.int16)
                      - test[start : start + rows_per_chunk].astype(np.int16))
        flat = difference.reshape(-1).astype(np.float64)
        total += int(flat @ flat)
    return total / reference.size


def mse_of_labels(reference: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> float:
    """:func:`mse` of ``reference`` against ``palette[labels]``, expanding a band at a time."""
    rows_per_chunk = max(1, _MSE_CHUNK // max(1, reference[0].size))
    total = 0.0
    for start in range(0, len(reference), rows_per_chunk):
        band = slice(start, start + rows_per_chunk)
        total += mse(reference[band], palette[labels[band]]) * reference[band].size
    return total / reference.size


def psnr_from_mse(mean_squared_error: float) -> float:
    """PSNR in dB for 8-bit data; ``inf`` when the error is zero."""
    if mean_squared_error <= 0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mean_squared_error)


# Pixels per band of the banded SSIM: scikit-image's temporaries stay near 25 MB per band in
# flight, and bands this size are faster than bigger ones (24 MP photo: 2.9 s against 3.6 s at
# 1M pixels on one thread).
_SSIM_BAND_PIXELS = 1 << 18


def ssim(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Mean SSIM (scikit-image, 7x7 window or the largest odd one that fits), channels averaged.

    Computed in bands of rows, each extended by half a window so that every SSIM value in it
    sees exactly the neighbourhood it would in one whole-image call; scikit-image's mean
    leaves out half a window at every border, and so does the sum here. The result equals
    the whole-image call (to float32 rounding) with bounded memory: on a 24 MP photo one call
    holds about 2 GB of temporaries.

    Bands run on as many threads as ``threads.thread_count`` allows (scipy's filters release the
    GIL: 1.8 s instead of 3.9 s for 24 MP on 2 cores); their sums are added in band order,
    so the figure does not depend on the number of threads.
    """
    height, width = reference.shape[:2]
    smallest_side = min(height, width)
    if smallest_side < 3:
        return None
    window = min(7, smallest_side if smallest_side % 2 else smallest_side - 1)
    pad = (window - 1) // 2
    band_rows = max(window, _SSIM_BAND_PIXELS // max(1, width))
    # rows [start, stop) of each band are scored; its slice adds the pad rows their windows need
    bands = [(start, min(start + band_rows, height - pad)) for start in range(pad, height - pad, band_rows)]

    def band_sum(band: tuple[int, int]) -> tuple[float, int]:
        return _ssim_band_sum(reference, test, band, window)

    sums = map_in_threads(band_sum, bands)
    total = sum(band_total for band_total, _ in sums)
    return total / sum(count for _, count in sums)


def _ssim_band_sum(reference: np.ndarray, test: np.ndarray, band: tuple[int, int], window: int) -> tuple[float, int]:
    """Sum and number of the SSIM values of rows [start, stop), over every channel."""
    import numpy as np
    from skimage.metrics import structural_similarity

    start, stop = band
    pad = (window - 1) // 2
    width = reference.shape[1]
    top, bottom = start - pad, stop + pad
    channels = reference.shape[2] if reference.ndim == 3 else 1
    total, count = 0.0, 0
    for channel in range(channels):
        a = (reference[top:bottom, :, channel] if channels > 1 else reference[top:bottom]).astype(np.float32)
        b = (test[top:bottom, :, channel] if channels > 1 else test[top:bottom]).astype(np.float32)
        _, ssim_map = structural_similarity(a, b, data_range=_DATA_RANGE, win_size=window, full=True)
        scored = ssim_map[pad : pad + (stop - start), pad : width - pad]
        total += float(scored.sum(dtype=np.float64))
        count += scored.size
    return total, count


# SSIMULACRA2 needs 8 pixels on a side for its first scale; alpha is judged over a dark and a
# light background, the worse of the two counting (as the reference tool does).
_SSIMULACRA2_MIN_SIDE = 8
_SSIMULACRA2_BACKGROUNDS = (26, 230)


def ssimulacra2(reference: np.ndarray, test: np.ndarray) -> float | None:
    """SSIMULACRA2 (the PyPI ``ssimulacra2`` package's score, Jon Sneyers's metric of the JPEG
    XL project: 100 = identical, 90 visually lossless, 70 high quality, 50 medium, 30 low),
    computed a band of rows at a time (:mod:`colorquant.banded`): the package's own call holds
    about 500 bytes per pixel.

    On CQ100 photos saved by libjpeg-turbo it scores where the reference README says typical
    outputs score (README: "How we measure"). None for images under 8 pixels on a side, where
    the metric has no first scale.
    """
    from .banded import ssimulacra2_rgb

    if min(reference.shape[:2]) < _SSIMULACRA2_MIN_SIDE:
        return None
    if reference.shape[-1] == 3:
        return ssimulacra2_rgb(reference, test)
    return min(ssimulacra2_rgb(_over(reference, background), _over(test, background))
               for background in _SSIMULACRA2_BACKGROUNDS)


def _over(pixels: np.ndarray, background: int) -> np.ndarray:
    """RGBA composited over a grey background, as 8-bit RGB."""
    import numpy as np

    alpha = pixels[..., 3:4].astype(np.float32) / 255.0
    blended = pixels[..., :3] * alpha + background * (1.0 - alpha)
    return np.rint(blended).astype(np.uint8)


def mean_ciede2000(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean CIEDE2000 difference (scikit-image) of the RGB channels, over all pixels, in bands."""
    from . import banded

    return banded.mean_ciede2000(reference, test)


def blurred_psnr(reference: np.ndarray, test: np.ndarray, sigma: float = 1.0) -> float:
    """PSNR after a Gaussian blur of ``sigma`` pixels on both images: a stand-in for viewing
    from a distance, where error diffusion (dithering) averages out and banding does not.
    Computed in bands."""
    from . import banded

    return banded.blurred_psnr(reference, test, sigma)


_HISTOGRAM_CHUNK = 1 << 16


def histogram_mse(
    colors: np.ndarray, counts: np.ndarray, palette: np.ndarray, color_labels: np.ndarray,
    n_pixels: int, n_channels: int,
) -> float:
    """MSE of mapping each distinct colour to ``palette[color_labels]``, without the pixels.

    Equal to :func:`mse` on the full images when ``counts`` covers every pixel; pixels that
    are not in the histogram (e.g. fully transparent ones) contribute no error.
    """
    import numpy as np

    total = 0.0
    for start in range(0, len(colors), _HISTOGRAM_CHUNK):  # bounded temporaries for millions
        stop = start + _HISTOGRAM_CHUNK
        difference = colors[start:stop].astype(np.int32) - palette[color_labels[start:stop]].astype(np.int32)
        squared = np.einsum("nc,nc->n", difference, difference)
        total += float(squared @ counts[start:stop])
    return total / (n_pixels * n_channels)


# name -> figure; the order is the order of JSON keys and table columns.
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("mse", "MSE", lambda pair: pair.mse, higher_is_better=False, default=True,
           target_bounds=(0.0, _DATA_RANGE**2, True),
           description="mean squared error over all pixels and channels"),
    Metric("psnr", "PSNR", lambda pair: psnr_from_mse(pair.mse), unit="dB", default=True,
           target_bounds=(0.0, 100.0, False),
           description="peak signal-to-noise ratio; inf for a lossless result"),
    Metric("ssim", "SSIM", lambda pair: ssim(pair.reference, pair.test),
           target_bounds=(0.0, 1.0, False), identical=1.0, min_side=3,
           description="structural similarity (scikit-image, 7x7 window), channels averaged"),
    Metric("ssimulacra2", "SSIMULACRA2", lambda pair: ssimulacra2(pair.reference, pair.test),
           target_bounds=(0.0, 100.0, False), identical=100.0, digits=4, min_side=_SSIMULACRA2_MIN_SIDE,
           dither_helps=True,
           description="perceptual score of the JPEG XL project: 100 identical, 90 visually "
                       "lossless, 70 high quality, 50 medium"),
    Metric("ciede2000", "dE2000", lambda pair: mean_ciede2000(pair.reference, pair.test),
           higher_is_better=False, description="mean CIEDE2000 colour difference"),
    Metric("blurred_psnr", "blurred PSNR", lambda pair: blurred_psnr(pair.reference, pair.test),
           unit="dB", description="PSNR after a Gaussian blur (sigma 1 px) of both images"),
)}


def measure(reference: np.ndarray, test, names) -> dict[str, float | None]:
    """The figures ``names`` of ``test`` (an array, or an :class:`ImagePair` already made)
    against ``reference``, every other key None."""
    pair = test if isinstance(test, ImagePair) else ImagePair(reference, test)
    wanted = set(names)
    return {name: (metric.function(pair) if name in wanted else None)
            for name, metric in METRICS.items()}


def metric_names(extra=()) -> tuple[str, ...]:
    """The default figures plus ``extra``, in registry order."""
    wanted = set(extra)
    return tuple(name for name, metric in METRICS.items() if metric.default or name in wanted)


@dataclass(frozen=True)
class Metrics:
    """Figures of one encoded result: ``values`` holds every registered figure (None where
    not computed); each is also an attribute (``metrics.psnr``). ``psnr`` is ``inf`` for a
    lossless result; ``ssim`` is None for images under 3 pixels on a side."""

    values: dict
    n_colors: int
    bytes: int
    bpp: float
    frames: dict | None = None  # an animation's: {"count": n, "mean": {...}, "worst": {...}}

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(f"'Metrics' object has no attribute {name!r}") from None
