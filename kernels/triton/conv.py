"""2-D convolutions: GPU twins of ``conv2d_f32``, ``conv2d_packed_f32``,
``depthwise_conv2d_f32`` and ``conv_transpose2d_f32`` (``kernels/native/params.md``).

**Implicit GEMM** (``conv2d_igemm_kernel``, one kernel for the three dense entries). Per group,
``Y[co, p] = sum_k W[co, k] * cols[k, p]`` with output channels as the GEMM's rows, output
pixels ``p`` (over batch and image) as its columns and ``k`` running over the group's input
channels and kernel taps; ``cols`` is never materialized: each ``BLOCK_K x BLOCK_P`` slice is
gathered from NCHW ``X`` with masks for the padding, stride and dilation. Channels-as-rows
makes the pixel axis the fastest one of both the gathered X slices and the Y tile, which are
contiguous in NCHW (coalesced loads and stores at stride 1). Two K orders:

- tap-major (``FLAT_K = False``): for each tap ``(ky, kx)``, the pixel coordinates and masks are
  computed once, then input channels go by ``BLOCK_K`` (no index division in the inner loop);
- flat (``FLAT_K = True``): ``k = (c*KH + ky)*KW + kx`` in blocks of ``BLOCK_K``, for groups
  with fewer channels than a K block (the 3-channel stem of image models), where tap-major
  would multiply mostly zero padding.

Weight layouts (``W_LAYOUT``): 0 ONNX ``[Co, Cg, KH, KW]`` (conv2d_f32), 1 the packed
``[group, ceil(Mg/32), Cg*KH*KW, 32]`` panels of conv2d_packed_f32, 2 ConvTranspose's
``[C, Co/group, KH, KW]``. ``TRANSPOSED`` switches the gather to ConvTranspose's: output pixel
``oh`` takes input row ``ih = (oh + pad_t - ky*dil_h) / stride_h`` where that divides exactly.
The fused epilogue is the GEMM's: ``act(acc + bias + R)`` or ``act(acc + bias) + R``.

**Depthwise** (``depthwise_conv2d_kernel``): a direct kernel, one program per (image, output
channel, block of output pixels), the taps unrolled (KH, KW are compile-time constants).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import triton
import triton.language as tl
from optimizer.kernels.triton.epilogue import check_act, fused_epilogue
from optimizer.kernels.triton.gemm import (
    NUM_SMS,
    TileConfig,
    alternative_tiles,
    check_params,
    dot_precision,
    interpreter_upcast,
    known_tile,
    launch_tile,
    order_by_fill,
    step_dtype,
)
from optimizer.kernels.triton.known_tactics import known_config
from optimizer.kernels.triton.launch import (
    F32,
    I64,
    NULL,
    WORKSPACE,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_alternatives,
    register_plan,
)

PANEL = 32  # conv2d_packed_f32's output-channel panel width


@triton.jit
def _w_offsets(
    rc, t, rco, g,
    CG: tl.constexpr, MG: tl.constexpr, KHW: tl.constexpr, W_LAYOUT: tl.constexpr,
):  # fmt: skip
    """Element offsets of W[co = g*MG + rco, c = rc, tap t] (broadcast shapes of the args)."""
    if W_LAYOUT == 0:  # [Co, Cg, KH, KW]
        off = ((g * MG + rco) * CG + rc) * KHW + t
    elif W_LAYOUT == 1:  # [G, ceil(MG/32), Cg*KH*KW, 32]
        off = ((g * ((MG + 31) // 32) + rco // 32) * (CG * KHW) + rc * KHW + t) * 32 + rco % 32
    else:  # [C, MG, KH, KW] (ConvTranspose)
        off = ((g * CG + rc) * MG + rco) * KHW + t
    return off


@triton.jit
def _in_coords(
    oh, ow, ky, kx,
    H: tl.constexpr, W: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PT: tl.constexpr, PL: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
    TRANSPOSED: tl.constexpr,
):  # fmt: skip
    """Input row/column read by output (oh, ow) at tap (ky, kx), and whether it exists."""
    if TRANSPOSED:
        th = oh + PT - ky * DH
        tw = ow + PL - kx * DW
        # Clamp before dividing so negative numerators never meet truncating division.
        ih = tl.maximum(th, 0) // SH
        iw = tl.maximum(tw, 0) // SW
        ok = (th >= 0) & (tw >= 0) & (ih * SH == th) & (iw * SW == tw) & (ih < H) & (iw < W)
    else:
        ih = oh * SH - PT + ky * DH
        iw = ow * SW - PL + kx * DW
        ok = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    return ih, iw, ok


@triton.jit
def _igemm_operands(
    it, x_img, x_pix, oh, ow, wco, g, rk, w_ptr,
    H: tl.constexpr, W: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SH: tl.constexpr, SW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
    DH: tl.constexpr, DW: tl.constexpr, CG: tl.constexpr, MG: tl.constexpr,
    W_LAYOUT: tl.constexpr, TRANSPOSED: tl.constexpr, FLAT_K: tl.constexpr,
    POINTWISE: tl.constexpr, UPCAST: tl.constexpr, BLOCK_K: tl.constexpr,
    X_NHWC: tl.constexpr = False, C: tl.constexpr = 0,
):  # fmt: skip
    """K step ``it``: the ``[BLOCK_CO, BLOCK_K]`` weight slice and the gathered
    ``[BLOCK_K, BLOCK_P]`` input slice (zeros where the padding or the K edge is). With
    ``X_NHWC`` X is channels-last (``x_img`` points at each pixel's image and group channel 0):
    a tap's ``BLOCK_K`` channels are contiguous, so the gather becomes vector loads."""
    KHW = KH * KW
    if FLAT_K:
        kk = it * BLOCK_K + rk
        c = kk // KHW
        t = kk % KHW
        ih, iw, ok = _in_coords(
            oh[None, :], ow[None, :], (t // KW)[:, None], (t % KW)[:, None],
            H, W, SH, SW, PT, PL, DH, DW, TRANSPOSED,
        )  # fmt: skip
        ok = ok & (kk < CG * KHW)[:, None]
        if X_NHWC:
            xs = tl.load(x_img[None, :] + c[:, None] + (ih * W + iw) * C, mask=ok, other=0.0)
        else:
            xs = tl.load(x_img[None, :] + c[:, None] * (H * W) + ih * W + iw, mask=ok, other=0.0)
        w_off = _w_offsets(c[None, :], t[None, :], wco[:, None], g, CG, MG, KHW, W_LAYOUT)
        ws = tl.load(w_ptr + w_off, mask=(kk < CG * KHW)[None, :], other=0.0)
    else:
        NUM_CB = (CG + BLOCK_K - 1) // BLOCK_K
        t = it // NUM_CB
        rc = (it % NUM_CB) * BLOCK_K + rk
        if POINTWISE:
            x_ptrs = x_pix[None, :] + rc[:, None] * (H * W)
            ok = rc[:, None] < CG
        else:
            ih, iw, ok = _in_coords(
                oh, ow, t // KW, t % KW, H, W, SH, SW, PT, PL, DH, DW, TRANSPOSED
            )
            if X_NHWC:
                x_ptrs = x_img[None, :] + rc[:, None] + ((ih * W + iw) * C)[None, :]
            else:
                x_ptrs = x_img[None, :] + rc[:, None] * (H * W) + (ih * W + iw)[None, :]
            ok = ok[None, :] & (rc[:, None] < CG)
        w_ptrs = w_ptr + _w_offsets(rc[None, :], t, wco[:, None], g, CG, MG, KHW, W_LAYOUT)
        if CG % BLOCK_K == 0:
            ws = tl.load(w_ptrs)
            if POINTWISE:
                xs = tl.load(x_ptrs)
            else:
                xs = tl.load(x_ptrs, mask=ok, other=0.0)
        else:
            ws = tl.load(w_ptrs, mask=(rc < CG)[None, :], other=0.0)
            xs = tl.load(x_ptrs, mask=ok, other=0.0)
    if UPCAST:
        ws = ws.to(tl.float32)
        xs = xs.to(tl.float32)
    return ws, xs


@triton.jit
def _split_k_reduce(
    acc, ws_ptr, ws_base, tile, num_tiles,
    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Split-K in one kernel: returns ``(sum over the splits, is_last)`` for this tile (is_last
    as a block mask).

    Every split adds its fp32 partial tile into the workspace (``num_tiles`` tiles of
    ``BLOCK_M x BLOCK_N``, then one int32 counter per tile) and counts itself in; the split that
    arrives last takes the sum out with an exchange that leaves zeros behind, and resets the
    counter, so the workspace is zero again when the kernel ends (it must be zero when it
    starts: the runtime zeroes the workspace at load, see docs/module-format.md). The barrier
    orders every thread's partial before the counter's release.
    """
    base = ws_ptr + ws_base
    part = base.to(tl.pointer_type(tl.float32)) + tile * (BLOCK_M * BLOCK_N)
    offs = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    tl.atomic_add(part + offs, acc, sem="relaxed")
    tl.debug_barrier()
    counter = (base + num_tiles * (BLOCK_M * BLOCK_N * 4)).to(tl.pointer_type(tl.int32)) + tile
    arrived = tl.atomic_add(counter, 1, sem="acq_rel")
    last = arrived == SPLIT_K - 1
    if last:
        # (as int32 bits: the same exchange, and the interpreter has no float exchange)
        bits = part.to(tl.pointer_type(tl.int32)) + offs
        acc = tl.atomic_xchg(bits, tl.zeros((BLOCK_M, BLOCK_N), tl.int32), sem="relaxed")
        acc = acc.to(tl.float32, bitcast=True)
        tl.atomic_xchg(counter, 0, sem="relaxed")
    # (as a block: the interpreter gives scalar atomics the shape [1])
    return acc, (tl.zeros((BLOCK_M, BLOCK_N), tl.int32) + arrived) == SPLIT_K - 1


@triton.jit
def conv2d_igemm_kernel(
    x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, act_alpha, act_beta, ws_ptr, ws_base,
    NB: tl.constexpr, C: tl.constexpr, H: tl.constexpr, W: tl.constexpr,
    CO: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SH: tl.constexpr, SW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
    DH: tl.constexpr, DW: tl.constexpr, CG: tl.constexpr, MG: tl.constexpr,
    W_LAYOUT: tl.constexpr, TRANSPOSED: tl.constexpr, FLAT_K: tl.constexpr,
    POINTWISE: tl.constexpr, PREFETCH: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, RESIDUAL_AFTER_ACT: tl.constexpr,
    ACT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_CO: tl.constexpr,
    SPLIT_K: tl.constexpr, K_PER_SPLIT: tl.constexpr, X_NHWC: tl.constexpr,
):  # fmt: skip
    """A ``BLOCK_CO x BLOCK_P`` tile (channels x pixels) of group ``program_id(1)``, over the
    K steps of split ``program_id(2)`` (all of them when ``SPLIT_K == 1``)."""
    OHW = OH * OW
    KHW = KH * KW
    NUM_CB = (CG + BLOCK_K - 1) // BLOCK_K
    TILES_PER_IMG = (OHW + BLOCK_P - 1) // BLOCK_P
    pid = tl.program_id(0)
    g = tl.program_id(1)
    num_co = tl.cdiv(MG, BLOCK_CO)
    if POINTWISE:
        num_p = NB * TILES_PER_IMG
    else:
        num_p = tl.cdiv(NB * OHW, BLOCK_P)
    num_in_group = GROUP_CO * num_p
    first_co = (pid // num_in_group) * GROUP_CO
    group_rows = tl.minimum(num_co - first_co, GROUP_CO)
    pid_co = first_co + (pid % num_in_group) % group_rows
    pid_p = (pid % num_in_group) // group_rows

    rco = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    rk = tl.arange(0, BLOCK_K)
    # Out-of-range channels / pixels wrap onto valid ones (never stored): no mask needed on W.
    wco = rco % MG
    if POINTWISE:
        # 1x1, stride 1, no padding: a tile's pixels are consecutive ones of one image, so the
        # X slices are contiguous rows (vectorized, pipelined loads).
        n = pid_p // TILES_PER_IMG
        q = (pid_p % TILES_PER_IMG) * BLOCK_P + tl.arange(0, BLOCK_P)
        p_live = q < OHW
        x_pix = x_ptr + (n * C + g * CG) * (H * W) + q % OHW
        x_img = x_pix  # (unused in this mode)
        oh = q
        ow = q
    else:
        rp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        p_live = rp < NB * OHW
        wp = rp % (NB * OHW)
        n = wp // OHW
        q = wp % OHW
        oh = q // OW
        ow = q % OW
        if X_NHWC:  # [BLOCK_P] pointers to (n, pixel 0, first channel of the group)
            x_img = x_ptr + n * (H * W * C) + g * CG
        else:  # [BLOCK_P] pointers to (n, first channel)
            x_img = x_ptr + (n * C + g * CG) * (H * W)
        x_pix = x_img  # (unused in this mode)

    acc = tl.zeros((BLOCK_CO, BLOCK_P), dtype=tl.float32)
    KSTEPS = (CG * KHW + BLOCK_K - 1) // BLOCK_K if FLAT_K else KHW * NUM_CB
    if SPLIT_K > 1:
        k_first = tl.program_id(2) * K_PER_SPLIT
        k_end = tl.minimum(k_first + K_PER_SPLIT, KSTEPS)
    else:
        k_first = 0
        k_end = KSTEPS
    if PREFETCH:
        # Gathers that cannot become async copies (2-byte elements at unknown alignment) are
        # issued one step ahead in registers, so their latency overlaps the current product.
        # The last look-ahead re-reads the last step (in bounds, discarded).
        ws, xs = _igemm_operands(
            k_first, x_img, x_pix, oh, ow, wco, g, rk, w_ptr,
            H, W, KH, KW, SH, SW, PT, PL, DH, DW, CG, MG, W_LAYOUT, TRANSPOSED, FLAT_K,
            POINTWISE, UPCAST, BLOCK_K, X_NHWC, C,
        )  # fmt: skip
        for it in range(k_first, k_end):
            ws_next, xs_next = _igemm_operands(
                tl.minimum(it + 1, k_end - 1), x_img, x_pix, oh, ow, wco, g, rk, w_ptr,
                H, W, KH, KW, SH, SW, PT, PL, DH, DW, CG, MG, W_LAYOUT, TRANSPOSED, FLAT_K,
                POINTWISE, UPCAST, BLOCK_K, X_NHWC, C,
            )  # fmt: skip
            acc = tl.dot(ws, xs, acc, input_precision=DOT_PRECISION)
            ws = ws_next
            xs = xs_next
    else:
        # One flat loop over the K steps so the software pipeliner sees every step.
        for it in range(k_first, k_end):
            ws, xs = _igemm_operands(
                it, x_img, x_pix, oh, ow, wco, g, rk, w_ptr,
                H, W, KH, KW, SH, SW, PT, PL, DH, DW, CG, MG, W_LAYOUT, TRANSPOSED, FLAT_K,
                POINTWISE, UPCAST, BLOCK_K, X_NHWC, C,
            )  # fmt: skip
            acc = tl.dot(ws, xs, acc, input_precision=DOT_PRECISION)

    co = g * MG + rco
    mask = (rco < MG)[:, None] & p_live[None, :]
    if SPLIT_K > 1:
        acc, last = _split_k_reduce(
            acc, ws_ptr, ws_base, g * tl.num_programs(0) + pid,
            tl.num_programs(0) * tl.num_programs(1), SPLIT_K, BLOCK_CO, BLOCK_P,
        )  # fmt: skip
        mask = mask & last
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + co, mask=rco < MG, other=0.0).to(tl.float32)[:, None]
    y_off = (n * (CO * OH * OW) + q)[None, :] + (co * (OH * OW))[:, None]
    res = 0.0
    if HAS_RES:
        res = tl.load(r_ptr + y_off, mask=mask, other=0.0).to(tl.float32)
    acc = fused_epilogue(
        acc, bias, res, HAS_BIAS, HAS_RES, RESIDUAL_AFTER_ACT, ACT, act_alpha, act_beta
    )
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def depthwise_conv2d_kernel(
    x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, act_alpha, act_beta,
    C: tl.constexpr, H: tl.constexpr, W: tl.constexpr, CO: tl.constexpr,
    OH: tl.constexpr, OW: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    SH: tl.constexpr, SW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
    DH: tl.constexpr, DW: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, RESIDUAL_AFTER_ACT: tl.constexpr,
    ACT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """``BLOCK`` output pixels of plane ``program_id(1)`` (= n * CO + co)."""
    plane = tl.program_id(1)
    co = plane % CO
    n = plane // CO
    ci = co // (CO // C)
    rp = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    pmask = rp < OH * OW
    oh = rp // OW
    ow = rp % OW
    x_plane = x_ptr + (n * C + ci).to(tl.int64) * (H * W)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for ky in tl.static_range(KH):
        ih = oh * SH - PT + ky * DH
        row_ok = pmask & (ih >= 0) & (ih < H)
        for kx in tl.static_range(KW):
            iw = ow * SW - PL + kx * DW
            ok = row_ok & (iw >= 0) & (iw < W)
            xv = tl.load(x_plane + ih * W + iw, mask=ok, other=0.0).to(tl.float32)
            wv = tl.load(w_ptr + co * (KH * KW) + ky * KW + kx).to(tl.float32)
            acc += xv * wv
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + co).to(tl.float32)
    y_off = plane.to(tl.int64) * (OH * OW) + rp
    res = 0.0
    if HAS_RES:
        res = tl.load(r_ptr + y_off, mask=pmask, other=0.0).to(tl.float32)
    acc = fused_epilogue(
        acc, bias, res, HAS_BIAS, HAS_RES, RESIDUAL_AFTER_ACT, ACT, act_alpha, act_beta
    )
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=pmask)


# --- tile configurations ---------------------------------------------------------------------
# TileConfig.block_m = output channels per tile, block_n = output pixels, block_k = the K slice.
_CONV_TC = [
    TileConfig(64, 128, 32, 8, 4, 3),
    TileConfig(128, 128, 32, 8, 8, 3),
    TileConfig(128, 64, 32, 8, 4, 3),
    TileConfig(64, 64, 32, 8, 4, 3),
    TileConfig(128, 128, 64, 8, 8, 3),
    TileConfig(64, 256, 32, 8, 8, 3),
]
_CONV_TC_FEW_PIXELS = [  # late layers at batch 1: 49-196 pixels, 256-2048 channels
    TileConfig(64, 64, 64, 8, 4, 3),
    TileConfig(128, 32, 64, 8, 4, 3),
    TileConfig(64, 32, 64, 8, 4, 3),
    TileConfig(32, 64, 64, 8, 4, 3),
    TileConfig(32, 32, 64, 8, 4, 3),
]
_CONV_FMA = [
    TileConfig(64, 128, 16, 8, 8, 2),
    TileConfig(64, 64, 16, 8, 4, 2),
    TileConfig(128, 64, 16, 8, 8, 2),
    TileConfig(32, 64, 32, 8, 4, 2),
]
_CONV_FMA_FEW_PIXELS = [
    TileConfig(64, 32, 32, 8, 4, 2),
    TileConfig(32, 32, 32, 8, 4, 2),
    TileConfig(64, 64, 16, 8, 4, 2),
]
_FEW_PIXELS = 256


def conv_tile_candidates(
    mg: int,
    pixels: int,
    cg: int,
    dtype: str,
    allow_tf32: bool = False,
    group: int = 1,
    pointwise_images: int = 0,
) -> list[TileConfig]:
    """Candidate tilings (first = the default rule's pick) for Mg channels x ``pixels``.

    Small channel counts (Mg <= 32: stems, narrow groups) prefer the narrowest channel tile of
    the class, so fewer lanes idle on the padded rows. A pointwise convolution
    (``pointwise_images`` > 0 images of ``pixels / pointwise_images`` pixels each) tiles each
    image separately: pixel tiles more than twice the image go last (a 7x7 map in 128-pixel
    tiles computes 62% padding; on the H100 sweep 128x64 beat 64x128 by 2.3x there), and
    programs are counted per image. Then the fill rule of
    :func:`~optimizer.kernels.triton.gemm.order_by_fill` picks.
    """
    tensor_cores = dtype != "float32" or allow_tf32
    if pixels <= _FEW_PIXELS:
        table = _CONV_TC_FEW_PIXELS if tensor_cores else _CONV_FMA_FEW_PIXELS
    else:
        table = _CONV_TC if tensor_cores else _CONV_FMA
    table = list(table)
    if mg <= 32:
        table.sort(key=lambda c: c.block_m)
    if pointwise_images:
        per_image = pixels // pointwise_images
        table.sort(key=lambda c: c.block_n > triton.next_power_of_2(per_image))
        return order_by_fill(table, mg, per_image, group * pointwise_images)
    return order_by_fill(table, mg, pixels, group)


#: Split-K: a convolution whose tiles fill less than half the SMs and whose reduction is at
#: least this many K steps splits the reduction over more programs (see split_k_steps).
SPLIT_K_MIN_STEPS = 8
#: K steps each split keeps at least (fewer would spend more on the partial sums than they save).
SPLIT_K_MIN_PER_SPLIT = 4


def split_k_steps(tiles: int, ksteps: int, sms: int = NUM_SMS) -> int:
    """K steps per split for ``tiles`` output tiles over ``ksteps`` K steps (``ksteps``: none).

    The late layers of image models at small batch (ResNet's 512 channels over 2x2 pixels at
    batch 1: 16 tiles of 32x32 and K = 4608) leave most SMs idle while each program walks the
    whole reduction; splitting it until about one wave of programs runs cuts the serial K walk
    by the split count, for two atomic passes over one fp32 tile (``_split_k_reduce``).
    """
    if 2 * tiles > sms or ksteps < SPLIT_K_MIN_STEPS:
        return ksteps
    splits = min(ksteps // SPLIT_K_MIN_PER_SPLIT, triton.cdiv(sms, tiles))
    return triton.cdiv(ksteps, max(1, splits))


#: Reduction length (Cg*KH*KW) from which 2-byte gathers are prefetched in registers.
PREFETCH_MIN_K = 2048


def register_prefetch(dtype: str, pointwise: bool, k_total: int) -> bool:
    """Whether the K loop prefetches its gathers in registers (see the kernel).

    Only 2-byte gathers outside the pointwise mode are candidates (Triton cannot turn them into
    pipelined async copies: cp.async moves at least 4 bytes; fp32 gathers and contiguous
    pointwise rows pipeline). On the H100 (fp16, ResNet-50 at batch 1 and 16) the prefetch won
    7-20% on the long reductions (3x3 over 256 and 512 channels: K = 2304, 4608) and lost
    2-17% on the short ones (K = 147 to 1152), hence the threshold.
    """
    return dtype != "float32" and not pointwise and k_total >= PREFETCH_MIN_K


# --- plans -------------------------------------------------------------------------------------
def _common(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    transposed: bool,
) -> tuple[str, tuple[int, ...], tuple[int, ...], TensorDesc | None, TensorDesc | None]:
    if len(inputs) < 2 or len(inputs) > 4 or inputs[0] is None or inputs[1] is None:
        raise Unsupported(f"{entry}: needs X and W, and at most B and R")
    if len(outputs) != 1:
        raise Unsupported(f"{entry}: one output Y")
    dtype = step_dtype(inputs, outputs, entry)
    x, y = inputs[0].shape, outputs[0].shape
    if len(x) != 4 or len(y) != 4:
        raise Unsupported(f"{entry}: X {x} and Y {y} must be NCHW (rank 4)")
    if min(x) < 1 or min(y) < 1:
        raise Unsupported(f"{entry}: empty tensor X {x} or Y {y}")
    b = inputs[2] if len(inputs) > 2 else None
    r = inputs[3] if len(inputs) > 3 else None
    if b is not None and b.shape != (y[1],):
        raise Unsupported(f"{entry}: bias B {b.shape}, expected [{y[1]}]")
    if r is not None and r.shape != y:
        raise Unsupported(f"{entry}: residual R {r.shape} must have Y's shape {y}")
    return dtype, x, y, b, r


def _nchw_view(inputs: Sequence[TensorDesc | None], x_nhwc: bool) -> Sequence[TensorDesc | None]:
    """With ``x_nhwc`` X arrives as ``[N, H, W, C]``: its NCHW description for the checks."""
    if not x_nhwc or inputs[0] is None or len(inputs[0].shape) != 4:
        return inputs
    n, h, w, c = inputs[0].shape
    return [TensorDesc((n, c, h, w), inputs[0].dtype), *inputs[1:]]


def _geometry(
    entry: str, ip: Sequence[int], x: tuple[int, ...], kh: int, kw: int
) -> tuple[int, ...]:
    sh, sw, pt, pl, pb, pr, dh, dw, group = (int(v) for v in ip[:9])
    if min(sh, sw, dh, dw, group, kh, kw) < 1 or min(pt, pl, pb, pr) < 0:
        raise Unsupported(f"{entry}: strides, dilations, group and kernel must be >= 1, pads >= 0")
    return sh, sw, pt, pl, pb, pr, dh, dw, group


def _launch_igemm(
    name: str, dtype: str, x: tuple[int, ...], y: tuple[int, ...], kh: int, kw: int,
    geom: tuple[int, ...], w_layout: int, transposed: bool, b, r, act: int, rafter: int,
    fparams: Sequence[float], config: TileConfig | None, allow_tf32: bool,
    prefetch: bool | None = None, split_k: int | None = None, x_nhwc: bool = False,
) -> TritonLaunch:  # fmt: skip
    sh, sw, pt, pl, _, _, dh, dw, group = geom
    nb, c, h, w = x
    co = y[1]
    cg, mg = c // group, co // group
    pixels = nb * y[2] * y[3]
    pointwise_geometry = (
        kh == kw == 1 and sh == sw == 1 and pt == pl == 0 and x[2:] == y[2:] and not transposed
    )
    cfg = (
        config
        or conv_tile_candidates(
            mg, pixels, cg, dtype, allow_tf32, group, nb if pointwise_geometry else 0
        )[0]
    )
    flat_k = cg < cfg.block_k
    pointwise = pointwise_geometry and not flat_k and not x_nhwc
    num_p = (
        nb * triton.cdiv(y[2] * y[3], cfg.block_n)
        if pointwise
        else triton.cdiv(pixels, cfg.block_n)
    )
    tiles = triton.cdiv(mg, cfg.block_m) * num_p * group
    ksteps = (
        triton.cdiv(cg * kh * kw, cfg.block_k) if flat_k else kh * kw * triton.cdiv(cg, cfg.block_k)
    )
    k_per_split = split_k_steps(tiles, ksteps) if split_k is None else triton.cdiv(ksteps, split_k)
    splits = triton.cdiv(ksteps, k_per_split)
    workspace = tiles * (cfg.block_m * cfg.block_n + 1) * 4 if splits > 1 else 0
    return TritonLaunch(
        name=name,
        kernel=conv2d_igemm_kernel,
        args={
            "x_ptr": In(0),
            "w_ptr": In(1),
            "b_ptr": In(2) if b is not None else NULL,
            "r_ptr": In(3) if r is not None else NULL,
            "y_ptr": Out(0),
            "act_alpha": F32(fparams[0]),
            "act_beta": F32(fparams[1]),
            "ws_ptr": WORKSPACE if splits > 1 else NULL,
            "ws_base": I64(0),
        },
        constexprs={
            "NB": nb,
            "C": c,
            "H": h,
            "W": w,
            "CO": co,
            "OH": y[2],
            "OW": y[3],
            "KH": kh,
            "KW": kw,
            "SH": sh,
            "SW": sw,
            "PT": pt,
            "PL": pl,
            "DH": dh,
            "DW": dw,
            "CG": cg,
            "MG": mg,
            "W_LAYOUT": w_layout,
            "TRANSPOSED": transposed,
            "FLAT_K": flat_k,
            "POINTWISE": pointwise,
            "PREFETCH": (
                register_prefetch(dtype, pointwise or x_nhwc, cg * kh * kw)
                if prefetch is None
                else prefetch
            ),
            "HAS_BIAS": b is not None,
            "HAS_RES": r is not None,
            "RESIDUAL_AFTER_ACT": bool(rafter),
            "ACT": act,
            "DOT_PRECISION": dot_precision(dtype, allow_tf32),
            "UPCAST": interpreter_upcast(dtype),
            "BLOCK_CO": cfg.block_m,
            "BLOCK_P": cfg.block_n,
            "BLOCK_K": cfg.block_k,
            "GROUP_CO": cfg.group_m,
            "SPLIT_K": splits,
            "K_PER_SPLIT": k_per_split,
            "X_NHWC": x_nhwc,
        },
        grid=(triton.cdiv(mg, cfg.block_m) * num_p, group, splits),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        workspace=workspace,
        zeroed_base="ws_base" if splits > 1 else "",
        tactic=cfg.key(),
    )


def _check_out(entry: str, y: tuple[int, ...], expect: tuple[int, ...]) -> None:
    if y != expect:
        raise Unsupported(f"{entry}: output Y {list(y)}, expected {list(expect)}")


def _conv_out(x, kh, kw, geom, co) -> tuple[int, ...]:
    sh, sw, pt, pl, pb, pr, dh, dw, _ = geom
    oh = (x[2] + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    ow = (x[3] + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    return (x[0], co, oh, ow)


def _check_act_flags(entry: str, act: int, rafter: int) -> int:
    if rafter not in (0, 1):
        raise Unsupported(f"{entry}: residual_after_act must be 0 or 1")
    return check_act(act, entry)


def plan_conv2d(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    config: TileConfig | None = None,
    allow_tf32: bool = False,
    prefetch: bool | None = None,
    split_k: int | None = None,
    x_nhwc: bool = False,
) -> TritonLaunch:
    """Plan of ``conv2d_f32``: W in ONNX layout ``[Co, C/group, KH, KW]``."""
    entry = "conv2d_f32"
    check_params(iparams, fparams, 11, 2, entry)
    inputs = _nchw_view(inputs, x_nhwc)
    dtype, x, y, b, r = _common(entry, inputs, outputs, False)
    wshape = inputs[1].shape
    if len(wshape) != 4:
        raise Unsupported(f"{entry}: W {wshape} must be [Co, C/group, KH, KW]")
    co, wc, kh, kw = wshape
    geom = _geometry(entry, iparams, x, kh, kw)
    group = geom[8]
    if x[1] % group or co % group or wc * group != x[1]:
        raise Unsupported(f"{entry}: X {x} and W {wshape} do not fit group={group}")
    act = _check_act_flags(entry, iparams[9], iparams[10])
    _check_out(entry, y, _conv_out(x, kh, kw, geom, co))
    return _launch_igemm(
        "triton.conv2d_igemm", dtype, x, y, kh, kw, geom, 0, False, b, r, act, iparams[10],
        fparams, config or known_tile(entry, inputs, outputs, iparams), allow_tf32, prefetch,
        split_k, x_nhwc,
    )  # fmt: skip


def plan_conv2d_packed(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    config: TileConfig | None = None,
    allow_tf32: bool = False,
    prefetch: bool | None = None,
    split_k: int | None = None,
    x_nhwc: bool = False,
) -> TritonLaunch:
    """Plan of ``conv2d_packed_f32``: W packed in 32-wide output-channel panels (params.md)."""
    entry = "conv2d_packed_f32"
    check_params(iparams, fparams, 14, 2, entry)
    inputs = _nchw_view(inputs, x_nhwc)
    dtype, x, y, b, r = _common(entry, inputs, outputs, False)
    co, kh, kw = (int(v) for v in iparams[11:14])
    geom = _geometry(entry, iparams, x, kh, kw)
    group = geom[8]
    if co < 1 or x[1] % group or co % group:
        raise Unsupported(f"{entry}: C={x[1]} and Co={co} do not fit group={group}")
    mg, cg = co // group, x[1] // group
    expect_w = (group, -(-mg // PANEL), cg * kh * kw, PANEL)
    if inputs[1].shape != expect_w:
        raise Unsupported(f"{entry}: packed W {inputs[1].shape}, expected {expect_w}")
    act = _check_act_flags(entry, iparams[9], iparams[10])
    _check_out(entry, y, _conv_out(x, kh, kw, geom, co))
    return _launch_igemm(
        "triton.conv2d_igemm", dtype, x, y, kh, kw, geom, 1, False, b, r, act, iparams[10],
        fparams, config or known_tile(entry, inputs, outputs, iparams), allow_tf32, prefetch,
        split_k, x_nhwc,
    )  # fmt: skip


def plan_conv_transpose2d(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    config: TileConfig | None = None,
    allow_tf32: bool = False,
    prefetch: bool | None = None,
    split_k: int | None = None,
    x_nhwc: bool = False,
) -> TritonLaunch:
    """Plan of ``conv_transpose2d_f32``: a gather-form implicit GEMM (a workspace only when the
    reduction is split)."""
    entry = "conv_transpose2d_f32"
    check_params(iparams, fparams, 13, 2, entry)
    inputs = _nchw_view(inputs, x_nhwc)
    dtype, x, y, b, r = _common(entry, inputs, outputs, True)
    wshape = inputs[1].shape
    if len(wshape) != 4:
        raise Unsupported(f"{entry}: W {wshape} must be [C, Co/group, KH, KW]")
    wc, mg, kh, kw = wshape
    geom = _geometry(entry, iparams, x, kh, kw)
    sh, sw, pt, pl, pb, pr, dh, dw, group = geom
    oph, opw = int(iparams[9]), int(iparams[10])
    if not (0 <= oph < max(sh, dh) and 0 <= opw < max(sw, dw)):
        raise Unsupported(
            f"{entry}: output_padding [{oph}, {opw}] must be >= 0 and < max(stride, dilation)"
        )
    if wc != x[1] or x[1] % group:
        raise Unsupported(f"{entry}: X {x} and W {wshape} do not fit group={group}")
    act = _check_act_flags(entry, iparams[11], iparams[12])
    oh = (x[2] - 1) * sh - pt - pb + (kh - 1) * dh + 1 + oph
    ow = (x[3] - 1) * sw - pl - pr + (kw - 1) * dw + 1 + opw
    _check_out(entry, y, (x[0], mg * group, oh, ow))
    return _launch_igemm(
        "triton.conv_transpose2d_igemm", dtype, x, y, kh, kw, geom, 2, True, b, r, act,
        iparams[12], fparams, config or known_tile(entry, inputs, outputs, iparams), allow_tf32,
        prefetch, split_k, x_nhwc,
    )  # fmt: skip


def plan_depthwise_conv2d(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    block: int | None = None,
    num_warps: int | None = None,
) -> TritonLaunch:
    """Plan of ``depthwise_conv2d_f32``: W ``[C*multiplier, 1, KH, KW]``, group == C.

    ``block`` / ``num_warps`` override the rule (a block of pixels per program: the plane's
    pixel count rounded up to a power of two in 64..1024; 4 warps from 256 pixels, else 2) and
    the known-tactics table (configuration names ``b256w4``)."""
    entry = "depthwise_conv2d_f32"
    check_params(iparams, fparams, 11, 2, entry)
    _, x, y, b, r = _common(entry, inputs, outputs, False)
    wshape = inputs[1].shape
    if len(wshape) != 4 or wshape[1] != 1:
        raise Unsupported(f"{entry}: W {wshape} must be [Co, 1, KH, KW]")
    co, _, kh, kw = wshape
    geom = _geometry(entry, iparams, x, kh, kw)
    sh, sw, pt, pl, _, _, dh, dw, group = geom
    if group != x[1] or co % x[1]:
        raise Unsupported(
            f"{entry}: depthwise needs group == C and Co % C == 0 (group={group}, X {x}, W {wshape})"
        )
    act = _check_act_flags(entry, iparams[9], iparams[10])
    _check_out(entry, y, _conv_out(x, kh, kw, geom, co))
    planes = x[0] * co
    if planes >= 2**16:
        raise Unsupported(f"{entry}: {planes} planes (N * Co) exceed the grid's 65535")
    pix = y[2] * y[3]
    known = _depthwise_config(known_config(entry, inputs, outputs, iparams) or "")
    if block is None and num_warps is None and known is not None:
        block, num_warps = known
    blk = block or _depthwise_rule(pix)[0]
    warps = num_warps or (4 if blk >= 256 else 2)
    return TritonLaunch(
        name="triton.depthwise_conv2d",
        kernel=depthwise_conv2d_kernel,
        args={
            "x_ptr": In(0),
            "w_ptr": In(1),
            "b_ptr": In(2) if b is not None else NULL,
            "r_ptr": In(3) if r is not None else NULL,
            "y_ptr": Out(0),
            "act_alpha": F32(fparams[0]),
            "act_beta": F32(fparams[1]),
        },
        constexprs={
            "C": x[1],
            "H": x[2],
            "W": x[3],
            "CO": co,
            "OH": y[2],
            "OW": y[3],
            "KH": kh,
            "KW": kw,
            "SH": sh,
            "SW": sw,
            "PT": pt,
            "PL": pl,
            "DH": dh,
            "DW": dw,
            "HAS_BIAS": b is not None,
            "HAS_RES": r is not None,
            "RESIDUAL_AFTER_ACT": bool(iparams[10]),
            "ACT": act,
            "BLOCK": blk,
        },
        grid=(triton.cdiv(pix, blk), planes, 1),
        num_warps=warps,
        num_stages=1,
        tactic=f"b{blk}w{warps}",
    )


def _depthwise_rule(pixels: int) -> tuple[int, int]:
    """The rule's (block, warps) for planes of ``pixels`` output pixels."""
    blk = max(64, min(1024, triton.next_power_of_2(pixels)))
    return blk, 4 if blk >= 256 else 2


_DEPTHWISE_KEY = re.compile(r"b(\d+)w(\d+)")


def _depthwise_config(name: str) -> tuple[int, int] | None:
    """``b256w4`` -> (256, 4); None unless a power-of-two block in 32..4096 and 1..16 warps."""
    m = _DEPTHWISE_KEY.fullmatch(name)
    if m is None:
        return None
    blk, warps = int(m.group(1)), int(m.group(2))
    if not (32 <= blk <= 4096 and blk & (blk - 1) == 0 and warps in (1, 2, 4, 8, 16)):
        return None
    return blk, warps


def conv_candidates(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    allow_tf32: bool = False,
) -> list[TileConfig]:
    """Tilings a tactic step may time for a dense convolution step (first = the rule's pick)."""
    plan = {"conv2d_f32": plan_conv2d, "conv2d_packed_f32": plan_conv2d_packed,
            "conv_transpose2d_f32": plan_conv_transpose2d}[entry]  # fmt: skip
    c = plan(inputs, outputs, iparams, fparams, allow_tf32=allow_tf32).constexprs
    pointwise_geometry = (
        c["KH"] == c["KW"] == c["SH"] == c["SW"] == 1 and c["PT"] == c["PL"] == 0
        and (c["H"], c["W"]) == (c["OH"], c["OW"]) and not c["TRANSPOSED"]
    )  # fmt: skip
    return conv_tile_candidates(
        c["MG"],
        c["NB"] * c["OH"] * c["OW"],
        c["CG"],
        outputs[0].dtype,
        allow_tf32,
        c["C"] // c["CG"],
        c["NB"] if pointwise_geometry else 0,
    )


def _igemm_alternatives(entry: str, plan: Any) -> Any:
    def alternatives(
        inputs: Sequence[TensorDesc | None],
        outputs: Sequence[TensorDesc],
        iparams: Sequence[int],
        fparams: Sequence[float],
        *,
        allow_tf32: bool = False,
    ) -> list[TritonLaunch]:
        default = plan(inputs, outputs, iparams, fparams, allow_tf32=allow_tf32)
        candidates = conv_candidates(entry, inputs, outputs, iparams, fparams, allow_tf32)
        tile = launch_tile(default, "BLOCK_CO", "BLOCK_P", "GROUP_CO")
        return [
            plan(inputs, outputs, iparams, fparams, config=cfg, allow_tf32=allow_tf32)
            for cfg in alternative_tiles(tile, candidates)
        ]

    alternatives.__doc__ = f"Tactic candidates of ``{entry}`` besides the default launch."
    return alternatives


def plan_depthwise_alternatives(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> list[TritonLaunch]:
    """Tactic candidates of ``depthwise_conv2d_f32``: half and quarter the pixel block (more
    programs for small planes), the default block with twice the warps, and the rule's pick
    when the default came from the known-tactics table."""
    default = plan_depthwise_conv2d(inputs, outputs, iparams, fparams)
    blk, warps = default.constexprs["BLOCK"], default.num_warps
    configs = [_depthwise_rule(outputs[0].shape[2] * outputs[0].shape[3]),
               (blk // 2, max(1, warps // 2)), (blk // 4, max(1, warps // 2)),
               (blk, min(16, warps * 2))]  # fmt: skip
    seen = {(blk, warps)}
    out = []
    for b, w in configs:
        if b >= 32 and (b, w) not in seen:
            seen.add((b, w))
            out.append(plan_depthwise_conv2d(inputs, outputs, iparams, fparams, block=b,
                                             num_warps=w))  # fmt: skip
    return out


register_plan("conv2d_f32", plan_conv2d)
register_plan("conv2d_packed_f32", plan_conv2d_packed)
register_plan("conv_transpose2d_f32", plan_conv_transpose2d)
register_plan("depthwise_conv2d_f32", plan_depthwise_conv2d)
register_alternatives("conv2d_f32", _igemm_alternatives("conv2d_f32", plan_conv2d))
register_alternatives(
    "conv2d_packed_f32", _igemm_alternatives("conv2d_packed_f32", plan_conv2d_packed)
)
register_alternatives(
    "conv_transpose2d_f32", _igemm_alternatives("conv_transpose2d_f32", plan_conv_transpose2d)
)
register_alternatives("depthwise_conv2d_f32", plan_depthwise_alternatives)
