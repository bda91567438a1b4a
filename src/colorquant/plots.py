"""Figures: the methods side by side, with their palettes. matplotlib is imported here only."""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["comparison_figure", "curve_figure", "figure_png", "smooth_gradient_crop"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _show(ax, pixels: np.ndarray) -> None:
    if pixels.shape[-1] == 4:  # transparency as a light checkerboard
        height, width = pixels.shape[:2]
        board = ((np.indices((height, width)) // 8).sum(axis=0) % 2) * 40 + 200
        alpha = pixels[..., 3:4] / 255.0
        pixels = (pixels[..., :3] * alpha + board[..., None] * (1 - alpha)).astype(np.uint8)
    ax.imshow(pixels, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _swatches(ax, palette: np.ndarray) -> None:
    per_row = min(32, len(palette))
    rows = math.ceil(len(palette) / per_row)
    grid = np.full((rows * per_row, 3), 255, dtype=np.uint8)
    grid[: len(palette)] = palette[:, :3]
    ax.imshow(grid.reshape(rows, per_row, 3), interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])


def smooth_gradient_crop(pixels: np.ndarray, size: int = 64) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window that looks most like a smooth gradient: a wide span of
    tones with little texture (small second differences, which vanish on a linear ramp) and
    no edges (no single big step). That is where a small palette bands and dithering helps."""
    height, width = pixels.shape[:2]
    size = max(1, min(size, height, width))
    grey = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    step = max(1, size // 2)
    best_score, best = -1.0, (0, 0)
    for top in range(0, height - size + 1, step):
        for left in range(0, width - size + 1, step):
            block = grey[top : top + size, left : left + size]
            span = float(block.max() - block.min())
            texture = edges = 0.0
            if size >= 3:
                texture = float(np.abs(np.diff(block, 2, axis=0)).mean()
                                + np.abs(np.diff(block, 2, axis=1)).mean())
                # an edge is one big step; a gradient is many small ones
                edges = float(np.percentile(np.abs(np.diff(block, axis=0)), 99)
                              + np.percentile(np.abs(np.diff(block, axis=1)), 99))
            score = span / (1.0 + 4.0 * texture + edges)
            if score > best_score:
                best_score, best = score, (top, left)
    top, left = best
    return slice(top, top + size), slice(left, left + size)


def comparison_figure(original: np.ndarray, rows: list, *, original_bytes: int | None = None,
                      zoom: bool = False):
    """Original | one panel per result, each titled with its figures and size, palettes below;
    with ``zoom``, a row of enlarged crops of the smoothest gradient area.

    original : (H, W, 3|4) uint8
    rows : ``(title, QuantizedImage, Metrics)`` per panel; the default figures go on the
        first line under the title, any other computed ones (CIEDE2000, ...) on the next
    """
    plt = _pyplot()
    n_panels = 1 + len(rows)
    height, width = original.shape[:2]
    panel_width = 4.0
    image_height = panel_width * height / width
    swatch_height = 0.35 * panel_width / 4.0
    grid_rows, ratios = 2, [image_height, swatch_height]
    if zoom:
        grid_rows, ratios = 3, [image_height, panel_width * 0.75, swatch_height]
    figure = plt.figure(figsize=(panel_width * n_panels, sum(ratios) + 1.1 * (grid_rows - 1)))
    grid = figure.add_gridspec(grid_rows, n_panels, height_ratios=ratios, hspace=0.2 if zoom else 0.04,
                               wspace=0.05)
    crop = smooth_gradient_crop(original) if zoom else None
    ax = figure.add_subplot(grid[0, 0])
    _show(ax, original)
    size = f"\n{original_bytes / 1024:.0f} KiB as 24-bit PNG" if original_bytes else ""
    ax.set_title(f"Original{size}", fontsize=10)
    if zoom:
        ax.add_patch(_crop_outline(crop))
        zoomed = figure.add_subplot(grid[1, 0])
        _show(zoomed, original[crop])
        zoomed.set_title("zoom: smoothest gradient", fontsize=9)
    for column, (title, result, measured) in enumerate(rows, start=1):
        ax = figure.add_subplot(grid[0, column])
        quantized = result.to_array()
        _show(ax, quantized)
        ax.set_title(_panel_title(title, measured), fontsize=10)
        if zoom:
            _show(figure.add_subplot(grid[1, column]), quantized[crop])
        _swatches(figure.add_subplot(grid[grid_rows - 1, column]), result.palette)
    return figure


def _panel_title(title: str, measured) -> str:
    from .metrics import METRICS

    def text(name, value):
        metric = METRICS[name]
        if math.isinf(value):
            return f"{metric.title} inf"
        digits = 3 if metric.target_bounds is not None and metric.target_bounds[1] <= 1 else 2  # SSIM's 0-1 scale
        return f"{metric.title} {value:.{digits}f}" + (f" {metric.unit}" if metric.unit else "")

    shown = {name: value for name, value in measured.values.items() if name != "mse"}
    first = [text(n, v) if v is not None else f"{METRICS[n].title} n/a"
             for n, v in shown.items() if METRICS[n].default]
    second = [text(n, v) for n, v in shown.items() if not METRICS[n].default and v is not None]
    lines = [f"{title} ({measured.n_colors} colours)",
             " · ".join(first + [f"{measured.bytes / 1024:.0f} KiB"])]
    if second:
        lines.append(" · ".join(second))
    return "\n".join(lines)


def _crop_outline(crop):
    from matplotlib.patches import Rectangle

    rows, columns = crop
    return Rectangle((columns.start - 0.5, rows.start - 0.5), columns.stop - columns.start,
                     rows.stop - rows.start, fill=False, edgecolor="yellow", linewidth=1.5)


def curve_figure(curves: dict, *, metric: str, target=None, chosen: dict | None = None,
                 titles: dict | None = None, image_name: str = ""):
    """Quality against colour count (log scale) per method; the target as a dashed line and
    each method's chosen count as a marker.

    curves : {method: [(n_colors, value), ...]}
    chosen : {method: (n_colors, value)} found by the search, or None where it found none
    """
    plt = _pyplot()
    titles, chosen = titles or {}, chosen or {}
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for method, points in curves.items():
        counts, values = zip(*points)
        values = [min(v, 100.0) for v in values]  # lossless PSNR is infinite
        (line,) = ax.plot(counts, values, marker="o", markersize=3, label=titles.get(method, method))
        if chosen.get(method):
            count, value = chosen[method]
            ax.plot([count], [min(value, 100.0)], marker="*", markersize=14, color=line.get_color(),
                    linestyle="none", label=f"{titles.get(method, method)}: {count} colours")
    if target is not None:
        ax.axhline(target.value, color="grey", linestyle="--", linewidth=1, label=f"target {target.describe()}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("colours")
    from .metrics import METRICS

    unit = METRICS[metric].unit
    ax.set_ylabel(METRICS[metric].title + (f" ({unit})" if unit else ""))
    ax.set_title(f"Quality against colour count{': ' + image_name if image_name else ''}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def figure_png(figure, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (written atomically by the caller); the figure is closed."""
    plt = _pyplot()
    buffer = io.BytesIO()
    # Fixed metadata keeps the bytes the same from run to run.
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight",
                   metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
