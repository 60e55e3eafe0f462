"""The launch contract: a TritonLaunch runs through Triton's launcher and describes its signature."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    F32,
    I32,
    NULL,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
)


@triton.jit
def _axpb_kernel(x_ptr, b_ptr, y_ptr, n, alpha, HAS_B: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    y = tl.load(x_ptr + offs, mask=mask).to(tl.float32) * alpha
    if HAS_B:
        y += tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def _launch(n: int, has_b: bool) -> TritonLaunch:
    block = 64
    return TritonLaunch(
        name="triton.test_axpb",
        kernel=_axpb_kernel,
        args={
            "x_ptr": In(0),
            "b_ptr": In(1) if has_b else NULL,
            "y_ptr": Out(0),
            "n": I32(n),
            "alpha": F32(2.5),
        },
        constexprs={"HAS_B": has_b, "BLOCK": block},
        grid=(triton.cdiv(n, block),),
        num_warps=2,
    )


@pytest.mark.parametrize("has_b", [True, False])
def test_launch_torch_runs_the_described_launch(device: str, has_b: bool) -> None:
    n = 200
    rng = np.random.default_rng(0)
    x, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    xt, bt = torch.from_numpy(x).to(device), torch.from_numpy(b).to(device)
    y = torch.empty(n, device=device)
    from optimizer.kernels.triton.launch import launch_torch

    launch_torch(_launch(n, has_b), [xt, bt if has_b else None], [y])
    expect = 2.5 * x + (b if has_b else 0)
    np.testing.assert_allclose(y.cpu().numpy(), expect, rtol=1e-6, atol=1e-6)


def test_signature_follows_the_step_dtypes() -> None:
    launch = _launch(10, True)
    ins = [TensorDesc((10,), "float16"), TensorDesc((10,), "float16")]
    outs = [TensorDesc((10,), "bfloat16")]
    assert launch.signature(ins, outs) == {
        "x_ptr": "*fp16", "b_ptr": "*fp16", "y_ptr": "*bf16", "n": "i32", "alpha": "fp32"
    }  # fmt: skip
    assert launch.grid == (1, 1, 1)
    assert _launch(10, False).signature(ins, outs)["b_ptr"] == "*bf16"


def test_bad_grids_and_scalars_are_refused() -> None:
    with pytest.raises(ValueError, match="grid"):
        TritonLaunch(name="t", kernel=None, args={}, grid=(0,))
    with pytest.raises(Unsupported, match="exceeds"):
        TritonLaunch(name="t", kernel=None, args={}, grid=(1, 70000))
    with pytest.raises(Unsupported, match="int32"):
        I32(2**31)
