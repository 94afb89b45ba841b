"""Build hook for the optional C fast path of sacct ingestion (nomade.slurm._sacct_scan).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler the
install goes on and nomade uses its pure-Python reader (same results, slower)."""

from setuptools import Extension, setup

from glob import glob

setup(ext_modules=[Extension("nomade.slurm._sacct_scan", ["src/nomade/slurm/_sacct_scan.c"],
                             depends=glob("src/nomade/slurm/csrc/*.h"),
                             optional=True, extra_compile_args=["-O2"])])
