"""Elementwise kernels: GPU twins of ``binary_f32``, ``unary_f32`` and ``eltwise_program_f32``.

- ``binary_f32`` (iparams ``[op, act]``, fparams ``[act_alpha, act_beta]``): ``Y = act(A op B)``
  with NumPy broadcasting; op 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min.
- ``unary_f32`` (iparams ``[act]``, fparams ``[act_alpha, act_beta]``): ``Y = act(X)``.
- ``eltwise_program_f32``: a fused elementwise DAG as a register program (layout in
  ``kernels/native/params.md``). The program is static, so each one becomes its own
  ``@triton.jit`` kernel generated as Python source (one SSA value per instruction, inputs loaded
  once, shapes and strides baked in, immediates as fp32 scalar arguments so programs that differ
  only in constants share a kernel). Triton reads kernel source through ``inspect``, so the
  source is written to a file in :func:`cache_dir` named by its hash and imported from there.

Broadcasting: Y's dims of size 1 are dropped and adjacent dims merged where every input's
strides allow, so most steps index with one or two dims. Fixed kernels handle up to
:data:`MAX_DIMS` merged dims; generated programs any number. Math in fp32 (fp16 / bf16 loaded
and stored in their dtype).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import triton
import triton.language as tl
from optimizer.kernels.triton.epilogue import apply_act, check_act
from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    I32,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

log = logging.getLogger(__name__)

#: Merged dims the fixed broadcasting kernels index.
MAX_DIMS = 6
BLOCK = 1024
FLT_MAX = 3.4028234663852886e38


def broadcast_layout(
    out_shape: Sequence[int], in_shapes: Sequence[Sequence[int]]
) -> tuple[list[int], list[list[int]]]:
    """Merged dims of Y (outer to inner) and each input's element strides over them.

    Inputs broadcast NumPy-style (rank <= Y's, aligned right); a broadcast dim has stride 0.
    Dims of size 1 are dropped; adjacent dims merge when every input's strides are contiguous
    across them (or both 0). An empty Y gives ``[0]``.
    """
    r = len(out_shape)
    strides: list[list[int]] = []
    for k, shape in enumerate(in_shapes):
        if len(shape) > r:
            raise Unsupported(f"input {k} has rank {len(shape)} > the output's {r}")
        full = [1] * (r - len(shape)) + list(shape)
        st, s = [0] * r, 1
        for d in range(r - 1, -1, -1):
            if full[d] != out_shape[d] and full[d] != 1:
                raise Unsupported(f"input {k} shape {tuple(shape)} does not broadcast to "
                                  f"{tuple(out_shape)}")  # fmt: skip
            st[d] = 0 if full[d] == 1 else s
            s *= full[d]
        strides.append(st)
    if any(n == 0 for n in out_shape):
        return [0], [[0] for _ in in_shapes]
    dims: list[int] = []
    mst: list[list[int]] = [[] for _ in in_shapes]
    for d in range(r):
        if out_shape[d] == 1:
            continue
        if dims and all(m[-1] == st[d] * out_shape[d] for m, st in zip(mst, strides, strict=True)):
            dims[-1] *= out_shape[d]
            for m, st in zip(mst, strides, strict=True):
                m[-1] = st[d]
        else:
            dims.append(out_shape[d])
            for m, st in zip(mst, strides, strict=True):
                m.append(st[d])
    if not dims:
        return [1], [[0] for _ in in_shapes]
    return dims, mst


def pad_dims(dims: list[int], strides: list[list[int]], n: int = MAX_DIMS, what: str = "step"):
    """Left-pads a layout to ``n`` dims (size 1, stride 0) for the fixed kernels."""
    if len(dims) > n:
        raise Unsupported(f"{what}: {len(dims)} dims after merging (at most {n})")
    k = n - len(dims)
    return [1] * k + dims, [[0] * k + s for s in strides]


@triton.jit
def offsets6(idx, D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr, D4: tl.constexpr,
             D5: tl.constexpr, S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
             S3: tl.constexpr, S4: tl.constexpr, S5: tl.constexpr):  # fmt: skip
    """Row-major index over ``[D0..D5]`` -> element offset with strides ``S0..S5``."""
    i5 = idx % D5
    idx = idx // D5
    i4 = idx % D4
    idx = idx // D4
    i3 = idx % D3
    idx = idx // D3
    i2 = idx % D2
    idx = idx // D2
    i1 = idx % D1
    i0 = idx // D1
    return i0 * S0 + i1 * S1 + i2 * S2 + i3 * S3 + i4 * S4 + i5 * S5


@triton.jit
def binop(a, b, OP: tl.constexpr):
    """``binary_f32`` op codes: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min."""
    if OP == 0:
        r = a + b
    elif OP == 1:
        r = a - b
    elif OP == 2:
        r = a * b
    elif OP == 3:
        r = a / b
    elif OP == 4:
        r = tl.maximum(a, b)
    else:
        r = tl.minimum(a, b)
    return r


@triton.jit
def pow_f32(a, b):
    """``powf(a, b)``: exp2(b * log2|a|) with C's sign, zero and NaN rules (relative error about
    |b log2 a| * 2^-24)."""
    r = tl.exp2(b * tl.log2(tl.abs(a)))
    bi = tl.floor(b)
    is_int = bi == b
    odd = is_int & (tl.abs(bi - 2.0 * tl.floor(bi * 0.5)) == 1.0)
    r = tl.where(a < 0, tl.where(is_int, tl.where(odd, -r, r), float("nan")), r)
    r = tl.where((b == 0) | (a == 1), 1.0, r)
    return r


@triton.jit
def _binary_kernel(
    a_ptr, b_ptr, y_ptr, n, alpha, beta,
    D1: tl.constexpr, D2: tl.constexpr, D3: tl.constexpr, D4: tl.constexpr, D5: tl.constexpr,
    A0: tl.constexpr, A1: tl.constexpr, A2: tl.constexpr, A3: tl.constexpr, A4: tl.constexpr,
    A5: tl.constexpr, B0: tl.constexpr, B1: tl.constexpr, B2: tl.constexpr, B3: tl.constexpr,
    B4: tl.constexpr, B5: tl.constexpr, A_FLAT: tl.constexpr, B_FLAT: tl.constexpr,
    OP: tl.constexpr, ACT: tl.constexpr, BLOCK: tl.constexpr, BIG: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if BIG:
        offs = offs.to(tl.int64)
    mask = offs < n
    if A_FLAT:
        a_off = offs
    else:
        a_off = offsets6(offs, D1, D2, D3, D4, D5, A0, A1, A2, A3, A4, A5)
    if B_FLAT:
        b_off = offs
    else:
        b_off = offsets6(offs, D1, D2, D3, D4, D5, B0, B1, B2, B3, B4, B5)
    a = tl.load(a_ptr + a_off, mask=mask, other=1.0).to(tl.float32)
    b = tl.load(b_ptr + b_off, mask=mask, other=1.0).to(tl.float32)
    y = apply_act(binop(a, b, OP), ACT, alpha, beta)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _unary_kernel(x_ptr, y_ptr, n, alpha, beta, ACT: tl.constexpr, BLOCK: tl.constexpr,
                  BIG: tl.constexpr):  # fmt: skip
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if BIG:
        offs = offs.to(tl.int64)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=1.0).to(tl.float32)
    tl.store(y_ptr + offs, apply_act(x, ACT, alpha, beta).to(y_ptr.dtype.element_ty), mask=mask)


def _float_io(entry: str, descs: Sequence[TensorDesc | None]) -> str:
    dts = {d.dtype for d in descs if d is not None}
    if len(dts) != 1 or not dts <= set(FLOAT_DTYPES):
        raise Unsupported(f"{entry}: tensors must share one of {FLOAT_DTYPES}, got {sorted(dts)}")
    return dts.pop()


def _act(entry: str, iparam: int, fparams: Sequence[float]) -> tuple[int, float, float]:
    return check_act(iparam, entry), float(fparams[0]), float(fparams[1])


def _big(n: int) -> bool:
    return n + BLOCK >= 2**31


def plan_binary(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """binary_f32: ``Y = act(A op B)`` with broadcasting; iparams [op, act]; fparams
    [act_alpha, act_beta]."""
    if len(inputs) != 2 or None in inputs or len(outputs) != 1:
        raise Unsupported("binary_f32: expects inputs A, B and output Y")
    if len(iparams) != 2 or len(fparams) != 2:
        raise Unsupported("binary_f32: expects iparams [op, act], fparams [act_alpha, act_beta]")
    a, b = inputs
    y = outputs[0]
    _float_io("binary_f32", [a, b, y])
    op = int(iparams[0])
    if not 0 <= op <= 5:
        raise Unsupported(f"binary_f32: op {op} not in 0..5")
    act, alpha, beta = _act("binary_f32", iparams[1], fparams)
    try:
        dims, (sa, sb) = broadcast_layout(y.shape, [a.shape, b.shape])  # type: ignore[union-attr]
        dims, (sa, sb) = pad_dims(dims, [sa, sb], what="binary_f32")
    except Unsupported as e:
        raise Unsupported(f"binary_f32: {e}") from None
    flat = [1] * MAX_DIMS
    for d in range(MAX_DIMS - 2, -1, -1):
        flat[d] = flat[d + 1] * dims[d + 1]
    cx = {f"D{i}": dims[i] for i in range(1, MAX_DIMS)}
    cx.update({f"A{i}": sa[i] for i in range(MAX_DIMS)})
    cx.update({f"B{i}": sb[i] for i in range(MAX_DIMS)})
    n = y.numel
    cx.update(A_FLAT=a.numel == n and sa == flat, B_FLAT=b.numel == n and sb == flat,  # type: ignore[union-attr]
              OP=op, ACT=act, BLOCK=BLOCK, BIG=_big(n))  # fmt: skip
    return TritonLaunch(
        name="triton.binary",
        kernel=_binary_kernel,
        args={"a_ptr": In(0), "b_ptr": In(1), "y_ptr": Out(0), "n": I32(n),
              "alpha": F32(alpha), "beta": F32(beta)},
        constexprs=cx,
        grid=(max(1, triton.cdiv(n, BLOCK)),),
        num_warps=4,
    )  # fmt: skip


def plan_unary(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """unary_f32: ``Y = act(X)``; iparams [act]; fparams [act_alpha, act_beta]."""
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported("unary_f32: expects input X and output Y")
    if len(iparams) != 1 or len(fparams) != 2:
        raise Unsupported("unary_f32: expects iparams [act], fparams [act_alpha, act_beta]")
    x, y = inputs[0], outputs[0]
    _float_io("unary_f32", [x, y])
    if x.numel != y.numel:
        raise Unsupported("unary_f32: Y must have X's element count")
    act, alpha, beta = _act("unary_f32", iparams[0], fparams)
    n = y.numel
    return TritonLaunch(
        name="triton.unary",
        kernel=_unary_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "n": I32(n), "alpha": F32(alpha),
              "beta": F32(beta)},
        constexprs={"ACT": act, "BLOCK": BLOCK, "BIG": _big(n)},
        grid=(max(1, triton.cdiv(n, BLOCK)),),
        num_warps=4,
    )  # fmt: skip


# ---------------------------------------------------------------- generated kernels


def cache_dir() -> Path:
    """Where generated kernel sources live: ``$ODC_TRITON_CACHE_DIR``, else
    ``~/.cache/odc/triton_gen``, else a directory under the system temp dir."""
    env = os.environ.get("ODC_TRITON_CACHE_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.home() / ".cache" / "odc" / "triton_gen",
                   Path(tempfile.gettempdir()) / f"odc_triton_gen_{os.getuid()}"]  # fmt: skip
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            if os.access(c, os.W_OK):
                return c
        except OSError:
            continue
    raise Unsupported("no writable directory for generated Triton kernels")


_LOADED: dict[str, Any] = {}


def load_generated(source: str, fn_name: str) -> Any:
    """The function ``fn_name`` of generated module ``source``, written once to the cache (by
    its hash, atomically) and imported from there so Triton can read its source."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    key = f"{digest}:{fn_name}"
    if key in _LOADED:
        return _LOADED[key]
    mod_name = f"odc_triton_gen_{digest}"
    path = cache_dir() / f"{mod_name}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
        log.debug("generated Triton kernel %s", path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, fn_name)
    _LOADED[key] = fn
    return fn


#: eltwise_program op codes -> (arity, expression template over a, b).
PROGRAM_OPS: dict[int, tuple[int, str]] = {
    0: (2, "{a} + {b}"), 1: (2, "{a} - {b}"), 2: (2, "{a} * {b}"), 3: (2, "{a} / {b}"),
    4: (2, "tl.maximum({a}, {b})"), 5: (2, "tl.minimum({a}, {b})"), 6: (2, "pow_f32({a}, {b})"),
    7: (1, "{a}"), 8: (1, "-{a}"), 9: (1, "tl.abs({a})"), 10: (1, "tl.exp({a})"),
    11: (1, "tl.log({a})"), 12: (1, "tl.sqrt({a})"), 13: (1, "1.0 / {a}"), 14: (1, "tl.erf({a})"),
    15: (1, "tanh_f32({a})"), 16: (1, "tl.sigmoid({a})"), 17: (1, "tl.maximum({a}, 0.0)"),
    18: (1, "tl.minimum(tl.maximum({a}, {lo}), {hi})"),
}  # fmt: skip

#: Input dtypes a program may read (converted to fp32 on load).
PROGRAM_INPUT_DTYPES = (
    *FLOAT_DTYPES,
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
)


def _program_source(
    fn_name: str,
    n_inputs: int,
    dims: list[int],
    strides: list[list[int]],
    instrs: list[tuple[int, int, int, int]],
    result: int,
    n_imm: int,
) -> str:
    lines = [
        "# Generated by optimizer.kernels.triton.eltwise (eltwise_program_f32); do not edit.",
        "import triton",
        "import triton.language as tl",
        "",
        "from optimizer.kernels.triton.epilogue import tanh_f32",
        "from optimizer.kernels.triton.eltwise import pow_f32",
        "",
        "",
        "@triton.jit",
        f"def {fn_name}(",
        *[f"    x{k}_ptr," for k in range(n_inputs)],
        "    y_ptr,",
        "    n,",
        *[f"    f{j}," for j in range(n_imm)],
        "    BLOCK: tl.constexpr,",
        "    BIG: tl.constexpr,",
        "):",
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "    if BIG:",
        "        offs = offs.to(tl.int64)",
        "    mask = offs < n",
    ]
    r = len(dims)
    contiguous = [1] * r
    for d in range(r - 2, -1, -1):
        contiguous[d] = contiguous[d + 1] * dims[d + 1]
    used = sorted({v & 0xFFFFFF for _, _, a, b in instrs for v in (a, b) if v >> 24 == 1})
    if any(strides[k] != contiguous and any(strides[k]) for k in used):
        lines.append("    t = offs")
        for d in range(r - 1, 0, -1):
            lines += [f"    i{d} = t % {dims[d]}", f"    t = t // {dims[d]}"]
        lines.append("    i0 = t")
    for k in used:
        if strides[k] == contiguous:
            off = "offs"
        else:
            terms = [f"i{d} * {s}" if s != 1 else f"i{d}" for d, s in enumerate(strides[k]) if s]
            off = " + ".join(terms) if terms else "offs * 0"  # a scalar input: one address
        lines.append(f"    x{k} = tl.load(x{k}_ptr + ({off}), mask=mask, other=0).to(tl.float32)")

    def operand(v: int) -> str:
        kind, idx = v >> 24, v & 0xFFFFFF
        return (f"r{idx}", f"x{idx}", f"f{idx}")[kind]

    for op, dst, a, b in instrs:
        arity, tpl = PROGRAM_OPS[op]
        if op == 18:
            expr = tpl.format(a=operand(a), lo=f"f{b & 0xFFFFFF}", hi=f"f{(b & 0xFFFFFF) + 1}")
        else:
            expr = tpl.format(a=operand(a), b=operand(b) if arity == 2 else "")
        if all(v >> 24 == 2 for v in (a, b)[:arity]):  # immediates only: a scalar, broadcast it
            expr = f"tl.zeros([BLOCK], tl.float32) + ({expr})"
        lines.append(f"    r{dst} = {expr}")
    lines.append(f"    tl.store(y_ptr + offs, r{result}.to(y_ptr.dtype.element_ty), mask=mask)")
    return "\n".join(lines) + "\n"


def _check_program(
    iparams: Sequence[int], n_inputs: int, n_imm: int
) -> tuple[int, list[tuple[int, int, int, int]], int]:
    if len(iparams) < 3:
        raise Unsupported("eltwise_program_f32: iparams need [num_regs, num_instr, result_reg]")
    num_regs, num_instr, result = (int(v) for v in iparams[:3])
    if num_instr < 1 or len(iparams) != 3 + 4 * num_instr:
        raise Unsupported(
            f"eltwise_program_f32: {len(iparams)} iparams for {num_instr} instructions"
        )
    if not 1 <= num_regs <= 64 or not 0 <= result < num_regs:
        raise Unsupported(f"eltwise_program_f32: num_regs {num_regs} / result_reg {result} invalid")
    written: set[int] = set()
    instrs = []
    for i in range(num_instr):
        op, dst, a, b = (int(v) for v in iparams[3 + 4 * i : 7 + 4 * i])
        where = f"eltwise_program_f32: instruction {i}"
        if op not in PROGRAM_OPS:
            raise Unsupported(f"{where}: op {op} not in 0..18")
        if not 0 <= dst < num_regs:
            raise Unsupported(f"{where}: dst {dst} not a register")
        arity = PROGRAM_OPS[op][0]
        for v in (a, b)[:arity]:
            kind, idx = v >> 24, v & 0xFFFFFF
            if v < 0 or kind > 2 or (kind == 0 and idx not in written) or (
                kind == 1 and idx >= n_inputs) or (kind == 2 and idx >= n_imm):  # fmt: skip
                raise Unsupported(f"{where}: bad operand {v}")
        if op == 18:
            if b >> 24 != 2 or (b & 0xFFFFFF) + 1 >= n_imm:
                raise Unsupported(f"{where}: clip needs immediates j, j+1")
        elif arity == 1 and b != 0:
            raise Unsupported(f"{where}: unary op with operand b {b}")
        written.add(dst)
        instrs.append((op, dst, a, b))
    if result not in written:
        raise Unsupported(f"eltwise_program_f32: result_reg {result} is never written")
    return num_regs, instrs, result


def plan_eltwise_program(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """eltwise_program_f32: a register program over broadcast inputs (see the module doc)."""
    if not 1 <= len(inputs) <= 64 or None in inputs or len(outputs) != 1:
        raise Unsupported("eltwise_program_f32: expects 1..64 inputs and one output")
    y = outputs[0]
    if y.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"eltwise_program_f32: Y dtype {y.dtype} not one of {FLOAT_DTYPES}")
    for k, x in enumerate(inputs):
        assert x is not None
        if x.dtype not in PROGRAM_INPUT_DTYPES:
            raise Unsupported(f"eltwise_program_f32: input {k} dtype {x.dtype} not supported")
        if x.dtype in FLOAT_DTYPES and x.dtype != y.dtype:
            raise Unsupported(f"eltwise_program_f32: input {k} is {x.dtype}, Y {y.dtype}")
    _, instrs, result = _check_program(iparams, len(inputs), len(fparams))
    try:
        dims, strides = broadcast_layout(y.shape, [x.shape for x in inputs])  # type: ignore[union-attr]
    except Unsupported as e:
        raise Unsupported(f"eltwise_program_f32: {e}") from None
    # the kernel's identity is its source: name it by the program, shapes and input count
    shape_key = repr((len(inputs), dims, strides, instrs, result, len(fparams)))
    fn_name = "eltwise_program_" + hashlib.sha256(shape_key.encode()).hexdigest()[:12]
    source = _program_source(fn_name, len(inputs), dims, strides, instrs, result, len(fparams))
    kernel = load_generated(source, fn_name)
    args = {f"x{k}_ptr": In(k) for k in range(len(inputs))}
    args["y_ptr"] = Out(0)
    n = y.numel
    args["n"] = I32(n)
    for j, v in enumerate(fparams):
        v = float(v)
        args[f"f{j}"] = F32(
            max(-FLT_MAX, min(FLT_MAX, v)) if v == v and abs(v) != float("inf") else v
        )
    return TritonLaunch(
        name="triton.eltwise_program",
        kernel=kernel,
        args=args,
        constexprs={"BLOCK": BLOCK, "BIG": _big(n)},
        grid=(max(1, triton.cdiv(n, BLOCK)),),
        num_warps=4,
    )


register_plan("binary_f32", plan_binary)
register_plan("unary_f32", plan_unary)
register_plan("eltwise_program_f32", plan_eltwise_program)
