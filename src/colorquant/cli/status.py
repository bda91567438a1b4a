"""Exit statuses, and the one place where an error becomes one.

    0   all done
    1   internal error (a bug: please report it)
    2   usage error (bad option values are rejected before any file is touched)
    3   at least one input could not be read, or its worker process was killed while
        compressing it (the others are still done)
    4   an output could not be written
    75  batch: another batch is writing to the same output folder
    98  skipped by --skip-if-larger: the output would not be smaller than the input
    99  a quality target could not be met within the allowed colour counts
When inputs end differently, the most serious status wins: 4, then 3, then 99, then 98.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus", "exit_status_for", "overall_status"]


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    READ_ERROR = 3
    WRITE_ERROR = 4
    BUSY = 75  # another batch holds the output folder (EX_TEMPFAIL)
    SKIPPED_LARGER = 98
    QUALITY_TOO_LOW = 99


# Most serious first: the overall status of a run is the first of these that occurred.
_SEVERITY = (
    ExitStatus.ERROR,
    ExitStatus.WRITE_ERROR,
    ExitStatus.READ_ERROR,
    ExitStatus.USAGE,
    ExitStatus.BUSY,
    ExitStatus.QUALITY_TOO_LOW,
    ExitStatus.SKIPPED_LARGER,
)


def exit_status_for(error) -> ExitStatus:
    """The exit status of ``error``: an exception, an exception class, or None (success).

    Any exception that is not one of colorquant's is a bug: ERROR.
    """
    from ..errors import (
        BatchLockedError,
        ManifestError,
        ImageReadError,
        ImageWriteError,
        InvalidParameterError,
        MissingDependencyError,
        OutputNotSmallerError,
        QualityTooLowError,
        WorkerLostError,
    )

    if error is None:
        return ExitStatus.OK
    error_type = error if isinstance(error, type) else type(error)
    for known, status in (
        (InvalidParameterError, ExitStatus.USAGE),
        (MissingDependencyError, ExitStatus.USAGE),
        (ImageReadError, ExitStatus.READ_ERROR),
        (ManifestError, ExitStatus.READ_ERROR),
        (WorkerLostError, ExitStatus.READ_ERROR),
        (ImageWriteError, ExitStatus.WRITE_ERROR),
        (OutputNotSmallerError, ExitStatus.SKIPPED_LARGER),
        (QualityTooLowError, ExitStatus.QUALITY_TOO_LOW),
        (BatchLockedError, ExitStatus.BUSY),
    ):
        if issubclass(error_type, known):
            return status
    return ExitStatus.ERROR


def outcome_status(outcome) -> ExitStatus:
    """The exit status of an :class:`~colorquant.outcome.Outcome`, live or stored."""
    from ..errors import error_class

    if outcome.exception is not None:
        return exit_status_for(outcome.exception)
    return exit_status_for(error_class(outcome.error_kind))


def overall_status(statuses) -> ExitStatus:
    statuses = set(statuses)
    for status in _SEVERITY:
        if status in statuses:
            return status
    return ExitStatus.OK
