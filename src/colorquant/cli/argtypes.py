"""Argument types of the command line: each checks one value and says what was wrong in the
option's own name. The bounds come from :mod:`colorquant.settings`."""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "Parser", "int_in", "number", "dither_level", "quality_range", "metric_names",
           "byte_budget"]


class UsageError(Exception):
    """A usage mistake: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, instead of argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


def int_in(low: int, high: int | None, name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer; got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{name} must be {bounds}; got {value}")
        return value

    return parse


def number(name: str):
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number; got {text!r}") from None

    return parse


def dither_level(text: str) -> float:
    try:
        level = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dither must be a number in [0, 1]; got {text!r}") from None
    if not 0 <= level <= 1:
        raise argparse.ArgumentTypeError(f"--dither must be in [0, 1]; got {text}")
    return level


def byte_budget(text: str):
    """--max-size: bytes, a size with a unit, or a share of the input (checked by settings)."""
    from ..errors import InvalidParameterError
    from ..settings import parse_byte_budget

    try:
        return parse_byte_budget(text)
    except InvalidParameterError as error:
        raise argparse.ArgumentTypeError(str(error).replace("max_size", "--max-size")) from None


def metric_names(text: str) -> tuple[str, ...]:
    """--metrics: figure names, comma-separated, or "all"."""
    from ..metrics import METRICS

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return tuple(METRICS)
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--metrics takes {', '.join(METRICS)} or all, comma-separated; got {text!r}")
    return tuple(names)


def quality_range(text: str) -> tuple[float, float]:
    """pngquant's --quality: "MIN-MAX", "MAX", "MIN-" or "-MAX", each 0-100."""
    from ..errors import InvalidParameterError
    from ..settings import parse_quality

    try:
        return parse_quality(text)
    except InvalidParameterError as error:
        raise argparse.ArgumentTypeError(f"--{error}") from None
