"""Compress a scikit-image photograph to 16 colours with a Gaussian mixture; each pixel takes its most probable component.

    python examples/gmm.py [OUTPUT.png]
"""

import sys

from skimage import data

import colorquant as cq

output = sys.argv[1] if len(sys.argv) > 1 else "chelsea-gmm-k16.png"
result = cq.quantize(data.chelsea(), n_colors=16, method="gmm", metrics=["ssim"])
result.save(output, overwrite=True)

figures = result.metrics
print(f"{output}: {result.n_colors} colours, PSNR {figures.psnr:.2f} dB, "
      f"SSIM {figures.ssim:.3f}, {figures.bytes:,} bytes ({figures.bpp:.2f} bits per pixel)")
print("palette (RGB):", result.palette.tolist())
