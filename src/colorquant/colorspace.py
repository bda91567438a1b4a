"""Colour spaces the methods cluster in: "mixed" (the default), sRGB as stored, or Oklab.

Clustering and remapping happen on float "features"; palettes are converted back to 8-bit
sRGB for the file.

- ``rgb``: sRGB levels. Squared distance here is what MSE and PSNR count, so a fit in rgb
  is the PSNR-optimal one.
- ``oklab``: Björn Ottosson's Oklab, where distance follows perceived colour difference.
  On CQ100 it raised SSIMULACRA2 by 7 to 13 points over rgb but cost 1.1 to 1.6 dB of PSNR:
  its cube-root lightness spends colours on shadows that sRGB error never sees.
- ``mixed``: both at once. A colour's features are its sRGB levels and its Oklab
  coordinates side by side, scaled so that squared distance is 40% sRGB distance and 60%
  Oklab distance (Oklab scaled by 1.7, which makes black-to-white the same length in
  both). Clusters form by both; each palette colour is the plain sRGB mean of its cluster,
  the PSNR-optimal colour for those pixels. On CQ100 this kept PSNR level with pngquant's
  and gained 3.5 to 8 SSIMULACRA2 points over it (README, "What people see").

CIELAB was a choice before ``mixed`` came: its chroma outweighs lightness even more than Oklab's, and
on CQ100 it lost to pngquant by 8 to 15 SSIMULACRA2 points and 1.6 to 2.2 dB of PSNR.

Alpha, when clustered, is scaled to the space's lightness range (0-255 in sRGB, 0-1 in the
others) so that it weighs like lightness.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_features", "to_srgb8", "lightness_range", "n_features", "MIXED_SRGB_SHARE"]

# The spaces themselves are listed in settings.COLOR_SPACES.
_LIGHTNESS_RANGE = {"rgb": 255.0, "oklab": 1.0, "mixed": 1.0}

# "mixed": the share of sRGB in the squared distance, and the factor that makes Oklab's
# black-to-white (1.0) as long as sRGB's (sqrt(3) in 0..1 units).
MIXED_SRGB_SHARE = 0.4
_MIXED_OKLAB_SCALE = 1.7
_MIXED_RGB = np.sqrt(MIXED_SRGB_SHARE) / 255.0
_MIXED_OKLAB = np.sqrt(1.0 - MIXED_SRGB_SHARE) * _MIXED_OKLAB_SCALE

# Björn Ottosson's Oklab (2020): linear sRGB -> LMS -> cube root -> Lab, and back.
_RGB_TO_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                        [0.2119034982, 0.6806995451, 0.1073969566],
                        [0.0883024619, 0.2817188376, 0.6299787005]])
_LMS_TO_OKLAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                          [1.9779984951, -2.4285922050, 0.4505937099],
                          [0.0259040371, 0.7827717662, -0.8086757660]])
_OKLAB_TO_LMS = np.array([[1.0, 0.3963377774, 0.2158037573],
                          [1.0, -0.1055613458, -0.0638541728],
                          [1.0, -0.0894841775, -1.2914855480]])
_LMS_TO_RGB = np.array([[4.0767416621, -3.3077115913, 0.2309699292],
                        [-1.2684380046, 2.6097574011, -0.3413193965],
                        [-0.0041960863, -0.7034186147, 1.7076147010]])


def lightness_range(color_space: str) -> float:
    """Span of lightness in the space: the scale of its distances."""
    return _LIGHTNESS_RANGE[color_space]


def _srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


# Every 8-bit sRGB level in linear light: a lookup instead of a power per channel.
_LINEAR_OF_LEVEL = _srgb_to_linear(np.arange(256) / 255.0)
# Colours converted per step: a photo's histogram (a few hundred thousand colours) without
# float64 temporaries of its whole size (they were 27 MB of the peak memory of one photo).
# 16,384 (1.5 MiB of temporaries) was also faster than 65,536: 7.7 against 12.2 ms for 300k.
_CHUNK = 1 << 14


def _oklab(rgb8: np.ndarray) -> np.ndarray:
    lms = _LINEAR_OF_LEVEL[rgb8] @ _RGB_TO_LMS.T
    return np.cbrt(lms) @ _LMS_TO_OKLAB.T


def n_features(color_space: str, n_channels: int) -> int:
    """Feature columns of ``n_channels``-channel colours in ``color_space``."""
    return (6 if color_space == "mixed" else 3) + (n_channels == 4)


def to_features(colors: np.ndarray, color_space: str, dtype=np.float64) -> np.ndarray:
    """(n, 3|4) uint8 sRGB(A) colours as features in ``color_space``: 3 columns for rgb and
    oklab, 6 for mixed, and alpha last when there is one."""
    if color_space == "rgb":
        return colors.astype(dtype)
    features = np.empty((len(colors), n_features(color_space, colors.shape[1])), dtype=dtype)
    for start in range(0, len(colors), _CHUNK):
        chunk = colors[start : start + _CHUNK]
        rows = features[start : start + len(chunk)]
        rgb = chunk[:, :3]
        if color_space == "oklab":
            rows[:, :3] = _oklab(rgb)
        else:
            rows[:, :3] = rgb * _MIXED_RGB
            rows[:, 3:6] = _oklab(rgb) * _MIXED_OKLAB
        if chunk.shape[1] == 4:
            rows[:, -1] = chunk[:, 3] * (lightness_range(color_space) / 255.0)
    return features


def to_srgb8(features: np.ndarray, color_space: str) -> np.ndarray:
    """Features in ``color_space`` back to (n, 3|4) uint8 sRGB(A), rounded and clipped; a
    mixed feature gives the sRGB it carries."""
    if color_space == "rgb":
        return np.clip(np.rint(features), 0, 255).astype(np.uint8)
    if color_space == "oklab":
        lms = (features[:, :3] @ _OKLAB_TO_LMS.T) ** 3
        out = np.clip(np.rint(_linear_to_srgb(lms @ _LMS_TO_RGB.T) * 255.0), 0, 255)
        alpha_column = 3
    else:
        out = np.clip(np.rint(features[:, :3] / _MIXED_RGB), 0, 255)
        alpha_column = 6
    if features.shape[1] > alpha_column:
        alpha = np.clip(np.rint(features[:, alpha_column] * (255.0 / lightness_range(color_space))), 0, 255)
        out = np.hstack([out, alpha[:, None]])
    return out.astype(np.uint8)
