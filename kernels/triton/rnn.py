"""ONNX LSTM / GRU: GPU twins of ``lstm_f32`` and ``gru_f32``.

One program per (batch row, direction) runs the whole sequence: per step the gate
pre-activations ``x_t @ WT + h_{t-1} @ RT + biases`` are accumulated over ``BLOCK_K``-row chunks
of the pre-transposed weights (a ``[BLOCK_K, BLOCK_H]`` tile per gate, the output gate columns
masked to ``H``), the cell update runs in fp32 registers and the new ``h`` is written to a
per-program fp32 row of the workspace, which the next step reads back in chunks (a barrier
between the reads and the write). GRU with ``linear_before_reset = 0`` stages ``r * h`` there
too. Semantics as the native kernel (``params.md``, "Recurrent kernels"): steps at or past a
row's ``sequence_lens`` leave the state alone and write zeros to ``Y``; the reverse direction
starts at ``sequence_lens - 1``; ``clip`` clips every gate pre-activation; LSTM
``input_forget`` sets ``f = 1 - i``. Correctness first: a small recurrence (the taggers' H of
a few hundred at most) is latency-bound anyway; larger hidden sizes are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    NULL,
    WORKSPACE,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

#: Largest hidden size (the gate accumulators stay in registers).
MAX_H = 512
#: Elements of one weight tile ``[BLOCK_K, BLOCK_H]``.
TILE = 4096


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    # 1 - 2 / (exp(2x) + 1): exact limits at +-inf, no overflow to NaN
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def _clip(x, clip, CLIP: tl.constexpr):
    if CLIP:
        x = tl.minimum(tl.maximum(x, -clip), clip)
    return x


@triton.jit
def _lstm_kernel(
    x_ptr, wt_ptr, rt_ptr, b_ptr, lens_ptr, h0_ptr, c0_ptr, p_ptr, y_ptr, yh_ptr, yc_ptr,
    ws_ptr, clip,
    S: tl.constexpr, B: tl.constexpr, IN: tl.constexpr, H: tl.constexpr, D: tl.constexpr,
    REVERSE_ONLY: tl.constexpr, LAYOUT: tl.constexpr, INPUT_FORGET: tl.constexpr,
    CLIP: tl.constexpr, HAS_B: tl.constexpr, HAS_LENS: tl.constexpr, HAS_H0: tl.constexpr,
    HAS_C0: tl.constexpr, HAS_P: tl.constexpr, HAS_YH: tl.constexpr, HAS_YC: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    d = tl.program_id(1)
    G: tl.constexpr = 4 * H
    n = tl.arange(0, BLOCK_H)
    nm = n < H
    kk = tl.arange(0, BLOCK_K)
    hws = ws_ptr.to(tl.pointer_type(tl.float32)) + (d * B + b) * H
    if LAYOUT == 1:
        srow = b * D + d
    else:
        srow = d * B + b
    # biases (Wb + Rb per gate i, o, f, c)
    bi = tl.zeros([BLOCK_H], tl.float32)
    bo = tl.zeros([BLOCK_H], tl.float32)
    bf = tl.zeros([BLOCK_H], tl.float32)
    bc = tl.zeros([BLOCK_H], tl.float32)
    if HAS_B:
        bb = b_ptr + d * 2 * G
        bi = tl.load(bb + n, mask=nm, other=0.0).to(tl.float32)
        bi += tl.load(bb + G + n, mask=nm, other=0.0).to(tl.float32)
        bo = tl.load(bb + H + n, mask=nm, other=0.0).to(tl.float32)
        bo += tl.load(bb + G + H + n, mask=nm, other=0.0).to(tl.float32)
        bf = tl.load(bb + 2 * H + n, mask=nm, other=0.0).to(tl.float32)
        bf += tl.load(bb + G + 2 * H + n, mask=nm, other=0.0).to(tl.float32)
        bc = tl.load(bb + 3 * H + n, mask=nm, other=0.0).to(tl.float32)
        bc += tl.load(bb + G + 3 * H + n, mask=nm, other=0.0).to(tl.float32)
    pi = tl.zeros([BLOCK_H], tl.float32)
    po = tl.zeros([BLOCK_H], tl.float32)
    pf = tl.zeros([BLOCK_H], tl.float32)
    if HAS_P:
        pp = p_ptr + d * 3 * H
        pi = tl.load(pp + n, mask=nm, other=0.0).to(tl.float32)
        po = tl.load(pp + H + n, mask=nm, other=0.0).to(tl.float32)
        pf = tl.load(pp + 2 * H + n, mask=nm, other=0.0).to(tl.float32)
    h = tl.zeros([BLOCK_H], tl.float32)
    c = tl.zeros([BLOCK_H], tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + srow * H + n, mask=nm, other=0.0).to(tl.float32)
    if HAS_C0:
        c = tl.load(c0_ptr + srow * H + n, mask=nm, other=0.0).to(tl.float32)
    length = S
    if HAS_LENS:
        length = tl.load(lens_ptr + b).to(tl.int32)
    tl.store(hws + n, h, mask=nm)
    tl.debug_barrier()
    wt = wt_ptr + d * IN * G
    rt = rt_ptr + d * H * G
    reverse = (REVERSE_ONLY != 0) | (d == 1)
    for s in range(S):
        t = tl.where(reverse, S - 1 - s, s)
        if LAYOUT == 1:
            xrow = b * S + t
            yrow = (b * S + t) * D + d
        else:
            xrow = t * B + b
            yrow = (t * D + d) * B + b
        gi = bi
        go = bo
        gf = bf
        gc = bc
        for k0 in range(0, IN, BLOCK_K):
            km = (k0 + kk) < IN
            v = tl.load(x_ptr + xrow.to(tl.int64) * IN + k0 + kk, mask=km, other=0.0).to(tl.float32)
            offs = (k0 + kk)[:, None].to(tl.int64) * G + n[None, :]
            m = km[:, None] & nm[None, :]
            gi += tl.sum(v[:, None] * tl.load(wt + offs, mask=m, other=0.0).to(tl.float32), 0)
            go += tl.sum(v[:, None] * tl.load(wt + offs + H, mask=m, other=0.0).to(tl.float32), 0)
            gf += tl.sum(
                v[:, None] * tl.load(wt + offs + 2 * H, mask=m, other=0.0).to(tl.float32), 0
            )
            gc += tl.sum(
                v[:, None] * tl.load(wt + offs + 3 * H, mask=m, other=0.0).to(tl.float32), 0
            )
        for k0 in range(0, H, BLOCK_K):
            km = (k0 + kk) < H
            v = tl.load(hws + k0 + kk, mask=km, other=0.0, volatile=True)
            offs = (k0 + kk)[:, None].to(tl.int64) * G + n[None, :]
            m = km[:, None] & nm[None, :]
            gi += tl.sum(v[:, None] * tl.load(rt + offs, mask=m, other=0.0).to(tl.float32), 0)
            go += tl.sum(v[:, None] * tl.load(rt + offs + H, mask=m, other=0.0).to(tl.float32), 0)
            gf += tl.sum(
                v[:, None] * tl.load(rt + offs + 2 * H, mask=m, other=0.0).to(tl.float32), 0
            )
            gc += tl.sum(
                v[:, None] * tl.load(rt + offs + 3 * H, mask=m, other=0.0).to(tl.float32), 0
            )
        if HAS_P:
            gi += pi * c
            gf += pf * c
        ig = _sigmoid(_clip(gi, clip, CLIP))
        if INPUT_FORGET:
            fg = 1.0 - ig
        else:
            fg = _sigmoid(_clip(gf, clip, CLIP))
        cn = fg * c + ig * _tanh(_clip(gc, clip, CLIP))
        if HAS_P:
            go += po * cn
        hn = _sigmoid(_clip(go, clip, CLIP)) * _tanh(cn)
        live = t < length
        h = tl.where(live, hn, h)
        c = tl.where(live, cn, c)
        yv = tl.where(live, hn, 0.0)
        tl.store(y_ptr + yrow.to(tl.int64) * H + n, yv.to(y_ptr.dtype.element_ty), mask=nm)
        tl.debug_barrier()
        tl.store(hws + n, h, mask=nm)
        tl.debug_barrier()
    if HAS_YH:
        tl.store(yh_ptr + srow * H + n, h.to(yh_ptr.dtype.element_ty), mask=nm)
    if HAS_YC:
        tl.store(yc_ptr + srow * H + n, c.to(yc_ptr.dtype.element_ty), mask=nm)


@triton.jit
def _gru_kernel(
    x_ptr, wt_ptr, rt_ptr, b_ptr, lens_ptr, h0_ptr, y_ptr, yh_ptr, ws_ptr, clip,
    S: tl.constexpr, B: tl.constexpr, IN: tl.constexpr, H: tl.constexpr, D: tl.constexpr,
    REVERSE_ONLY: tl.constexpr, LAYOUT: tl.constexpr, LBR: tl.constexpr, CLIP: tl.constexpr,
    HAS_B: tl.constexpr, HAS_LENS: tl.constexpr, HAS_H0: tl.constexpr, HAS_YH: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    d = tl.program_id(1)
    G: tl.constexpr = 3 * H
    n = tl.arange(0, BLOCK_H)
    nm = n < H
    kk = tl.arange(0, BLOCK_K)
    # per program: h [H] then r * h [H] (fp32)
    hws = ws_ptr.to(tl.pointer_type(tl.float32)) + (d * B + b) * 2 * H
    rws = hws + H
    if LAYOUT == 1:
        srow = b * D + d
    else:
        srow = d * B + b
    # x-side biases (Wb, plus Rb for z and r; and for h unless LBR) and the h gate's Rb
    bz = tl.zeros([BLOCK_H], tl.float32)
    br = tl.zeros([BLOCK_H], tl.float32)
    bh = tl.zeros([BLOCK_H], tl.float32)
    rbh = tl.zeros([BLOCK_H], tl.float32)
    if HAS_B:
        bb = b_ptr + d * 2 * G
        bz = tl.load(bb + n, mask=nm, other=0.0).to(tl.float32)
        bz += tl.load(bb + G + n, mask=nm, other=0.0).to(tl.float32)
        br = tl.load(bb + H + n, mask=nm, other=0.0).to(tl.float32)
        br += tl.load(bb + G + H + n, mask=nm, other=0.0).to(tl.float32)
        bh = tl.load(bb + 2 * H + n, mask=nm, other=0.0).to(tl.float32)
        rbh = tl.load(bb + G + 2 * H + n, mask=nm, other=0.0).to(tl.float32)
    h = tl.zeros([BLOCK_H], tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + srow * H + n, mask=nm, other=0.0).to(tl.float32)
    length = S
    if HAS_LENS:
        length = tl.load(lens_ptr + b).to(tl.int32)
    tl.store(hws + n, h, mask=nm)
    tl.debug_barrier()
    wt = wt_ptr + d * IN * G
    rt = rt_ptr + d * H * G
    reverse = (REVERSE_ONLY != 0) | (d == 1)
    for s in range(S):
        t = tl.where(reverse, S - 1 - s, s)
        if LAYOUT == 1:
            xrow = b * S + t
            yrow = (b * S + t) * D + d
        else:
            xrow = t * B + b
            yrow = (t * D + d) * B + b
        gz = bz
        gr = br
        xh = bh
        rh = tl.zeros([BLOCK_H], tl.float32)
        for k0 in range(0, IN, BLOCK_K):
            km = (k0 + kk) < IN
            v = tl.load(x_ptr + xrow.to(tl.int64) * IN + k0 + kk, mask=km, other=0.0).to(tl.float32)
            offs = (k0 + kk)[:, None].to(tl.int64) * G + n[None, :]
            m = km[:, None] & nm[None, :]
            gz += tl.sum(v[:, None] * tl.load(wt + offs, mask=m, other=0.0).to(tl.float32), 0)
            gr += tl.sum(v[:, None] * tl.load(wt + offs + H, mask=m, other=0.0).to(tl.float32), 0)
            xh += tl.sum(
                v[:, None] * tl.load(wt + offs + 2 * H, mask=m, other=0.0).to(tl.float32), 0
            )
        for k0 in range(0, H, BLOCK_K):
            km = (k0 + kk) < H
            v = tl.load(hws + k0 + kk, mask=km, other=0.0, volatile=True)
            offs = (k0 + kk)[:, None].to(tl.int64) * G + n[None, :]
            m = km[:, None] & nm[None, :]
            gz += tl.sum(v[:, None] * tl.load(rt + offs, mask=m, other=0.0).to(tl.float32), 0)
            gr += tl.sum(v[:, None] * tl.load(rt + offs + H, mask=m, other=0.0).to(tl.float32), 0)
            if LBR:
                rh += tl.sum(
                    v[:, None] * tl.load(rt + offs + 2 * H, mask=m, other=0.0).to(tl.float32), 0
                )
        z = _sigmoid(_clip(gz, clip, CLIP))
        r = _sigmoid(_clip(gr, clip, CLIP))
        if LBR:
            gh = xh + r * (rh + rbh)
        else:
            tl.store(rws + n, r * h, mask=nm)
            tl.debug_barrier()
            for k0 in range(0, H, BLOCK_K):
                km = (k0 + kk) < H
                v = tl.load(rws + k0 + kk, mask=km, other=0.0, volatile=True)
                offs = (k0 + kk)[:, None].to(tl.int64) * G + 2 * H + n[None, :]
                m = km[:, None] & nm[None, :]
                rh += tl.sum(v[:, None] * tl.load(rt + offs, mask=m, other=0.0).to(tl.float32), 0)
            gh = xh + rh + rbh
        nn = _tanh(_clip(gh, clip, CLIP))
        hn = nn + z * (h - nn)
        live = t < length
        h = tl.where(live, hn, h)
        yv = tl.where(live, hn, 0.0)
        tl.store(y_ptr + yrow.to(tl.int64) * H + n, yv.to(y_ptr.dtype.element_ty), mask=nm)
        tl.debug_barrier()
        tl.store(hws + n, h, mask=nm)
        tl.debug_barrier()
    if HAS_YH:
        tl.store(yh_ptr + srow * H + n, h.to(yh_ptr.dtype.element_ty), mask=nm)


def _common(
    cell: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> tuple[dict, int, int, int, int, int]:
    gates = 4 if cell == "lstm" else 3
    if len(inputs) < 3 or any(inputs[i] is None for i in range(3)):
        raise Unsupported(f"{cell}: X, WT and RT are required")
    if not 1 <= len(outputs) <= (3 if cell == "lstm" else 2):
        raise Unsupported(f"{cell}: {len(outputs)} outputs")
    if len(iparams) != 3 or len(fparams) != 1:
        raise Unsupported(f"{cell}: expects 3 iparams and 1 fparam")
    direction, layout, flag = (int(v) for v in iparams)
    if direction not in (0, 1, 2) or layout not in (0, 1) or flag not in (0, 1):
        raise Unsupported(f"{cell}: iparams {list(iparams)}")
    x, wt, rt = inputs[0], inputs[1], inputs[2]
    assert x is not None and wt is not None and rt is not None
    dtype = x.dtype
    if dtype not in FLOAT_DTYPES:
        raise Unsupported(f"{cell}: dtype {dtype}")
    floats = [d for i, d in enumerate(inputs) if d is not None and i != 4] + list(outputs)
    if any(d.dtype != dtype for d in floats):
        raise Unsupported(f"{cell}: float tensors of mixed dtypes")
    lens = inputs[4] if len(inputs) > 4 else None
    if lens is not None and lens.dtype not in ("int32", "int64"):
        raise Unsupported(f"{cell}: sequence_lens of dtype {lens.dtype}")
    if len(x.shape) != 3 or len(wt.shape) != 3 or len(rt.shape) != 3:
        raise Unsupported(f"{cell}: X, WT, RT must be rank 3")
    num_dirs = 2 if direction == 2 else 1
    seq, batch = (x.shape[1], x.shape[0]) if layout else (x.shape[0], x.shape[1])
    isz = x.shape[2]
    hidden = rt.shape[1]
    if wt.shape != (num_dirs, isz, gates * hidden) or rt.shape != (
        num_dirs,
        hidden,
        gates * hidden,
    ):
        raise Unsupported(f"{cell}: WT {wt.shape} / RT {rt.shape} do not fit X {x.shape}")
    if hidden < 1 or hidden > MAX_H:
        raise Unsupported(f"{cell}: hidden size {hidden} (1 to {MAX_H} supported)")
    if seq < 1 or batch < 1:
        raise Unsupported(f"{cell}: empty sequence or batch")
    state = (batch, num_dirs, hidden) if layout else (num_dirs, batch, hidden)
    y_shape = (batch, seq, num_dirs, hidden) if layout else (seq, num_dirs, batch, hidden)
    if outputs[0].numel != seq * num_dirs * batch * hidden:
        raise Unsupported(f"{cell}: Y {outputs[0].shape}, expected {y_shape}")
    for o in outputs[1:]:
        if o.numel != batch * num_dirs * hidden:
            raise Unsupported(f"{cell}: state output {o.shape}, expected {state}")
    for i in (5, 6):
        if (
            len(inputs) > i
            and inputs[i] is not None
            and inputs[i].numel != batch * num_dirs * hidden
        ):
            raise Unsupported(f"{cell}: input {i} {inputs[i].shape}, expected {state}")
    block_h = triton.next_power_of_2(hidden)
    block_k = max(1, min(triton.next_power_of_2(max(isz, hidden)), TILE // block_h))
    clip = float(fparams[0])
    consts = dict(
        S=seq, B=batch, IN=isz, H=hidden, D=num_dirs, REVERSE_ONLY=int(direction == 1),
        LAYOUT=layout, CLIP=clip > 0.0, HAS_B=len(inputs) > 3 and inputs[3] is not None,
        HAS_LENS=lens is not None, HAS_H0=len(inputs) > 5 and inputs[5] is not None,
        BLOCK_H=block_h, BLOCK_K=block_k,
    )  # fmt: skip
    if consts["HAS_B"] and inputs[3].numel != num_dirs * 2 * gates * hidden:
        raise Unsupported(f"{cell}: B {inputs[3].shape}")
    return consts, flag, num_dirs, batch, hidden, block_h


def _arg(inputs: Sequence[TensorDesc | None], i: int):
    return In(i) if len(inputs) > i and inputs[i] is not None else NULL


def plan_lstm(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """``lstm_f32``: ONNX LSTM with the default activations (see the module docstring)."""
    consts, flag, num_dirs, batch, hidden, block_h = _common(
        "lstm", inputs, outputs, iparams, fparams
    )
    has_p = len(inputs) > 7 and inputs[7] is not None
    if has_p and inputs[7].numel != num_dirs * 3 * hidden:
        raise Unsupported(f"lstm: P {inputs[7].shape}")
    consts.update(
        INPUT_FORGET=flag, HAS_C0=len(inputs) > 6 and inputs[6] is not None, HAS_P=has_p,
        HAS_YH=len(outputs) > 1, HAS_YC=len(outputs) > 2,
    )  # fmt: skip
    args = {
        "x_ptr": In(0), "wt_ptr": In(1), "rt_ptr": In(2), "b_ptr": _arg(inputs, 3),
        "lens_ptr": _arg(inputs, 4), "h0_ptr": _arg(inputs, 5), "c0_ptr": _arg(inputs, 6),
        "p_ptr": _arg(inputs, 7), "y_ptr": Out(0),
        "yh_ptr": Out(1) if len(outputs) > 1 else NULL,
        "yc_ptr": Out(2) if len(outputs) > 2 else NULL,
        "ws_ptr": WORKSPACE, "clip": F32(float(fparams[0])),
    }  # fmt: skip
    return TritonLaunch(
        name="triton.lstm_seq", kernel=_lstm_kernel, args=args, constexprs=consts,
        grid=(batch, num_dirs, 1), num_warps=4 if block_h <= 128 else 8, num_stages=1,
        workspace=num_dirs * batch * hidden * 4,
    )  # fmt: skip


def plan_gru(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """``gru_f32``: ONNX GRU with the default activations (see the module docstring)."""
    consts, flag, num_dirs, batch, hidden, block_h = _common(
        "gru", inputs, outputs, iparams, fparams
    )
    if len(inputs) > 6:
        raise Unsupported(f"gru: {len(inputs)} inputs (at most 6)")
    consts.update(LBR=flag, HAS_YH=len(outputs) > 1)
    args = {
        "x_ptr": In(0), "wt_ptr": In(1), "rt_ptr": In(2), "b_ptr": _arg(inputs, 3),
        "lens_ptr": _arg(inputs, 4), "h0_ptr": _arg(inputs, 5), "y_ptr": Out(0),
        "yh_ptr": Out(1) if len(outputs) > 1 else NULL,
        "ws_ptr": WORKSPACE, "clip": F32(float(fparams[0])),
    }  # fmt: skip
    return TritonLaunch(
        name="triton.gru_seq", kernel=_gru_kernel, args=args, constexprs=consts,
        grid=(batch, num_dirs, 1), num_warps=4 if block_h <= 128 else 8, num_stages=1,
        workspace=num_dirs * batch * 2 * hidden * 4,
    )  # fmt: skip


register_plan("lstm_f32", plan_lstm)
register_plan("gru_f32", plan_gru)
