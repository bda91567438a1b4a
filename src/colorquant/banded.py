"""Figures that filter the whole image, computed a band of rows at a time in bounded memory.

SSIMULACRA2 (the PyPI ``ssimulacra2`` package), mean CIEDE2000 and blurred PSNR all work on
float64 copies of the whole image; called as they are, a 10 MP photo took 5.0 GB and 22.7 s
(SSIMULACRA2), 2.9 GB (CIEDE2000) and 838 MB (blurred PSNR). Here each band of rows carries
the rows its filters reach above and below (a halo), so every value in it sees exactly the
neighbourhood it would in one whole-image call, and only per-band sums leave it: the figures
equal the whole-image ones to float64 rounding (SSIMULACRA2 to 1e-5: see ``ssimulacra2_rgb``;
tests/test_metrics.py checks each against the library it comes from), with temporaries of a
few band sizes. Bands run on the threads that
``threads.thread_count`` allows (scipy's filters and numpy's arithmetic release the GIL), and
their sums are added in band order, so a figure does not depend on the number of threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .threads import map_in_threads

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ssimulacra2_rgb", "mean_ciede2000", "blurred_psnr", "BAND_PIXELS"]

# Pixels per band: about 6 MB per float64 RGB temporary, and SSIMULACRA2 keeps about a dozen.
BAND_PIXELS = 1 << 18

# SSIMULACRA2's blur (sigma 1.5, truncated at 3.33 sigma) reaches 5 pixels; the package pads
# 5 zero pixels on one axis (its XYB images are transposed: the left and right of the photo)
# and reflects on the other (top and bottom).
_S2_SIGMA, _S2_TRUNCATE, _S2_REACH = 1.5, 3.33, 5
_S2_SCALES = 6
_S2_MIN_SIDE = 8


def _bands(height: int, band_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + band_rows, height)) for start in range(0, height, band_rows)]


def _rows_per_band(width: int, even: bool = False) -> int:
    rows = max(16, BAND_PIXELS // max(1, width))
    return rows + (rows % 2) if even else rows


def ssimulacra2_rgb(reference: np.ndarray, test: np.ndarray) -> float:
    """SSIMULACRA2 of two (H, W, 3) uint8 sRGB images, as ``ssimulacra2.compute_ssimulacra2``
    scores them (to 1e-5), in bounded memory. Both sides at least 8 pixels."""
    import numpy as np
    from ssimulacra2 import ssimulacra2 as package

    scales = package.Msssim()
    sources = (reference, test)
    for scale in range(_S2_SCALES):
        height, width = sources[0].shape[:2]
        if height < _S2_MIN_SIDE or width < _S2_MIN_SIDE:
            break
        last = scale == _S2_SCALES - 1
        # the next scale's linear images are kept in float32 (half the memory: 240 MB for a
        # 40 MP pair) and computed on in float64; the score moves by about 1e-6
        smaller = None if last else [np.empty(((height + 1) // 2, (width + 1) // 2, 3), np.float32)
                                     for _ in sources]

        def band_sums(band, sources=sources, smaller=smaller):
            return _ssimulacra2_band(sources, band, smaller)

        sums = map_in_threads(band_sums, _bands(height, _rows_per_band(width, even=True)))
        total = np.sum([band_sum for band_sum in sums], axis=0)  # band order: deterministic
        n_pixels = height * width
        averages = total / n_pixels
        measured = package.MsssimScale()
        measured.avg_ssim[::2] = averages[0:3]
        measured.avg_ssim[1::2] = averages[3:6] ** 0.25
        measured.avg_edgediff[0::4] = averages[6:9]
        measured.avg_edgediff[1::4] = averages[9:12] ** 0.25
        measured.avg_edgediff[2::4] = averages[12:15]
        measured.avg_edgediff[3::4] = averages[15:18] ** 0.25
        scales.scales.append(measured)
        if last:
            break
        sources = tuple(smaller)
    return float(scales.score())


def _ssimulacra2_band(sources, band: tuple[int, int], smaller) -> np.ndarray:
    """Per-channel sums over rows [start, stop) of one scale: SSIM error and its 4th power,
    then ringing, ringing^4, blurring and blurring^4 (18 values); and the band's half-size
    linear image written into ``smaller`` for the next scale."""
    import numpy as np
    from scipy.ndimage import gaussian_filter
    from ssimulacra2 import ssimulacra2 as package

    height = sources[0].shape[0]
    start, stop = band
    top, bottom = max(0, start - _S2_REACH), min(height, stop + _S2_REACH)
    keep = slice(start - top, stop - top)
    xyb = []
    for index, source in enumerate(sources):
        rows = source[top:bottom]
        linear = package.srgb_to_linear(rows) if rows.dtype == np.uint8 else rows.astype(np.float64)
        if smaller is not None:
            smaller[index][start // 2 : (stop + 1) // 2] = package.downsample(linear[keep], 2, 2)
        # the package's XYB images are transposed; here they stay upright, so its zero
        # padding goes on the left and right
        upright = package.linear_rgb_to_xyb(linear).transpose(1, 0, 2)
        positive = package.make_positive_xyb(upright)
        xyb.append(np.pad(positive, ((0, 0), (_S2_REACH, _S2_REACH), (0, 0))))
    del linear, upright, positive

    def blur(image):
        return gaussian_filter(image, sigma=_S2_SIGMA, truncate=_S2_TRUNCATE, mode="reflect",
                               axes=(0, 1))[keep, _S2_REACH:-_S2_REACH]

    image1, image2 = xyb
    mu1, mu2 = blur(image1), blur(image2)
    sigma11, sigma22, sigma12 = blur(image1 * image1), blur(image2 * image2), blur(image1 * image2)
    image1, image2 = image1[keep, _S2_REACH:-_S2_REACH], image2[keep, _S2_REACH:-_S2_REACH]
    sums = np.empty(18)
    # ssim_map of the package, summed instead of averaged
    numerator_m = 1.0 - (mu1 - mu2) * (mu1 - mu2)
    numerator_s = 2.0 * (sigma12 - mu1 * mu2) + package.kC2
    denominator_s = (sigma11 - mu1 * mu1) + (sigma22 - mu2 * mu2) + package.kC2
    del sigma11, sigma22, sigma12
    error = np.maximum(1.0 - numerator_m * numerator_s / denominator_s, 0.0)
    del numerator_m, numerator_s, denominator_s
    sums[0:3] = error.sum(axis=(0, 1))
    sums[3:6] = ((error * error) ** 2).sum(axis=(0, 1))
    # edge_diff_map of the package, likewise
    ratio = (1.0 + np.abs(image2 - mu2)) / (1.0 + np.abs(image1 - mu1)) - 1.0
    ringing, blurring = np.maximum(ratio, 0.0), np.maximum(-ratio, 0.0)
    sums[6:9] = ringing.sum(axis=(0, 1))
    sums[9:12] = ((ringing * ringing) ** 2).sum(axis=(0, 1))
    sums[12:15] = blurring.sum(axis=(0, 1))
    sums[15:18] = ((blurring * blurring) ** 2).sum(axis=(0, 1))
    return sums


def mean_ciede2000(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean CIEDE2000 difference (scikit-image's ``deltaE_ciede2000`` of ``rgb2lab``) of the
    RGB channels over all pixels; per pixel, so bands need no halo."""
    import numpy as np
    from skimage.color import deltaE_ciede2000, rgb2lab

    height, width = reference.shape[:2]

    def band_sum(band):
        start, stop = band
        lab1 = rgb2lab(reference[start:stop, :, :3])
        lab2 = rgb2lab(test[start:stop, :, :3])
        return float(np.sum(deltaE_ciede2000(lab1, lab2), dtype=np.float64))

    sums = map_in_threads(band_sum, _bands(height, _rows_per_band(width)))
    return sum(sums) / (height * width)


def blurred_psnr(reference: np.ndarray, test: np.ndarray, sigma: float = 1.0) -> float:
    """PSNR after a Gaussian blur of ``sigma`` pixels (scipy, edges reflected) on both images."""
    import math

    import numpy as np
    from scipy.ndimage import gaussian_filter

    from .metrics import psnr_from_mse

    height, width = reference.shape[:2]
    reach = int(4.0 * sigma + 0.5)  # gaussian_filter's default truncation at 4 sigma

    def band_sum(band):
        start, stop = band
        top, bottom = max(0, start - reach), min(height, stop + reach)
        keep = slice(start - top, stop - top)
        sigmas = (sigma, sigma, 0)
        blurred_reference = gaussian_filter(reference[top:bottom].astype(np.float64), sigmas, mode="reflect")
        blurred_test = gaussian_filter(test[top:bottom].astype(np.float64), sigmas, mode="reflect")
        difference = (blurred_reference[keep] - blurred_test[keep]).reshape(-1)
        return float(difference @ difference)

    sums = map_in_threads(band_sum, _bands(height, _rows_per_band(width)))
    mean_squared_error = sum(sums) / reference.size
    return psnr_from_mse(mean_squared_error) if mean_squared_error > 0 else math.inf
