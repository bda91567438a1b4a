"""How many threads colorquant's own numeric loops may use, and a map over them.

Only loops whose work runs in numpy, BLAS or scipy code that releases the GIL are worth
splitting (remapping colours, banded SSIM). Results come back in the order of the items,
so callers that add them up get the same figure on any number of threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["thread_count", "map_in_threads"]

Item = TypeVar("Item")
Result = TypeVar("Result")


def thread_count() -> int:
    """``OMP_NUM_THREADS`` when set (batch workers set it to 1, one worker per core, as for
    every other thread pool in the process), else the CPUs this process may run on."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_threads(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """``[function(item) for item in items]``, on up to :func:`thread_count` threads."""
    items = list(items)
    threads = min(thread_count(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))
