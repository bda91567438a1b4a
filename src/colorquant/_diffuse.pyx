# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled loop of :mod:`colorquant.dither`: serpentine error diffusion with the nearest
entry found in the palette's colour space.

Built by ``pip install`` (Cython, then the C compiler), so nothing is compiled when it runs.
The arithmetic keeps the types of the numba kernel it replaces, operation by operation
(float32 where that kept float32, float64 where numba promoted), so the labels are the same:
features and carried errors are float32, distances and the clamped sum float64.
"""

import numpy as np

from libc.math cimport cbrt, floor, pow, sqrt, INFINITY


cdef inline void _features(const unsigned char* pixel, int n, int space, const float[:, ::1] rgb_to_lms,
                           const float[:, ::1] lms_to_oklab, float mixed_rgb, float mixed_oklab,
                           float* out) noexcept nogil:
    """The pixel's colour (uint8 R, G, B[, A]) as scaled features of ``space`` (0 sRGB,
    1 Oklab, 2 mixed)."""
    cdef float linear[3]
    cdef float lms[3]
    cdef float v, s, scale
    cdef int c, i, first
    if space == 0:
        for c in range(n):
            out[c] = <float>pixel[c]
        return
    for c in range(3):
        v = <float>pixel[c] / <float>255.0
        if <double>v <= 0.04045:
            linear[c] = v / <float>12.92
        else:
            # numba took the power and the cube root below in float64, rounded to float32
            linear[c] = <float>pow(<double>((v + <float>0.055) / <float>1.055), <double>(<float>2.4))
    for i in range(3):
        s = rgb_to_lms[i, 0] * linear[0] + rgb_to_lms[i, 1] * linear[1] + rgb_to_lms[i, 2] * linear[2]
        lms[i] = <float>cbrt(<double>s)
    first = 0
    scale = <float>255.0
    if space == 2:
        for c in range(3):
            out[c] = <float>pixel[c] * mixed_rgb
        first = 3
        scale = mixed_oklab
    for i in range(3):
        out[first + i] = scale * (lms_to_oklab[i, 0] * lms[0] + lms_to_oklab[i, 1] * lms[1]
                                  + lms_to_oklab[i, 2] * lms[2])
    if n == 4:
        out[first + 3] = <float>pixel[3]


def diffuse(const unsigned char[:, :, ::1] pixels, const float[:, ::1] palette, int space,
            const float[::1] low, const float[::1] high, const unsigned char[:, ::1] levels, float level_scale,
            const unsigned char[:, ::1] fixed, float min_error, float large_error,
            const int[::1] cell_starts, const int[::1] cell_entries, const unsigned char[:, ::1] start,
            const int[:, ::1] neighbours, const double[:, ::1] neighbour_distances,
            const float[:, ::1] rgb_to_lms, const float[:, ::1] lms_to_oklab, float mixed_rgb, float mixed_oklab):
    """(H, W) uint8 labels: see :func:`colorquant.dither.floyd_steinberg`."""
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1]
    cdef int n_channels = pixels.shape[2]
    cdef int n_entries = palette.shape[0], n_features = palette.shape[1]
    labels_array = np.zeros((height, width), dtype=np.uint8)
    cdef unsigned char[:, ::1] labels = labels_array
    rows = np.zeros((2, width + 2, n_features), dtype=np.float32)
    cdef float[:, :, ::1] errors = rows
    cdef float carried[8]
    cdef float wanted[8]
    cdef float actual[8]
    cdef float target[8]
    cdef bint use_grid = cell_starts.shape[0] > 1
    cdef Py_ssize_t y, step, x, j, ahead, behind
    cdef int c, k, best, first, cell, here_row = 0, below_row = 1
    cdef bint forward, inside
    cdef float scale, d, error32
    cdef double size, value, distance, best_distance, from_start, reach, kept, error
    with nogil:
        for y in range(height):
            forward = (y % 2) == 0
            for step in range(width):
                x = step if forward else width - 1 - step
                if fixed[y, x]:
                    labels[y, x] = 0
                    continue
                scale = <float>levels[y, x] * level_scale
                size = 0.0
                for c in range(n_features):
                    carried[c] = errors[here_row, x + 1, c] * scale
                    size += <double>(carried[c] * carried[c])
                _features(&pixels[y, x, 0], n_channels, space, rgb_to_lms, lms_to_oklab, mixed_rgb, mixed_oklab, wanted)
                inside = True
                for c in range(n_features):
                    value = <double>wanted[c] + (<double>carried[c] if size >= <double>min_error else 0.0)
                    value = max(<double>low[c], value)
                    actual[c] = <float>min(<double>high[c], value)
                    # sRGB is searched in whole levels (what the candidate grid lists for);
                    # the error keeps the fraction
                    if space == 0:
                        target[c] = <float>floor(<double>actual[c] + 0.5)
                    else:
                        target[c] = actual[c]
                    if target[c] < 0.0 or target[c] > 255.0:
                        inside = False
                if use_grid and inside:  # sRGB only; 32 cells per channel: drop 3 bits
                    cell = ((<int>target[0] >> 3) << 10) | ((<int>target[1] >> 3) << 5) | (<int>target[2] >> 3)
                    best = 0
                    best_distance = INFINITY
                    for j in range(cell_starts[cell], cell_starts[cell + 1]):
                        k = cell_entries[j]
                        distance = 0.0
                        for c in range(n_features):  # stop as soon as it cannot win
                            d = target[c] - palette[k, c]
                            distance += <double>(d * d)
                            if distance >= best_distance:
                                break
                        if distance < best_distance:
                            best_distance = distance
                            best = k
                else:
                    # Start from the entry nearest to the pixel's own colour; an entry nearer
                    # to the target than the best so far lies within (distance to the start +
                    # best distance) of the start (triangle inequality), so the start's
                    # neighbours are scanned in order of distance up to that reach.
                    best = start[y, x]
                    best_distance = 0.0
                    for c in range(n_features):
                        d = target[c] - palette[best, c]
                        best_distance += <double>(d * d)
                    from_start = sqrt(best_distance)
                    first = best
                    for j in range(n_entries):
                        reach = from_start + sqrt(best_distance)
                        if neighbour_distances[first, j] > reach * 1.0001 + 0.001:  # float slack
                            break
                        k = neighbours[first, j]
                        distance = 0.0
                        for c in range(n_features):  # stop as soon as it cannot win
                            d = target[c] - palette[k, c]
                            distance += <double>(d * d)
                            if distance > best_distance:
                                break
                        # ties go to the lower index, as a scan of every entry in order gives
                        if distance < best_distance or (distance == best_distance and k < best):
                            best_distance = distance
                            best = k
                labels[y, x] = <unsigned char>best
                kept = 0.75 if best_distance > <double>large_error else 1.0
                ahead = x + 2 if forward else x
                behind = x if forward else x + 2
                for c in range(n_features):
                    error32 = actual[c] - palette[best, c]
                    error = <double>error32 * kept
                    errors[here_row, ahead, c] = <float>(<double>errors[here_row, ahead, c] + error * 0.4375)
                    errors[below_row, behind, c] = <float>(<double>errors[below_row, behind, c] + error * 0.1875)
                    errors[below_row, x + 1, c] = <float>(<double>errors[below_row, x + 1, c] + error * 0.3125)
                    errors[below_row, ahead, c] = <float>(<double>errors[below_row, ahead, c] + error * 0.0625)
            here_row, below_row = below_row, here_row
            for x in range(width + 2):
                for c in range(n_features):
                    errors[below_row, x, c] = 0.0
    return labels_array


def features(const unsigned char[:, ::1] pixels, int space, const float[:, ::1] rgb_to_lms,
             const float[:, ::1] lms_to_oklab, float mixed_rgb, float mixed_oklab):
    """(n, n_features) float32 features of n pixels as the kernel computes them (for tests)."""
    cdef Py_ssize_t n = pixels.shape[0], i
    cdef int n_channels = pixels.shape[1]
    cdef int n_features = n_channels + (3 if space == 2 else 0)
    result = np.zeros((n, n_features), dtype=np.float32)
    cdef float[:, ::1] out = result
    with nogil:
        for i in range(n):
            _features(&pixels[i, 0], n_channels, space, rgb_to_lms, lms_to_oklab, mixed_rgb, mixed_oklab, &out[i, 0])
    return result
