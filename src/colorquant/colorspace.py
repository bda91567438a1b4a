"""Colour spaces the methods can cluster in: sRGB as stored, CIELAB, or Oklab.

Clustering and remapping happen on float "features" in the chosen space; palettes are
converted back to 8-bit sRGB for the file. Distances in CIELAB and Oklab follow perceived
colour difference much better than distances in sRGB, so the same number of colours is
spent where the eye notices. Alpha, when clustered, is scaled to the space's lightness range
(0-255 in sRGB, 0-100 in CIELAB, 0-1 in Oklab) so that it weighs like lightness.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_features", "to_srgb8", "lightness_range"]

# The spaces themselves are listed in settings.COLOR_SPACES.
_LIGHTNESS_RANGE = {"rgb": 255.0, "lab": 100.0, "oklab": 1.0}

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


def to_features(colors: np.ndarray, color_space: str) -> np.ndarray:
    """(n, 3|4) uint8 sRGB(A) colours as float64 features in ``color_space``."""
    if color_space == "rgb":
        return colors.astype(np.float64)
    rgb = colors[:, :3].astype(np.float64) / 255.0
    if color_space == "lab":
        from skimage.color import rgb2lab

        coords = rgb2lab(rgb[None, :, :])[0]
    else:
        lms = _srgb_to_linear(rgb) @ _RGB_TO_LMS.T
        coords = np.cbrt(lms) @ _LMS_TO_OKLAB.T
    if colors.shape[1] == 4:
        alpha = colors[:, 3:4].astype(np.float64) * (lightness_range(color_space) / 255.0)
        coords = np.hstack([coords, alpha])
    return coords


def to_srgb8(features: np.ndarray, color_space: str) -> np.ndarray:
    """Features in ``color_space`` back to (n, 3|4) uint8 sRGB(A), rounded and clipped."""
    if color_space == "rgb":
        return np.clip(np.rint(features), 0, 255).astype(np.uint8)
    coords = features[:, :3]
    if color_space == "lab":
        from skimage.color import lab2rgb

        with np.errstate(all="ignore"):
            rgb = lab2rgb(coords[None, :, :])[0]
    else:
        lms = (coords @ _OKLAB_TO_LMS.T) ** 3
        rgb = _linear_to_srgb(lms @ _LMS_TO_RGB.T)
    out = np.clip(np.rint(rgb * 255.0), 0, 255)
    if features.shape[1] == 4:
        alpha = np.clip(np.rint(features[:, 3] * (255.0 / lightness_range(color_space))), 0, 255)
        out = np.hstack([out, alpha[:, None]])
    return out.astype(np.uint8)
