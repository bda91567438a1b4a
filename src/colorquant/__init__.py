"""colorquant: smaller images through palettes learned by clustering.

>>> import colorquant as cq
>>> result = cq.quantize("photo.jpg", n_colors=16, method="kmeans")
>>> result.save("photo-16.png")
"""

from .api import quantize
from .errors import (
    ColorquantError,
    ImageReadError,
    ImageWriteError,
    InvalidParameterError,
    MissingDependencyError,
    OutputNotSmallerError,
    QualityTooLowError,
)
from .methods import METHODS
from .metrics import Metrics
from .result import QuantizedImage, SearchStep

__all__ = [
    "quantize",
    "QuantizedImage",
    "SearchStep",
    "Metrics",
    "METHODS",
    "ColorquantError",
    "InvalidParameterError",
    "ImageReadError",
    "ImageWriteError",
    "OutputNotSmallerError",
    "QualityTooLowError",
    "MissingDependencyError",
]

__version__ = "0.1.0"
