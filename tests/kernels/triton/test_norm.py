"""softmax_f32 / layer_norm_f32 Triton twins against NumPy (fp64) references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import norm
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# fp32: accumulation-order error only; fp16 / bf16: the output's rounding (half an ulp:
# 2^-11, 2^-8 relative) on values of order 1, plus the rounded input feeding it.
TOL = {"float32": 2e-5, "float16": 4e-3, "bfloat16": 3e-2}


def _t(a: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(device=device, dtype=TORCH[dtype])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy().astype(np.float64)


def _softmax_ref(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    return x - m - np.log(s) if log else e / s


def _run_softmax(x: np.ndarray, axis: int, log: int, dtype: str, device: str) -> np.ndarray:
    xt = _t(x, dtype, device)
    xr = _np(xt)  # the rounded input is what the kernel sees
    desc = TensorDesc(x.shape, dtype)
    launch = plan_for("softmax_f32")([desc], [desc], [axis, log], [])
    y = torch.empty_like(xt)
    launch_torch(launch, [xt], [y])
    return _np(y), _softmax_ref(xr, axis, bool(log))


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((4, 37), -1), ((3, 5, 7), 1), ((2, 6, 3, 5), 0), ((5,), 0), ((3, 9000), 1),
     ((2, 700, 9), 1), ((1, 130, 40), -2)],
)  # fmt: skip
@pytest.mark.parametrize("log", [0, 1])
def test_softmax_fp32(device: str, shape: tuple[int, ...], axis: int, log: int) -> None:
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 4
    got, want = _run_softmax(x, axis, log, "float32", device)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=TOL["float32"])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(("shape", "axis"), [((6, 130), -1), ((4, 5, 6), 1), ((2, 5000), 1)])
def test_softmax_half(device: str, dtype: str, shape: tuple[int, ...], axis: int) -> None:
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    got, want = _run_softmax(x, axis, 0, dtype, device)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] / 8)
    got, want = _run_softmax(x, axis, 1, dtype, device)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("shape", [(3, 8), (2, 5000)])
def test_softmax_masked_rows(device: str, shape: tuple[int, ...]) -> None:
    # attention masks: -inf entries get probability 0; a row of -inf only gives NaN as the
    # native kernel does (max taken as 0, sum 0)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    x[0, ::2] = -np.inf
    x[1, :] = -np.inf
    got, want = _run_softmax(x, -1, 0, "float32", device)
    assert np.all(got[0, ::2] == 0)
    assert np.isnan(got[1]).all() and np.isnan(want[1]).all()
    np.testing.assert_allclose(
        got[[0, *range(2, shape[0])]], want[[0, *range(2, shape[0])]], rtol=1e-5, atol=2e-6
    )


def test_softmax_in_place(device: str) -> None:
    x = np.random.default_rng(4).standard_normal((3, 6000)).astype(np.float32)
    xt = _t(x, "float32", device)
    desc = TensorDesc(x.shape, "float32")
    launch_torch(plan_for("softmax_f32")([desc], [desc], [1, 0], []), [xt], [xt])
    np.testing.assert_allclose(
        _np(xt), _softmax_ref(x.astype(np.float64), 1, False), rtol=1e-5, atol=1e-7
    )


def _ln_ref(x, scale, b, axis, eps):
    ax = axis % x.ndim
    rows = x.reshape(int(np.prod(x.shape[:ax])), -1)
    mean = rows.mean(axis=1)
    istd = 1 / np.sqrt(((rows - mean[:, None]) ** 2).mean(axis=1) + eps)
    y = (rows - mean[:, None]) * istd[:, None]
    if scale is not None:
        y = y * scale.reshape(-1)
    if b is not None:
        y = y + b.reshape(-1)
    return y.reshape(x.shape), mean, istd


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((4, 48), -1), ((2, 3, 5, 7), 2), ((3, 6000), 1), ((7,), 0), ((2, 9, 10), 1)],
)
@pytest.mark.parametrize("parts", ["scale_b_stats", "scale", "none_stats", "b"])
def test_layer_norm_fp32(device: str, shape, axis: int, parts: str) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(np.float32)
    ax = axis % len(shape)
    inner = shape[ax:]
    scale = rng.standard_normal(inner).astype(np.float32) if "scale" in parts else None
    b = (
        rng.standard_normal(inner).astype(np.float32)
        if parts.endswith("b") or "_b" in parts
        else None
    )
    stats = "stats" in parts
    M = int(np.prod(shape[:ax]))
    f = TensorDesc
    ins = [
        f(shape, "float32"),
        f(inner, "float32") if scale is not None else None,
        f(inner, "float32") if b is not None else None,
    ]
    outs = [f(shape, "float32")] + ([f((M,), "float32"), f((M,), "float32")] if stats else [])
    launch = plan_for("layer_norm_f32")(ins, outs, [axis], [1e-5])
    ts = [
        _t(x, "float32", device),
        None if scale is None else _t(scale, "float32", device),
        None if b is None else _t(b, "float32", device),
    ]
    ys = [torch.empty(s.shape, device=device) for s in outs]
    launch_torch(launch, ts, ys)
    want, mean, istd = _ln_ref(x.astype(np.float64), scale, b, axis, 1e-5)
    np.testing.assert_allclose(_np(ys[0]), want, rtol=1e-5, atol=2e-5)
    if stats:
        np.testing.assert_allclose(_np(ys[1]), mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(_np(ys[2]), istd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(5, 96), (2, 5000)])
def test_layer_norm_half(device: str, dtype: str, shape) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(np.float32)
    scale = rng.standard_normal(shape[-1:]).astype(np.float32)
    b = rng.standard_normal(shape[-1:]).astype(np.float32)
    ts = [_t(a, dtype, device) for a in (x, scale, b)]
    descs = [TensorDesc(a.shape, dtype) for a in (x, scale, b)]
    y = torch.empty_like(ts[0])
    launch_torch(plan_for("layer_norm_f32")(descs, [descs[0]], [-1], [1e-5]), ts, [y])
    want, _, _ = _ln_ref(*[_np(t) for t in ts[:1]], _np(ts[1]), _np(ts[2]), -1, 1e-5)
    # |y| reaches ~4 * |scale| + |b|: absolute tolerance scales with the output's ulp
    np.testing.assert_allclose(_np(y), want, rtol=TOL[dtype], atol=4 * TOL[dtype])


def test_layer_norm_in_place(device: str) -> None:
    x = np.random.default_rng(7).standard_normal((4, 5000)).astype(np.float32)
    xt = _t(x, "float32", device)
    d = TensorDesc(x.shape, "float32")
    launch_torch(plan_for("layer_norm_f32")([d], [d], [1], [1e-6]), [xt], [xt])
    np.testing.assert_allclose(
        _np(xt), _ln_ref(x.astype(np.float64), None, None, 1, 1e-6)[0], rtol=1e-5, atol=2e-5
    )


def test_bad_steps_are_unsupported() -> None:
    d = TensorDesc((2, 3), "float32")
    with pytest.raises(Unsupported, match="axis"):
        norm.plan_softmax([d], [d], [2, 0], [])
    with pytest.raises(Unsupported, match="share"):
        norm.plan_softmax([d], [TensorDesc((2, 3), "float16")], [1, 0], [])
    with pytest.raises(Unsupported, match="int32"):
        norm.plan_softmax(
            [TensorDesc((2, 3), "int32")] * 1, [TensorDesc((2, 3), "int32")], [1, 0], []
        )
    with pytest.raises(Unsupported, match="Scale"):
        norm.plan_layer_norm([d, TensorDesc((4,), "float32")], [d], [1], [1e-5])


def test_layer_norm_only_inv_std_dev(device: str) -> None:
    # an omitted middle output (plan id -1) arrives as None; its pointer is NULL in the launch
    x = np.random.default_rng(8).standard_normal((6, 20)).astype(np.float32)
    d, s = TensorDesc(x.shape, "float32"), TensorDesc((6,), "float32")
    launch = plan_for("layer_norm_f32")([d], [d, None, s], [1], [1e-5])
    assert launch.signature([d], [d, None, s])["mean_ptr"] == "*fp32"
    y, istd = torch.empty(x.shape, device=device), torch.empty(6, device=device)
    launch_torch(launch, [_t(x, "float32", device)], [y, None, istd])
    want, _, want_istd = _ln_ref(x.astype(np.float64), None, None, 1, 1e-5)
    np.testing.assert_allclose(_np(y), want, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(_np(istd), want_istd, rtol=1e-5)
