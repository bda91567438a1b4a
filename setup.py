"""The compiled kernel (error diffusion, ``colorquant._diffuse``); everything else is in
pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("colorquant._diffuse", ["src/colorquant/_diffuse.pyx"],
               # no fused multiply-add: the same float rounding on every machine, as the
               # labels (and so the bytes) must not depend on the CPU
               extra_compile_args=["-O2", "-ffp-contract=off"])],
    compiler_directives={"language_level": 3}))
