"""From normalised pixels to a palette and a label image: histogram, fit, remap, tidy.

``prepare`` splits off fully transparent pixels (they share one transparent palette entry) and
builds the histogram the methods fit on; ``fit`` runs one method for one colour count and
returns the palette with the label of every distinct colour; ``label_image`` expands those
labels to every pixel. The auto-K search calls ``fit`` many times on one prepared image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .colorspace import to_features, to_srgb8
from .histogram import ColorHistogram, color_histogram, pixel_sample
from .metrics import histogram_mse
from .remap import label_pixels, nearest_palette_index

__all__ = ["PreparedImage", "Quantization", "prepare", "fit", "label_image", "single_threaded_blas"]

_TRANSPARENT = np.zeros(4, dtype=np.uint8)


def single_threaded_blas():
    """Context in which BLAS (numpy's matrix products) runs on the calling thread only.

    Our products have an inner dimension of 3 or 4 colour channels, so BLAS threads gain
    nothing on them, and OpenBLAS's idle threads keep spinning for a while after each call,
    taking the cores that scikit-learn's OpenMP Lloyd loop needs next: a K-Means fit at 46
    colours took 0.14 s with them and 0.04 s without (chelsea, 2 cores).
    """
    return _threadpool_controller().limit(limits=1, user_api="blas")


@functools.cache
def _threadpool_controller():
    # Finding the loaded thread pools reads /proc/self/maps: 1.2 ms, as long as quantizing a
    # thumbnail, so it is done once. BLAS is numpy's, loaded before this can run.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """Pixels ready for fitting.

    histogram : distinct colours of the visible pixels, in the channels that are clustered
        (RGB, or RGBA when some visible pixel is partly transparent)
    visible : (n_pixels,) bool mask of pixels that are not fully transparent, or None if all are
    shape : (height, width)
    n_channels : channels of the output palette (3, or 4 when the image has any transparency)
    """

    histogram: ColorHistogram
    visible: np.ndarray | None
    shape: tuple[int, int]
    n_channels: int
    pixels: np.ndarray  # the (H, W, C) input itself, for dithering
    sampled: bool = False  # the histogram is of a sample of the pixels (no inverse to use)
    animation: object = None  # an Animation whose frames are stacked in ``pixels``, if any

    @property
    def has_transparent(self) -> bool:
        return self.visible is not None

    @property
    def n_pixels(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def n_distinct(self) -> int:
        """Distinct colours of the image, the shared transparent one included."""
        return self.histogram.n_distinct + int(self.has_transparent)


@dataclass(frozen=True, eq=False)
class Quantization:
    """One fit: ``palette`` ((k, n_channels) uint8, transparent entry first if any) and the
    palette index of each distinct visible colour."""

    palette: np.ndarray
    color_labels: np.ndarray
    mse: float


# Opaque images with more pixels than this are fitted on an even sample of about
# SAMPLE_PIXELS of their pixels when no quality target needs exact errors, and labelled
# through a table of every 24-bit colour they hold (16 MiB) instead of a histogram of every
# pixel: on a 24 MP photo the exact histogram took 1.7 s and 190 MiB, the sample 0.1 s. The
# sample is 32 times the largest k-means sample of the default speed.
SAMPLED_ABOVE_PIXELS = 4_000_000
SAMPLE_PIXELS = 1 << 19


def prepare(pixels: np.ndarray, color_space: str = "rgb", *, exact: bool = True, animation=None) -> PreparedImage:
    """Split ``pixels`` ((H, W, 3|4) uint8) into what the methods fit on, as features in
    ``color_space``. Unless ``exact``, a big opaque image is fitted on a sample of its
    pixels (see ``SAMPLED_ABOVE_PIXELS``); errors from its histogram are then estimates.
    The frames of an ``animation`` come stacked in ``pixels``: one histogram of them all."""
    height, width, n_channels = pixels.shape
    flat = pixels.reshape(-1, n_channels)
    if not exact and n_channels == 3 and len(flat) > SAMPLED_ABOVE_PIXELS:
        return PreparedImage(histogram=color_histogram(pixel_sample(flat, SAMPLE_PIXELS), color_space),
                             visible=None, shape=(height, width), n_channels=3, pixels=pixels,
                             sampled=True, animation=animation)
    visible = None
    if n_channels == 4:
        transparent = flat[:, 3] == 0
        if transparent.any():
            visible = ~transparent
            flat = flat[visible]
        # Alpha is clustered only when it varies among the visible pixels.
        if len(flat) and flat[:, 3].min() == 255:
            flat = np.ascontiguousarray(flat[:, :3])
    return PreparedImage(
        histogram=color_histogram(np.ascontiguousarray(flat), color_space),
        visible=visible,
        shape=(height, width),
        n_channels=n_channels,
        pixels=pixels,
        animation=animation,
    )


def fit(prepared: PreparedImage, n_colors: int, settings) -> Quantization:
    """Learn at most ``n_colors`` palette entries with ``settings``' method and label every
    colour."""
    histogram = prepared.histogram
    budget = n_colors - int(prepared.has_transparent)
    if histogram.n_distinct == 0:
        palette, color_labels = np.empty((0, histogram.n_channels), np.uint8), np.empty(0, np.uint8)
    elif histogram.n_distinct <= budget:
        # Few enough colours: keep them exactly (lossless), no fitting.
        palette = histogram.colors
        color_labels = np.arange(histogram.n_distinct, dtype=np.uint8)
    else:
        learned = settings.method_spec.fit_palette(
            histogram, budget, random_state=settings.random_state, speed=settings.speed,
            **settings.options)
        palette, color_labels = _tidy(histogram, learned.palette, learned.color_labels)

    counted = int(histogram.counts.sum()) if prepared.sampled else prepared.n_pixels
    error = histogram_mse(
        histogram.colors, histogram.counts, palette, color_labels, counted, prepared.n_channels,
    ) if len(palette) else 0.0
    return Quantization(
        palette=_full_palette(prepared, palette),
        color_labels=color_labels.astype(np.uint8) + np.uint8(prepared.has_transparent),
        mse=error,
    )


def _tidy(histogram: ColorHistogram, centres: np.ndarray, color_labels: np.ndarray | None):
    """Round the centres to 8 bits, label the colours, drop unused and duplicate entries, and
    order the palette by opacity then luminance (stable, readable swatches)."""
    used_rows = np.all(np.isfinite(centres), axis=1)
    rounded = np.zeros((len(centres), histogram.n_channels), dtype=np.uint8)
    rounded[used_rows] = to_srgb8(centres[used_rows], histogram.color_space)
    if color_labels is None:
        rounded = rounded[used_rows]
        color_labels = nearest_palette_index(
            histogram.features, to_features(rounded, histogram.color_space))
    used = np.bincount(color_labels, minlength=len(rounded)) > 0
    entries, new_index = np.unique(rounded[used], axis=0, return_inverse=True)

    luma = entries[:, :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    opacity = entries[:, 3] if entries.shape[1] == 4 else np.zeros(len(entries))
    order = np.lexsort((luma, opacity))
    rank = np.empty(len(order), dtype=np.uint8)
    rank[order] = np.arange(len(order))
    # old entry -> final entry, as uint8: relabelling a photo's colours through it makes no
    # 8-byte-per-colour temporaries
    old_to_final = np.zeros(len(rounded), dtype=np.uint8)
    old_to_final[np.flatnonzero(used)] = rank[new_index.reshape(-1)]
    return entries[order], old_to_final[color_labels]


def _full_palette(prepared: PreparedImage, palette: np.ndarray) -> np.ndarray:
    """Palette in the output's channels, with the shared transparent entry first if any."""
    if prepared.n_channels == 4 and palette.shape[1] == 3:
        palette = np.hstack([palette, np.full((len(palette), 1), 255, np.uint8)])
    if prepared.has_transparent:
        palette = np.vstack([_TRANSPARENT[None, :], palette])
    return np.ascontiguousarray(palette, dtype=np.uint8)


def label_image(prepared: PreparedImage, quantization: Quantization, dither: float = 0.0) -> np.ndarray:
    """(H, W) uint8 palette index of every pixel; with ``dither`` > 0, Floyd-Steinberg error
    diffusion of that strength instead of each colour's own entry. The frames of an
    animation are dithered one by one, and where its frames have palettes of their own a pixel
    close enough to its entry of the frame before keeps it (``animation.stable_labels``)."""
    if prepared.animation is None or prepared.animation.n_frames < 2:
        return _label_pixels(prepared, quantization, dither)
    from .animation import STABLE_RMS_SHARE, STABLE_TOLERANCE, stable_labels

    if dither > 0 and len(quantization.palette) > 1:
        labels = _dither_frames(prepared, quantization, dither)
    else:
        labels = _label_pixels(prepared, quantization)
    if quantization.mse == 0 or not prepared.animation.own_palettes:  # nothing to trade, no flicker
        return labels
    # within the fit's own typical error (RMS distance), and never over STABLE_TOLERANCE
    tolerance = min(STABLE_TOLERANCE, STABLE_RMS_SHARE * float(np.sqrt(quantization.mse * prepared.n_channels)))
    return stable_labels(labels, prepared.pixels, quantization.palette, prepared.animation, tolerance)


def _label_pixels(prepared: PreparedImage, quantization: Quantization, dither: float = 0.0) -> np.ndarray:
    """:func:`label_image` of the stacked pixels as one image."""
    if dither > 0 and len(quantization.palette) > 1:
        from .dither import floyd_steinberg

        fixed = None
        if prepared.visible is not None:
            fixed = ~prepared.visible.reshape(prepared.shape)
        plain = _label_pixels(prepared, quantization)  # where dithering pays (dither map)
        return floyd_steinberg(prepared.pixels, quantization.palette, dither, fixed, plain,
                               prepared.histogram.color_space)
    if prepared.sampled:
        return label_pixels(prepared.pixels.reshape(-1, 3), quantization.palette,
                            prepared.histogram.color_space).reshape(prepared.shape)
    pixel_labels = quantization.color_labels[prepared.histogram.inverse]
    if prepared.visible is not None:
        full = np.zeros(prepared.n_pixels, dtype=np.uint8)  # index 0 is the transparent entry
        full[prepared.visible] = pixel_labels
        pixel_labels = full
    return pixel_labels.reshape(prepared.shape)


def _dither_frames(prepared: PreparedImage, quantization: Quantization, dither: float) -> np.ndarray:
    """Each frame of an animation dithered on its own (no error carried from one frame's last
    row into the next one's first), then still areas given the previous frame's pattern."""
    from .animation import frames_of, steady_labels
    from .dither import floyd_steinberg

    animation = prepared.animation
    plain = _label_pixels(prepared, quantization)
    fixed = [None] * animation.n_frames
    if prepared.visible is not None:
        fixed = frames_of(~prepared.visible.reshape(prepared.shape), animation)
    labels = np.empty(prepared.shape, dtype=np.uint8)
    for pixels, out, frame_plain, frame_fixed in zip(frames_of(prepared.pixels, animation), frames_of(labels, animation),
                                                     frames_of(plain, animation), fixed):
        out[...] = floyd_steinberg(pixels, quantization.palette, dither, frame_fixed, frame_plain,
                                   prepared.histogram.color_space)
    return steady_labels(labels, prepared.pixels, animation)
