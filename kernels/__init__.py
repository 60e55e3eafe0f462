"""Kernel library, installed as ``optimizer.kernels``.

Backends live in subpackages (``reference``, ``numba``, ``native``, ``triton``, ...), each kernel
registered explicitly in the kernel registry. The graph optimizer does not depend on it.
"""
