"""CUDA C++ kernels compiled ahead of time with NVRTC (installed as ``optimizer.kernels.cuda``).

Hand-written kernels for ops where a plain CUDA kernel is the natural tool (row gathers,
resize). Each implements a native entry's plan-step contract (``kernels/native/params.md``)
like its Triton twin; see :mod:`.plans` for the launches and :mod:`.nvrtc` for compiling.
"""
