"""Fused multi-head attention, flash-attention style: ``O = softmax(Q K^T * scale + mask) V``.

There is no native twin yet; the plan function is registered under the entry name
``attention_f32`` with this step contract:

- inputs: ``Q [B, H, Sq, D]``; ``K [B, Hkv, Sk, D]``; ``V [B, Hkv, Sk, Dv]``; ``Mask?`` (rank
  <= 4, NumPy-broadcastable to ``[B, H, Sq, Sk]``): either of the step's float dtype, added to
  the scaled scores, or ``bool`` (True: attend, False: masked out). ``H % Hkv == 0``: query head
  ``h`` reads key/value head ``h // (H / Hkv)`` (multi-query / grouped-query attention).
- outputs: ``O [B, H, Sq, Dv]``.
- iparams: ``[causal, allow_tf32]``. ``causal = 1`` masks key ``k > q`` (the upper-left aligned
  lower triangle, as ONNX Attention and torch's ``is_causal``); ``allow_tf32 = 1`` lets fp32
  products run as TF32 on the GPU (default: IEEE fp32 products, on the CUDA cores).
- fparams: ``[scale]``; ``scale <= 0`` means ``1 / sqrt(D)``.
- workspace 0; Q, K, V, Mask, O contiguous, float32 / float16 / bfloat16 (one dtype).

**Strided form** (what the lowering's attention fusion emits, ``optimizer/lower/
fuse_attention.py``): 28 iparams ``[causal, allow_tf32, B, H, Sq, Sk, D, Dv,
q_off, q_sb, q_sh, q_ss, q_sd, k_off, k_sb, k_sh, k_ss, k_sd, v_off, v_sb, v_sh, v_ss, v_sd,
o_off, o_sb, o_sh, o_ss, o_sd]``. Q, K, V and O are then buffers of any shape, and the logical
element ``Q[b, h, s, d]`` lives at element ``q_off + b*q_sb + h*q_sh + s*q_ss + d*q_sd`` of the
Q buffer (likewise K ``[B, H, Sk, D]``, V ``[B, H, Sk, Dv]``, O ``[B, H, Sq, Dv]``). So Q, K, V
are read straight from the ``[B, S, H*D]`` (or fused ``[B, S, 3*H*D]``) projection outputs and
O is written in ``[B, Sq, H, Dv]`` order: the head transposes disappear. Strides are >= 0 (a
stride of 0 broadcasts: one key/value head for every query head is ``k_sh = v_sh = 0``); every
addressed element must lie inside its buffer, and O's strides must not make two elements share
an address (checked). The mask still broadcasts against ``[B, H, Sq, Sk]``.

A program owns ``BLOCK_M`` query rows of one (batch, head) and streams key/value blocks of
``BLOCK_N`` with the online softmax (running max and rescaled sum in fp32, scores in the
exp2 domain), so the ``Sq x Sk`` score matrix never reaches memory; causal programs stop at the
diagonal. fp16 / bf16 probabilities are rounded to the input dtype for the ``P V`` product (as
flash attention does); accumulation is fp32. A row whose every key is masked with ``-inf`` (or
``False``) gives NaN (0/0), as a softmax over only ``-inf`` does; one masked with float32's
lowest finite value gives the uniform average of V, as softmax does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    NULL,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

LOG2E = 1.4426950408889634


@triton.jit
def _attention_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, o_ptr, qk_scale,
    H: tl.constexpr, GROUP: tl.constexpr, SQ: tl.constexpr, SK: tl.constexpr,
    D: tl.constexpr, DV: tl.constexpr,
    Q_OFF: tl.constexpr, QB: tl.constexpr, QH: tl.constexpr, QS: tl.constexpr, QD: tl.constexpr,
    K_OFF: tl.constexpr, KB: tl.constexpr, KH: tl.constexpr, KS: tl.constexpr, KD: tl.constexpr,
    V_OFF: tl.constexpr, VB: tl.constexpr, VH: tl.constexpr, VS: tl.constexpr, VD: tl.constexpr,
    O_OFF: tl.constexpr, OB: tl.constexpr, OH: tl.constexpr, OS: tl.constexpr, OD: tl.constexpr,
    MB: tl.constexpr, MH: tl.constexpr, MQ: tl.constexpr, MK: tl.constexpr,
    MASK: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr, WIDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    # MASK: 0 none, 1 additive float, 2 bool; MB/MH/MQ/MK: the mask's broadcast strides;
    # Q/K/V/O element strides along (batch, head, row, dim) after an element offset
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    hkv = h // GROUP
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    dq = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    cols0 = tl.arange(0, BLOCK_N)
    rmask = rows < SQ
    q_base = q_ptr + Q_OFF + b * QB + h * QH
    k_base = k_ptr + K_OFF + b * KB + hkv * KH
    v_base = v_ptr + V_OFF + b * VB + hkv * VH
    q = tl.load(q_base + rows[:, None] * QS + dq[None, :] * QD,
                mask=rmask[:, None] & (dq[None, :] < D), other=0.0)  # fmt: skip
    if WIDEN:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    if CAUSAL:
        hi = tl.minimum(SK, (pid_m + 1) * BLOCK_M)
    else:
        hi = SK
    for n0 in range(0, hi, BLOCK_N):
        cols = n0 + cols0
        cmask = cols < SK
        k = tl.load(k_base + cols[:, None] * KS + dq[None, :] * KD,
                    mask=cmask[:, None] & (dq[None, :] < D), other=0.0)  # fmt: skip
        if WIDEN:
            k = k.to(tl.float32)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # log2 domain
        valid = rmask[:, None] & cmask[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None])
        if MASK == 1:
            mv = tl.load(mask_ptr + b * MB + h * MH + rows[:, None] * MQ + cols[None, :] * MK,
                         mask=valid, other=0.0)  # fmt: skip
            mv = mv.to(tl.float32)
            # finite masks below -2.3e38 (float32's lowest, as HF writes them) would overflow
            # to -inf in the exp2 domain, turning a fully masked row into NaN where softmax
            # gives a uniform row: clamp them (they still swamp every score); -inf stays
            mv = tl.where(mv < -2.3e38, tl.where(mv == -float("inf"), mv, -2.3e38), mv)
            s = s + mv * 1.4426950408889634
        elif MASK == 2:
            mv = tl.load(mask_ptr + b * MB + h * MH + rows[:, None] * MQ + cols[None, :] * MK,
                         mask=valid, other=0)  # fmt: skip
            valid = valid & (mv != 0)
        s = tl.where(valid, s, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_base + cols[:, None] * VS + dv[None, :] * VD,
                    mask=cmask[:, None] & (dv[None, :] < DV), other=0.0)  # fmt: skip
        if WIDEN:
            v = v.to(tl.float32)
            p = p.to(o_ptr.dtype.element_ty).to(tl.float32)
        else:
            p = p.to(v.dtype)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision=PRECISION)
        m_i = m_new
    o = acc / l_i[:, None]
    tl.store(o_ptr + O_OFF + b * OB + h * OH + rows[:, None] * OS + dv[None, :] * OD,
             o.to(o_ptr.dtype.element_ty), mask=rmask[:, None] & (dv[None, :] < DV))  # fmt: skip


def _mask_strides(shape: Sequence[int], full: Sequence[int]) -> list[int]:
    if len(shape) > 4:
        raise Unsupported(f"attention_f32: mask rank {len(shape)} > 4")
    padded = [1] * (4 - len(shape)) + list(shape)
    strides, s = [0] * 4, 1
    for d in range(3, -1, -1):
        if padded[d] not in (1, full[d]):
            raise Unsupported(
                f"attention_f32: mask {tuple(shape)} does not broadcast to {tuple(full)}"
            )
        strides[d] = 0 if padded[d] == 1 else s
        s *= padded[d]
    return strides


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


#: Length of the strided form's iparams (see the module docstring).
STRIDED_IPARAMS = 28


def _contiguous(shape: Sequence[int]) -> list[int]:
    strides, s = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        strides[d] = s
        s *= shape[d]
    return strides


def _check_view(what: str, buffer: TensorDesc, dims: Sequence[int], view: Sequence[int],
                distinct: bool = False) -> None:  # fmt: skip
    """Raises Unsupported unless ``view`` = ``[offset, 4 strides]`` over ``dims`` stays inside
    ``buffer`` (and, with ``distinct``, gives every element its own address)."""
    offset, strides = view[0], view[1:]
    if offset < 0 or min(strides) < 0:
        raise Unsupported(f"attention_f32: {what} offset / strides {list(view)} must be >= 0")
    last = offset + sum((n - 1) * st for n, st in zip(dims, strides))
    if last >= buffer.numel:
        raise Unsupported(
            f"attention_f32: {what} view {list(view)} of {list(dims)} reaches element {last} "
            f"of a buffer of {buffer.numel}"
        )
    if distinct:
        reach = 0  # largest offset of the dims taken so far, in increasing stride order
        for n, st in sorted(((n, st) for n, st in zip(dims, strides) if n > 1), key=lambda t: t[1]):
            if st <= reach:
                raise Unsupported(f"attention_f32: {what} strides {list(strides)} overlap")
            reach += (n - 1) * st


def _layout(
    q: TensorDesc, k: TensorDesc, v: TensorDesc, o: TensorDesc, iparams: Sequence[int]
) -> tuple[list[int], int, list[list[int]]]:
    """``[B, H, Sq, Sk, D, Dv]``, the head group and the ``[offset, 4 strides]`` of Q, K, V, O."""
    if len(iparams) == 2:
        if any(len(t.shape) != 4 for t in (q, k, v, o)):
            raise Unsupported("attention_f32: Q, K, V, O must be rank 4 [B, H, S, D]")
        B, H, SQ, D = q.shape
        _, HKV, SK, _ = k.shape
        DV = v.shape[3]
        if k.shape != (B, HKV, SK, D) or v.shape != (B, HKV, SK, DV) or o.shape != (B, H, SQ, DV):
            raise Unsupported(
                f"attention_f32: shapes Q {q.shape} K {k.shape} V {v.shape} O {o.shape} do not "
                "agree"
            )
        if HKV == 0 or H % HKV:
            raise Unsupported(f"attention_f32: {H} query heads not a multiple of {HKV} kv heads")
        views = [[0, *_contiguous(t.shape)] for t in (q, k, v, o)]
        return [B, H, SQ, SK, D, DV], H // HKV, views
    dims = [int(x) for x in iparams[2:8]]
    B, H, SQ, SK, D, DV = dims
    if min(dims) < 1:
        raise Unsupported(f"attention_f32: sizes B, H, Sq, Sk, D, Dv {dims} must be >= 1")
    views = [[int(x) for x in iparams[8 + 5 * i : 13 + 5 * i]] for i in range(4)]
    for what, t, shape, view in zip(
        ("Q", "K", "V", "O"), (q, k, v, o),
        ((B, H, SQ, D), (B, H, SK, D), (B, H, SK, DV), (B, H, SQ, DV)), views,
    ):  # fmt: skip
        _check_view(what, t, shape, view, distinct=what == "O")
    return dims, 1, views


def plan_attention(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """attention_f32: inputs Q, K, V, Mask?; output O; iparams [causal, allow_tf32] or the
    strided form; fparams [scale] (see the module docstring)."""
    if not 3 <= len(inputs) <= 4 or None in inputs[:3] or len(outputs) != 1:
        raise Unsupported("attention_f32: expects inputs Q, K, V, Mask? and output O")
    if len(iparams) not in (2, STRIDED_IPARAMS) or len(fparams) != 1:
        raise Unsupported(
            f"attention_f32: expects iparams [causal, allow_tf32] (or the {STRIDED_IPARAMS} of "
            "the strided form), fparams [scale]"
        )
    q, k, v = inputs[:3]
    mask = inputs[3] if len(inputs) == 4 else None
    o = outputs[0]
    assert q is not None and k is not None and v is not None
    dts = {t.dtype for t in (q, k, v, o)}
    if len(dts) != 1 or not dts <= set(FLOAT_DTYPES):
        raise Unsupported(f"attention_f32: Q, K, V, O must share one of {FLOAT_DTYPES}")
    dtype = dts.pop()
    causal, allow_tf32 = int(iparams[0]), int(iparams[1])
    if causal not in (0, 1) or allow_tf32 not in (0, 1):
        raise Unsupported("attention_f32: causal and allow_tf32 must be 0 or 1")
    (B, H, SQ, SK, D, DV), group, views = _layout(q, k, v, o, iparams)
    if min(D, DV) < 1 or max(D, DV) > 256:
        raise Unsupported(f"attention_f32: head dims {D}, {DV} not in 1..256")
    mask_kind, ms = 0, [0, 0, 0, 0]
    if mask is not None:
        if mask.dtype == "bool":
            mask_kind = 2
        elif mask.dtype == dtype:
            mask_kind = 1
        else:
            raise Unsupported(f"attention_f32: mask dtype {mask.dtype} (bool or {dtype})")
        ms = _mask_strides(mask.shape, (B, H, SQ, SK))
    scale = float(fparams[0]) if fparams[0] > 0 else 1.0 / math.sqrt(D)
    block_d = max(16, triton.next_power_of_2(D))
    block_dv = max(16, triton.next_power_of_2(DV))
    big_d = max(block_d, block_dv) > 64
    block_m = min(64 if big_d or dtype == "float32" else 128, max(16, triton.next_power_of_2(SQ)))
    block_n = min(64 if dtype != "float32" or not big_d else 32,
                  max(16, triton.next_power_of_2(max(SK, 1))))  # fmt: skip
    while block_m > 32 and triton.cdiv(SQ, block_m) * B * H < 264:  # 2 programs an SM (H100)
        block_m //= 2
    widen = _interpreting() and dtype == "bfloat16"  # the interpreter's bf16 dot is wrong
    # fp32: IEEE products unless TF32 is allowed (3xTF32, "tf32x3", would run on the tensor
    # cores at about fp32's accuracy: not yet checked on a GPU); ignored for fp16 / bf16 dots
    precision = "tf32" if allow_tf32 or dtype != "float32" else "ieee"
    strides = {f"{t}{a}": views[i][j] for i, t in enumerate("QKVO")
               for j, a in enumerate(("_OFF", "B", "H", "S", "D"))}  # fmt: skip
    return TritonLaunch(
        name="triton.attention",
        kernel=_attention_kernel,
        args={"q_ptr": In(0), "k_ptr": In(1), "v_ptr": In(2),
              "mask_ptr": In(3) if mask is not None else NULL, "o_ptr": Out(0),
              "qk_scale": F32(scale * LOG2E)},
        constexprs={"H": H, "GROUP": group, "SQ": SQ, "SK": SK, "D": D, "DV": DV, **strides,
                    "MB": ms[0], "MH": ms[1], "MQ": ms[2], "MK": ms[3], "MASK": mask_kind,
                    "CAUSAL": bool(causal), "PRECISION": precision, "WIDEN": widen,
                    "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d,
                    "BLOCK_DV": block_dv},
        grid=(triton.cdiv(max(SQ, 1), block_m), max(1, B * H)),
        num_warps=8 if block_m * max(block_d, block_dv) >= 128 * 128 or dtype == "float32" else 4,
        num_stages=2 if big_d else 3,
    )  # fmt: skip


register_plan("attention_f32", plan_attention)
