"""colorquant: smaller images through palettes learned by clustering.

>>> import colorquant as cq
>>> result = cq.quantize("photo.jpg", n_colors=16, method="kmeans")
>>> result.save("photo-16.png")

Names are imported on first use, so ``import colorquant.cli`` (and ``colorquant --help``)
does not pay for numpy, Pillow or scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "quantize": "api",
    "quality_curves": "api",
    "Settings": "settings",
    "QualityTarget": "settings",
    "QuantizedImage": "result",
    "SearchStep": "search",
    "Metrics": "metrics",
    "METRICS": "metrics",
    "Metric": "metrics",
    "METHODS": "methods",
    "MethodSpec": "methods",
    "OptionSpec": "methods",
    "register_method": "methods",
    "Outcome": "outcome",
    "ColorquantError": "errors",
    "InvalidParameterError": "errors",
    "ImageReadError": "errors",
    "ImageTooLargeError": "errors",
    "ImageWriteError": "errors",
    "OutputNotSmallerError": "errors",
    "QualityTooLowError": "errors",
    "MissingDependencyError": "errors",
    "BatchLockedError": "errors",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colorquant' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
