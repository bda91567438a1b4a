"""Selective serpentine Floyd-Steinberg error diffusion onto a learned palette.

Each pixel takes the palette entry nearest to its colour plus the error carried from its
neighbours, and passes its own error on: 7/16 ahead, 3/16 below-behind, 5/16 below and 1/16
below-ahead. Rows alternate direction (serpentine), which avoids the diagonal "worm"
artefacts of raster order. Error is diffused in sRGB levels; fully transparent pixels keep the
transparent entry and neither take nor pass error.

Dithering pays only where the plain remap bands: large flat areas mapped to one colour. On
edges it makes jagged lines, and noisy areas are dithered by nature; there it costs bytes and
shows nothing. So, as libimagequant (pngquant) does, the error each pixel takes is scaled by a
*dither map* (:func:`dither_map`): low on edges of the image (second differences), and low
inside short runs of one palette entry in the plain remap, full in long runs with the same
entry above and below. The map is applied at 60% strength: on CQ100 the full map lost too
much of the gain at 64 and 256 colours, none cost too many bytes at 16 (README, "What people
see"). Images over 4 MP are dithered without a map (as libimagequant does above 4 MP).

Three more of libimagequant's rules keep files small and colours true:

- the strength responds as ``1 - (1 - level)^2``, times 15/16 (passing on all of the error
  lets it build up where the wanted colour lies outside the palette's range, and the pixels
  there swing between far-apart entries);
- an error smaller than about 1.4 levels is not diffused (nothing to see; smaller files);
- the carried colour may overshoot the 0-255 range by 10% only, and an error over 2.4 times
  the plain remap's mean squared error is passed on at 75%.

The loop is sequential by nature, so it is compiled: a Cython kernel (``_diffuse.pyx``) that
``pip install`` builds, so that no run compiles anything (numba did, 2.3 s on every first run
after an install, and its cache missed in some installs). For big opaque images the
search for the nearest entry is narrowed by a grid of 32^3 cells over the RGB cube (Heckbert's
"locally sorted search"): each cell lists the only entries that can be nearest to a colour
inside it, those whose distance to the cell is at most the smallest farthest-corner distance
of any entry. A pixel then compares a handful of entries instead of all 256, with the same
answer (ties still go to the lower index); carried colours outside the cube search every
entry.
"""

from __future__ import annotations

import numpy as np

__all__ = ["floyd_steinberg", "dither_map", "candidate_grid"]

# Use the candidate grid above this many (pixel x palette entry) distance evaluations.
_GRID_WORK = 1 << 26
# Cells per channel of the candidate grid (8 levels each).
_GRID_CELLS = 32
# Share of the error passed on at level 1 (see the module docstring).
_ERROR_KEPT = 15.0 / 16.0
# How much the dither map counts: 0 dithers everywhere alike, 1 follows the map fully.
MAP_STRENGTH = 0.6
# Images with more pixels are dithered without a map.
MAP_MAX_PIXELS = 4_000_000
# Carried errors whose squared length (summed over channels, in levels^2) is below this are
# not diffused: libimagequant's 2/256^2 in 0..1 units.
_MIN_ERROR = 2.0
# An error larger than this many times the plain remap's squared error is passed on at 75%.
_LARGE_ERROR = 2.4
# How far the carried colour may leave the 0..255 range, as a share of it.
_OVERSHOOT = 0.1


# Kernel codes of the colour spaces (colorspace.py): diffusion and the nearest-entry search
# both happen in the space the palette was fitted in.
_SPACE_CODES = {"rgb": 0, "oklab": 1, "mixed": 2}


def floyd_steinberg(pixels: np.ndarray, palette: np.ndarray, level: float = 1.0,
                    fixed: np.ndarray | None = None, plain: np.ndarray | None = None,
                    color_space: str = "rgb") -> np.ndarray:
    """(H, W) uint8 labels of ``pixels`` ((H, W, c) uint8) dithered onto ``palette`` ((k, c)
    uint8), the error diffused and the nearest entry found in ``color_space`` (its features
    scaled to the 0..255 range of sRGB levels): where the palette was fitted.

    fixed : (H, W) bool, pixels that keep label 0 (the transparent entry) and pass no error
    plain : (H, W) labels of the plain (nearest-entry) remap; with it, the dither map scales
        the error down where dithering shows nothing (images up to ``MAP_MAX_PIXELS``)
    """
    from .colorspace import lightness_range, to_features

    from ._diffuse import diffuse

    height, width, n_channels = pixels.shape
    if fixed is None:
        fixed = np.zeros((height, width), dtype=np.bool_)
    scale = 255.0 / lightness_range(color_space)
    entries = (to_features(palette, color_space) * scale).astype(np.float32)
    # how far a carried colour may go: the features of the sRGB cube, 10% beyond
    corners = np.array([[r, g, b, a][:n_channels] for r in (0, 255) for g in (0, 255) for b in (0, 255)
                        for a in (0, 255)], dtype=np.uint8)
    reach = to_features(corners, color_space) * scale
    span = reach.max(axis=0) - reach.min(axis=0)
    low = (reach.min(axis=0) - _OVERSHOOT * span).astype(np.float32)
    high = (reach.max(axis=0) + _OVERSHOOT * span).astype(np.float32)
    if plain is not None and height * width <= MAP_MAX_PIXELS:
        levels = dither_map(pixels, plain)
        large_error = _LARGE_ERROR * _squared_error(pixels, palette, plain, color_space, scale)
    else:
        levels = np.full((height, width), 255, dtype=np.uint8)
        large_error = np.inf
    response = (1.0 - (1.0 - level) ** 2) * _ERROR_KEPT / 255.0
    if color_space == "rgb" and n_channels == 3 and height * width * len(palette) > _GRID_WORK:
        cell_starts, cell_entries = candidate_grid(palette.astype(np.float32))
    else:
        cell_starts, cell_entries = np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int32)
    start = np.zeros((height, width), dtype=np.uint8) if plain is None else np.ascontiguousarray(plain, np.uint8)
    neighbours, neighbour_distances = _neighbours(entries)
    return diffuse(np.ascontiguousarray(pixels), entries, _SPACE_CODES[color_space], low, high, levels,
                   np.float32(response), np.ascontiguousarray(fixed).view(np.uint8), np.float32(_MIN_ERROR),
                   np.float32(large_error), cell_starts, cell_entries, start, neighbours, neighbour_distances,
                   *_oklab_constants())


def _oklab_constants():
    """What the kernel needs to compute Oklab and mixed features: the two matrices as float32,
    and the mixed space's weights scaled to the 0..255 range of sRGB levels."""
    from .colorspace import _LMS_TO_OKLAB, _MIXED_OKLAB, _MIXED_RGB, _RGB_TO_LMS

    return (_RGB_TO_LMS.astype(np.float32), _LMS_TO_OKLAB.astype(np.float32), np.float32(_MIXED_RGB * 255.0),
            np.float32(_MIXED_OKLAB * 255.0))


def _neighbours(entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each palette entry, every entry by distance from it (itself first), and those
    distances: where the kernel looks for the nearest entry to a carried colour, from the
    entry nearest to the pixel's own. With 256 entries in the mixed space this searched 12
    times fewer entries than a scan of all of them, for the same answers."""
    differences = entries[:, None, :].astype(np.float64) - entries[None, :, :]
    distances = np.sqrt(np.einsum("ijc,ijc->ij", differences, differences))
    order = np.argsort(distances, axis=1, kind="stable").astype(np.int32)
    return order, np.take_along_axis(distances, order, axis=1)


def _squared_error(pixels: np.ndarray, palette: np.ndarray, labels: np.ndarray, color_space: str,
                   scale: float) -> float:
    """Mean squared feature error of the plain remap per pixel (scaled features), estimated
    on every 7th pixel."""
    from .colorspace import to_features

    flat = pixels.reshape(-1, pixels.shape[2])[::7]
    chosen = palette[labels.reshape(-1)[::7]]
    difference = (to_features(flat, color_space) - to_features(chosen, color_space)) * scale
    return float(np.mean(np.einsum("nc,nc->n", difference, difference)))


def dither_map(pixels: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """(H, W) uint8: how much of its error each pixel takes, 255 = all (libimagequant's
    ``update_dither_map``, vectorised). Scaled down on edges of the image and inside short
    runs of one entry of the plain remap; long runs with the same entry above and below (the
    flat areas that band) keep it. Applied at ``MAP_STRENGTH``."""
    height, width = plain.shape
    change = np.ones((height, width), dtype=bool)
    change[:, 1:] = plain[:, 1:] != plain[:, :-1]
    run = (np.cumsum(change.reshape(-1)) - 1).reshape(height, width)
    n_runs = int(run[-1, -1]) + 1
    length = np.bincount(run.reshape(-1), minlength=n_runs)
    alike = np.zeros((height, width), dtype=np.float32)
    alike[1:] += plain[1:] == plain[:-1]
    alike[:-1] += plain[:-1] == plain[1:]
    alike_count = np.bincount(run.reshape(-1), weights=alike.reshape(-1), minlength=n_runs)
    neighbours = (10.0 * length + 15.0 * alike_count)[run]
    runs = 1.0 - 20.0 / (20.0 + neighbours)
    weight = (flatness(pixels) * (255.0 / 383.0) + 128.0 / 383.0) * runs
    return np.rint(255.0 * (1.0 - MAP_STRENGTH + MAP_STRENGTH * weight)).astype(np.uint8)


def flatness(pixels: np.ndarray) -> np.ndarray:
    """(H, W) float32 in 0..1, 1 where the image is flat and 0 on edges: one minus the
    largest second difference (horizontal or vertical, over channels, in 0..1 units), opened
    by a 3x3 minimum then maximum so that single noisy pixels do not count as edges."""
    values = pixels[..., :3].astype(np.float32) / 255.0
    padded = np.pad(values, ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = padded[1:-1, 1:-1]
    horizontal = np.abs(padded[1:-1, :-2] + padded[1:-1, 2:] - 2.0 * centre).max(axis=-1)
    vertical = np.abs(padded[:-2, 1:-1] + padded[2:, 1:-1] - 2.0 * centre).max(axis=-1)
    flat = np.clip(1.0 - np.maximum(horizontal, vertical), 0.0, 1.0)
    return _filter3(_filter3(flat, np.minimum), np.maximum)


def _filter3(image: np.ndarray, combine) -> np.ndarray:
    """3x3 minimum or maximum filter (edges repeated)."""
    padded = np.pad(image, 1, mode="edge")
    rows = combine(combine(padded[:-2], padded[1:-1]), padded[2:])
    return combine(combine(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def candidate_grid(palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each cell of a 32^3 grid over the RGB cube, the palette entries that can be nearest
    to a whole-level colour in it, ascending: ``cell_entries[cell_starts[i]:cell_starts[i+1]]``
    for cell ``i = (r >> 3) << 10 | (g >> 3) << 5 | b >> 3``.

    The entry nearest to any point of a cell is no farther than the smallest distance from an
    entry to the cell's farthest corner; an entry whose distance to the cell exceeds that
    can never be nearest, and every other one is kept (ties included, so the lowest index
    still wins).
    """
    width = 256 // _GRID_CELLS
    low = np.arange(_GRID_CELLS, dtype=np.float32)[:, None] * width  # (cells, 1)
    high = low + (width - 1)
    entries = palette[:, :3].astype(np.float32).T[:, None, :]  # (3, 1, k)
    below, above = low[None] - entries, entries - high[None]  # (3, cells, k)
    nearest = np.maximum(np.maximum(below, above), 0.0) ** 2  # per channel, to the cell
    farthest = np.maximum(np.abs(below), np.abs(above)) ** 2  # per channel, to its far corner
    n = _GRID_CELLS
    to_cell = nearest[0][:, None, None, :] + nearest[1][None, :, None, :] + nearest[2][None, None, :, :]
    to_corner = farthest[0][:, None, None, :] + farthest[1][None, :, None, :] + farthest[2][None, None, :, :]
    bound = to_corner.min(axis=-1, keepdims=True)
    candidates = (to_cell <= bound).reshape(n * n * n, -1)
    cell_starts = np.zeros(n * n * n + 1, dtype=np.int32)
    np.cumsum(candidates.sum(axis=1), out=cell_starts[1:])
    cell_entries = np.nonzero(candidates)[1].astype(np.int32)
    return cell_starts, cell_entries
