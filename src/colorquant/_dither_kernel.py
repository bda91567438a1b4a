"""The compiled loop of :mod:`colorquant.dither`: serpentine error diffusion with the nearest
entry found in the palette's colour space.

Module-level functions so that numba caches the machine code on disk (``cache=True``): a
closure is compiled again in every process, which cost each ``--dither`` run 2 s. The first
run after an install compiles and stores it (``__pycache__``, or numba's user cache folder
where that is read-only).
"""

import warnings

import numpy as np
from numba import njit
from numba.core.errors import NumbaWarning

from .colorspace import _LMS_TO_OKLAB, _MIXED_OKLAB, _MIXED_RGB, _RGB_TO_LMS

warnings.simplefilter("ignore", NumbaWarning)  # e.g. a read-only cache folder
rgb_to_lms = _RGB_TO_LMS.astype(np.float32)
lms_to_oklab = _LMS_TO_OKLAB.astype(np.float32)
# features are scaled to the 0..255 range of sRGB levels (see floyd_steinberg)
mixed_rgb = np.float32(_MIXED_RGB * 255.0)
mixed_oklab = np.float32(_MIXED_OKLAB * 255.0)


@njit(cache=True, nogil=True)
def features_of(pixel, space, out):
    """The pixel's colour (uint8 R, G, B[, A]) as scaled features of ``space``."""
    n = pixel.shape[0]
    if space == 0:
        for c in range(n):
            out[c] = pixel[c]
        return
    linear = np.empty(3, dtype=np.float32)
    for c in range(3):
        v = pixel[c] / np.float32(255.0)
        linear[c] = v / np.float32(12.92) if v <= 0.04045 else ((v + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4)
    lms = np.empty(3, dtype=np.float32)
    for i in range(3):
        s = rgb_to_lms[i, 0] * linear[0] + rgb_to_lms[i, 1] * linear[1] + rgb_to_lms[i, 2] * linear[2]
        lms[i] = np.cbrt(s)
    first = 0
    scale = np.float32(255.0)
    if space == 2:
        for c in range(3):
            out[c] = pixel[c] * mixed_rgb
        first, scale = 3, mixed_oklab
    for i in range(3):
        out[first + i] = scale * (lms_to_oklab[i, 0] * lms[0] + lms_to_oklab[i, 1] * lms[1]
                                  + lms_to_oklab[i, 2] * lms[2])
    if n == 4:
        out[first + 3] = pixel[3]


@njit(cache=True, nogil=True)
def diffuse(pixels, palette, space, low, high, levels, level_scale, fixed, min_error,
            large_error, cell_starts, cell_entries, start, neighbours, neighbour_distances):
    height, width, _ = pixels.shape
    n_entries, n_features = palette.shape
    labels = np.zeros((height, width), dtype=np.uint8)
    error_here = np.zeros((width + 2, n_features), dtype=np.float32)
    error_below = np.zeros((width + 2, n_features), dtype=np.float32)
    carried = np.zeros(n_features, dtype=np.float32)
    wanted = np.zeros(n_features, dtype=np.float32)
    actual = np.zeros(n_features, dtype=np.float32)
    target = np.zeros(n_features, dtype=np.float32)
    use_grid = cell_starts.shape[0] > 1
    for y in range(height):
        forward = (y % 2) == 0
        for step in range(width):
            x = step if forward else width - 1 - step
            if fixed[y, x]:
                labels[y, x] = 0
                continue
            scale = levels[y, x] * level_scale
            size = 0.0
            for c in range(n_features):
                carried[c] = error_here[x + 1, c] * scale
                size += carried[c] * carried[c]
            features_of(pixels[y, x], space, wanted)
            inside = True
            for c in range(n_features):
                value = wanted[c] + (carried[c] if size >= min_error else 0.0)
                actual[c] = min(high[c], max(low[c], value))
                # sRGB is searched in whole levels (what the candidate grid lists for);
                # the error keeps the fraction
                target[c] = np.floor(actual[c] + 0.5) if space == 0 else actual[c]
                if target[c] < 0.0 or target[c] > 255.0:
                    inside = False
            if use_grid and inside:  # sRGB only; _GRID_CELLS = 32 per channel: drop 3 bits
                cell = ((int(target[0]) >> 3) << 10) | ((int(target[1]) >> 3) << 5) | (int(target[2]) >> 3)
                best = 0
                best_distance = np.inf
                for j in range(cell_starts[cell], cell_starts[cell + 1]):
                    k = cell_entries[j]
                    distance = 0.0
                    for c in range(n_features):  # stop as soon as it cannot win
                        d = target[c] - palette[k, c]
                        distance += d * d
                        if distance >= best_distance:
                            break
                    if distance < best_distance:
                        best_distance = distance
                        best = k
            else:
                # Start from the entry nearest to the pixel's own colour; an entry nearer to
                # the target than the best so far lies within (distance to the start +
                # best distance) of the start (triangle inequality), so the start's
                # neighbours are scanned in order of distance up to that reach.
                best = start[y, x]
                best_distance = 0.0
                for c in range(n_features):
                    d = target[c] - palette[best, c]
                    best_distance += d * d
                from_start = np.sqrt(best_distance)
                first = best
                for j in range(n_entries):
                    reach = from_start + np.sqrt(best_distance)
                    if neighbour_distances[first, j] > reach * 1.0001 + 0.001:  # float slack
                        break
                    k = neighbours[first, j]
                    distance = 0.0
                    for c in range(n_features):  # stop as soon as it cannot win
                        d = target[c] - palette[k, c]
                        distance += d * d
                        if distance > best_distance:
                            break
                    # ties go to the lower index, as a scan of every entry in order gives
                    if distance < best_distance or (distance == best_distance and k < best):
                        best_distance = distance
                        best = k
            labels[y, x] = best
            kept = 0.75 if best_distance > large_error else 1.0
            ahead = x + 2 if forward else x
            behind = x if forward else x + 2
            for c in range(n_features):
                error = (actual[c] - palette[best, c]) * kept
                error_here[ahead, c] += error * 0.4375
                error_below[behind, c] += error * 0.1875
                error_below[x + 1, c] += error * 0.3125
                error_below[ahead, c] += error * 0.0625
        error_here, error_below = error_below, error_here
        error_below[:, :] = 0.0
    return labels
