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
