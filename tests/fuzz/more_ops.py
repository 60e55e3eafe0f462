"""More single-op steps for :mod:`tests.fuzz.graphs`: the rest of the supported op set.

Domain-restricted ops get inputs made safe first (``Abs(x) + 0.5`` before Sqrt, Log,
Reciprocal and Pow), so no NaN / Inf appears that the original did not already have; rounding
ops (Floor, Ceil, Round, Sign) read graph inputs only, whose values are exact, so that an
optimizer's legitimate re-association cannot move a value across a step. Inputs of other
dtypes (float16, float64, int32, int64, bool) enter through a Cast to float32.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper

from tests.fuzz.builder import FLOAT, Builder, Val, _broadcasts, _positive

SMOOTH_UNARY = ("Softsign", "Sin", "Cos", "Mish", "Selu", "Celu", "ThresholdedRelu", "Atan",
                "Asinh")  # fmt: skip
ROUNDING = ("Floor", "Ceil", "Round", "Sign")
OTHER_DTYPES = {
    TensorProto.FLOAT16: np.float16,
    TensorProto.DOUBLE: np.float64,
    TensorProto.INT32: np.int32,
    TensorProto.INT64: np.int64,
    TensorProto.BOOL: np.bool_,
}


def _safe_positive(b: Builder, x: Val) -> Val:
    """``Abs(x) + 0.5``: an input for Sqrt / Log / Reciprocal / Pow away from 0."""
    a = b.node("Abs", [x.name], [x.shape])[0]
    return b.node("Add", [a.name, b.const(np.float32(0.5))], [x.shape])[0]


def smooth_unary(b: Builder) -> bool:
    x = b.pick()
    op = b.choice(SMOOTH_UNARY)
    if op == "Mish" and b.opset < 18:
        op = "Softsign"
    attrs = {}
    if op in ("Sin", "Cos"):  # of a bounded input: at |x| ~ 1e4 an ulp of x moves sin by 1e-3
        x = b.node("Tanh", [x.name], [x.shape])[0]
    if op == "Celu":
        attrs["alpha"] = b.choice([1.0, 0.5, 2.0])
    elif op == "ThresholdedRelu":
        attrs["alpha"] = b.choice([1.0, 0.3])
    b.node(op, [x.name], [x.shape], **attrs)
    return True


def domain_unary(b: Builder) -> bool:
    """Sqrt / Log / Reciprocal / Pow on a positive input."""
    x = _safe_positive(b, b.pick())
    op = b.choice(["Sqrt", "Log", "Reciprocal", "Pow"])
    if op == "Pow":
        e = b.choice([2.0, 3.0, 0.5, -1.0, 1.5])
        if b.boolean():  # a broadcast exponent tensor
            shape = b.broadcastable(x.shape)
            exp = b.const(np.full(shape, e, np.float32))
            b.node("Pow", [x.name, exp], [np.broadcast_shapes(x.shape, shape)])
        else:
            b.node("Pow", [x.name, b.const(np.float32(e))], [x.shape])
        return True
    b.node(op, [x.name], [x.shape])
    return True


def rounding(b: Builder) -> bool:
    x = b.pick(lambda v: v.name in b.feeds)
    if x is None:
        return False
    b.node(b.choice(ROUNDING), [x.name], [x.shape])
    return True


def where(b: Builder) -> bool:
    """Where(Greater / Less / ...(a, b), x, y) over broadcasting shapes; ``a`` is varied, so
    that a and b are not (nearly) equal values computed two ways (a flipped comparison then
    differs by a whole branch, a finding of nothing)."""
    a = b.varied(b.pick())
    other = b.pick(lambda v: _broadcasts(a.shape, v.shape))
    cond = b.raw(b.choice(["Greater", "Less", "GreaterOrEqual", "LessOrEqual"]),
                 [a.name, other.name])[0]  # fmt: skip
    cshape = np.broadcast_shapes(a.shape, other.shape)
    x = b.pick(lambda v: _broadcasts(cshape, v.shape))
    yshape = b.broadcastable(x.shape)
    y = b.const(b.randn(*yshape))
    ins = [cond, x.name, y] if b.boolean() else [cond, y, x.name]
    b.node("Where", ins, [np.broadcast_shapes(cshape, x.shape, yshape)])
    return True


def variadic(b: Builder) -> bool:
    """Sum / Mean / Max / Min over 1-3 broadcasting inputs."""
    a = b.pick()
    parts = [a]
    for _ in range(b.integer(0, 2)):
        v = b.pick(lambda v: _broadcasts(np.broadcast_shapes(*[p.shape for p in parts]), v.shape))
        parts.append(v)
    op = b.choice(["Sum", "Mean", "Max", "Min"])
    b.node(op, [p.name for p in parts], [np.broadcast_shapes(*[p.shape for p in parts])])
    return True


def prelu(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 2)
    if x is None:
        return False
    shape = b.choice([(x.shape[1],) + (1,) * (x.rank - 2), (1,), x.shape[-1:]])
    b.node("PRelu", [x.name, b.const(b.randn(*shape, scale=0.3))],
           [np.broadcast_shapes(x.shape, shape)])  # fmt: skip
    return True


def reduce_more(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and _positive(v) and v.size <= 64)
    if x is None:
        return False
    op = b.choice(["ReduceL1", "ReduceProd", "ReduceLogSumExp", "ReduceLogSum"])
    src = _safe_positive(b, x) if op == "ReduceLogSum" else x
    axes = sorted(set(b.draw(st.lists(st.integers(0, x.rank - 1), min_size=1, max_size=x.rank))))
    keep = b.boolean()
    out = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    if b.opset >= 18:
        b.node(op, [src.name, b.ints(axes)], [out], keepdims=int(keep))
    else:
        b.node(op, [src.name], [out], axes=axes, keepdims=int(keep))
    return True


def batch_norm(b: Builder) -> bool:
    """A BatchNormalization (inference) not after a Conv, or an InstanceNormalization."""
    x = b.pick(lambda v: v.rank >= 2 and _positive(v))
    if x is None:
        return False
    c = x.shape[1]
    scale, bias = b.const(1 + b.randn(c, scale=0.3)), b.const(b.randn(c))
    if x.rank >= 3 and b.boolean():
        x = b.varied(x)  # not a constant plane (see Builder.varied)
        b.node("InstanceNormalization", [x.name, scale, bias], [x.shape], epsilon=1e-3)
        return True
    mean, var = b.const(b.randn(c, scale=0.3)), b.const(b.rng.uniform(0.5, 2, c).astype(np.float32))
    b.node("BatchNormalization", [x.name, scale, bias, mean, var], [x.shape],
           epsilon=b.choice([1e-5, 1e-3]))  # fmt: skip
    return True


def conv_transpose(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank == 4 and _positive(v) and v.shape[1] <= 6)
    if x is None:
        return False
    c = x.shape[1]
    groups = b.choice([g for g in (1, c) if c % g == 0])
    m = b.integer(1, 3)
    ks = [b.integer(1, 3), b.integer(1, 3)]
    ss = [b.integer(1, 2), b.integer(1, 2)]
    pads = [b.integer(0, k - 1) for k in ks] + [b.integer(0, k - 1) for k in ks]
    outpad = [b.integer(0, s - 1) for s in ss]
    out = [(x.shape[2 + i] - 1) * ss[i] + ks[i] + outpad[i] - pads[i] - pads[i + 2]
           for i in range(2)]  # fmt: skip
    if min(out) <= 0:
        return False
    w = b.const(b.randn(c, m, *ks, scale=1 / math.sqrt(c * ks[0] * ks[1])), "w")
    inputs = [x.name, w] + ([b.const(b.randn(m * groups))] if b.boolean() else [])
    attrs = dict(kernel_shape=ks, strides=ss, pads=pads)
    if any(outpad):
        attrs["output_padding"] = outpad
    if groups > 1:
        attrs["group"] = groups
    b.node("ConvTranspose", inputs, [(x.shape[0], m * groups, *out)], **attrs)
    return True


def expand_tile(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and v.size <= 64)
    if x is None:
        return False
    if b.boolean():
        reps = [b.integer(1, 2) for _ in x.shape]
        b.node("Tile", [x.name, b.ints(reps)], [tuple(d * r for d, r in zip(x.shape, reps))])
        return True
    target = [b.choice([d, 2, 3]) if d == 1 else (d if b.boolean() else 1) for d in x.shape]
    if b.boolean():
        target = [b.integer(1, 2), *target]
    b.node("Expand", [x.name, b.ints(target)], [np.broadcast_shapes(x.shape, tuple(target))])
    return True


def unsqueeze(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank <= 4)
    if x is None:
        return False
    axis = b.integer(-x.rank - 1, x.rank)
    pos = axis % (x.rank + 1)
    out = list(x.shape)
    out.insert(pos, 1)
    if b.opset >= 13:
        b.node("Unsqueeze", [x.name, b.ints([axis])], [tuple(out)])
    return True


def depth_space(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank == 4)
    if x is None:
        return False
    n, c, h, w = x.shape
    if c % 4 == 0 and b.boolean():
        mode = b.choice(["DCR", "CRD"])
        b.node("DepthToSpace", [x.name], [(n, c // 4, h * 2, w * 2)], blocksize=2, mode=mode)
    elif h % 2 == 0 and w % 2 == 0:
        b.node("SpaceToDepth", [x.name], [(n, c * 4, h // 2, w // 2)], blocksize=2)
    else:
        return False
    return True


def cumsum_topk(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and _positive(v))
    if x is None:
        return False
    ax = b.integer(0, x.rank - 1)
    if b.boolean():
        b.node("CumSum", [x.name, b.const(np.int64(ax - x.rank if b.boolean() else ax), "i")],
               [x.shape], exclusive=b.integer(0, 1), reverse=b.integer(0, 1))  # fmt: skip
        return True
    k = b.integer(1, x.shape[ax])
    out = tuple(k if i == ax else d for i, d in enumerate(x.shape))
    _vals, _idx = b.node("TopK", [x.name, b.ints([k])], [out, out], axis=ax,
                        largest=b.integer(0, 1))  # fmt: skip
    b.values.remove(_idx)  # int64 indices (ties make them ambiguous): not used
    return True


def arg_reduce(b: Builder) -> bool:
    """ArgMax / ArgMin cast to float, over a varied input: the index of a tie or near-tie (tanh
    saturated at 1.0 in one implementation, 0.99999994 in another) is not a finding."""
    x = b.pick(lambda v: v.rank >= 1 and _positive(v))
    if x is None:
        return False
    x = b.varied(x)
    ax = b.integer(0, x.rank - 1)
    keep = b.boolean()
    out = tuple(1 if i == ax else d for i, d in enumerate(x.shape) if keep or i != ax)
    idx = b.raw(b.choice(["ArgMax", "ArgMin"]), [x.name], axis=ax, keepdims=int(keep))[0]
    b.node("Cast", [idx], [out], to=FLOAT)
    return True


def rnn(b: Builder) -> bool:
    """A one-layer LSTM or GRU on a [seq, batch, input] value (Y output)."""
    x = b.pick(lambda v: v.rank == 3 and _positive(v) and v.shape[2] <= 8)
    if x is None:
        return False
    seq, batch, inp = x.shape
    op = b.choice(["LSTM", "GRU"])
    hidden = b.integer(1, 4)
    gates = 4 if op == "LSTM" else 3
    dirs = b.choice([1, 1, 2])
    w = b.const(b.randn(dirs, gates * hidden, inp, scale=0.5), "w")
    r = b.const(b.randn(dirs, gates * hidden, hidden, scale=0.5), "w")
    inputs = [x.name, w, r]
    if b.boolean():
        inputs.append(b.const(b.randn(dirs, 2 * gates * hidden, scale=0.3)))
    attrs = {"hidden_size": hidden}
    if dirs == 2:
        attrs["direction"] = "bidirectional"
    elif b.boolean():
        attrs["direction"] = b.choice(["forward", "reverse"])
    if op == "GRU" and b.boolean():
        attrs["linear_before_reset"] = 1
    b.node(op, inputs, [(seq, dirs, batch, hidden)], **attrs)
    return True


def other_dtype_input(b: Builder) -> bool:
    """A graph input of another dtype entering through a Cast to float32."""
    shape = b.choice([(3,), (2, 3), (1, 4), (2, 1, 3)])
    dtype = b.choice(list(OTHER_DTYPES))
    name = b.fresh("n")
    b.inputs.append((name, dtype, shape))
    np_type = OTHER_DTYPES[dtype]
    if np_type is np.bool_:
        b.feeds[name] = b.rng.integers(0, 2, shape).astype(np.bool_)
    elif np.issubdtype(np_type, np.integer):
        b.feeds[name] = b.rng.integers(-5, 6, shape).astype(np_type)
    else:
        b.feeds[name] = b.rng.standard_normal(shape).astype(np_type)
    b.node("Cast", [name], [shape], to=FLOAT)
    return True


def einsum(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank == 2 and _positive(v))
    if x is None:
        return False
    eq = b.choice(["ij,jk->ik", "ij->ji", "ij->i", "ij,j->i"])
    m, n = x.shape
    if eq == "ij,jk->ik":
        k = b.integer(1, 4)
        b.node("Einsum", [x.name, b.const(b.randn(n, k))], [(m, k)], equation=eq)
    elif eq == "ij,j->i":
        b.node("Einsum", [x.name, b.const(b.randn(n))], [(m,)], equation=eq)
    elif eq == "ij->ji":
        b.node("Einsum", [x.name], [(n, m)], equation=eq)
    else:
        b.node("Einsum", [x.name], [(m,)], equation=eq)
    return True


MORE_OPS = {
    "smooth_unary": (smooth_unary, 2),
    "domain_unary": (domain_unary, 2),
    "rounding": (rounding, 1),
    "where": (where, 1),
    "variadic": (variadic, 1),
    "prelu": (prelu, 1),
    "reduce_more": (reduce_more, 1),
    "batch_norm": (batch_norm, 1),
    "conv_transpose": (conv_transpose, 1),
    "expand_tile": (expand_tile, 1),
    "unsqueeze": (unsqueeze, 1),
    "depth_space": (depth_space, 1),
    "cumsum_topk": (cumsum_topk, 1),
    "arg_reduce": (arg_reduce, 1),
    "rnn": (rnn, 1),
    "other_dtype_input": (other_dtype_input, 1),
    "einsum": (einsum, 1),
}


# -- constant subgraphs that folding must evaluate ------------------------------------------------


def const_chain(b: Builder) -> bool:
    """A constant through movement ops and casts, then combined with a live value."""
    x = b.pick(lambda v: v.rank >= 1)
    shape = b.broadcastable(x.shape)
    c = b.const(b.randn(*shape))
    for _ in range(b.integer(1, 3)):
        how = b.choice(["transpose2", "cast", "unsqueeze_squeeze", "concat_slice", "neg"])
        if how == "transpose2" and len(shape) >= 2:  # a transpose and its inverse
            perm = list(b.draw(st.permutations(range(len(shape)))))
            t = b.raw("Transpose", [c], perm=perm)[0]
            c = b.raw("Transpose", [t], perm=[perm.index(i) for i in range(len(shape))])[0]
        elif how == "cast":  # through float64 and back: exact
            c = b.raw("Cast", [b.raw("Cast", [c], to=TensorProto.DOUBLE)[0]], to=FLOAT)[0]
        elif how == "unsqueeze_squeeze":
            u = b.raw("Unsqueeze", [c, b.ints([0])])[0]
            c = b.raw("Squeeze", [u, b.ints([0])])[0]
        elif how == "concat_slice" and len(shape) >= 1 and shape[-1] > 0:
            cat = b.raw("Concat", [c, b.const(b.randn(*shape))], axis=-1)[0]
            n = shape[-1]
            c = b.raw("Slice", [cat, b.ints([0]), b.ints([n]), b.ints([-1])])[0]
        else:
            c = b.raw("Neg", [c])[0]
    op = b.choice(["Add", "Mul", "Sub"])
    ins = [x.name, c] if b.boolean() else [c, x.name]
    b.node(op, ins, [np.broadcast_shapes(x.shape, shape)])
    return True


def shape_driven(b: Builder) -> bool:
    """ConstantOfShape / Expand / Range driven by Shape of a static value (all foldable)."""
    x = b.pick(lambda v: v.rank >= 1)
    s = b.raw("Shape", [x.name])[0]
    how = b.choice(["constant_of_shape", "expand", "range"])
    if how == "constant_of_shape":
        val = b.choice([0.0, 1.0, 2.5])
        k = b.raw(
            "ConstantOfShape", [s], value=numpy_helper.from_array(np.array([val], np.float32))
        )[0]
        b.node(b.choice(["Add", "Mul"]), [x.name, k], [x.shape])
    elif how == "expand":
        c = b.const(b.randn(*([1] * x.rank)))
        e = b.raw("Expand", [c, s])[0]
        b.node("Sub", [x.name, e], [x.shape])
    else:  # Range(0, dim_last, 1) as float, broadcast along the last axis
        last = b.raw("Gather", [s, b.const(np.int64(x.rank - 1), "i")], axis=0)[0]
        r = b.raw("Range", [b.const(np.int64(0), "i"), last, b.const(np.int64(1), "i")])[0]
        rf = b.raw("Cast", [r], to=FLOAT)[0]
        b.node("Add", [x.name, rf], [x.shape])
    return True


def computed_weight(b: Builder) -> bool:
    """A Conv / MatMul whose weight is computed from constants (scale * W, Transpose(W))."""
    x = b.pick(lambda v: v.rank == 4 and _positive(v))
    if x is not None and b.boolean():
        c, m = x.shape[1], b.integer(1, 4)
        w = b.const(b.randn(m, c, 1, 1, scale=0.5), "w")
        s = b.const(1 + b.randn(m, 1, 1, 1, scale=0.2))
        wk = b.raw("Mul", [w, s])[0]
        b.node("Conv", [x.name, wk], [(x.shape[0], m, *x.shape[2:])])
        return True
    x = b.pick(lambda v: v.rank >= 1 and v.shape[-1] > 0)
    if x is None:
        return False
    k, n = x.shape[-1], b.integer(1, 5)
    wt = b.raw("Transpose", [b.const(b.randn(n, k, scale=0.5), "w")], perm=[1, 0])[0]
    b.node("MatMul", [x.name, wt], [(*x.shape[:-1], n)])
    return True


FOLDING_OPS = {
    "const_chain": (const_chain, 2),
    "shape_driven": (shape_driven, 2),
    "computed_weight": (computed_weight, 2),
}
