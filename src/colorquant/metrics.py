"""Quality figures of a quantized image against its input: MSE, PSNR and SSIM.

All figures are over every channel in 0..255. For images with transparency the colour of a
fully transparent pixel is invisible, so it is zeroed in both images before comparing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Metrics", "mse", "psnr_from_mse", "ssim", "histogram_mse", "comparable",
           "mean_ciede2000", "blurred_psnr"]

_DATA_RANGE = 255.0


@dataclass(frozen=True)
class Metrics:
    """Figures of one result. ``psnr`` is ``inf`` for a lossless result; ``ssim`` is None for
    images under 3 pixels on a side, where the 3x3 window of SSIM does not fit."""

    mse: float
    psnr: float
    ssim: float | None
    n_colors: int
    bytes: int
    bpp: float
    seconds: float
    # Perceptual figures, computed on request (measure(..., perceptual=True)):
    ciede2000: float | None = None     # mean CIEDE2000 colour difference
    blurred_psnr: float | None = None  # PSNR after a Gaussian blur (sigma 1 px) of both

    def as_dict(self) -> dict:
        return asdict(self)


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


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    difference = reference.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(difference * difference))


def psnr_from_mse(mean_squared_error: float) -> float:
    """PSNR in dB for 8-bit data; ``inf`` when the error is zero."""
    if mean_squared_error <= 0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mean_squared_error)


def ssim(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Mean SSIM (scikit-image, 7x7 window or the largest odd one that fits), channels averaged."""
    from skimage.metrics import structural_similarity

    smallest_side = min(reference.shape[0], reference.shape[1])
    if smallest_side < 3:
        return None
    window = min(7, smallest_side if smallest_side % 2 else smallest_side - 1)
    return float(
        structural_similarity(
            reference, test, channel_axis=-1, data_range=_DATA_RANGE, win_size=window
        )
    )


def mean_ciede2000(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean CIEDE2000 difference (scikit-image) of the RGB channels, over all pixels."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    return float(np.mean(deltaE_ciede2000(rgb2lab(reference[..., :3]), rgb2lab(test[..., :3]))))


def blurred_psnr(reference: np.ndarray, test: np.ndarray, sigma: float = 1.0) -> float:
    """PSNR after a Gaussian blur of ``sigma`` pixels on both images: a stand-in for viewing
    from a distance, where error diffusion (dithering) averages out and banding does not."""
    from scipy.ndimage import gaussian_filter

    sigmas = (sigma, sigma, 0)
    blurred_reference = gaussian_filter(reference.astype(np.float64), sigmas)
    blurred_test = gaussian_filter(test.astype(np.float64), sigmas)
    return psnr_from_mse(float(np.mean((blurred_reference - blurred_test) ** 2)))


def histogram_mse(
    colors: np.ndarray, counts: np.ndarray, palette: np.ndarray, color_labels: np.ndarray,
    n_pixels: int, n_channels: int,
) -> float:
    """MSE of mapping each distinct colour to ``palette[color_labels]``, without the pixels.

    Equal to :func:`mse` on the full images when ``counts`` covers every pixel; pixels that
    are not in the histogram (e.g. fully transparent ones) contribute no error.
    """
    difference = colors.astype(np.float64) - palette[color_labels].astype(np.float64)
    squared = np.einsum("nc,nc->n", difference, difference)
    return float(squared @ counts) / (n_pixels * n_channels)
