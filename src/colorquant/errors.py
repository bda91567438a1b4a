"""The errors colorquant raises, one class per way things go wrong.

Front ends map these to exit statuses (CLI) or HTTP statuses (web) in one place each;
the library itself never prints or exits.
"""

from __future__ import annotations

__all__ = [
    "ColorquantError",
    "with_remedy",
    "InvalidParameterError",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "OutputNotSmallerError",
    "QualityTooLowError",
    "MissingDependencyError",
    "BatchLockedError",
    "ManifestError",
    "WorkerLostError",
    "error_class",
]


# What would let a refused thing through, in each front end's words. The library names the
# setting (``remedy``); the CLI and the web each say it their own way.
REMEDIES = {
    "max_pixels": {"python": "raise it with max_pixels=", "cli": "raise it with --max-pixels",
                   "web": "this server's limit"},
    "max_frames": {"python": "raise it with max_frames=", "cli": "raise it with --max-frames",
                   "web": "this server's limit"},
    "overwrite": {"python": "overwrite=True replaces it", "cli": "--force replaces it",
                  "web": "overwrite=True replaces it"},
    "force": {"python": "force=True replaces it", "cli": "--force replaces it",
              "web": "force=True replaces it"},
    # a store that did not answer: nothing is wrong with the file, so a re-run tries it again
    "retry": {"python": "running the batch again retries it", "cli": "running the same command "
              "again retries it", "web": "try again later"},
}


def with_remedy(message: str, remedy: str | None, audience: str = "python") -> str:
    """``message`` followed by what would let it through, in ``audience``'s words."""
    if remedy is None:
        return message
    return f"{message} ({REMEDIES[remedy][audience]})"


class ColorquantError(Exception):
    """Base class of every error colorquant raises on purpose.

    message : what went wrong, naming the file or parameter
    remedy : the setting that would let it through ("max_pixels", "overwrite", "force"), or
        None; ``str(error)`` says it in Python's words, the CLI in its flags' words
    """

    def __init__(self, message: str, *, remedy: str | None = None):
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return with_remedy(self.message, self.remedy)

    def describe(self, audience: str = "python") -> str:
        return with_remedy(self.message, self.remedy, audience)

    def __reduce__(self):
        # Errors cross process boundaries (pools, Dask): keep every attribute.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(kind, message, attributes):
    error = Exception.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


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


class ManifestError(ColorquantError):
    """A batch manifest cannot be read: damaged, or not a manifest this version knows."""


class BatchLockedError(ColorquantError):
    """Another batch is already writing to the same output folder."""


class WorkerLostError(ColorquantError):
    """The worker process compressing an input died under it (killed by a signal: the
    out-of-memory killer, say). That input fails; the others are done."""


def error_class(name: str | None) -> type[BaseException] | None:
    """The error class called ``name`` (as an outcome stores it); a name that is not one of
    ours (a bug's exception) gives ``Exception``, so that it maps to "internal error"."""
    if name is None:
        return None
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, ColorquantError):
        return found
    return Exception
