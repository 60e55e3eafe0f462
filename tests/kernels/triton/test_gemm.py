"""gemm_f32 on Triton: every params.md form (transposes, bias shapes, residual orders, batch
broadcasting, alpha/beta, activations, dtypes) against a float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton.epilogue import act_reference
from optimizer.kernels.triton.gemm import TileConfig, gemm_candidates, order_by_fill, plan_gemm
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Storage rounding of Y dominates: fp16 keeps 11 bits, bf16 8 (relative to |Y|, plus the
# inputs' rounding which the reference sees too). fp32: IEEE products, fp32 accumulation.
TOL = {"float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def reference(a, b, c, r, ta, tb, act, after, alpha, beta, act_alpha=0.0, act_beta=0.0):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if ta:
        a64 = np.swapaxes(a64, -1, -2)
    if tb:
        b64 = np.swapaxes(b64, -1, -2)
    y = alpha * np.matmul(a64, b64)
    if c is not None:
        y = y + beta * c.astype(np.float64)
    if r is not None and not after:
        y = y + r
    y = act_reference(y, act, act_alpha, act_beta)
    if r is not None and after:
        y = y + r
    return y


def run(device, arrays, y_shape, iparams, fparams, dtype="float32", config=None):
    """Rounds the inputs to ``dtype``, plans, launches; returns (Y as float64, rounded inputs)."""
    tdtype = TORCH_DTYPES[dtype]
    ts = [None if x is None else torch.from_numpy(x).to(tdtype) for x in arrays]
    rounded = [None if t is None else t.to(torch.float64).numpy() for t in ts]
    descs = [None if x is None else TensorDesc(tuple(x.shape), dtype) for x in arrays]
    launch = plan_gemm(descs, [TensorDesc(tuple(y_shape), dtype)], iparams, fparams, config=config)
    y = torch.full(y_shape, float("nan"), dtype=tdtype, device=device)
    launch_torch(launch, [None if t is None else t.to(device) for t in ts], [y])
    return y.cpu().to(torch.float64).numpy(), rounded, launch


def check(y, expect, dtype, scale=1.0):
    tol = TOL[dtype]
    np.testing.assert_allclose(y, expect, rtol=tol, atol=tol * scale)


def rand(rng, *shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def test_registered() -> None:
    assert plan_for("gemm_f32") is plan_gemm


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("cshape", [None, (), (1,), "N", "1N", "M1", "MN"])
def test_transposes_and_bias_forms(device: str, ta: int, tb: int, cshape) -> None:
    m, n, k = 37, 29, 45  # none a multiple of any tile
    rng = np.random.default_rng(ta * 2 + tb)
    a = rand(rng, *((k, m) if ta else (m, k)))
    b = rand(rng, *((n, k) if tb else (k, n)))
    shapes = {"N": (n,), "1N": (1, n), "M1": (m, 1), "MN": (m, n)}
    c = None if cshape is None else rand(rng, *shapes.get(cshape, cshape))
    alpha, beta = 0.75, -1.5
    y, (a, b, c), _ = run(device, [a, b, c], (m, n), [ta, tb, 0, 0], [alpha, beta, 0, 0])
    check(y, reference(a, b, c, None, ta, tb, 0, 0, alpha, beta), "float32", scale=7)


@pytest.mark.parametrize("after", [0, 1])
def test_residual_orders_with_activation(device: str, after: int) -> None:
    m, n, k = 20, 33, 17
    rng = np.random.default_rng(after)
    a, b, c, r = rand(rng, m, k), rand(rng, k, n), rand(rng, n), rand(rng, m, n)
    # clip(-1, 1): the two orders differ wherever |acc + bias| > 1 - |R|.
    fp = [1.0, 1.0, -1.0, 1.0]
    y, (a, b, c, r), _ = run(device, [a, b, c, r], (m, n), [0, 0, 2, after], fp)
    expect = reference(a, b, c, r, 0, 0, 2, after, 1.0, 1.0, -1.0, 1.0)
    check(y, expect, "float32", scale=5)
    other = reference(a, b, c, r, 0, 0, 2, 1 - after, 1.0, 1.0, -1.0, 1.0)
    assert np.abs(expect - other).max() > 0.1


@pytest.mark.parametrize(
    "a_shape,b_shape,y_shape,ta,tb",
    [
        ((2, 3, 9, 12), (3, 12, 10), (2, 3, 9, 10), 0, 0),  # B broadcast over the outer dim
        ((9, 12), (4, 12, 10), (4, 9, 10), 0, 0),  # A shared
        ((2, 1, 12, 9), (1, 3, 10, 12), (2, 3, 9, 10), 1, 1),  # both broadcast, alternating
        ((3, 5, 9, 12), (12, 10), (3, 5, 9, 10), 0, 0),  # shared B: folded into 135 rows
        ((3, 12, 9), (12, 10), (3, 9, 10), 1, 0),  # shared B, transposed A: not folded
        ((1, 4, 9, 12), (4, 12, 10), (1, 4, 9, 10), 0, 0),  # size-1 batch dim
    ],
)
def test_batch_broadcasting(device: str, a_shape, b_shape, y_shape, ta, tb) -> None:
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a, b = rand(rng, *a_shape), rand(rng, *b_shape)
    c, r = rand(rng, y_shape[-1]), rand(rng, *y_shape)
    y, (a, b, c, r), launch = run(device, [a, b, c, r], y_shape, [ta, tb, 1, 0], [1.0, 1.0, 0, 0])
    check(y, reference(a, b, c, r, ta, tb, 1, 0, 1.0, 1.0), "float32", scale=4)
    if a_shape == (3, 5, 9, 12):
        assert launch.constexprs["M"] == 135 and launch.grid[1] == 1


def test_per_row_bias_is_not_folded(device: str) -> None:
    rng = np.random.default_rng(5)
    a, b, c = rand(rng, 3, 9, 12), rand(rng, 12, 10), rand(rng, 9, 1)
    y, (a, b, c), launch = run(device, [a, b, c], (3, 9, 10), [0, 0, 0, 0], [1.0, 2.0, 0, 0])
    check(y, reference(a, b, c, None, 0, 0, 0, 0, 1.0, 2.0), "float32", scale=4)
    assert launch.grid[1] == 3


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("after", [0, 1])
def test_half_dtypes(device: str, dtype: str, after: int) -> None:
    m, n, k = 40, 72, 96
    rng = np.random.default_rng(7)
    a, b = rand(rng, m, k, scale=k**-0.5), rand(rng, n, k)
    c, r = rand(rng, 1, n), rand(rng, m, n)
    y, (a, b, c, r), _ = run(device, [a, b, c, r], (m, n), [0, 1, 4, after], [1, 1, 0, 0], dtype)
    check(y, reference(a, b, c, r, 0, 1, 4, after, 1.0, 1.0), dtype, scale=3)


def test_every_candidate_config(device: str) -> None:
    m, n, k = 70, 90, 80
    rng = np.random.default_rng(11)
    a, b, c = rand(rng, m, k), rand(rng, k, n), rand(rng, m, n)
    descs = [TensorDesc(x.shape, "float16") for x in (a, b, c)]
    cands = gemm_candidates(descs, [TensorDesc((m, n), "float16")], [0, 0, 0, 0], [1, 1, 0, 0])
    assert len(cands) >= 3
    for cfg in cands:
        y, (a16, b16, c16), launch = run(
            device, [a, b, c], (m, n), [0, 0, 0, 0], [1, 1, 0, 0], "float16", config=cfg
        )
        assert launch.constexprs["BLOCK_K"] == cfg.block_k
        check(y, reference(a16, b16, c16, None, 0, 0, 0, 0, 1.0, 1.0), "float16", scale=9)


def test_fp32_uses_ieee_products_unless_tf32_is_allowed() -> None:
    ins = [TensorDesc((64, 64), "float32")] * 2
    out = [TensorDesc((64, 64), "float32")]
    assert plan_gemm(ins, out, [0, 0, 0, 0], [1, 1, 0, 0]).constexprs["DOT_PRECISION"] == "ieee"
    tf32 = plan_gemm(ins, out, [0, 0, 0, 0], [1, 1, 0, 0], allow_tf32=True)
    assert tf32.constexprs["DOT_PRECISION"] == "tf32"


@pytest.mark.parametrize(
    "inputs,out,ip,match",
    [
        ([(4, 5), (6, 7)], (4, 7), [0, 0, 0, 0], "inner dimensions differ"),
        ([(4, 5), (5, 7)], (4, 8), [0, 0, 0, 0], "does not match"),
        ([(2, 4, 5), (3, 5, 7)], (3, 4, 7), [0, 0, 0, 0], "do not broadcast"),
        ([(4, 5), (5, 7), (3, 7)], (4, 7), [0, 0, 0, 0], "not broadcastable"),
        ([(4, 5), (5, 7), None, (4, 6)], (4, 7), [0, 0, 0, 0], "residual"),
        ([(4, 5), (5, 7)], (4, 7), [0, 0, 99, 0], "activation code 99"),
        ([(4, 5), (5, 7)], (4, 7), [0, 0, 0], "expected 4 iparams"),
    ],
)
def test_bad_steps_are_refused(inputs, out, ip, match) -> None:
    descs = [None if s is None else TensorDesc(s, "float32") for s in inputs]
    with pytest.raises(Unsupported, match=match):
        plan_gemm(descs, [TensorDesc(out, "float32")], ip, [1, 1, 0, 0])


def test_mixed_dtypes_are_refused() -> None:
    descs = [TensorDesc((4, 5), "float32"), TensorDesc((5, 7), "float16")]
    with pytest.raises(Unsupported, match="share one dtype"):
        plan_gemm(descs, [TensorDesc((4, 7), "float32")], [0, 0, 0, 0], [1, 1, 0, 0])


def test_fill_rule_prefers_tiles_that_occupy_every_sm() -> None:
    big, small = TileConfig(128, 128, 32), TileConfig(32, 32, 32)
    # 2048 x 2048: 256 programs of 128x128 already fill 132 SMs: the preferred (first) tile.
    assert order_by_fill([big, small], 2048, 2048)[0] is big
    # 128 x 768 (BERT at batch 1): 6 big programs vs 96 small ones: the most programs win.
    assert order_by_fill([big, small], 128, 768) == [small, big]
    assert order_by_fill([big, small], 128, 768, batch=32)[0] is big


@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 1)])
def test_k_multiple_of_the_slice_needs_no_mask(device: str, ta: int, tb: int) -> None:
    m, n, k = 33, 40, 64  # K = 2 slices of 32: the unmasked K loop; M, N still ragged
    rng = np.random.default_rng(13)
    a = rand(rng, *((k, m) if ta else (m, k)))
    b = rand(rng, *((n, k) if tb else (k, n)))
    cfg = TileConfig(32, 32, 32, 2, 4, 2)
    y, (a, b), launch = run(device, [a, b], (m, n), [ta, tb, 0, 0], [1.0, 1.0, 0, 0], config=cfg)
    assert launch.constexprs["K"] % launch.constexprs["BLOCK_K"] == 0
    check(y, reference(a, b, None, None, ta, tb, 0, 0, 1.0, 1.0), "float32", scale=8)
