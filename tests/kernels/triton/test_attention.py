"""attention_f32 (fused flash-style attention) against a float64 NumPy softmax(QK^T*s + M)V."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import attention
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
         "bool": torch.bool}  # fmt: skip


def _ref(q, k, v, mask, causal: bool, scale: float) -> np.ndarray:
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal:
        sq, sk = s.shape[2:]
        s = np.where(np.tril(np.ones((sq, sk), bool)), s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def _run(device, dtype, b, h, hkv, sq, sk, d, dv, mask=None, causal=0, scale=0.0):
    rng = np.random.default_rng(sq * 7 + sk)
    arrays = [rng.standard_normal(s).astype(np.float32)
              for s in ((b, h, sq, d), (b, hkv, sk, d), (b, hkv, sk, dv))]  # fmt: skip
    ts = [torch.from_numpy(a).to(device=device, dtype=TORCH[dtype]) for a in arrays]
    descs = [TensorDesc(a.shape, dtype) for a in arrays]
    if mask is not None:
        mdt = "bool" if mask.dtype == bool else dtype
        ts.append(torch.from_numpy(mask.copy()).to(device=device, dtype=TORCH[mdt]))
        descs.append(TensorDesc(mask.shape, mdt))
    out = torch.empty((b, h, sq, dv), device=device, dtype=TORCH[dtype])
    launch = plan_for("attention_f32")(descs, [TensorDesc(out.shape, dtype)], [causal, 0], [scale])
    launch_torch(launch, ts, [out])
    exact = [t.double().cpu().numpy() for t in ts[:3]]
    m = (
        None
        if mask is None
        else ts[3].cpu().numpy().astype(bool if mask.dtype == bool else np.float64)
    )
    want = _ref(*exact, m, bool(causal), scale if scale > 0 else 1 / np.sqrt(d))
    return out.double().cpu().numpy(), want


@pytest.mark.parametrize(
    ("b", "h", "hkv", "sq", "sk", "d", "dv"),
    [(1, 2, 2, 16, 16, 16, 16), (2, 3, 3, 37, 50, 24, 24), (1, 4, 2, 150, 130, 32, 16),
     (1, 2, 1, 1, 77, 64, 64), (1, 1, 1, 20, 9, 8, 40)],
)  # fmt: skip
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_fp32(device: str, b, h, hkv, sq, sk, d, dv, causal: int) -> None:
    got, want = _run(device, "float32", b, h, hkv, sq, sk, d, dv, causal=causal)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_attention_masks_and_scale(device: str) -> None:
    rng = np.random.default_rng(0)
    add = (rng.standard_normal((1, 1, 33, 40)) * 2).astype(np.float32)  # broadcast over B, H
    add[..., 5] = -np.inf
    got, want = _run(device, "float32", 2, 2, 2, 33, 40, 16, 16, mask=add, scale=0.3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    lowest = np.zeros((2, 1, 1, 40), np.float32)  # float32's lowest: HF's padding mask
    lowest[0, ..., 30:] = np.finfo(np.float32).min
    lowest[1] = np.finfo(np.float32).min  # a fully padded sequence: uniform rows, not NaN
    got, want = _run(device, "float32", 2, 2, 2, 33, 40, 16, 16, mask=lowest)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    keep = rng.random((2, 1, 40)) > 0.3  # [B, 1, Sk] padding mask, rank 3
    keep[..., 0] = True
    got, want = _run(device, "float32", 1, 2, 1, 33, 40, 16, 16, mask=keep, causal=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_attention_half(device: str, dtype: str) -> None:
    got, want = _run(device, dtype, 1, 2, 2, 70, 90, 32, 32, causal=1)
    # P is rounded to the input dtype for the PV product and O once at the end:
    # a few ulps of outputs of order 0.1-1
    tol = 4e-3 if dtype == "float16" else 3e-2
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_bad_attention_steps_are_unsupported() -> None:
    f = TensorDesc
    q, k, v = f((1, 3, 4, 8), "float32"), f((1, 2, 4, 8), "float32"), f((1, 2, 4, 8), "float32")
    with pytest.raises(Unsupported, match="multiple"):
        attention.plan_attention([q, k, v], [q], [0, 0], [0.0])
    with pytest.raises(Unsupported, match="broadcast"):
        attention.plan_attention([q, q, q, f((2, 4), "float32")], [q], [0, 0], [0.0])
    with pytest.raises(Unsupported, match="mask dtype"):
        attention.plan_attention([q, q, q, f((4, 4), "int64")], [q], [0, 0], [0.0])
    with pytest.raises(Unsupported, match="agree"):
        attention.plan_attention([q, q, f((1, 3, 5, 8), "float32")], [q], [0, 0], [0.0])


# -- the strided form: Q, K, V read from projection outputs, O written as [B, S, H, Dv] -------


def _strided_iparams(b, h, sq, sk, d, dv, views) -> list[int]:
    return [0, 0, b, h, sq, sk, d, dv, *[x for view in views for x in view]]


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float16", 4e-3)])
def test_attention_strided_fused_qkv(device: str, dtype: str, tol: float) -> None:
    """Q, K, V as slices of one [B, S, 3, H, D] buffer (a fused qkv projection), O written
    in [B, S, H, D] order, an additive [B, 1, 1, S] padding mask."""
    b, s, h, d = 2, 19, 3, 8
    rng = np.random.default_rng(7)
    qkv = rng.standard_normal((b, s, 3 * h * d)).astype(np.float32)
    mask = np.where(rng.random((b, 1, 1, s)) < 0.2, -1e4, 0.0).astype(np.float32)
    row = 3 * h * d  # [B, S, 3, H, D] strides: (S*row, row, H*D, D, 1)
    views = [[i * h * d, s * row, d, row, 1] for i in range(3)]
    views.append([0, s * h * d, d, h * d, 1])  # O [B, H, S, D] into [B, S, H, D]
    ts = [torch.from_numpy(x).to(device=device, dtype=TORCH[dtype]) for x in (qkv, mask)]
    out = torch.full((b, s, h * d), float("nan"), device=device, dtype=TORCH[dtype])
    descs = [TensorDesc(qkv.shape, dtype)] * 3 + [TensorDesc(mask.shape, dtype)]
    launch = plan_for("attention_f32")(descs, [TensorDesc(out.shape, dtype)],
                                       _strided_iparams(b, h, s, s, d, d, views), [0.25])  # fmt: skip
    launch_torch(launch, [ts[0], ts[0], ts[0], ts[1]], [out])
    x = ts[0].double().cpu().numpy().reshape(b, s, 3, h, d).transpose(2, 0, 3, 1, 4)
    want = _ref(x[0], x[1], x[2], ts[1].double().cpu().numpy(), False, 0.25)
    got = out.double().cpu().numpy().reshape(b, s, h, d).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_attention_strided_separate_buffers_and_broadcast_heads(device: str) -> None:
    """Q [B, S, H*D], one K / V head for all query heads (head stride 0), K stored transposed
    ([B, D, Sk]: d stride Sk), Dv != D, an offset into V's buffer."""
    b, sq, sk, h, d, dv = 1, 12, 21, 4, 16, 8
    rng = np.random.default_rng(3)
    q = rng.standard_normal((b, sq, h * d)).astype(np.float32)
    kt = rng.standard_normal((b, d, sk)).astype(np.float32)
    vbuf = rng.standard_normal((5 + b * sk * dv,)).astype(np.float32)
    views = [[0, sq * h * d, d, h * d, 1], [0, d * sk, 0, 1, sk], [5, sk * dv, 0, dv, 1],
             [0, sq * h * dv, dv, h * dv, 1]]  # fmt: skip
    ts = [torch.from_numpy(x).to(device) for x in (q, kt, vbuf)]
    out = torch.zeros((b, sq, h, dv), device=device)
    descs = [TensorDesc(x.shape, "float32") for x in (q, kt, vbuf)]
    launch = plan_for("attention_f32")(descs, [TensorDesc(out.shape, "float32")],
                                       _strided_iparams(b, h, sq, sk, d, dv, views), [0.0])  # fmt: skip
    launch_torch(launch, ts, [out])
    qq = q.astype(np.float64).reshape(b, sq, h, d).transpose(0, 2, 1, 3)
    kk = kt.astype(np.float64).transpose(0, 2, 1)[:, None]
    vv = vbuf[5:].astype(np.float64).reshape(b, 1, sk, dv)
    want = _ref(qq, kk, vv, None, False, 1 / np.sqrt(d))
    np.testing.assert_allclose(out.cpu().numpy().transpose(0, 2, 1, 3), want, rtol=1e-4, atol=2e-5)


def test_bad_strided_views_are_unsupported() -> None:
    f = TensorDesc
    buf = f((1, 4, 32), "float32")  # Q, K, V [1, 2, 4, 16] read from [B, S, H*D]
    good = [0, 128, 16, 32, 1]
    ok = _strided_iparams(1, 2, 4, 4, 16, 16, [good] * 4)
    attention.plan_attention([buf] * 3, [buf], ok, [0.0])  # the reference case plans
    with pytest.raises(Unsupported, match="reaches element 128 of a buffer of 128"):
        attention.plan_attention([buf] * 3, [buf], _strided_iparams(
            1, 2, 4, 4, 16, 16, [[1, 128, 16, 32, 1], good, good, good]), [0.0])  # fmt: skip
    with pytest.raises(Unsupported, match=r"O strides .* overlap"):
        attention.plan_attention([buf] * 3, [buf], _strided_iparams(
            1, 2, 4, 4, 16, 16, [good, good, good, [0, 128, 0, 32, 1]]), [0.0])  # fmt: skip
    with pytest.raises(Unsupported, match="must be >= 0"):
        attention.plan_attention([buf] * 3, [buf], _strided_iparams(
            1, 2, 4, 4, 16, 16, [good, [0, 128, 16, -32, 1], good, good]), [0.0])  # fmt: skip
    with pytest.raises(Unsupported, match="strided form"):
        attention.plan_attention([buf] * 3, [buf], ok[:-1], [0.0])
