"""reduce_f32 Triton twin: every op, kept / reduced layouts, empty and no-axis cases, vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import reduce
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _ref(x: np.ndarray, op: str, axes: tuple[int, ...]) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "sum":
            return x.sum(axis=axes)
        if op == "mean":
            return x.sum(axis=axes) / np.prod([x.shape[a] for a in axes])
        if op == "max":
            return x.max(axis=axes, initial=-np.inf)
        if op == "min":
            return x.min(axis=axes, initial=np.inf)
        if op == "prod":
            return x.prod(axis=axes)
        if op == "sum_square":
            return (x * x).sum(axis=axes)
        if op == "l1":
            return np.abs(x).sum(axis=axes)
        if op == "l2":
            return np.sqrt((x * x).sum(axis=axes))
        if op == "log_sum":
            return np.log(x.sum(axis=axes))
        m = x.max(axis=axes, keepdims=True, initial=-np.inf)
        m = np.where(np.isneginf(m), 0, m)
        return np.log(np.exp(x - m).sum(axis=axes)) + m.reshape(np.sum(x, axis=axes).shape)


def _run(x: np.ndarray, op: str, axes: tuple[int, ...], dtype: str, device: str):
    xt = torch.from_numpy(np.array(x, copy=True)).to(device=device, dtype=TORCH[dtype])
    flags = [int(d in axes) for d in range(x.ndim)]
    want = _ref(xt.float().cpu().numpy().astype(np.float64), op, axes)
    ydesc = TensorDesc(tuple(want.shape), dtype)
    launch = plan_for("reduce_f32")(
        [TensorDesc(x.shape, dtype)], [ydesc], [reduce.OPS.index(op), *flags], []
    )
    y = torch.empty(want.shape, device=device, dtype=TORCH[dtype])
    launch_torch(launch, [xt], [y])
    return y.float().cpu().numpy().astype(np.float64), want


CASES = [
    ((3, 50), (1,)),  # rows (innermost reduced)
    ((50, 3), (0,)),  # columns (innermost kept)
    ((2, 3, 4, 5), (1, 3)),  # alternating groups
    ((2, 3, 4, 5), (0, 2)),
    ((2, 1, 6, 7), (2, 3)),  # size-1 dim dropped, merged inner block
    ((4, 3000), (1,)),  # longer than one block
    ((3, 4), (0, 1)),  # everything
]


@pytest.mark.parametrize("op", reduce.OPS)
@pytest.mark.parametrize(("shape", "axes"), CASES)
def test_reduce_fp32(device: str, op: str, shape, axes) -> None:
    rng = np.random.default_rng(abs(hash((op, shape))) % 2**32)
    x = rng.standard_normal(shape).astype(np.float32)
    if op in ("log_sum", "prod"):  # positive sums; products of order 1
        x = np.abs(x) + 0.5 if op == "log_sum" else 1 + 0.05 * x
    got, want = _run(x, op, axes, "float32", device)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("op", reduce.OPS)
def test_reduce_no_axis_is_elementwise(device: str, op: str) -> None:
    x = np.abs(np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)) + 0.1
    got, want = _run(x, op, (), "float32", device)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_reduce_empty_axis_gives_identities(device: str) -> None:
    x = np.zeros((3, 0), np.float32)
    want = {"sum": 0, "max": -np.inf, "min": np.inf, "prod": 1, "log_sum": -np.inf,
            "log_sum_exp": -np.inf, "l2": 0}  # fmt: skip
    for op, v in want.items():
        got, _ = _run(x, op, (1,), "float32", device)
        assert np.all(got == v), (op, got)
    got, _ = _run(x, "mean", (1,), "float32", device)
    assert np.isnan(got).all()


def test_reduce_rank0(device: str) -> None:
    got, want = _run(np.array(2.5, np.float32), "sum_square", (), "float32", device)
    assert got.shape == () and got == want == 6.25


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["sum", "mean", "max", "l2", "log_sum_exp"])
def test_reduce_half(device: str, dtype: str, op: str) -> None:
    x = np.random.default_rng(1).standard_normal((4, 6, 70)).astype(np.float32)
    for axes in ((2,), (1,)):
        got, want = _run(x, op, axes, dtype, device)
        # fp32 accumulation; the result rounded once to the output dtype (ulp 2^-10, 2^-7)
        rtol = 2e-3 if dtype == "float16" else 1.6e-2
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_bad_reductions_are_unsupported() -> None:
    d = TensorDesc((2, 3, 4, 5, 6, 7, 8, 9, 2), "float32")
    with pytest.raises(Unsupported, match="groups"):
        reduce.plan_reduce([d], [TensorDesc((2 * 4 * 6 * 8 * 2,), "float32")],
                           [0, 0, 1, 0, 1, 0, 1, 0, 1, 0], [])  # fmt: skip
    with pytest.raises(Unsupported, match="elements"):
        reduce.plan_reduce([TensorDesc((2, 3), "float32")], [TensorDesc((3,), "float32")],
                           [0, 0, 1], [])  # fmt: skip
    with pytest.raises(Unsupported, match="op"):
        reduce.plan_reduce([TensorDesc((2, 3), "float32")], [TensorDesc((2,), "float32")],
                           [10, 0, 1], [])  # fmt: skip
