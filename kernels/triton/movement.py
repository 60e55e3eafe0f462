"""Data movement: GPU twins of ``copy``, ``transpose``, ``slice``, ``concat``, ``split``,
``gather`` and ``pad`` (``kernels/native/params.md``).

Elements are moved, never interpreted: any dtype Triton can point at (float16/32/64, bfloat16,
(u)int8, int16/32/64, bool); outputs have the input's dtype.

- ``copy`` / ``transpose`` / ``slice`` are one strided gather: Y's flat index walks Y's dims
  (size-1 dims dropped, dims merged where X's strides are contiguous across them, at most
  :data:`~.eltwise.MAX_DIMS`), each with X's stride for it (a permuted stride for transpose,
  ``step * stride`` for slice, negative for negative steps) from a constant base offset.
  Transposes that move the innermost dim read uncoalesced (no shared-memory tiling yet).
- ``concat`` / ``split`` take any number of inputs / outputs, so each step gets a generated
  kernel (:func:`~.eltwise.load_generated`) with one pointer per tensor; grid axis 1 picks the
  tensor, axis 0 its blocks.
- ``gather``: ``Y[o, k, i] = Data[o, idx[k], i]`` with ``idx`` int32 or int64, negative indices
  counting from the end. Out-of-range indices (the native kernel fails) cannot be reported from
  the device: their rows are written as zeros.
- ``pad``: generated per step (any rank): per padded axis the output index maps to the input
  (constant: masked and filled with the constant, whose bit pattern is baked into the source;
  reflect numpy-style, repeating; edge; wrap), negative pads crop first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.eltwise import MAX_DIMS, load_generated, offsets6
from optimizer.kernels.triton.launch import (
    I32,
    TRITON_TYPES,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

BLOCK = 1024

#: dtype -> triton.language type name (for generated source).
TL_TYPES = {
    "float32": "tl.float32", "float16": "tl.float16", "bfloat16": "tl.bfloat16",
    "float64": "tl.float64", "int8": "tl.int8", "int16": "tl.int16", "int32": "tl.int32",
    "int64": "tl.int64", "uint8": "tl.uint8", "bool": "tl.int1",
}  # fmt: skip
SIZES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "int16": 2,
         "int32": 4, "int64": 8, "uint8": 1, "bool": 1}  # fmt: skip


@triton.jit
def _strided_copy_kernel(
    x_ptr, y_ptr, n,
    D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr, D4: tl.constexpr, D5: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, S3: tl.constexpr, S4: tl.constexpr,
    S5: tl.constexpr, BASE: tl.constexpr, FLAT: tl.constexpr, BLOCK: tl.constexpr,
    BIG: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if BIG:
        offs = offs.to(tl.int64)
    mask = offs < n
    if FLAT:
        src = offs
    else:
        src = BASE + offsets6(offs, D1, D2, D3, D4, D5, S0, S1, S2, S3, S4, S5)
    tl.store(y_ptr + offs, tl.load(x_ptr + src, mask=mask), mask=mask)


@triton.jit
def _gather_kernel(
    data_ptr, idx_ptr, y_ptr, n,
    A: tl.constexpr, K: tl.constexpr, INNER: tl.constexpr, BLOCK: tl.constexpr, BIG: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if BIG:
        offs = offs.to(tl.int64)
    mask = offs < n
    i = offs % INNER
    t = offs // INNER
    k = t % K
    o = t // K
    j = tl.load(idx_ptr + k, mask=mask, other=0).to(tl.int64)
    j = tl.where(j < 0, j + A, j)
    ok = (j >= 0) & (j < A)
    v = tl.load(data_ptr + (o * A + j) * INNER + i, mask=mask & ok, other=0)
    tl.store(y_ptr + offs, v, mask=mask)


def _same_dtype(entry: str, descs: Sequence[TensorDesc | None]) -> str:
    dts = {d.dtype for d in descs if d is not None}
    if len(dts) != 1:
        raise Unsupported(f"{entry}: inputs and outputs must share one dtype, got {sorted(dts)}")
    dt = dts.pop()
    if dt not in TL_TYPES:
        raise Unsupported(f"{entry}: dtype {dt} not supported")
    return dt


def _contig(shape: Sequence[int]) -> list[int]:
    st, s = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        st[d], s = s, s * shape[d]
    return st


def _big(n: int) -> bool:
    return n + BLOCK >= 2**31


def _strided(name: str, y: TensorDesc, src_strides: Sequence[int], base: int) -> TritonLaunch:
    """Y[flat] = X[base + sum(i_d * src_strides[d])] over Y's dims."""
    dims: list[int] = []
    st: list[int] = []
    for n, s in zip(y.shape, src_strides, strict=True):
        if n == 1:
            continue
        if dims and st[-1] == s * n:
            dims[-1] *= n
            st[-1] = s
        else:
            dims.append(n)
            st.append(s)
    if not dims:
        dims, st = [1], [0]
    if len(dims) > MAX_DIMS:
        raise Unsupported(f"{name}: {len(dims)} dims after merging (at most {MAX_DIMS})")
    flat = base == 0 and len(dims) == 1 and st[0] == 1
    dims = [1] * (MAX_DIMS - len(dims)) + dims
    st = [0] * (MAX_DIMS - len(st)) + st
    cx = {f"D{i}": dims[i] for i in range(1, MAX_DIMS)}
    cx.update({f"S{i}": st[i] for i in range(MAX_DIMS)})
    n = y.numel
    cx.update(BASE=base, FLAT=flat, BLOCK=BLOCK, BIG=_big(n))
    return TritonLaunch(
        name=f"triton.{name}",
        kernel=_strided_copy_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "n": I32(n)},
        constexprs=cx,
        grid=(max(1, triton.cdiv(n, BLOCK)),),
        num_warps=4,
    )


def _one_in_out(entry: str, inputs, outputs) -> tuple[TensorDesc, TensorDesc]:
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported(f"{entry}: expects 1 input and 1 output")
    _same_dtype(entry, [inputs[0], outputs[0]])
    return inputs[0], outputs[0]


def plan_copy(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """copy: Y = X (X's element count, any shape: Reshape / Flatten / Squeeze / Identity)."""
    x, y = _one_in_out("copy", inputs, outputs)
    if iparams or fparams or x.numel != y.numel:
        raise Unsupported("copy: Y must have X's element count; no params")
    return _strided("copy", TensorDesc((y.numel,), y.dtype), [1], 0)


def plan_transpose(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """transpose: iparams perm (rank entries); Y.shape[i] = X.shape[perm[i]]."""
    x, y = _one_in_out("transpose", inputs, outputs)
    r = len(x.shape)
    perm = [int(p) for p in iparams]
    if r < 1 or sorted(perm) != list(range(r)) or fparams:
        raise Unsupported(f"transpose: perm {perm} is not a permutation of 0..{r - 1}")
    if tuple(y.shape) != tuple(x.shape[p] for p in perm):
        raise Unsupported(f"transpose: Y {y.shape} is not X {x.shape} permuted by {perm}")
    xs = _contig(x.shape)
    return _strided("transpose", y, [xs[p] for p in perm], 0)


def plan_slice(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """slice: iparams starts (r); ends (r); steps (r), normalized by the binder."""
    x, y = _one_in_out("slice", inputs, outputs)
    r = len(x.shape)
    if r < 1 or len(iparams) != 3 * r or fparams or len(y.shape) != r:
        raise Unsupported(f"slice: expects rank >= 1, Y of X's rank and {3 * r} iparams")
    starts, ends, steps = (list(map(int, iparams[i * r : (i + 1) * r])) for i in range(3))
    xs = _contig(x.shape)
    base, src = 0, []
    for d in range(r):
        s, e, k = starts[d], ends[d], steps[d]
        if k == 0:
            raise Unsupported(f"slice: axis {d}: step 0")
        cnt = max(0, -(-(e - s) // k))
        if cnt != y.shape[d]:
            raise Unsupported(
                f"slice: axis {d}: Y has {y.shape[d]} entries, {s}:{e}:{k} takes {cnt}"
            )
        if cnt and not (0 <= s < x.shape[d] and 0 <= s + (cnt - 1) * k < x.shape[d]):
            raise Unsupported(f"slice: axis {d}: {s}:{e}:{k} outside [0, {x.shape[d]})")
        if cnt:
            base += s * xs[d]
        src.append(k * xs[d])
    return _strided("slice", y, src, base if y.numel else 0)


def _axis(entry: str, axis: int, r: int) -> int:
    if not -r <= axis < r:
        raise Unsupported(f"{entry}: axis {axis} not in 0..{r - 1}")
    return axis % r


def _prod(dims: Sequence[int]) -> int:
    p = 1
    for d in dims:
        p *= d
    return p


def _pieces_source(fn: str, n: int, widths: list[int], offsets: list[int], total: int,
                   outer: int, concat: bool) -> str:  # fmt: skip
    """A kernel moving ``n`` pieces of ``[outer, widths[k]]`` to / from column ``offsets[k]`` of
    ``[outer, total]``."""
    ptrs = [f"x{k}_ptr" for k in range(n)] if concat else [f"y{k}_ptr" for k in range(n)]
    big = any(outer * w + BLOCK >= 2**31 for w in widths) or outer * total + BLOCK >= 2**31
    lines = [
        "# Generated by optimizer.kernels.triton.movement; do not edit.",
        "import triton",
        "import triton.language as tl",
        "",
        "",
        "@triton.jit",
        f"def {fn}(",
        *[f"    {p}," for p in ([*ptrs, "y_ptr"] if concat else ["x_ptr", *ptrs])],
        "    BLOCK: tl.constexpr,",
        "):",
        "    piece = tl.program_id(1)",
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
    ]
    if big:
        lines.append("    offs = offs.to(tl.int64)")
    for k in range(n):
        w = widths[k]
        kw = "if" if k == 0 else "elif"
        lines.append(f"    {kw} piece == {k}:")
        if w * outer == 0:
            lines.append("        pass")
            continue
        lines += [
            f"        mask = offs < {outer * w}",
            f"        wide = (offs // {w}) * {total} + {offsets[k]} + offs % {w}",
        ]
        if concat:
            lines.append(
                f"        tl.store(y_ptr + wide, tl.load(x{k}_ptr + offs, mask=mask), mask=mask)"
            )
        else:
            lines.append(
                f"        tl.store(y{k}_ptr + offs, tl.load(x_ptr + wide, mask=mask), mask=mask)"
            )
    return "\n".join(lines) + "\n"


def _pieces(entry: str, whole: TensorDesc, parts: Sequence[TensorDesc], axis: int,
            concat: bool) -> TritonLaunch:  # fmt: skip
    r = len(whole.shape)
    ax = _axis(entry, axis, r)
    for k, p in enumerate(parts):
        if len(p.shape) != r or any(p.shape[d] != whole.shape[d] for d in range(r) if d != ax):
            raise Unsupported(
                f"{entry}: piece {k} {p.shape} does not fit {whole.shape} on axis {ax}"
            )
    if sum(p.shape[ax] for p in parts) != whole.shape[ax]:
        raise Unsupported(
            f"{entry}: the pieces' sizes along axis {ax} do not sum to {whole.shape[ax]}"
        )
    outer, inner = _prod(whole.shape[:ax]), _prod(whole.shape[ax + 1 :])
    widths = [p.shape[ax] * inner for p in parts]
    offsets, o = [], 0
    for w in widths:
        offsets.append(o)
        o += w
    key = repr((entry, widths, offsets, whole.shape[ax] * inner, outer))
    fn = f"{entry}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    kernel = load_generated(
        _pieces_source(fn, len(parts), widths, offsets, whole.shape[ax] * inner, outer, concat), fn
    )
    if concat:
        args = {f"x{k}_ptr": In(k) for k in range(len(parts))}
        args["y_ptr"] = Out(0)
    else:
        args = {"x_ptr": In(0)}
        args.update({f"y{k}_ptr": Out(k) for k in range(len(parts))})
    most = max([outer * w for w in widths] + [1])
    return TritonLaunch(name=f"triton.{entry}", kernel=kernel, args=args,
                        constexprs={"BLOCK": BLOCK}, grid=(triton.cdiv(most, BLOCK), len(parts)),
                        num_warps=4)  # fmt: skip


def plan_concat(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """concat: inputs X_0..X_{n-1}; output Y; iparams [axis]."""
    if not inputs or None in inputs or len(outputs) != 1 or len(iparams) != 1 or fparams:
        raise Unsupported("concat: expects n >= 1 inputs, 1 output, iparams [axis]")
    _same_dtype("concat", [*inputs, outputs[0]])
    return _pieces("concat", outputs[0], inputs, int(iparams[0]), True)  # type: ignore[arg-type]


def plan_split(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """split: input X; outputs Y_0..Y_{n-1}; iparams [axis]."""
    if len(inputs) != 1 or inputs[0] is None or not outputs or len(iparams) != 1 or fparams:
        raise Unsupported("split: expects 1 input, n >= 1 outputs, iparams [axis]")
    _same_dtype("split", [inputs[0], *outputs])
    return _pieces("split", inputs[0], outputs, int(iparams[0]), False)


def plan_gather(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """gather: Data, Indices (int32 / int64) -> Y; iparams [axis]."""
    if len(inputs) != 2 or None in inputs or len(outputs) != 1 or len(iparams) != 1 or fparams:
        raise Unsupported("gather: expects Data, Indices, 1 output, iparams [axis]")
    data, idx = inputs
    y = outputs[0]
    assert data is not None and idx is not None
    _same_dtype("gather", [data, y])
    if idx.dtype not in ("int32", "int64"):
        raise Unsupported(f"gather: indices must be int32 or int64, got {idx.dtype}")
    r = len(data.shape)
    if r < 1:
        raise Unsupported("gather: Data must have rank >= 1")
    ax = _axis("gather", int(iparams[0]), r)
    want = tuple(data.shape[:ax]) + tuple(idx.shape) + tuple(data.shape[ax + 1 :])
    if tuple(y.shape) != want:
        raise Unsupported(f"gather: Y {y.shape} should be {want}")
    n = y.numel
    if n and data.shape[ax] == 0:
        raise Unsupported("gather: gathering from an empty axis")
    return TritonLaunch(
        name="triton.gather",
        kernel=_gather_kernel,
        args={"data_ptr": In(0), "idx_ptr": In(1), "y_ptr": Out(0), "n": I32(n)},
        constexprs={"A": data.shape[ax], "K": max(1, idx.numel),
                    "INNER": max(1, _prod(data.shape[ax + 1 :])), "BLOCK": BLOCK,
                    "BIG": _big(max(n, data.numel))},
        grid=(max(1, triton.cdiv(n, BLOCK)),),
        num_warps=4,
    )  # fmt: skip


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_value_expr(dtype: str, bits: int) -> str:
    size = SIZES[dtype]
    raw = bits & ((1 << (8 * size)) - 1)
    if dtype == "bool":
        return f"tl.full([BLOCK], {int(raw != 0)}, tl.int1)"
    if dtype == "uint8":
        return f"tl.full([BLOCK], {raw}, tl.uint8)"
    signed = raw - (1 << (8 * size)) if raw >> (8 * size - 1) else raw
    ity = {1: "tl.int8", 2: "tl.int16", 4: "tl.int32", 8: "tl.int64"}[size]
    expr = f"tl.full([BLOCK], {signed}, {ity})"
    if dtype.startswith(("float", "bfloat")):
        expr += f".to({TL_TYPES[dtype]}, bitcast=True)"
    return expr


def plan_pad(inputs, outputs, iparams, fparams) -> TritonLaunch:
    """pad: iparams mode; pad_begin (r); pad_end (r); value (bit pattern)."""
    x, y = _one_in_out("pad", inputs, outputs)
    r = len(x.shape)
    if r < 1 or len(iparams) != 2 * r + 2 or fparams:
        raise Unsupported(f"pad: expects rank >= 1 and {2 * r + 2} iparams")
    mode = int(iparams[0])
    if not 0 <= mode <= 3:
        raise Unsupported(f"pad: mode {mode} not in 0..3")
    pb = [int(v) for v in iparams[1 : 1 + r]]
    pe = [int(v) for v in iparams[1 + r : 1 + 2 * r]]
    bits = int(iparams[1 + 2 * r])
    want = tuple(x.shape[d] + pb[d] + pe[d] for d in range(r))
    if tuple(y.shape) != want:
        raise Unsupported(f"pad: Y {y.shape} should be {want}")
    xs = _contig(x.shape)
    n_out = y.numel
    big = _big(max(n_out, x.numel))
    lines = [
        "# Generated by optimizer.kernels.triton.movement (pad); do not edit.",
        "import triton",
        "import triton.language as tl",
        "",
        "",
        "@triton.jit",
        "def FN(x_ptr, y_ptr, BLOCK: tl.constexpr):",
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
    ]
    if big:
        lines.append("    offs = offs.to(tl.int64)")
    lines += [f"    mask = offs < {n_out}", "    ok = mask", "    src = offs * 0", "    t = offs"]
    for d in range(r - 1, -1, -1):
        lo, n, before = max(0, -pb[d]), x.shape[d] + min(pb[d], 0) + min(pe[d], 0), max(pb[d], 0)
        if n < 0:
            raise Unsupported(
                f"pad: axis {d}: the negative pads crop more than {x.shape[d]} entries"
            )
        padded = before > 0 or y.shape[d] > n
        if padded and mode != 0 and n == 0:
            raise Unsupported(f"pad: axis {d}: {PAD_MODES[mode]} padding of an empty axis")
        if n_out == 0:
            continue
        lines += [
            f"    o = t % {y.shape[d]}",
            f"    t = t // {y.shape[d]}",
            f"    i = o - {before}",
        ]
        if padded:
            if mode == 0:
                lines.append(f"    ok = ok & (i >= 0) & (i < {n})")
            elif mode == 2:
                lines.append(f"    i = tl.minimum(tl.maximum(i, 0), {n - 1})")
            elif mode == 3:
                lines += [f"    i = i % {n}", f"    i = tl.where(i < 0, i + {n}, i)"]
            elif n == 1:
                lines.append("    i = i * 0")
            else:
                p = 2 * (n - 1)
                lines += [f"    i = i % {p}", f"    i = tl.where(i < 0, i + {p}, i)",
                          f"    i = tl.where(i >= {n}, {p} - i, i)"]  # fmt: skip
        lines.append(f"    src = src + (i + {lo}) * {xs[d]}")
    if mode == 0:
        lines += ["    v = tl.load(x_ptr + src, mask=ok)",
                  f"    v = tl.where(ok, v, {_pad_value_expr(y.dtype, bits)})"]  # fmt: skip
    else:
        lines.append("    v = tl.load(x_ptr + src, mask=mask)")
    lines.append("    tl.store(y_ptr + offs, v, mask=mask)")
    body = "\n".join(lines) + "\n"
    fn = "pad_" + hashlib.sha256(body.encode()).hexdigest()[:12]
    kernel = load_generated(body.replace("def FN(", f"def {fn}("), fn)
    return TritonLaunch(
        name="triton.pad",
        kernel=kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0)},
        constexprs={"BLOCK": BLOCK},
        grid=(max(1, triton.cdiv(n_out, BLOCK)),),
        num_warps=4,
    )


for _entry, _fn in (("copy", plan_copy), ("transpose", plan_transpose), ("slice", plan_slice),
                    ("concat", plan_concat), ("split", plan_split), ("gather", plan_gather),
                    ("pad", plan_pad)):  # fmt: skip
    register_plan(_entry, _fn)

assert set(TL_TYPES) <= set(TRITON_TYPES)
