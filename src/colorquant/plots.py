"""Figures: the methods side by side, with their palettes. matplotlib is imported here only."""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["comparison_figure", "curve_figure", "figure_png"]


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


def comparison_figure(original: np.ndarray, results: dict, *, titles: dict | None = None,
                      original_bytes: int | None = None):
    """Original | one panel per result, each titled with PSNR, SSIM and size, palettes below.

    original : (H, W, 3|4) uint8
    results : {method name: QuantizedImage}
    """
    plt = _pyplot()
    titles = titles or {}
    n_panels = 1 + len(results)
    height, width = original.shape[:2]
    panel_width = 4.0
    image_height = panel_width * height / width
    swatch_height = 0.35 * panel_width / 4.0
    figure = plt.figure(figsize=(panel_width * n_panels, image_height + swatch_height + 0.9))
    grid = figure.add_gridspec(2, n_panels, height_ratios=[image_height, swatch_height],
                               hspace=0.04, wspace=0.05)
    ax = figure.add_subplot(grid[0, 0])
    _show(ax, original)
    size = f"\n{original_bytes / 1024:.0f} KiB as 24-bit PNG" if original_bytes else ""
    ax.set_title(f"Original{size}", fontsize=10)
    for column, (name, result) in enumerate(results.items(), start=1):
        figures = result.metrics
        ax = figure.add_subplot(grid[0, column])
        _show(ax, result.to_array())
        psnr = "inf" if math.isinf(figures.psnr) else f"{figures.psnr:.2f} dB"
        ssim = "n/a" if figures.ssim is None else f"{figures.ssim:.3f}"
        ax.set_title(
            f"{titles.get(name, name)} ({figures.n_colors} colours)\n"
            f"PSNR {psnr} · SSIM {ssim} · {figures.bytes / 1024:.0f} KiB",
            fontsize=10,
        )
        _swatches(figure.add_subplot(grid[1, column]), result.palette)
    return figure


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
    ax.set_ylabel({"psnr": "PSNR (dB)", "mse": "MSE", "ssim": "SSIM"}[metric])
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
