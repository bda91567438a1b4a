"""Palette-learning methods, as data: one registry entry per method.

Each method is a module with ``fit_palette(histogram, n_colors, *, random_state, **options)``
returning a :class:`PaletteFit`, and one :class:`MethodSpec` here naming it, its title and its
options with their choices. The command line (``--method`` and option flags), the web API
(``GET /api/methods``), the page's method list and the validation of :class:`Settings` all
read :data:`METHODS`, so adding a method is one module and one :func:`register_method` call.

Modules are imported only when a method runs, so scikit-learn is not loaded by
``colorquant --help`` or by code that only reads images; this module imports no numpy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["METHODS", "MethodSpec", "OptionSpec", "PaletteFit", "register_method", "get_method",
           "options_for_flag"]


@dataclass(frozen=True)
class OptionSpec:
    """One option of a method: a choice among named values.

    name : keyword argument of ``fit_palette`` and of :func:`colorquant.quantize`
    flag : the command-line flag (``--covariance``); ``name`` is the web form field
    """

    name: str
    choices: tuple[str, ...]
    default: str
    flag: str
    help: str = ""

    def check(self, value) -> str:
        if value not in self.choices:
            raise InvalidParameterError(
                f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        return value

    def as_json(self) -> dict:
        return {"name": self.name, "choices": list(self.choices), "default": self.default,
                "flag": self.flag, "help": self.help}


@dataclass(frozen=True)
class MethodSpec:
    """A palette-learning method.

    module : importable module whose ``fit_palette`` fits it (workers import it by name, so a
        spec is all a process needs to run the method)
    imports : heavy modules it needs, which a worker pool imports once before forking
    takes_speed : ``fit_palette`` takes ``speed`` (1-11), to trade time for quality
    """

    name: str
    title: str
    module: str
    description: str = ""
    options: tuple[OptionSpec, ...] = ()
    imports: tuple[str, ...] = field(default=())
    takes_speed: bool = False

    def load(self):
        """The module implementing this method."""
        return importlib.import_module(self.module)

    def fit_palette(self, histogram, n_colors: int, *, random_state: int, speed: int, **options) -> "PaletteFit":
        if self.takes_speed:
            options["speed"] = speed
        return self.load().fit_palette(histogram, n_colors, random_state=random_state, **options)

    def check_options(self, options: dict[str, Any]) -> tuple:
        """Every option of this method with its value (default if not given), sorted by name;
        an option of another method, or an unknown one, is refused."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InvalidParameterError(
                f"unexpected options for method {self.name!r}: {', '.join(unknown)}")
        return tuple(sorted(
            (name, option.default if options.get(name) is None else option.check(options[name]))
            for name, option in known.items()))

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "description": self.description,
                "options": [option.as_json() for option in self.options]}


@dataclass(frozen=True, eq=False)
class PaletteFit:
    """What a method learned.

    palette : ndarray of shape (k, c), float64, in the histogram's feature space
    color_labels : ndarray of shape (n_distinct,), or None
        The entry each distinct colour belongs to when the method assigns colours itself
        (a mixture's most probable component); None means "nearest palette entry".
    """

    palette: np.ndarray
    color_labels: np.ndarray | None = None


# name -> spec; the order is the order of figures, tables and menus.
METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add (or replace) a method; every front end offers it from then on."""
    METHODS[spec.name] = spec
    return spec


def get_method(name) -> MethodSpec:
    """The registered method called ``name`` (case-insensitive)."""
    key = name.lower() if isinstance(name, str) else name
    try:
        return METHODS[key]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"method must be one of {', '.join(METHODS)}; got {name!r}") from None


def options_for_flag() -> dict[str, tuple[OptionSpec, list[str]]]:
    """Each option flag of any method, with its spec and the methods that take it."""
    flags: dict[str, tuple[OptionSpec, list[str]]] = {}
    for method in METHODS.values():
        for option in method.options:
            flags.setdefault(option.flag, (option, []))[1].append(method.name)
    return flags


register_method(MethodSpec(
    name="kmeans", title="K-Means", module="colorquant.methods.kmeans",
    description="k-means++ seeds, Lloyd's algorithm and swaps on the weighted distinct colours",
    takes_speed=True,
))
register_method(MethodSpec(
    name="minibatch", title="Mini-Batch", module="colorquant.methods.minibatch",
    description="scikit-learn MiniBatchKMeans fed strided pixel chunks: bounded time and memory",
    imports=("sklearn.cluster",),
))
register_method(MethodSpec(
    name="gmm", title="GMM", module="colorquant.methods.gmm",
    description="scikit-learn GaussianMixture on a pixel sample; colours take their most "
                "probable component",
    options=(OptionSpec(
        name="covariance_type", choices=("full", "tied", "diag", "spherical"), default="spherical",
        flag="--covariance", help="GMM covariance type (default spherical, see README)"),),
    imports=("sklearn.mixture",),
))
