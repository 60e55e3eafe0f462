"""Softmax / LogSoftmax and layer normalization: GPU twins of ``softmax_f32`` and ``layer_norm_f32``.

Both normalize along rows. A step is viewed as ``[outer, L, inner]`` (softmax: ``L`` the axis;
layer norm: ``inner = 1``, ``L = prod(X.shape[axis:])``). Rows that fit one block
(``L <= MAX_BLOCK``) are loaded once and kept in registers, several rows per program when they are
short (BERT's attention rows of 128: 16 rows a program); longer rows loop over the row in blocks
(online max / rescaled sum for softmax; mean, centred variance, normalize passes for layer norm).
Softmax over a non-last axis (``inner > 1``) tiles ``[L-block, inner-block]`` so loads stay
coalesced along ``inner``. Math in fp32 for fp16 / bf16 tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    I32,
    NULL,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

#: Largest row block kept in registers (elements); longer rows loop.
MAX_BLOCK = 4096
#: Elements a program holds at once (rows * block) for short rows.
TILE = 2048


@triton.jit
def _softmax_rows_kernel(
    x_ptr, y_ptr, n_rows, L,
    LOG: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr, ONE_PASS: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < n_rows
    base = rows.to(tl.int64) * L
    cols = tl.arange(0, BLOCK)
    if ONE_PASS:
        mask = rmask[:, None] & (cols[None, :] < L)
        offs = base[:, None] + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=-float("inf")).to(tl.float32)
        m = tl.max(x, 1)
        m = tl.where(m == -float("inf"), 0.0, m)
        e = tl.exp(x - m[:, None])
        s = tl.sum(e, 1)
        if LOG:
            y = x - (m + tl.log(s))[:, None]
        else:
            y = e * (1.0 / s)[:, None]
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full([ROWS], -float("inf"), tl.float32)
        s = tl.zeros([ROWS], tl.float32)
        for c0 in range(0, L, BLOCK):
            mask = rmask[:, None] & (c0 + cols[None, :] < L)
            offs = base[:, None] + c0 + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf")).to(tl.float32)
            mn = tl.maximum(m, tl.max(x, 1))
            ms = tl.where(mn == -float("inf"), 0.0, mn)
            s = s * tl.exp(m - ms) + tl.sum(tl.exp(x - ms[:, None]), 1)
            m = mn
        m = tl.where(m == -float("inf"), 0.0, m)
        ls = m + tl.log(s)
        inv = 1.0 / s
        for c0 in range(0, L, BLOCK):
            mask = rmask[:, None] & (c0 + cols[None, :] < L)
            offs = base[:, None] + c0 + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                y = x - ls[:, None]
            else:
                y = tl.exp(x - m[:, None]) * inv[:, None]
            tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_cols_kernel(
    x_ptr, y_ptr, L, INNER, n_iblk,
    LOG: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_I: tl.constexpr, ONE_PASS: tl.constexpr,
):  # fmt: skip
    # softmax along the middle axis of [outer, L, INNER]: the reduction runs down columns
    pid = tl.program_id(0)
    o = pid // n_iblk
    cols = (pid % n_iblk) * BLOCK_I + tl.arange(0, BLOCK_I)
    cmask = cols < INNER
    base = o.to(tl.int64) * L * INNER
    ks = tl.arange(0, BLOCK_L)
    if ONE_PASS:
        mask = (ks[:, None] < L) & cmask[None, :]
        offs = base + ks[:, None] * INNER + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=-float("inf")).to(tl.float32)
        m = tl.max(x, 0)
        m = tl.where(m == -float("inf"), 0.0, m)
        e = tl.exp(x - m[None, :])
        s = tl.sum(e, 0)
        if LOG:
            y = x - (m + tl.log(s))[None, :]
        else:
            y = e * (1.0 / s)[None, :]
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full([BLOCK_I], -float("inf"), tl.float32)
        s = tl.zeros([BLOCK_I], tl.float32)
        for k0 in range(0, L, BLOCK_L):
            mask = (k0 + ks[:, None] < L) & cmask[None, :]
            offs = base + (k0 + ks[:, None]) * INNER + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf")).to(tl.float32)
            mn = tl.maximum(m, tl.max(x, 0))
            ms = tl.where(mn == -float("inf"), 0.0, mn)
            s = s * tl.exp(m - ms) + tl.sum(tl.exp(x - ms[None, :]), 0)
            m = mn
        m = tl.where(m == -float("inf"), 0.0, m)
        ls = m + tl.log(s)
        inv = 1.0 / s
        for k0 in range(0, L, BLOCK_L):
            mask = (k0 + ks[:, None] < L) & cmask[None, :]
            offs = base + (k0 + ks[:, None]) * INNER + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            if LOG:
                y = x - ls[None, :]
            else:
                y = tl.exp(x - m[None, :]) * inv[None, :]
            tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _layer_norm_kernel(
    x_ptr, scale_ptr, b_ptr, y_ptr, mean_ptr, istd_ptr, n_rows, N, eps,
    HAS_SCALE: tl.constexpr, HAS_B: tl.constexpr, HAS_MEAN: tl.constexpr, HAS_ISTD: tl.constexpr,
    ROWS: tl.constexpr, BLOCK: tl.constexpr, ONE_PASS: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < n_rows
    base = rows.to(tl.int64) * N
    cols = tl.arange(0, BLOCK)
    if ONE_PASS:
        cmask = cols < N
        mask = rmask[:, None] & cmask[None, :]
        offs = base[:, None] + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, 1) / N
        d = tl.where(mask, x - mean[:, None], 0.0)
        istd = 1.0 / tl.sqrt(tl.sum(d * d, 1) / N + eps)
        y = d * istd[:, None]
        if HAS_SCALE:
            y = y * tl.load(scale_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        if HAS_B:
            y = y + tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros([ROWS, BLOCK], tl.float32)
        for c0 in range(0, N, BLOCK):
            mask = rmask[:, None] & (c0 + cols[None, :] < N)
            acc += tl.load(x_ptr + base[:, None] + c0 + cols[None, :], mask=mask, other=0.0).to(
                tl.float32
            )
        mean = tl.sum(acc, 1) / N
        acc = tl.zeros([ROWS, BLOCK], tl.float32)
        for c0 in range(0, N, BLOCK):
            mask = rmask[:, None] & (c0 + cols[None, :] < N)
            x = tl.load(x_ptr + base[:, None] + c0 + cols[None, :], mask=mask, other=0.0)
            d = tl.where(mask, x.to(tl.float32) - mean[:, None], 0.0)
            acc += d * d
        istd = 1.0 / tl.sqrt(tl.sum(acc, 1) / N + eps)
        for c0 in range(0, N, BLOCK):
            cmask = c0 + cols < N
            mask = rmask[:, None] & cmask[None, :]
            offs = base[:, None] + c0 + cols[None, :]
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            y = (x - mean[:, None]) * istd[:, None]
            if HAS_SCALE:
                y = (
                    y
                    * tl.load(scale_ptr + c0 + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
                )
            if HAS_B:
                y = y + tl.load(b_ptr + c0 + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
            tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    if HAS_MEAN:
        tl.store(mean_ptr + rows, mean.to(mean_ptr.dtype.element_ty), mask=rmask)
    if HAS_ISTD:
        tl.store(istd_ptr + rows, istd.to(istd_ptr.dtype.element_ty), mask=rmask)


def _prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _axis(axis: int, rank: int, entry: str) -> int:
    if not -rank <= axis < rank:
        raise Unsupported(f"{entry}: axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _check_float(entry: str, descs: Sequence[TensorDesc | None]) -> str:
    dts = {d.dtype for d in descs if d is not None}
    if len(dts) != 1 or not dts <= set(FLOAT_DTYPES):
        raise Unsupported(f"{entry}: tensors must share one of {FLOAT_DTYPES}, got {sorted(dts)}")
    return dts.pop()


def _row_blocks(n_rows: int, L: int) -> tuple[int, int, bool, int]:
    """(ROWS, BLOCK, ONE_PASS, num_warps) for a row-wise kernel over rows of ``L``."""
    block = triton.next_power_of_2(max(L, 1))
    one_pass = block <= MAX_BLOCK
    block = min(block, MAX_BLOCK)
    rows = max(1, min(TILE // block, triton.next_power_of_2(max(n_rows, 1)))) if one_pass else 1
    num_warps = max(1, min(16, rows * block // 256))
    return rows, block, one_pass, num_warps


def plan_softmax(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """softmax_f32: ``Y = softmax(X, axis)`` (``log = 1``: log-softmax); iparams ``[axis, log]``."""
    if len(inputs) != 1 or len(outputs) != 1 or len(iparams) != 2 or fparams:
        raise Unsupported("softmax_f32: expects 1 input, 1 output, iparams [axis, log]")
    (x,), (y,) = inputs, outputs
    if x is None or x.shape != y.shape or not x.shape:
        raise Unsupported("softmax_f32: Y must have X's shape (rank >= 1)")
    _check_float("softmax_f32", [x, y])
    ax = _axis(int(iparams[0]), len(x.shape), "softmax_f32")
    log = int(iparams[1])
    if log not in (0, 1):
        raise Unsupported("softmax_f32: log must be 0 or 1")
    outer, L, inner = _prod(x.shape[:ax]), x.shape[ax], _prod(x.shape[ax + 1 :])
    if inner == 1:
        n_rows = max(outer, 1)
        rows, block, one_pass, num_warps = _row_blocks(n_rows, L)
        return TritonLaunch(
            name="triton.softmax_rows",
            kernel=_softmax_rows_kernel,
            args={"x_ptr": In(0), "y_ptr": Out(0), "n_rows": I32(outer), "L": I32(L)},
            constexprs={"LOG": bool(log), "ROWS": rows, "BLOCK": block, "ONE_PASS": one_pass},
            grid=(triton.cdiv(n_rows, rows),),
            num_warps=num_warps,
        )
    block_i = min(triton.next_power_of_2(inner), 128)
    block_l = triton.next_power_of_2(max(L, 1))
    one_pass = block_l * block_i <= MAX_BLOCK
    block_l = max(1, min(block_l, MAX_BLOCK // block_i)) if one_pass else max(1, 1024 // block_i)
    n_iblk = triton.cdiv(inner, block_i)
    return TritonLaunch(
        name="triton.softmax_cols",
        kernel=_softmax_cols_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "L": I32(L), "INNER": I32(inner),
              "n_iblk": I32(n_iblk)},
        constexprs={"LOG": bool(log), "BLOCK_L": block_l, "BLOCK_I": block_i,
                    "ONE_PASS": one_pass},
        grid=(max(1, outer * n_iblk),),
        num_warps=max(1, min(8, block_l * block_i // 256)),
    )  # fmt: skip


def plan_layer_norm(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc | None],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """layer_norm_f32: inputs X, Scale?, B?; outputs Y, Mean?, InvStdDev?; iparams [axis];
    fparams [epsilon]. ``Y = (X - mean) / sqrt(var + eps) * Scale + B`` over ``X.shape[axis:]``."""
    if not 1 <= len(inputs) <= 3 or not 1 <= len(outputs) <= 3:
        raise Unsupported(
            "layer_norm_f32: expects inputs X, Scale?, B? and outputs Y, Mean?, InvStdDev?"
        )
    if len(iparams) != 1 or len(fparams) != 1:
        raise Unsupported("layer_norm_f32: expects iparams [axis] and fparams [epsilon]")
    ins = list(inputs) + [None] * (3 - len(inputs))
    outs = list(outputs) + [None] * (3 - len(outputs))
    x, scale, b = ins
    y, mean, istd = outs
    if x is None or y is None or x.shape != y.shape or not x.shape:
        raise Unsupported("layer_norm_f32: Y must have X's shape (rank >= 1)")
    _check_float("layer_norm_f32", ins + outs)
    ax = _axis(int(iparams[0]), len(x.shape), "layer_norm_f32")
    M, N = _prod(x.shape[:ax]), _prod(x.shape[ax:])
    for what, d, n in (("Scale", scale, N), ("B", b, N), ("Mean", mean, M), ("InvStdDev", istd, M)):
        if d is not None and d.numel != n:
            raise Unsupported(f"layer_norm_f32: {what} has {d.numel} elements, expected {n}")
    if N == 0:
        raise Unsupported("layer_norm_f32: empty normalized axes")
    rows, block, one_pass, num_warps = _row_blocks(max(M, 1), N)
    return TritonLaunch(
        name="triton.layer_norm",
        kernel=_layer_norm_kernel,
        args={"x_ptr": In(0), "scale_ptr": In(1) if scale else NULL, "b_ptr": In(2) if b else NULL,
              "y_ptr": Out(0), "mean_ptr": Out(1) if mean else NULL,
              "istd_ptr": Out(2) if istd else NULL, "n_rows": I32(M), "N": I32(N),
              "eps": F32(float(fparams[0]))},
        constexprs={"HAS_SCALE": scale is not None, "HAS_B": b is not None,
                    "HAS_MEAN": mean is not None, "HAS_ISTD": istd is not None,
                    "ROWS": rows, "BLOCK": block, "ONE_PASS": one_pass},
        grid=(triton.cdiv(max(M, 1), rows),),
        num_warps=num_warps,
    )  # fmt: skip


register_plan("softmax_f32", plan_softmax)
register_plan("layer_norm_f32", plan_layer_norm)
