"""What happened to one input: one record for ``compress``, ``batch``, the manifest and the web.

An :class:`Outcome` is "done" (an output was written, or encoded for the web), "skipped" (a
rule said not to write: the output would not be smaller, the quality target was not met) or
"failed" (the input could not be read, the output could not be written). A failure keeps the
exception's class name in ``error_kind``, so that the CLI can map even a stored outcome to its
exit status through the same function as a live one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from .metrics import METRICS

__all__ = ["Outcome", "STATUSES", "DONE", "SKIPPED", "FAILED"]

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
STATUSES = (DONE, SKIPPED, FAILED)


def _finite(value, digits: int = 6):
    return None if value is None or not math.isfinite(value) else round(value, digits)


@dataclass(frozen=True)
class Outcome:
    """The record of one input.

    input : the input as named by the caller (a path, or a batch's path relative to its folder)
    output : where the output was written (None unless done; a batch's is relative to its
        output folder)
    metrics : every registered figure by name, None where not computed
    error, error_kind, remedy : why it was skipped or failed (the message, the error's class
        name, and the setting that would let it through, which front ends phrase:
        :meth:`error_text`)
    input_size, input_mtime_ns, input_hash : the input's identity when it was read (batch)
    output_hash, output_mtime_ns : BLAKE2b-128 of the output's bytes, and its modification
        time when written (batch checks outputs against them)
    dither, color_space : the output's dither level and colour space (those a budget or a
        target chose, if it chose)
    max_bytes : the byte budget of this input (``max_size``), if any
    frames, frame_metrics : an animation's frame count, and the figures of its mean and its
        worst frame (``{"mean": {...}, "worst": {...}}``); ``metrics`` are those of all its
        frames together
    """

    input: str
    status: str = DONE
    output: str | None = None
    method: str | None = None
    colors: int | None = None
    metrics: dict = field(default_factory=dict)
    bytes_in: int | None = None
    bytes_out: int | None = None
    bpp: float | None = None
    seconds: float | None = None
    error: str | None = None
    error_kind: str | None = None
    remedy: str | None = None
    warnings: tuple[str, ...] = ()
    search: tuple = ()
    input_size: int | None = None
    input_mtime_ns: int | None = None
    input_hash: str | None = None
    output_hash: str | None = None
    output_mtime_ns: int | None = None
    dither: float | None = None
    max_bytes: int | None = None
    color_space: str | None = None
    frames: int | None = None
    frame_metrics: dict = field(default_factory=dict)
    # The exception itself, while the outcome lives in one process (not stored).
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_error(cls, input: str, status: str, error: BaseException, **fields) -> "Outcome":  # noqa: A002
        return cls(input=input, status=status, error=getattr(error, "message", str(error)),
                   error_kind=type(error).__name__, remedy=getattr(error, "remedy", None),
                   exception=error, **fields)

    def error_text(self, audience: str = "python") -> str | None:
        """The error with its remedy in ``audience``'s words ("python", "cli", "web")."""
        from .errors import with_remedy

        return None if self.error is None else with_remedy(self.error, self.remedy, audience)

    def with_changes(self, **changes) -> "Outcome":
        return replace(self, **changes)

    def as_json(self, audience: str = "python") -> dict:
        """The documented JSON record: ``input``, ``output``, ``method``, ``colors``, one key
        per registered figure, ``bytes_in``, ``bytes_out``, ``max_bytes`` (the byte budget),
        ``bpp``, ``seconds``, ``status``, ``error``; for an animation also ``frames`` and
        ``frame_mean`` and ``frame_worst`` (the figures of the mean and the worst frame).
        Infinite or missing figures are null."""
        record = {"input": self.input, "output": self.output, "method": self.method,
                  "colors": self.colors, "dither": self.dither, "color_space": self.color_space}
        for name, metric in METRICS.items():
            record[name] = _finite(self.metrics.get(name), metric.digits)
        record.update(bytes_in=self.bytes_in, bytes_out=self.bytes_out, max_bytes=self.max_bytes,
                      bpp=_finite(self.bpp),
                      seconds=_finite(self.seconds), status=self.status, error=self.error_text(audience))
        if self.frames is not None:
            record["frames"] = self.frames
            for statistic in ("mean", "worst"):
                figures = self.frame_metrics.get(statistic, {})
                record[f"frame_{statistic}"] = {name: _finite(figures[name], metric.digits)
                                                for name, metric in METRICS.items() if name in figures}
        return record

    def stored(self) -> dict:
        """Every field but the live exception, as plain values (for the manifest)."""
        values = asdict(self)
        values.pop("exception")
        return values
