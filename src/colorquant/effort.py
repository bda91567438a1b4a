"""What ``--speed`` changes: pngquant's scale, 1 (slowest, best) to 11 (fastest), default 4.

One :class:`Effort` per level, as data: the size of the pixel-weighted sample k-means fits
on, its Lloyd iterations, the swaps that try to leave a local minimum, the Lloyd steps on
the whole histogram after a sampled fit, and the deflate level of the PNG. The figures of
each level on CQ100 are in README (``benchmarks/speed.py`` measures them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Effort", "EFFORTS", "effort_for", "MIN_SPEED", "MAX_SPEED", "DEFAULT_SPEED"]

MIN_SPEED, MAX_SPEED, DEFAULT_SPEED = 1, 11, 4


@dataclass(frozen=True)
class Effort:
    """How hard one speed level works.

    draws_per_color : pixels drawn for the k-means sample per palette entry, rounded up to a
        power of two within [min_draws, max_draws] (repeats fold into weights)
    seed_draws : pixels drawn for the k-means++ seeding sample (seeding costs points x seeds)
    restarts : independent seedings, the fit with the least error kept
    bit_depths : with 16 colours or fewer, "packed" writes the PNG at the smallest bit depth,
        "byte" at 8 bits, "both" compresses both and keeps the smaller. Photos' labels often
        compress better unpacked: on CQ100 at 16 colours 8 bits were 1.6% smaller in total
        than 4, the better of the two 1.8%, for twice the deflate time
    lloyd_iterations : at most this many Lloyd iterations from the seeds
    swaps : swap attempts after Lloyd (see methods/kmeans.py), each settled by
        ``swap_iterations`` Lloyd iterations and kept only if the error fell
    refine_steps : Lloyd steps on every distinct colour after a sampled fit
    deflate_level : libdeflate level of PNG output up to ``big_image_pixels``; larger images
        get at most ``big_image_deflate_level`` (levels 10-12 cost 20x level 6 per byte)
    palette_orders : how the PNG's entries are ordered (see encoding.encode_png): "popularity"
        (the most used first), or "both" (that and the order of the fit, the smaller kept)
    """

    draws_per_color: int
    min_draws: int
    max_draws: int
    lloyd_iterations: int
    swaps: int
    swap_iterations: int
    refine_steps: int
    deflate_level: int
    seed_draws: int = 8192
    restarts: int = 1
    bit_depths: str = "byte"
    big_image_deflate_level: int = 6
    big_image_pixels: int = 4_000_000
    palette_orders: str = "popularity"

    def sample_draws(self, n_colors: int) -> int:
        wanted = self.draws_per_color * max(1, n_colors)
        return min(self.max_draws, max(self.min_draws, 1 << (wanted - 1).bit_length()))

    def deflate_level_for(self, n_pixels: int) -> int:
        if n_pixels > self.big_image_pixels:
            return min(self.deflate_level, self.big_image_deflate_level)
        return self.deflate_level


# draws/colour, min and max draws, Lloyd iterations, swaps, their iterations, refine steps,
# deflate level; then seeding draws and restarts. Level 4 is the default; see README for
# what each level measured on CQ100.
EFFORTS = {
    1: Effort(1024, 16384, 65536, 50, 6, 5, 3, 12, restarts=4, big_image_deflate_level=9, bit_depths="both",
               palette_orders="both"),
    2: Effort(1024, 16384, 65536, 40, 4, 5, 2, 12, restarts=2, big_image_deflate_level=9, bit_depths="both",
               palette_orders="both"),
    3: Effort(512, 16384, 32768, 30, 3, 5, 2, 11, bit_depths="both", palette_orders="both"),
    4: Effort(256, 8192, 16384, 20, 2, 4, 1, 10),
    5: Effort(256, 8192, 16384, 15, 1, 4, 1, 10, seed_draws=4096),
    6: Effort(128, 8192, 16384, 12, 1, 3, 1, 9, seed_draws=4096),
    7: Effort(128, 4096, 8192, 10, 0, 0, 1, 9, seed_draws=4096, bit_depths="packed"),
    8: Effort(64, 4096, 8192, 8, 0, 0, 0, 8, seed_draws=2048, bit_depths="packed"),
    9: Effort(64, 4096, 8192, 6, 0, 0, 0, 6, seed_draws=2048, bit_depths="packed"),
    10: Effort(32, 2048, 4096, 4, 0, 0, 0, 4, seed_draws=2048, bit_depths="packed"),
    11: Effort(32, 2048, 4096, 3, 0, 0, 0, 1, seed_draws=2048, bit_depths="packed"),
}


def effort_for(speed: int) -> Effort:
    return EFFORTS[speed]
