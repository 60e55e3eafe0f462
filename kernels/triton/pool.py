"""Pooling: GPU twins of ``maxpool2d_f32``, ``avgpool2d_f32`` and ``global_avgpool_f32``.

Windowed pools (``pool2d_kernel``): the output is walked flat (``N*C*OH*OW`` elements in blocks
of ``BLOCK``; consecutive lanes are consecutive output pixels, so loads of stride-1 windows are
coalesced), the window's taps are unrolled (kernel size, strides, pads and dilations are
compile-time constants). Max pooling pads with -inf; average pooling sums in fp32 and divides
by the taps inside the input (``count_include_pad = 0``) or inside the padded extent
(``count_include_pad = 1``; the extra end of a ``ceil_mode`` window never counts), exactly as
params.md and the native kernel define them. Output sizes follow params.md (with ``ceil_mode``
a last window that would start in the end padding is dropped).

Global average pooling (``global_avgpool_kernel``): ``ROWS`` (n, c) planes per program, each
summed over its ``S`` spatial elements in fp32 in blocks of ``BLOCK_S``.
"""

from __future__ import annotations

from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.gemm import check_params, step_dtype
from optimizer.kernels.triton.launch import (
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)


@triton.jit
def pool2d_kernel(
    x_ptr, y_ptr,
    TOTAL: tl.constexpr, H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
    PT: tl.constexpr, PL: tl.constexpr, PB: tl.constexpr, PR: tl.constexpr,
    DH: tl.constexpr, DW: tl.constexpr,
    IS_MAX: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """``BLOCK`` consecutive outputs of the flat ``[N*C, OH, OW]`` output."""
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = idx < TOTAL
    plane = idx // (OH * OW)
    q = idx % (OH * OW)
    oh = q // OW
    ow = q % OW
    x_plane = x_ptr + plane * (H * W)
    h0 = oh * SH - PT
    w0 = ow * SW - PL
    if IS_MAX:
        acc = tl.full((BLOCK,), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK,), dtype=tl.float32)
        cnt = tl.zeros((BLOCK,), dtype=tl.float32)
    for ky in tl.static_range(KH):
        ih = h0 + ky * DH
        row_in = (ih >= 0) & (ih < H)
        for kx in tl.static_range(KW):
            iw = w0 + kx * DW
            ok = live & row_in & (iw >= 0) & (iw < W)
            if IS_MAX:
                v = tl.load(x_plane + ih * W + iw, mask=ok, other=float("-inf"))
                acc = tl.maximum(acc, v.to(tl.float32))
            else:
                v = tl.load(x_plane + ih * W + iw, mask=ok, other=0.0)
                acc += v.to(tl.float32)
                if COUNT_INCLUDE_PAD:
                    inside = (ih >= -PT) & (ih < H + PB) & (iw >= -PL) & (iw < W + PR)
                else:
                    inside = row_in & (iw >= 0) & (iw < W)
                cnt += tl.where(inside, 1.0, 0.0)
    if not IS_MAX:
        acc = acc / cnt
    tl.store(y_ptr + idx, acc.to(y_ptr.dtype.element_ty), mask=live)


@triton.jit
def global_avgpool_kernel(
    x_ptr, y_ptr,
    PLANES: tl.constexpr, S: tl.constexpr, ROWS: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Means of ``ROWS`` consecutive planes of ``S`` elements."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    live = rows < PLANES
    cols = tl.arange(0, BLOCK_S)
    base = x_ptr + rows.to(tl.int64)[:, None] * S
    acc = tl.zeros((ROWS, BLOCK_S), dtype=tl.float32)
    for s0 in range(0, S, BLOCK_S):
        m = live[:, None] & (s0 + cols < S)[None, :]
        acc += tl.load(base + s0 + cols[None, :], mask=m, other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=1) * (1.0 / S)
    tl.store(y_ptr + rows, mean.to(y_ptr.dtype.element_ty), mask=live)


def pool_out_len(size: int, pa: int, pe: int, k: int, s: int, d: int, ceil_mode: int) -> int:
    """Output length along one axis (params.md "pools")."""
    num = size + pa + pe - ((k - 1) * d + 1)
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= size + pa:
        o -= 1
    return o


def _plan_pool(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    is_max: bool,
) -> TritonLaunch:
    check_params(iparams, fparams, 11 if is_max else 12, 0, entry)
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported(f"{entry}: one input X and one output Y")
    step_dtype(inputs, outputs, entry)
    x, y = inputs[0].shape, outputs[0].shape
    if len(x) != 4 or len(y) != 4:
        raise Unsupported(f"{entry}: X {x} and Y {y} must be NCHW (rank 4)")
    kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil_mode = (int(v) for v in iparams[:11])
    include_pad = 0 if is_max else int(iparams[11])
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl, pb, pr) < 0:
        raise Unsupported(f"{entry}: kernel, strides and dilations must be >= 1, pads >= 0")
    if ceil_mode not in (0, 1) or include_pad not in (0, 1):
        raise Unsupported(f"{entry}: ceil_mode and count_include_pad must be 0 or 1")
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if max(pt, pb) >= eh or max(pl, pr) >= ew:
        raise Unsupported(f"{entry}: pads must be smaller than the (dilated) kernel")
    if x[2] + pt + pb < eh or x[3] + pl + pr < ew:
        raise Unsupported(f"{entry}: kernel larger than the padded input")
    oh = pool_out_len(x[2], pt, pb, kh, sh, dh, ceil_mode)
    ow = pool_out_len(x[3], pl, pr, kw, sw, dw, ceil_mode)
    if y != (x[0], x[1], oh, ow):
        raise Unsupported(f"{entry}: output Y {list(y)}, expected {[x[0], x[1], oh, ow]}")
    total = outputs[0].numel
    if total == 0:
        raise Unsupported(f"{entry}: empty output {y}")
    block = 512 if total >= 4096 else 128
    return TritonLaunch(
        name="triton.maxpool2d" if is_max else "triton.avgpool2d",
        kernel=pool2d_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0)},
        constexprs={
            "TOTAL": total,
            "H": x[2],
            "W": x[3],
            "OH": oh,
            "OW": ow,
            "KH": kh,
            "KW": kw,
            "SH": sh,
            "SW": sw,
            "PT": pt,
            "PL": pl,
            "PB": pb,
            "PR": pr,
            "DH": dh,
            "DW": dw,
            "IS_MAX": is_max,
            "COUNT_INCLUDE_PAD": bool(include_pad),
            "BLOCK": block,
        },
        grid=(triton.cdiv(total, block), 1, 1),
        num_warps=4,
        num_stages=1,
    )


def plan_maxpool2d(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """Plan of ``maxpool2d_f32``."""
    return _plan_pool("maxpool2d_f32", inputs, outputs, iparams, fparams, True)


def plan_avgpool2d(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """Plan of ``avgpool2d_f32``."""
    return _plan_pool("avgpool2d_f32", inputs, outputs, iparams, fparams, False)


def plan_global_avgpool(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """Plan of ``global_avgpool_f32``: X ``[N, C, spatial...]`` -> Y ``[N, C, 1, ...]`` or ``[N, C]``."""
    entry = "global_avgpool_f32"
    check_params(iparams, fparams, 0, 0, entry)
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported(f"{entry}: one input X and one output Y")
    step_dtype(inputs, outputs, entry)
    x, y = inputs[0].shape, outputs[0].shape
    fits = len(x) >= 3 and y[:2] == x[:2] and len(y) in (2, len(x)) and all(d == 1 for d in y[2:])
    if not fits:
        raise Unsupported(f"{entry}: output Y {y} does not fit X {x}")
    planes = x[0] * x[1]
    s = inputs[0].numel // planes if planes else 0
    if planes == 0 or s == 0:
        raise Unsupported(f"{entry}: empty X {x}")
    block_s = min(1024, triton.next_power_of_2(s))
    rows = max(1, min(64, 4096 // block_s))
    return TritonLaunch(
        name="triton.global_avgpool",
        kernel=global_avgpool_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0)},
        constexprs={"PLANES": planes, "S": s, "ROWS": rows, "BLOCK_S": block_s},
        grid=(triton.cdiv(planes, rows), 1, 1),
        num_warps=4,
        num_stages=1,
    )


register_plan("maxpool2d_f32", plan_maxpool2d)
register_plan("avgpool2d_f32", plan_avgpool2d)
register_plan("global_avgpool_f32", plan_global_avgpool)
