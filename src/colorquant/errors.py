"""The errors colorquant raises, one class per way things go wrong.

Front ends map these to exit statuses (CLI) or HTTP statuses (web) in one place each;
the library itself never prints or exits.
"""

from __future__ import annotations

__all__ = [
    "ColorquantError",
    "InvalidParameterError",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "OutputNotSmallerError",
    "QualityTooLowError",
    "MissingDependencyError",
    "BatchLockedError",
    "error_class",
]


class ColorquantError(Exception):
    """Base class of every error colorquant raises on purpose."""


class InvalidParameterError(ColorquantError, ValueError):
    """A parameter is outside its documented range or of the wrong type."""


class ImageReadError(ColorquantError):
    """An input could not be read as an image: missing, unreadable, truncated, refused."""


class ImageTooLargeError(ImageReadError):
    """An input has more pixels than allowed (judged from its header, before decoding)."""


class ImageWriteError(ColorquantError):
    """An output could not be written; nothing was left behind."""


class OutputNotSmallerError(ColorquantError):
    """The output would not be smaller than the input (``skip_if_larger``)."""

    # Defaults keep the error picklable: results cross process boundaries (pools, Dask).
    def __init__(self, message: str, *, bytes_in: int | None = None, bytes_out: int | None = None):
        super().__init__(message)
        self.bytes_in = bytes_in
        self.bytes_out = bytes_out


class QualityTooLowError(ColorquantError):
    """No colour count in the allowed range met the quality target."""

    def __init__(self, message: str, *, best_value: float | None = None):
        super().__init__(message)
        self.best_value = best_value


class MissingDependencyError(ColorquantError, ImportError):
    """An optional component is not installed; the message says which extra brings it."""


class BatchLockedError(ColorquantError):
    """Another batch is already writing to the same output folder."""


def error_class(name: str | None) -> type[BaseException] | None:
    """The error class called ``name`` (as an outcome stores it); a name that is not one of
    ours (a bug's exception) gives ``Exception``, so that it maps to "internal error"."""
    if name is None:
        return None
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, ColorquantError):
        return found
    return Exception
