"""ONNX Reduce* as one kernel: the GPU twin of ``reduce_f32``.

iparams ``[op, reduced_0, ..., reduced_{r-1}]`` (op: 0 sum, 1 mean, 2 max, 3 min, 4 prod,
5 sum_square, 6 l1, 7 l2, 8 log_sum, 9 log_sum_exp), as in ``kernels/native/params.md``. Size-1
dims are dropped and adjacent dims of the same kind merged, so X becomes alternating kept and
reduced groups (at most :data:`MAX_GROUPS` of each). A program owns ``BLOCK_O`` outputs and walks
the reduced elements in blocks of ``BLOCK_R``, accumulating elementwise in a ``[BLOCK_O,
BLOCK_R]`` fp32 tile that is folded once at the end; the tile is laid out so the innermost input
dim (reduced: a row reduction, kept: a column fold) is the coalesced one. ``log_sum_exp`` takes
two passes (max, then the shifted sum). Empty reductions give the native kernel's values (sum 0,
mean NaN, max -inf, min +inf, prod 1, log_sum -inf); no axis marked computes the elementwise part.
One program per ``BLOCK_O`` outputs: a reduction to very few outputs runs on few SMs (no split).
"""

from __future__ import annotations

from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    FLOAT_DTYPES,
    I32,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

OPS = ("sum", "mean", "max", "min", "prod", "sum_square", "l1", "l2", "log_sum", "log_sum_exp")
#: Merged kept (and reduced) dim groups a kernel handles.
MAX_GROUPS = 4


@triton.jit
def _offsets4(idx, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr,
              S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr):  # fmt: skip
    # row-major index over [D0, D1, D2, D3] -> offset with strides S
    i3 = idx % D3
    idx = idx // D3
    i2 = idx % D2
    idx = idx // D2
    i1 = idx % D1
    i0 = idx // D1
    return i0 * S0 + i1 * S1 + i2 * S2 + i3 * S3


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _reduce_kernel(
    x_ptr, y_ptr, n_out, R,
    K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr,
    KS0: tl.constexpr, KS1: tl.constexpr, KS2: tl.constexpr, KS3: tl.constexpr,
    R1: tl.constexpr, R2: tl.constexpr, R3: tl.constexpr,
    RS0: tl.constexpr, RS1: tl.constexpr, RS2: tl.constexpr, RS3: tl.constexpr,
    OP: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_R: tl.constexpr, BIG: tl.constexpr,
):  # fmt: skip
    outs = tl.program_id(0) * BLOCK_O + tl.arange(0, BLOCK_O)
    omask = outs < n_out
    if BIG:
        outs = outs.to(tl.int64)
    ooff = _offsets4(outs, K1, K2, K3, KS0, KS1, KS2, KS3)
    rs = tl.arange(0, BLOCK_R)
    if OP == 2 or OP == 9:
        neutral = -float("inf")
    elif OP == 3:
        neutral = float("inf")
    elif OP == 4:
        neutral = 1.0
    else:
        neutral = 0.0
    acc = tl.full([BLOCK_O, BLOCK_R], neutral, tl.float32)
    for r0 in range(0, R, BLOCK_R):
        rr = r0 + rs
        if BIG:
            rr = rr.to(tl.int64)
        mask = omask[:, None] & (rr < R)[None, :]
        roff = _offsets4(rr, R1, R2, R3, RS0, RS1, RS2, RS3)
        x = tl.load(x_ptr + ooff[:, None] + roff[None, :], mask=mask, other=neutral)
        x = x.to(tl.float32)
        if OP == 2 or OP == 9:
            acc = tl.maximum(acc, x)
        elif OP == 3:
            acc = tl.minimum(acc, x)
        elif OP == 4:
            acc = acc * x
        elif OP == 5 or OP == 7:
            acc += x * x
        elif OP == 6:
            acc += tl.abs(x)
        else:
            acc += x
    if OP == 2:
        y = tl.max(acc, 1)
    elif OP == 3:
        y = tl.min(acc, 1)
    elif OP == 4:
        y = tl.reduce(acc, 1, _mul)
    elif OP == 9:
        m = tl.max(acc, 1)
        m = tl.where(m == -float("inf"), 0.0, m)  # all -inf (or empty): the sum is 0
        acc = tl.zeros([BLOCK_O, BLOCK_R], tl.float32)
        for r0 in range(0, R, BLOCK_R):
            rr = r0 + rs
            if BIG:
                rr = rr.to(tl.int64)
            mask = omask[:, None] & (rr < R)[None, :]
            roff = _offsets4(rr, R1, R2, R3, RS0, RS1, RS2, RS3)
            x = tl.load(x_ptr + ooff[:, None] + roff[None, :], mask=mask, other=-float("inf"))
            acc += tl.exp(x.to(tl.float32) - m[:, None])
        y = m + tl.log(tl.sum(acc, 1))
    else:
        y = tl.sum(acc, 1)
        if OP == 1:
            y = y / R
        elif OP == 7:
            y = tl.sqrt(y)
        elif OP == 8:
            y = tl.log(y)
    tl.store(y_ptr + outs, y.to(y_ptr.dtype.element_ty), mask=omask)


def _groups(shape: Sequence[int], flags: Sequence[int]) -> tuple[list, list, bool]:
    """Kept and reduced groups ``[(size, stride)]`` (outer to inner), and whether X's innermost
    non-trivial dim is reduced."""
    strides, s = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        strides[d], s = s, s * shape[d]
    merged: list[list[int]] = []  # [flag, size, stride]
    for d, (n, f) in enumerate(zip(shape, flags, strict=True)):
        if n == 1:
            continue
        if merged and merged[-1][0] == f and merged[-1][2] == n * strides[d]:
            merged[-1][1] *= n
            merged[-1][2] = strides[d]
        else:
            merged.append([f, n, strides[d]])
    kept = [(n, st) for f, n, st in merged if not f]
    red = [(n, st) for f, n, st in merged if f]
    return kept, red, bool(merged) and bool(merged[-1][0])


def _pad4(groups: list, what: str) -> list:
    if len(groups) > MAX_GROUPS:
        raise Unsupported(
            f"reduce_f32: {len(groups)} separate {what} dim groups (max {MAX_GROUPS})"
        )
    return [(1, 0)] * (MAX_GROUPS - len(groups)) + groups


def plan_reduce(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """reduce_f32: X -> Y (the kept dims' elements); iparams ``[op, reduced_0..reduced_{r-1}]``."""
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1 or fparams:
        raise Unsupported("reduce_f32: expects 1 input, 1 output and no fparams")
    x, y = inputs[0], outputs[0]
    if len(iparams) != len(x.shape) + 1:
        raise Unsupported(f"reduce_f32: expects {len(x.shape) + 1} iparams for rank {len(x.shape)}")
    if x.dtype not in FLOAT_DTYPES or y.dtype != x.dtype:
        raise Unsupported(f"reduce_f32: X and Y must share one of {FLOAT_DTYPES}")
    op, flags = int(iparams[0]), [int(f) for f in iparams[1:]]
    if not 0 <= op < len(OPS) or any(f not in (0, 1) for f in flags):
        raise Unsupported(f"reduce_f32: bad op {op} or reduced flags {flags}")
    n_out = 1
    for n, f in zip(x.shape, flags, strict=True):
        n_out *= 1 if f else n
    if y.numel != n_out:
        raise Unsupported(f"reduce_f32: Y has {y.numel} elements, the kept dims {n_out}")
    R = 1
    for n, f in zip(x.shape, flags, strict=True):
        R *= n if f else 1
    kept, red, inner_reduced = _groups(x.shape, flags)
    if any(n == 0 for n, _ in red):
        red = [(0, 0)]  # an empty reduction: R = 0, nothing is read
    k, r = _pad4(kept, "kept"), _pad4(red, "reduced")
    if inner_reduced:
        block_r = min(triton.next_power_of_2(max(R, 1)), 1024)
        block_o = max(1, min(triton.next_power_of_2(max(n_out, 1)), 2048 // block_r, 64))
    else:
        block_o = min(triton.next_power_of_2(max(n_out, 1)), 256)
        block_r = max(1, min(triton.next_power_of_2(max(R, 1)), 2048 // block_o))
    return TritonLaunch(
        name=f"triton.reduce_{OPS[op]}",
        kernel=_reduce_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "n_out": I32(n_out), "R": I32(R)},
        constexprs={
            "K1": k[1][0], "K2": k[2][0], "K3": k[3][0],
            "KS0": k[0][1], "KS1": k[1][1], "KS2": k[2][1], "KS3": k[3][1],
            "R1": r[1][0], "R2": r[2][0], "R3": r[3][0],
            "RS0": r[0][1], "RS1": r[1][1], "RS2": r[2][1], "RS3": r[3][1],
            "OP": op, "BLOCK_O": block_o, "BLOCK_R": block_r, "BIG": x.numel >= 2**31 - 2**16,
        },
        grid=(triton.cdiv(max(n_out, 1), block_o),),
        num_warps=max(1, min(8, block_o * block_r // 256)),
    )  # fmt: skip


register_plan("reduce_f32", plan_reduce)
