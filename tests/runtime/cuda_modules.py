"""Hand-written modules that target cuda (format version 2), for the runtime tests.

The standard cuda module: ``y = (2 x + w) + z`` (through the step's workspace) and
``s = w - y``, in three cubin steps of two kernels (``axpb``, ``add_ws``; CUDA_SOURCE). CPU-only
tests write it with a placeholder cubin: every check of the loader runs before the driver is
opened, so validation is testable without a GPU. GPU tests compile CUDA_SOURCE with nvcc.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.runtime.module_builder import ModuleBuilder

#: Placeholder for CPU-only tests (never handed to a driver).
FAKE_CUBIN = b"\x7fELF placeholder cubin for loader tests"

CUDA_SOURCE = r"""
extern "C" __global__ void axpb(const float* x, const float* b, float* y, int n, float alpha,
                                const float* unused) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = alpha * x[i] + b[i];
}

// y = x + 1 through dynamic shared memory (n floats per block, one block): needs the opt-in
// above 48 KiB when n > 12288.
extern "C" __global__ void shared_copy(const float* x, float* y, int n) {
  extern __shared__ float buffer[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) buffer[i] = x[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) y[n - 1 - i] = buffer[n - 1 - i] + 1.0f;
}

extern "C" __global__ void add_ws(const float* a, const float* b, float* y, long long n,
                                  float* ws) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    ws[i] = a[i] + b[i];
    y[i] = ws[i];
  }
}
"""

AXPB_PARAMS = ["ptr", "ptr", "ptr", "i32", "f32", "ptr"]
ADD_WS_PARAMS = ["ptr", "ptr", "ptr", "i64", "ptr"]
SHARED_COPY_PARAMS = ["ptr", "ptr", "i32"]
THREADS = 128  # num_warps 4


def have_cuda_driver() -> bool:
    return ctypes.util.find_library("cuda") is not None


def compile_cubin(directory: Path, arch: str = "sm_90") -> bytes | None:
    """CUDA_SOURCE built with nvcc -cubin, or None when there is no nvcc."""
    nvcc = shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc", "/usr/local/bin/nvcc") if os.path.exists(p)),
        None,
    )
    if nvcc is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "kernels.cu"
    source.write_text(CUDA_SOURCE)
    out = directory / "kernels.cubin"
    subprocess.run(
        [nvcc, "-cubin", f"-arch={arch}", "-O2", "-o", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out.read_bytes()


def weights_for(shape: Sequence[int]) -> np.ndarray:
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32).reshape(shape) / n - 0.5).astype(np.float32)


def cuda_standard_module(
    directory: Path, cubin: bytes = FAKE_CUBIN, shape: Sequence[int] = (2, 4)
) -> Path:
    """Writes the standard cuda module (see the module docstring)."""
    n = int(np.prod(shape))
    grid = [(n + THREADS - 1) // THREADS, 1, 1]
    m = ModuleBuilder(target="cuda")
    x = m.input("x", shape)
    z = m.input("z", shape)
    w = m.weight("w", weights_for(shape))
    h = m.arena("h", shape)
    y = m.output("y", shape)
    s = m.output("s", shape)
    k_axpb = m.cubin_kernel("test.axpb", "axpb", cubin, AXPB_PARAMS)
    k_add = m.cubin_kernel("test.add_ws", "add_ws", cubin, ADD_WS_PARAMS)
    m.step(
        k_axpb,
        [x, w],
        [h],
        node="scale",
        grid=grid,
        args=[{"in": 0}, {"in": 1}, {"out": 0}, {"i32": n}, {"f32": 2.0}, {"null": 0}],
    )
    m.step(
        k_add,
        [h, z],
        [y],
        node="residual",
        workspace=n * 4,
        grid=grid,
        args=[{"in": 0}, {"in": 1}, {"out": 0}, {"i64": n}, {"workspace": 0}],
    )
    m.step(
        k_axpb,
        [y, w],
        [s],
        node="negate",
        grid=grid,
        args=[{"in": 0}, {"in": 1}, {"out": 0}, {"i32": n}, {"f32": -1.0}, {"null": 0}],
    )
    return m.write(directory)


def cuda_standard_reference(x: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    w = weights_for(x.shape)
    y = 2 * x + w + z
    return {"y": y, "s": w - y}


def cuda_chain_module(directory: Path, cubin: bytes, steps: int, n: int = 256) -> Path:
    """``steps`` tiny dependent launches (y_k = 1 * y_{k-1} + w): the host-overhead benchmark's
    plan. The output is x + steps * w."""
    m = ModuleBuilder(target="cuda")
    x = m.input("x", [n])
    w = m.weight("w", weights_for([n]))
    k = m.cubin_kernel("test.axpb", "axpb", cubin, AXPB_PARAMS)
    grid = [(n + THREADS - 1) // THREADS, 1, 1]
    previous = x
    buffers = [m.arena("a", [n]), m.arena("b", [n])]
    for i in range(steps):
        out = m.output("y", [n]) if i == steps - 1 else buffers[i % 2]
        m.step(
            k,
            [previous, w],
            [out],
            node=f"step{i}",
            grid=grid,
            args=[{"in": 0}, {"in": 1}, {"out": 0}, {"i32": n}, {"f32": 1.0}, {"null": 0}],
        )
        previous = out
    return m.write(directory)
