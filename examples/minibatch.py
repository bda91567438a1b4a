"""Compress a scikit-image photograph to 16 colours with Mini-Batch K-Means fed pixel chunks (bounded memory on big images).

    python examples/minibatch.py [OUTPUT.png]
"""

import sys

from skimage import data

import colorquant as cq

output = sys.argv[1] if len(sys.argv) > 1 else "chelsea-minibatch-k16.png"
result = cq.quantize(data.chelsea(), n_colors=16, method="minibatch", metrics=["ssim"])
result.save(output, overwrite=True)

figures = result.metrics
print(f"{output}: {result.n_colors} colours, PSNR {figures.psnr:.2f} dB, "
      f"SSIM {figures.ssim:.3f}, {figures.bytes:,} bytes ({figures.bpp:.2f} bits per pixel)")
print("palette (RGB):", result.palette.tolist())
