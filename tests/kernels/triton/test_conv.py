"""Triton convolutions (conv2d_f32, conv2d_packed_f32, depthwise_conv2d_f32,
conv_transpose2d_f32) against the float64 NumPy reference kernels plus the fused epilogue."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.reference.conv import conv, conv_transpose
from optimizer.kernels.triton.conv import (
    conv_candidates,
    conv_tile_candidates,
    plan_conv2d,
    plan_conv2d_packed,
    plan_conv_transpose2d,
    plan_depthwise_conv2d,
    register_prefetch,
)
from optimizer.kernels.triton.epilogue import act_reference
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# fp32: IEEE products, fp32 sums of <= a few hundred terms. fp16 / bf16: Y is rounded to 11 / 8
# bits (the reference sees the same rounded inputs), so the bound is relative to |Y| (~ scale).
TOL = {"float32": 3e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def pack(w: np.ndarray, group: int) -> np.ndarray:
    """conv2d_packed_f32's layout: Wp[g][q][k][j] = W[g*Mg + q*32 + j][k], zero past Mg."""
    co = w.shape[0]
    mg, kdim = co // group, int(np.prod(w.shape[1:]))
    q = -(-mg // 32)
    wp = np.zeros((group, q * 32, kdim), w.dtype)
    wp[:, :mg] = w.reshape(group, mg, kdim)
    return np.ascontiguousarray(wp.reshape(group, q, 32, kdim).transpose(0, 1, 3, 2))


def rand(rng, *shape):
    return np.asarray(rng.standard_normal(shape), dtype=np.float32)


def launch(device, plan, arrays, y_shape, ip, fp, dtype="float32", **kw):
    tdtype = TORCH_DTYPES[dtype]
    ts = [None if a is None else torch.from_numpy(a).to(tdtype) for a in arrays]
    rounded = [None if t is None else t.to(torch.float64).numpy() for t in ts]
    descs = [None if a is None else TensorDesc(tuple(a.shape), dtype) for a in arrays]
    lau = plan(descs, [TensorDesc(tuple(y_shape), dtype)], ip, fp, **kw)
    y = torch.full(tuple(y_shape), float("nan"), dtype=tdtype, device=device)
    # A split-K step needs its workspace zero on entry and leaves it zero (the runtime zeroes
    # the module's workspace once at load).
    work = torch.zeros(max(lau.workspace, 1), dtype=torch.uint8, device=device)
    launch_torch(lau, [None if t is None else t.to(device) for t in ts], [y], work)
    assert not work.any(), "the kernel left its workspace dirty"
    return y.cpu().to(torch.float64).numpy(), rounded, lau


def epilogue(y, b, r, act, after, fa=(0.0, 0.0)):
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    if r is not None and not after:
        y = y + r
    y = act_reference(y, act, *fa)
    if r is not None and after:
        y = y + r
    return y


def conv_ref(x, w, b, r, geom, act=0, after=0, fa=(0.0, 0.0)):
    sh, sw, pt, pl, pb, pr, dh, dw, group = geom
    attrs = {"strides": [sh, sw], "pads": [pt, pl, pb, pr], "dilations": [dh, dw], "group": group}
    (y,) = conv([x, w], attrs, 17)
    return epilogue(y, b, r, act, after, fa)


def out_hw(h, w, kh, kw, geom):
    sh, sw, pt, pl, pb, pr, dh, dw, _ = geom
    return (h + pt + pb - (kh - 1) * dh - 1) // sh + 1, (w + pl + pr - (kw - 1) * dw - 1) // sw + 1


CASES = [
    # (N, C, H, W, Co, KH, KW, geom = stride_h, stride_w, pads t l b r, dil_h, dil_w, group)
    (2, 5, 9, 11, 7, 3, 3, (1, 1, 1, 1, 1, 1, 1, 1, 1)),  # same-padded 3x3, odd sizes
    (1, 6, 13, 12, 20, 3, 3, (2, 2, 0, 1, 1, 0, 1, 1, 1)),  # stride 2, asymmetric pads
    (1, 4, 12, 12, 9, 3, 2, (1, 2, 2, 1, 2, 0, 2, 3, 1)),  # dilation, rectangular kernel
    (2, 8, 7, 7, 12, 3, 3, (1, 1, 1, 1, 1, 1, 1, 1, 4)),  # groups
    (1, 40, 6, 5, 33, 1, 1, (1, 1, 0, 0, 0, 0, 1, 1, 1)),  # 1x1, C not a multiple of BLOCK_K
    (1, 64, 5, 5, 40, 1, 1, (2, 2, 0, 0, 0, 0, 1, 1, 1)),  # 1x1 stride 2, C = 2 K blocks
    (2, 64, 5, 7, 24, 1, 1, (1, 1, 0, 0, 0, 0, 1, 1, 1)),  # pointwise: 2 images x 2 tiles
    (1, 4, 6, 6, 8, 1, 1, (1, 1, 0, 0, 0, 0, 1, 1, 1)),  # 1x1 narrower than a K slice: flat K
    (1, 3, 15, 15, 16, 7, 7, (2, 2, 3, 3, 3, 3, 1, 1, 1)),  # 3-channel stem (flat K)
]


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_conv2d_shapes(device: str, case, packed: bool) -> None:
    n, c, h, w, co, kh, kw, geom = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x, wt, b = rand(rng, n, c, h, w), rand(rng, co, c // geom[8], kh, kw), rand(rng, co)
    y_shape = (n, co, *out_hw(h, w, kh, kw, geom))
    ip = [*geom, 1, 0]
    if packed:
        y, (x, _, b), lau = launch(
            device,
            plan_conv2d_packed,
            [x, pack(wt, geom[8]), b],
            y_shape,
            [*ip, co, kh, kw],
            [0, 0],
        )
    else:
        y, (x, _, b), lau = launch(device, plan_conv2d, [x, wt, b], y_shape, ip, [0, 0])
    expect = conv_ref(x, wt.astype(np.float64), b, None, geom, act=1)
    scale = np.sqrt(c // geom[8] * kh * kw)
    np.testing.assert_allclose(y, expect, rtol=TOL["float32"], atol=TOL["float32"] * scale)
    assert lau.constexprs["FLAT_K"] == (c // geom[8] < lau.constexprs["BLOCK_K"])
    pointwise = kh == kw == 1 and geom[:4] == (1, 1, 0, 0) and not lau.constexprs["FLAT_K"]
    assert lau.constexprs["POINTWISE"] == pointwise


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize(
    "case", [CASES[2], CASES[3], CASES[6], CASES[8]], ids=["dil", "grp", "stem", "flat1x1"]
)
def test_register_prefetch_both_ways(device: str, case, prefetch: bool) -> None:
    n, c, h, w, co, kh, kw, geom = case
    rng = np.random.default_rng(17)
    x, wt = rand(rng, n, c, h, w), rand(rng, co, c // geom[8], kh, kw)
    y_shape = (n, co, *out_hw(h, w, kh, kw, geom))
    y, (x, wt), lau = launch(
        device, plan_conv2d, [x, wt], y_shape, [*geom, 0, 0], [0, 0], prefetch=prefetch
    )
    assert lau.constexprs["PREFETCH"] == prefetch
    scale = np.sqrt(c // geom[8] * kh * kw)
    np.testing.assert_allclose(y, conv_ref(x, wt, None, None, geom), rtol=3e-5, atol=3e-5 * scale)


@pytest.mark.parametrize("after", [0, 1])
def test_residual_orders(device: str, after: int) -> None:
    rng = np.random.default_rng(after)
    geom = (1, 1, 1, 1, 1, 1, 1, 1, 1)
    x, w, b, r = (
        rand(rng, 2, 6, 6, 7),
        rand(rng, 10, 6, 3, 3),
        rand(rng, 10),
        rand(rng, 2, 10, 6, 7),
    )
    y, (x, w, b, r), _ = launch(
        device, plan_conv2d, [x, w, b, r], r.shape, [*geom, 2, after], [0, 6]
    )
    expect = conv_ref(x, w, b, r, geom, act=2, after=after, fa=(0.0, 6.0))
    np.testing.assert_allclose(y, expect, rtol=3e-5, atol=3e-4)
    other = conv_ref(x, w, b, r, geom, act=2, after=1 - after, fa=(0.0, 6.0))
    assert np.abs(expect - other).max() > 0.1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes(device: str, dtype: str) -> None:
    rng = np.random.default_rng(3)
    geom = (1, 1, 1, 1, 1, 1, 1, 1, 1)
    x, w = rand(rng, 2, 32, 6, 6), rand(rng, 48, 32, 3, 3) / 17
    b, r = rand(rng, 48), rand(rng, 2, 48, 6, 6)
    y, (x, w, b, r), _ = launch(
        device, plan_conv2d, [x, w, b, r], r.shape, [*geom, 4, 0], [0, 0], dtype
    )
    np.testing.assert_allclose(
        y, conv_ref(x, w, b, r, geom, act=4), rtol=TOL[dtype], atol=TOL[dtype] * 3
    )


def test_every_candidate_config(device: str) -> None:
    rng = np.random.default_rng(4)
    geom = (1, 1, 1, 1, 1, 1, 1, 1, 1)
    x, w = rand(rng, 1, 24, 5, 6), rand(rng, 40, 24, 3, 3) / 15
    descs = [TensorDesc(x.shape, "float16"), TensorDesc(w.shape, "float16")]
    ip = [*geom, 0, 0]
    cands = conv_candidates("conv2d_f32", descs, [TensorDesc((1, 40, 5, 6), "float16")], ip, [0, 0])
    assert len(cands) >= 3
    for cfg in cands:
        y, (x16, w16), lau = launch(
            device, plan_conv2d, [x, w], (1, 40, 5, 6), ip, [0, 0], "float16", config=cfg
        )
        assert lau.constexprs["BLOCK_P"] == cfg.block_n
        np.testing.assert_allclose(y, conv_ref(x16, w16, None, None, geom), rtol=2e-3, atol=6e-3)


def test_packing_matches_the_binder() -> None:
    pytest.importorskip("onnx_graphsurgeon")
    from optimizer.lower.bind import pack_conv_weights

    w = rand(np.random.default_rng(0), 40, 3, 3, 2)
    np.testing.assert_array_equal(pack_conv_weights(w, 2), pack(w, 2))


# --- depthwise ---------------------------------------------------------------------------------
DW_CASES = [
    # (N, C, H, W, multiplier, KH, KW, geom)
    (2, 5, 9, 10, 1, 3, 3, (1, 1, 1, 1, 1, 1, 1, 1, 5)),
    (1, 4, 11, 11, 1, 3, 3, (2, 2, 0, 1, 1, 0, 1, 1, 4)),  # stride 2 (MobileNet), asymmetric pads
    (1, 3, 12, 10, 2, 5, 5, (1, 1, 4, 4, 4, 4, 2, 2, 3)),  # multiplier 2, dilation 2
    (1, 2, 40, 40, 1, 3, 3, (1, 1, 1, 1, 1, 1, 1, 1, 2)),  # > 1024 pixels: several blocks
]


@pytest.mark.parametrize("case", DW_CASES, ids=[f"dw{i}" for i in range(len(DW_CASES))])
def test_depthwise(device: str, case) -> None:
    n, c, h, w, mult, kh, kw, geom = case
    rng = np.random.default_rng(hash(case) % 2**32)
    co = c * mult
    y_shape = (n, co, *out_hw(h, w, kh, kw, geom))
    x, wt, b, r = (
        rand(rng, n, c, h, w),
        rand(rng, co, 1, kh, kw),
        rand(rng, co),
        rand(rng, *y_shape),
    )
    y, (x, wt, b, r), _ = launch(
        device, plan_depthwise_conv2d, [x, wt, b, r], y_shape, [*geom, 5, 1], [0, 0]
    )
    np.testing.assert_allclose(y, conv_ref(x, wt, b, r, geom, act=5, after=1), rtol=3e-5, atol=3e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_depthwise_half(device: str, dtype: str) -> None:
    rng = np.random.default_rng(9)
    geom = (1, 1, 1, 1, 1, 1, 1, 1, 6)
    x, w = rand(rng, 1, 6, 8, 8), rand(rng, 6, 1, 3, 3) / 3
    y, (x, w), _ = launch(
        device, plan_depthwise_conv2d, [x, w], (1, 6, 8, 8), [*geom, 0, 0], [0, 0], dtype
    )
    np.testing.assert_allclose(
        y, conv_ref(x, w, None, None, geom), rtol=TOL[dtype], atol=TOL[dtype] * 2
    )


# --- conv transpose ----------------------------------------------------------------------------
CT_CASES = [
    # (N, C, H, W, Co, KH, KW, stride/pads/dil/group geom, out_pad)
    (1, 4, 5, 6, 6, 3, 3, (2, 2, 1, 1, 1, 1, 1, 1, 1), (1, 1)),  # the 2x upsampler
    (2, 6, 4, 5, 4, 4, 4, (2, 2, 1, 1, 1, 1, 1, 1, 2), (0, 0)),  # groups
    (1, 3, 4, 4, 5, 3, 2, (3, 1, 0, 1, 2, 0, 2, 1, 1), (2, 0)),  # stride 3, dilation, out_pad
]


@pytest.mark.parametrize("case", CT_CASES, ids=[f"ct{i}" for i in range(len(CT_CASES))])
def test_conv_transpose(device: str, case) -> None:
    n, c, h, w, co, kh, kw, geom, op = case
    sh, sw, pt, pl, pb, pr, dh, dw, group = geom
    rng = np.random.default_rng(hash(case) % 2**32)
    x, wt, b = rand(rng, n, c, h, w), rand(rng, c, co // group, kh, kw), rand(rng, co)
    oh = (h - 1) * sh - pt - pb + (kh - 1) * dh + 1 + op[0]
    ow = (w - 1) * sw - pl - pr + (kw - 1) * dw + 1 + op[1]
    ip = [*geom, *op, 3, 0]
    y, (x, wt, b), _ = launch(
        device, plan_conv_transpose2d, [x, wt, b], (n, co, oh, ow), ip, [0, 0]
    )
    attrs = {
        "strides": [sh, sw], "pads": [pt, pl, pb, pr], "dilations": [dh, dw], "group": group,
        "output_padding": list(op),
    }  # fmt: skip
    (expect,) = conv_transpose([x, wt, b], attrs, 17)
    y2, _, _ = launch(
        device,
        plan_conv_transpose2d,
        [x.astype(np.float32), wt.astype(np.float32), b.astype(np.float32)],
        (n, co, oh, ow),
        ip,
        [0, 0],
        prefetch=True,
    )
    np.testing.assert_allclose(y2, act_reference(expect, 3), rtol=3e-5, atol=3e-5)
    np.testing.assert_allclose(y, act_reference(expect, 3), rtol=3e-5, atol=3e-5)


# --- refusals ----------------------------------------------------------------------------------
def test_registered() -> None:
    assert plan_for("conv2d_f32") is plan_conv2d
    assert plan_for("conv2d_packed_f32") is plan_conv2d_packed
    assert plan_for("depthwise_conv2d_f32") is plan_depthwise_conv2d
    assert plan_for("conv_transpose2d_f32") is plan_conv_transpose2d


G1 = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0]


@pytest.mark.parametrize(
    "plan,shapes,y,ip,match",
    [
        (plan_conv2d, [(1, 4, 5, 5), (6, 3, 1, 1)], (1, 6, 5, 5), G1, "do not fit group"),
        (plan_conv2d, [(1, 4, 5, 5), (6, 4, 1, 1)], (1, 6, 4, 5), G1, "expected"),
        (plan_conv2d, [(1, 4, 5, 5), (6, 4, 1, 1), (5,)], (1, 6, 5, 5), G1, "bias"),
        (plan_conv2d, [(1, 4, 5, 5), (6, 4, 1, 1)], (1, 6, 5, 5), [*G1[:9], 30, 0], "activation"),
        (plan_conv2d_packed, [(1, 4, 5, 5), (1, 1, 4, 16)], (1, 6, 5, 5), [*G1, 6, 1, 1], "packed W"),
        (plan_depthwise_conv2d, [(1, 4, 5, 5), (4, 1, 3, 3)], (1, 4, 3, 3), G1, "group == C"),
        (plan_conv_transpose2d, [(1, 4, 5, 5), (4, 2, 3, 3)], (1, 2, 7, 7), [*G1[:9], 1, 0, 0, 0], "output_padding"),
        (plan_conv2d, [(1, 4, 5, 5), (6, 4, 1, 1)], (1, 6, 5, 5), G1[:10], "expected 11 iparams"),
    ],
)  # fmt: skip
def test_bad_steps_are_refused(plan, shapes, y, ip, match) -> None:
    descs = [TensorDesc(s, "float32") for s in shapes]
    with pytest.raises(Unsupported, match=match):
        plan(descs, [TensorDesc(y, "float32")], ip, [0.0, 0.0])


def test_tile_and_prefetch_rules() -> None:
    # Pointwise over 7x7 maps (ResNet-50 layer 4, batch 16): no 128-pixel tiles (62% padding).
    pick = conv_tile_candidates(2048, 16 * 49, 512, "float16", pointwise_images=16)[0]
    assert pick.block_n <= 64
    # The same channels over one 56x56 map keep the preferred wide pixel tile.
    assert (
        conv_tile_candidates(256, 16 * 3136, 64, "float16", pointwise_images=16)[0].block_n >= 128
    )
    assert register_prefetch("float16", False, 256 * 9)
    assert not register_prefetch("float16", False, 128 * 9)  # short K: the prefetch lost
    assert not register_prefetch("float32", False, 512 * 9)  # fp32 gathers pipeline
    assert not register_prefetch("bfloat16", True, 512 * 9)  # contiguous rows pipeline


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_tap_major_loop_with_every_geometry(device: str, transposed: bool, prefetch: bool) -> None:
    """Channels per group >= BLOCK_K selects the tap-major K loop (the flat one covers the narrow
    cases above): 3x3, stride 2, asymmetric pads, dilations (2, 1), two groups, a partial K
    block."""
    from optimizer.kernels.triton.gemm import TileConfig

    cfg = TileConfig(16, 32, 16, 4, 4, 2)
    rng = np.random.default_rng(21)
    n, c, h, w, co, group = 1, 40, 7, 8, 12, 2  # Cg = 20: one full and one partial K block
    geom = (2, 2, 1, 2, 2, 1, 2, 1, group)
    x, b = rand(rng, n, c, h, w), rand(rng, co)
    if transposed:
        wt = rand(rng, c, co // group, 3, 3)
        oh = (h - 1) * 2 - 1 - 2 + 2 * 2 + 1 + 1
        ow = (w - 1) * 2 - 2 - 1 + 2 * 1 + 1 + 0
        ip = [*geom, 1, 0, 0, 0]
        y, (x, wt, b), lau = launch(
            device, plan_conv_transpose2d, [x, wt, b], (n, co, oh, ow), ip, [0, 0],
            config=cfg, prefetch=prefetch,
        )  # fmt: skip
        attrs = {"strides": [2, 2], "pads": [1, 2, 2, 1], "dilations": [2, 1], "group": group,
                 "output_padding": [1, 0]}  # fmt: skip
        (expect,) = conv_transpose([x, wt, b], attrs, 17)
    else:
        wt = rand(rng, co, c // group, 3, 3)
        y_shape = (n, co, *out_hw(h, w, 3, 3, geom))
        y, (x, wt, b), lau = launch(
            device, plan_conv2d, [x, wt, b], y_shape, [*geom, 0, 0], [0, 0],
            config=cfg, prefetch=prefetch,
        )  # fmt: skip
        expect = conv_ref(x, wt, b, None, geom)
    assert not lau.constexprs["FLAT_K"] and lau.constexprs["PREFETCH"] == prefetch
    np.testing.assert_allclose(y, expect, rtol=3e-5, atol=3e-4)


@pytest.mark.parametrize(
    ("geom", "kshape", "c", "splits", "dtype", "prefetch"),
    [
        ((1, 1, 1, 1, 1, 1, 1, 1, 1), (3, 3), 40, 3, "float32", False),  # 9 x 2 K steps over 3
        ((2, 2, 1, 0, 1, 0, 1, 1, 1), (3, 3), 40, 5, "float16", True),  # uneven last split
        ((1, 1, 0, 0, 0, 0, 1, 1, 1), (1, 1), 96, 2, "float32", False),  # pointwise rows
        ((1, 1, 1, 1, 1, 1, 1, 1, 2), (3, 3), 64, 4, "bfloat16", False),  # groups
    ],
    ids=["3x3", "s2-fp16-prefetch", "pointwise", "groups-bf16"],
)
def test_split_k(device: str, geom, kshape, c, splits, dtype, prefetch) -> None:
    """Split-K (one kernel: partial tiles added in the workspace, the last split of each tile
    applies bias + residual + activation) equals the reference, and leaves the workspace zero
    so the next run (a CUDA graph replay) starts clean: the launch helper checks that."""
    from optimizer.kernels.triton.gemm import TileConfig

    cfg = TileConfig(16, 32, 16, 4, 4, 2)
    rng = np.random.default_rng(splits)
    n, h, w, co = 2, 6, 5, 24
    kh, kw = kshape
    x, b = rand(rng, n, c, h, w), rand(rng, co)
    wt = rand(rng, co, c // geom[8], kh, kw)
    y_shape = (n, co, *out_hw(h, w, kh, kw, geom))
    r = rand(rng, *y_shape)
    for _ in range(2):  # twice through the same kind of launch: nothing left behind
        y, (x_r, wt_r, b_r, r_r), lau = launch(
            device, plan_conv2d, [x, wt, b, r], y_shape, [*geom, 1, 0], [0, 0], dtype=dtype,
            config=cfg, prefetch=prefetch, split_k=splits,
        )  # fmt: skip
        assert lau.grid[2] == lau.constexprs["SPLIT_K"] > 1 and lau.zeroed_base == "ws_base"
        expect = conv_ref(x_r, wt_r, b_r, r_r, geom, act=1)
        scale = np.sqrt(c // geom[8] * kh * kw)
        tol = TOL[dtype] * (scale if dtype == "float32" else np.abs(expect).max())
        np.testing.assert_allclose(y, expect, rtol=TOL[dtype], atol=tol)


def test_split_k_transposed(device: str) -> None:
    from optimizer.kernels.triton.gemm import TileConfig

    rng = np.random.default_rng(5)
    n, c, h, w, co = 1, 48, 4, 4, 8
    x, wt, b = rand(rng, n, c, h, w), rand(rng, c, co, 2, 2), rand(rng, co)
    ip = [2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    y, (x, wt, b), lau = launch(
        device, plan_conv_transpose2d, [x, wt, b], (n, co, 8, 8), ip, [0, 0],
        config=TileConfig(16, 32, 16, 4, 4, 2), split_k=3,
    )  # fmt: skip
    assert lau.constexprs["SPLIT_K"] == 3
    (expect,) = conv_transpose([x, wt, b], {"strides": [2, 2]}, 17)
    np.testing.assert_allclose(y, expect, rtol=3e-5, atol=3e-4)


def test_split_k_rule() -> None:
    """Late ResNet layers at batch 1 (few tiles, long K) split; wide layers and short K do not."""
    from optimizer.kernels.triton.conv import split_k_steps

    # 512 channels over 2x2 pixels: 16 tiles of 32x32, K = 4608 -> 72 steps of 64.
    per = split_k_steps(16, 72, sms=132)
    assert per < 72 and -(-72 // per) * 16 <= 2 * 132 and per >= 4
    assert split_k_steps(200, 72, sms=132) == 72  # tiles already fill the GPU
    assert split_k_steps(4, 6, sms=132) == 6  # too short to split
    desc = [TensorDesc((1, 512, 2, 2), "float16"), TensorDesc((512, 512, 3, 3), "float16")]
    lau = plan_conv2d(
        desc, [TensorDesc((1, 512, 2, 2), "float16")], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [0, 0]
    )
    assert lau.constexprs["SPLIT_K"] > 1 and lau.workspace > 0 and lau.grid[2] > 1
    big = [TensorDesc((16, 64, 56, 56), "float16"), TensorDesc((64, 64, 3, 3), "float16")]
    lau = plan_conv2d(
        big, [TensorDesc((16, 64, 56, 56), "float16")], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [0, 0]
    )
    assert (
        lau.constexprs["SPLIT_K"] == 1 and lau.workspace == 0 and lau.args["ws_ptr"].kind == "null"
    )


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_channels_last_input(device: str, dtype: str, transposed: bool) -> None:
    """X given channels-last ([N, H, W, C]): the same Y (NCHW) as from NCHW X, through the
    tap-major loop (Cg >= BLOCK_K), the flat one (narrow groups) and split-K."""
    from optimizer.kernels.triton.gemm import TileConfig

    rng = np.random.default_rng(31)
    n, c, h, w, co, group = 2, 40, 6, 7, 12, 2
    geom = (1, 2, 1, 0, 1, 1, 1, 1, group)
    x, b = rand(rng, n, c, h, w), rand(rng, co)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for cfg, split in ((TileConfig(16, 32, 16, 4, 4, 2), None), (TileConfig(16, 32, 32, 4, 4, 2), None),
                       (TileConfig(16, 32, 16, 4, 4, 2), 3)):  # fmt: skip
        if transposed:
            wt = rand(rng, c, co // group, 3, 3)
            oh, ow = (h - 1) - 2 + 3, (w - 1) * 2 - 1 + 3
            ip = [1, 2, 1, 0, 1, 1, 1, 1, group, 0, 0, 0, 0]
            plan, y_shape = plan_conv_transpose2d, (n, co, oh, ow)
        else:
            wt = rand(rng, co, c // group, 3, 3)
            plan, y_shape, ip = plan_conv2d, (n, co, *out_hw(h, w, 3, 3, geom)), [*geom, 0, 0]
        want, _, _ = launch(device, plan, [x, wt, b], y_shape, ip, [0, 0], dtype=dtype,
                            config=cfg, split_k=split)  # fmt: skip
        got, _, lau = launch(device, plan, [x_cl, wt, b], y_shape, ip, [0, 0], dtype=dtype,
                             config=cfg, split_k=split, x_nhwc=True)  # fmt: skip
        assert lau.constexprs["X_NHWC"] and not lau.constexprs["POINTWISE"]
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * 10)
