"""The result of a quantization: palette, labels, figures, and ways to get the image out."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .metrics import Metrics, measure, metric_names
from .settings import Settings

__all__ = ["QuantizedImage", "encode_output"]

# Formats whose decoded file holds exactly the quantized pixels; others are measured on disk.
_EXACT_FORMATS = ("png", "webp")


@dataclass(frozen=True, eq=False)
class QuantizedImage:
    """An image reduced to a palette.

    Attributes
    ----------
    palette : ndarray of shape (n_colors, 3) or (n_colors, 4), uint8
        RGB, or RGBA when the input has transparency (fully transparent pixels share entry 0).
    labels : ndarray of shape (H, W), uint8
        Palette index of every pixel.
    original : ndarray of shape (H, W, 3|4), uint8
        The normalised input the figures are measured against.
    settings : the :class:`~colorquant.Settings` it was made with
    n_colors_requested : the colour count fitted (the count a quality target chose)
    seconds : time spent quantizing (histogram, fit and remap), not reading or encoding
    source : where the input came from; ``source_path`` and ``bytes_in`` if it was a file
    search : the colour counts tried when a quality target chose the count
    target_met : False when ``--quality MIN-MAX`` kept the most colours without reaching MAX
    warnings : notes about the input a user should hear
    byte_budget : the bytes the output was to fit in (``max_size`` for this input), if any
    animation : for an animation, how its frames play (an :class:`~colorquant.animation.Animation`);
        ``labels`` and ``original`` then hold every frame stacked top to bottom, and the
        figures are those of the whole stack (``metrics.frames`` has the mean and the worst
        frame's)
    """

    palette: np.ndarray
    labels: np.ndarray
    original: np.ndarray = field(repr=False)
    settings: Settings
    n_colors_requested: int
    seconds: float
    source: str = "<array>"
    source_path: Path | None = None
    bytes_in: int | None = None
    search: tuple = ()
    target_met: bool = True
    warnings: tuple[str, ...] = ()
    byte_budget: int | None = None
    animation: object = None

    @property
    def n_frames(self) -> int:
        """Frames of the image: 1 for a still."""
        return 1 if self.animation is None else self.animation.n_frames

    def frames(self) -> list[np.ndarray]:
        """Each frame as (H, W, 3|4) uint8 pixels (one for a still image)."""
        pixels = self.to_array()
        if self.animation is None:
            return [pixels]
        from .animation import frames_of

        return frames_of(pixels, self.animation)

    @property
    def method(self) -> str:
        return self.settings.method

    @property
    def random_state(self) -> int:
        return self.settings.random_state

    @property
    def color_space(self) -> str:
        return self.settings.color_space

    @property
    def dither(self) -> float:
        return self.settings.dither

    @property
    def n_colors(self) -> int:
        """Entries in the palette (may be fewer than requested)."""
        return len(self.palette)

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def to_array(self) -> np.ndarray:
        """The quantized image as (H, W, 3|4) uint8 pixels."""
        return self.palette[self.labels]

    def to_pil(self):
        """The quantized image as a PIL image in mode "P" (with transparency if any)."""
        from .encoding import palette_image

        return palette_image(self.labels, self.palette)

    def encode(self, format: str | None = None) -> bytes:  # noqa: A002 - the natural name
        """The encoded file in ``format`` (default: the settings' format): "png" (palette,
        smallest bit depth), "gif", "webp" (lossless), "jpeg"."""
        format = (format or self.settings.format).lower()
        if format == "png":
            return self._png_bytes
        return encode_output(self.labels, self.palette, self.settings.speed, format, animation=self.animation)

    @cached_property
    def _png_bytes(self) -> bytes:
        return encode_output(self.labels, self.palette, self.settings.speed, "png", animation=self.animation)

    def save(self, path, *, format: str | None = None, overwrite: bool = False) -> Path:  # noqa: A002
        """Write the image atomically to ``path``; the format follows the suffix unless given.

        Never overwrites the input it came from; an existing file only with ``overwrite``.
        """
        from .storage import write_atomic

        path = Path(path)
        format = format or _format_from_suffix(path)
        return write_atomic(
            self.encode(format), path, overwrite=overwrite, protect=(self.source_path,)
        )

    @cached_property
    def metrics(self) -> Metrics:
        """The default figures (and those the settings ask for) of the PNG encoding."""
        return self.measure(self._png_bytes, "png")

    def measure(self, encoded: bytes, format: str = "png", *, metrics=None) -> Metrics:  # noqa: A002
        """Figures of an encoding of this result, measured on what that file decodes to:
        the default ones plus ``metrics`` (default: those the settings ask for)."""
        from .metrics import ImagePair

        frame_values = None
        if self.animation is not None:  # every animated format holds the labels exactly
            palette = self.palette
            if format == "gif":
                from .encoding import gif_palette

                palette, _ = gif_palette(palette, [])
            output = ImagePair(self.original, labels=self.labels, palette=palette)
            frame_values, frame_errors = _frame_figures(
                self.original, self.labels, palette, self.animation,
                metric_names(self.settings.metrics if metrics is None else metrics))
            # frames are of one size: the whole's MSE is their mean, not summed a second time
            output.__dict__["mse"] = float(np.mean(frame_errors))
        elif format in _EXACT_FORMATS:
            output = ImagePair(self.original, labels=self.labels, palette=self.palette)
        else:
            from .encoding import decode_pixels

            output = _match_channels(decode_pixels(encoded), self.original.shape[2])
        names = metric_names(self.settings.metrics if metrics is None else metrics)
        height, width = self.labels.shape
        return Metrics(
            values=measure(self.original, output, names),
            n_colors=self.n_colors,
            bytes=len(encoded),
            bpp=8.0 * len(encoded) / (height * width),
            frames=frame_values,
        )


def _frame_figures(original, labels, palette, animation, names) -> tuple[dict, list[float]]:
    """The mean and the worst frame's value of every figure measured on each frame alone,
    and each frame's MSE."""
    from .animation import frames_of
    from .metrics import METRICS, ImagePair

    per_frame = [measure(reference, ImagePair(reference, labels=frame, palette=palette), names)
                 for reference, frame in zip(frames_of(original, animation), frames_of(labels, animation))]
    mean, worst = {}, {}
    for name in per_frame[0]:
        values = [figures[name] for figures in per_frame if figures.get(name) is not None]
        if values:
            mean[name] = float(np.mean(values))  # inf when any frame is lossless in PSNR
            worst[name] = min(values) if METRICS[name].higher_is_better else max(values)
    return {"count": animation.n_frames, "mean": mean, "worst": worst}, [figures["mse"] for figures in per_frame]


def encode_output(labels: np.ndarray, palette: np.ndarray, speed: int, format: str,  # noqa: A002
                  animation=None) -> bytes:
    """The file a result of these labels and palette is written as: the one encoder of
    outputs, so that the sizes a byte budget searches are the sizes written. With an
    ``animation``, ``labels`` hold its frames stacked, written as an APNG, GIF or WebP."""
    if animation is not None:
        from .animation import encode_animation
        from .effort import effort_for

        level = effort_for(speed).deflate_level_for(labels.size // animation.n_frames)
        return encode_animation(labels, palette, animation, format, deflate_level=level)
    if format == "png":
        from .effort import effort_for
        from .encoding import encode_png

        effort = effort_for(speed)
        big = labels.size > effort.big_image_pixels
        return encode_png(labels, palette, deflate_level=effort.deflate_level_for(labels.size),
                          bit_depths="packed" if big else effort.bit_depths, palette_orders=effort.palette_orders)
    from .encoding import encode_image

    return encode_image(labels, palette, format)


def _match_channels(pixels: np.ndarray, n_channels: int) -> np.ndarray:
    if pixels.shape[2] == n_channels:
        return pixels
    if n_channels == 4:  # decoded without alpha (JPEG, or GIF with no transparent pixel)
        return np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    return pixels[:, :, :3]


def _format_from_suffix(path: Path) -> str:
    from .errors import InvalidParameterError

    suffix = path.suffix.lower()
    formats = {".png": "png", ".gif": "gif", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}
    if suffix not in formats:
        raise InvalidParameterError(
            f"cannot tell the output format from {path.name!r}; use a .png, .gif, .webp or "
            ".jpg name, or pass format="
        )
    return formats[suffix]
