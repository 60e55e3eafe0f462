"""Triton GPU kernels (installed as ``optimizer.kernels.triton``).

Each kernel is the GPU twin of a native CPU kernel (same plan-step contract, see
``kernels/native/params.md``) and registers a plan function in :mod:`.launch`. Tests run them on
the CPU under ``TRITON_INTERPRET=1``; modules carry them as cubins compiled ahead of time.
"""
