"""Activation codes and the fused epilogue order, against the NumPy (float64) oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from optimizer.kernels.triton.epilogue import (
    ACT_COUNT,
    act_reference,
    apply_act,
    check_act,
    fused_epilogue,
)
from optimizer.kernels.triton.launch import Unsupported


@triton.jit
def _act_kernel(x_ptr, y_ptr, n, alpha, beta, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=1.0).to(tl.float32)
    tl.store(y_ptr + offs, apply_act(x, ACT, alpha, beta).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _epi_kernel(
    x_ptr, b_ptr, r_ptr, y_ptr, n, alpha, beta,
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, RESIDUAL_AFTER_ACT: tl.constexpr,
    ACT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    r = tl.load(r_ptr + offs, mask=mask, other=0.0)
    y = fused_epilogue(x, b, r, HAS_BIAS, HAS_RES, RESIDUAL_AFTER_ACT, ACT, alpha, beta)
    tl.store(y_ptr + offs, y, mask=mask)


def _inputs(act: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(act)
    x = rng.uniform(-4, 4, n)
    # Points near zero (series branches of tanh / expm1) and exact zeros / branch edges.
    x[:8] = [0.0, -0.0, 1e-4, -1e-4, 0.29, -0.31, 3.0, -3.0]
    if act == 14:
        x = np.abs(x)
    if act == 15:
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    return x.astype(np.float32)


ALPHA_BETA = {2: (-0.5, 1.5), 8: (0.1, 0.0), 10: (0.2, 0.5), 17: (0.7, 0.0)}


@pytest.mark.parametrize("act", range(ACT_COUNT))
def test_every_act_code_matches_the_oracle(device: str, act: int) -> None:
    n = 300
    x = _inputs(act, n)
    alpha, beta = ALPHA_BETA.get(act, (0.0, 0.0))
    y = torch.empty(n, device=device)
    _act_kernel[(triton.cdiv(n, 128),)](
        torch.from_numpy(x).to(device), y, n, alpha, beta, ACT=act, BLOCK=128
    )
    expect = act_reference(x.astype(np.float64), act, alpha, beta)
    # fp32 kernels: a few ulp (exp/erf/sigmoid differ from float64 by rounding only).
    np.testing.assert_allclose(y.cpu().numpy(), expect, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_act_stores_half_types(device: str, dtype: torch.dtype) -> None:
    n = 100
    x = _inputs(6, n)
    y = torch.empty(n, device=device, dtype=dtype)
    xt = torch.from_numpy(x).to(device=device, dtype=dtype)
    _act_kernel[(1,)](xt, y, n, 0.0, 0.0, ACT=6, BLOCK=128)
    expect = act_reference(xt.float().cpu().numpy(), 6)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3  # one rounding to the storage type
    np.testing.assert_allclose(y.float().cpu().numpy(), expect, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "has_bias,has_res,after", [(True, True, 0), (True, True, 1), (False, True, 0), (True, False, 0)]
)
def test_fused_epilogue_order(device: str, has_bias: bool, has_res: bool, after: int) -> None:
    n = 50
    rng = np.random.default_rng(1)
    x, b, r = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    y = torch.empty(n, device=device)
    args = [torch.from_numpy(a).to(device) for a in (x, b, r)]
    _epi_kernel[(1,)](
        *args, y, n, -1.0, 1.0, HAS_BIAS=has_bias, HAS_RES=has_res, RESIDUAL_AFTER_ACT=after,
        ACT=2, BLOCK=64,
    )  # fmt: skip
    pre = x.astype(np.float64) + (b if has_bias else 0)
    if has_res and not after:
        pre = pre + r
    expect = act_reference(pre, 2, -1.0, 1.0) + (r if has_res and after else 0)
    np.testing.assert_allclose(y.cpu().numpy(), expect, rtol=1e-6, atol=1e-6)


def test_unknown_act_code_is_refused() -> None:
    assert check_act(17, "gemm_f32") == 17
    with pytest.raises(Unsupported, match="gemm_f32: activation code 18"):
        check_act(18, "gemm_f32")
