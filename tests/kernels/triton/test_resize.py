"""resize_nearest_f32 / resize_bilinear_f32 Triton twins: every coordinate and nearest mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import resize
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _to_input(o: np.ndarray, n_in: int, n_out: int, scale: float, mode: int) -> np.ndarray:
    o = o.astype(np.float64)
    if mode == 0:
        return (o + 0.5) / scale - 0.5
    if mode == 3:
        return (o + 0.5) / scale - 0.5 if n_out > 1 else o * 0
    if mode == 1:
        return o * 0 if n_out == 1 else o * (n_in - 1) / (n_out - 1)
    return o / scale


def _nearest(x: np.ndarray, n_in: int, mode: int) -> np.ndarray:
    f = np.floor(x)
    half = x - f == 0.5
    r = [np.where(half, f, np.round(x)), np.where(half, f + 1, np.round(x)), f, np.ceil(x)][mode]
    return np.clip(r, 0, n_in - 1).astype(np.int64)


def _ref(x: np.ndarray, oh: int, ow: int, sh: float, sw: float, coord: int, nearest: int | None):
    h, w = x.shape[2:]
    sh = sh if sh > 0 else oh / h
    sw = sw if sw > 0 else ow / w
    cy = _to_input(np.arange(oh), h, oh, sh, coord)
    cx = _to_input(np.arange(ow), w, ow, sw, coord)
    if nearest is not None:
        return x[:, :, _nearest(cy, h, nearest)][:, :, :, _nearest(cx, w, nearest)]

    def taps(c, n):
        c = np.clip(c, 0, n - 1)
        i0 = np.floor(c).astype(np.int64)
        return i0, np.minimum(i0 + 1, n - 1), (c - i0).astype(np.float32)

    y0, y1, wy = taps(cy, h)
    x0, x1, wx = taps(cx, w)
    r0, r1 = x[:, :, y0], x[:, :, y1]
    h0 = r0[..., x0] + (r0[..., x1] - r0[..., x0]) * wx
    h1 = r1[..., x0] + (r1[..., x1] - r1[..., x0]) * wx
    return h0 + (h1 - h0) * wy[:, None]


def _run(x, oh, ow, sh, sw, coord, nearest, dtype, device):
    xt = torch.from_numpy(np.array(x, copy=True)).to(device=device, dtype=TORCH[dtype])
    n, c = x.shape[:2]
    entry = "resize_bilinear_f32" if nearest is None else "resize_nearest_f32"
    ip = [coord] if nearest is None else [coord, nearest]
    launch = plan_for(entry)(
        [TensorDesc(x.shape, dtype)], [TensorDesc((n, c, oh, ow), dtype)], ip, [sh, sw]
    )
    y = torch.full((n, c, oh, ow), 7.0, device=device, dtype=TORCH[dtype])
    launch_torch(launch, [xt], [y])
    want = _ref(xt.float().cpu().numpy(), oh, ow, sh, sw, coord, nearest)
    return y.float().cpu().numpy(), want


SIZES = [((2, 3, 5, 7), 10, 14, 0.0, 0.0), ((1, 2, 8, 9), 3, 4, 0.0, 0.0),
         ((1, 1, 4, 6), 12, 9, 3.0, 1.5), ((1, 2, 6, 6), 2, 2, 1 / 3, 1 / 3),
         ((1, 1, 5, 5), 1, 1, 0.0, 0.0), ((1, 1, 3, 300), 2, 700, 0.0, 0.0)]  # fmt: skip


@pytest.mark.parametrize("coord", range(4))
@pytest.mark.parametrize("nearest", range(4))
@pytest.mark.parametrize("size", SIZES)
def test_resize_nearest(device: str, coord: int, nearest: int, size) -> None:
    shape, oh, ow, sh, sw = size
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got, want = _run(x, oh, ow, sh, sw, coord, nearest, "float32", device)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("coord", range(4))
@pytest.mark.parametrize("size", SIZES)
def test_resize_bilinear(device: str, coord: int, size) -> None:
    shape, oh, ow, sh, sw = size
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got, want = _run(x, oh, ow, sh, sw, coord, None, "float32", device)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_resize_half(device: str, dtype: str) -> None:
    x = np.random.default_rng(2).standard_normal((1, 3, 6, 5)).astype(np.float32)
    got, want = _run(x, 12, 10, 0.0, 0.0, 0, 0, dtype, device)
    np.testing.assert_array_equal(got, want)  # nearest copies elements
    got, want = _run(x, 13, 8, 0.0, 0.0, 0, None, dtype, device)
    tol = 2e-3 if dtype == "float16" else 1.6e-2  # one rounding of the fp32 result
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_resize_empty_output_writes_nothing(device: str) -> None:
    x = np.ones((0, 2, 3, 3), np.float32)
    got, _ = _run(x, 6, 6, 0.0, 0.0, 0, 0, "float32", device)
    assert got.shape == (0, 2, 6, 6)


def test_bad_resizes_are_unsupported() -> None:
    x = TensorDesc((1, 2, 3, 3), "float32")
    with pytest.raises(Unsupported, match="share N and C"):
        resize.plan_resize_bilinear([x], [TensorDesc((1, 3, 6, 6), "float32")], [0], [0, 0])
    with pytest.raises(Unsupported, match="nearest mode"):
        resize.plan_resize_nearest([x], [TensorDesc((1, 2, 6, 6), "float32")], [0, 4], [0, 0])
    with pytest.raises(Unsupported, match="coordinate mode"):
        resize.plan_resize_bilinear([x], [TensorDesc((1, 2, 6, 6), "float32")], [5], [0, 0])
