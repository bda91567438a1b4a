"""Palette-learning methods: one module each, all with the same entry point.

Each module defines ``fit_palette(histogram, n_colors, *, random_state, **options)`` and
returns a :class:`PaletteFit`. Adding a method means one new module and one line in
``METHODS``. Modules are imported only when used, so scikit-learn is not loaded by
``colorquant --help`` or by code that only reads images.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["METHODS", "PaletteFit", "load_method"]

# name -> module that fits it; the order is the order of figures and tables.
METHODS = {
    "kmeans": "colorquant.methods.kmeans",
    "minibatch": "colorquant.methods.minibatch",
    "gmm": "colorquant.methods.gmm",
}


@dataclass(frozen=True, eq=False)
class PaletteFit:
    """What a method learned.

    palette : ndarray of shape (k, c), float64, in 0..255
    color_labels : ndarray of shape (n_distinct,), or None
        The entry each distinct colour belongs to when the method assigns colours itself
        (a mixture's most probable component); None means "nearest palette entry".
    """

    palette: np.ndarray
    color_labels: np.ndarray | None = None


def load_method(name: str):
    """The module implementing method ``name``."""
    try:
        module_name = METHODS[name]
    except KeyError:
        raise InvalidParameterError(
            f"method must be one of {', '.join(METHODS)}; got {name!r}"
        ) from None
    return importlib.import_module(module_name)
