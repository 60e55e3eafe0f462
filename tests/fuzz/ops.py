"""Single-op steps of the fuzz strategies (one ONNX op, or a short chain where an op needs a
prepared input), each ``step(builder) -> bool`` (False: nothing fitting to build on), and
constant subgraphs (initializer arithmetic, Shape->Gather->Concat->Reshape) that folding must
evaluate. :data:`RANDOM_OPS` lists them with their weights; more ops are in ``more_ops.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tests.fuzz.builder import FLOAT, INT64, Builder, Val, _broadcasts, _positive

UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Erf", "Softplus", "Identity",
         "LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Clip", "Cast")  # fmt: skip
BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")
REDUCE = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare")


def _unary(b: Builder) -> bool:
    x = b.pick()
    op = b.choice(UNARY)
    if op == "HardSwish" and b.opset < 14:
        op = "HardSigmoid"
    attrs: dict = {}
    inputs = [x.name]
    if op == "LeakyRelu":
        attrs["alpha"] = b.choice([0.01, 0.1, 0.2])
    elif op == "Elu":
        attrs["alpha"] = b.choice([1.0, 0.5])
    elif op == "HardSigmoid":
        attrs["alpha"], attrs["beta"] = b.choice([(0.2, 0.5), (1 / 6, 0.5), (0.5, 0.1)])
    elif op == "Clip":
        lo, hi = b.choice([(0.0, 6.0), (-1.0, 1.0), (None, 0.5), (-0.5, None), (None, None)])
        inputs += [b.const(np.float32(lo)) if lo is not None else "",
                   b.const(np.float32(hi)) if hi is not None else ""]  # fmt: skip
        while inputs and inputs[-1] == "":
            inputs.pop()
    elif op == "Exp" and x.name not in b.feeds:  # bounded: exp chains must not overflow
        x = b.node("Tanh", [x.name], [x.shape])[0]  # differently (an input may overflow)
        inputs = [x.name]
    elif op == "Cast":
        to = b.choice([FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16])
        if to != FLOAT:  # a round trip through another float type (never a no-op pair)
            mid = b.raw("Cast", [x.name], to=to)[0]
            b.node("Cast", [mid], [x.shape], to=FLOAT)
            return True
        attrs["to"] = FLOAT
    y = b.node(op, inputs, [x.shape], **attrs)[0]
    if op == "Exp" and b.scale > 1:
        b.unbounded.add(y.name)
    return True


def _binary(b: Builder) -> bool:
    a = b.pick()
    op = b.choice(BINARY)
    if op == "Div":  # a constant divisor away from zero: no blow-ups from cancellation
        shape = b.broadcastable(a.shape)
        mag = b.rng.uniform(0.5, 2.0, shape) * b.rng.choice([-1.0, 1.0], shape)
        other = Val(b.const(mag.astype(np.float32)), shape)
    elif b.boolean():
        other = b.pick(lambda v: _broadcasts(a.shape, v.shape))
    else:
        shape = b.broadcastable(a.shape)
        other = Val(b.const(b.randn(*shape)), shape)
    if op != "Div" and b.boolean():  # the divisor stays the constant: dividing by a computed
        a, other = other, a  # zero gives +-inf by the sign of that zero, which rewrites may flip
    if a.name in b.inits and other.name in b.inits:
        return False
    b.node(op, [a.name, other.name], [np.broadcast_shapes(a.shape, other.shape)])
    return True


def _conv_out(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _conv(b: Builder, x: Val | None = None, **force) -> Val | None:
    """A Conv (1-D or 2-D, groups/depthwise, strides, pads, dilations) on a positive tensor."""
    x = x or b.pick(lambda v: v.rank in (3, 4) and _positive(v))
    if x is None:
        return None
    c = x.shape[1]
    spatial = x.shape[2:]
    kind = force.get("kind") or b.choice(["dense", "grouped", "depthwise"])
    groups = 1
    if kind == "depthwise":
        groups = c
    elif kind == "grouped":
        groups = b.choice([g for g in range(1, c + 1) if c % g == 0])
    m = groups * (b.choice([1, 2, 3, 8, 16, 17]) if b.big and groups == 1 else b.integer(1, 3))
    ks, ss, ds, p0s, p1s = [], [], [], [], []
    for size in spatial:
        k = b.integer(1, 3)
        d = b.integer(1, 2) if k > 1 else 1
        p0, p1 = b.integer(0, 2), b.integer(0, 2)
        if size + p0 + p1 < d * (k - 1) + 1:
            k, d = 1, 1
        ks.append(k)
        ds.append(d)
        ss.append(force.get("stride") or b.integer(1, 2))
        p0s.append(p0)
        p1s.append(p1)
    if force.get("no_pads"):
        p0s = [0] * len(spatial)
        p1s = [0] * len(spatial)
    w = b.const(b.randn(m, c // groups, *ks, scale=1 / math.sqrt(c // groups * np.prod(ks))), "w")
    inputs = [x.name, w]
    if force.get("bias", b.boolean()):
        inputs.append(b.const(b.randn(m)))
    out = (x.shape[0], m, *tuple(_conv_out(*a) for a in zip(spatial, ks, ss, ds, p0s, p1s)))
    attrs = dict(kernel_shape=ks, strides=ss, dilations=ds, pads=p0s + p1s)
    if groups > 1:
        attrs["group"] = groups
    return b.node("Conv", inputs, [out], **attrs)[0]


def _matmul(b: Builder) -> bool:
    a = b.pick(lambda v: v.rank >= 1)
    k = a.shape[-1]
    n = b.choice([8, 16, 33]) if b.big and b.boolean() else b.integer(1, 6)
    if a.rank >= 2 and b.integer(0, 3) == 0:  # batched B broadcasting against A
        other = b.pick(lambda v: v.rank >= 2 and v.shape[-2] == k and v is not a
                       and _broadcasts(a.shape[:-2], v.shape[:-2]))  # fmt: skip
        if other is not None:
            batch = np.broadcast_shapes(a.shape[:-2], other.shape[:-2])
            b.node("MatMul", [a.name, other.name], [(*batch, a.shape[-2], other.shape[-1])])
            return True
    w = b.const(b.randn(k, n, scale=1 / math.sqrt(max(k, 1))), "w")
    out = b.node("MatMul", [a.name, w], [(*a.shape[:-1], n)])[0]
    if b.boolean():  # MatMul + Add -> Gemm (a bias of [n] on 2-D), near-miss otherwise
        bshape = b.choice([(n,), (1, n), (1,) * (out.rank - 1) + (n,), out.shape[-1:], (1,)])
        bias = b.const(b.randn(*bshape))
        if b.boolean():
            b.node("Add", [out.name, bias], [np.broadcast_shapes(out.shape, bshape)])
        else:
            b.node("Add", [bias, out.name], [np.broadcast_shapes(out.shape, bshape)])
    return True


def _gemm(b: Builder) -> bool:
    a = b.pick(lambda v: v.rank == 2)
    if a is None:
        return False
    trans_a, trans_b = b.boolean(), b.boolean()
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.choice([8, 16, 33]) if b.big and b.boolean() else b.integer(1, 6)
    w = b.const(b.randn(*((n, k) if trans_b else (k, n)), scale=1 / math.sqrt(max(k, 1))), "w")
    inputs = [a.name, w]
    cshape = b.choice([None, (n,), (1, n), (m, 1), (m, n), ()])
    if cshape is not None:
        inputs.append(b.const(b.randn(*cshape)))
    attrs = {"transA": int(trans_a), "transB": int(trans_b)}
    if b.boolean():
        attrs["alpha"] = b.choice([0.5, 2.0])
        attrs["beta"] = b.choice([0.0, 0.5, 1.0])
    b.node("Gemm", inputs, [(m, n)], **attrs)
    return True


def _pool(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank == 4 and _positive(v))
    if x is None:
        return False
    op = b.choice(["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"])
    if op.startswith("Global"):
        b.node(op, [x.name], [(*x.shape[:2], 1, 1)])
        return True
    ceil = b.integer(0, 3) == 0
    ks, ss, p0s, p1s, ds, out = [], [], [], [], [], []
    for size in x.shape[2:]:
        k = b.integer(1, min(3, size + 2))
        s = b.integer(1, 2)
        d = b.integer(1, 2) if op == "MaxPool" and k > 1 else 1
        p0 = b.integer(0, k - 1) if k > 1 else 0
        p1 = b.integer(0, k - 1) if k > 1 else 0
        span = d * (k - 1) + 1
        if size + p0 + p1 < span:
            k, d, p0, p1, span = 1, 1, 0, 0, 1
        n = size + p0 + p1 - span
        o = (-(-n // s) if ceil else n // s) + 1
        if ceil and (o - 1) * s >= size + p0:
            # the last window would start in the padding: onnxruntime drops it, ONNX's shape
            # inference does not (they disagree, so the model would not check): no ceil here
            return False
        ks.append(k)
        ss.append(s)
        ds.append(d)
        p0s.append(p0)
        p1s.append(p1)
        out.append(o)
    attrs = dict(kernel_shape=ks, strides=ss, pads=p0s + p1s, ceil_mode=int(ceil))
    if op == "MaxPool" and any(d > 1 for d in ds):
        attrs["dilations"] = ds
    if op == "AveragePool":
        attrs["count_include_pad"] = b.integer(0, 1)
    b.node(op, [x.name], [x.shape[:2] + tuple(out)], **attrs)
    return True


def _softmax(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    op = b.choice(["Softmax", "LogSoftmax"])
    b.node(op, [x.name], [x.shape], axis=b.integer(-x.rank, x.rank - 1))
    return True


def _layer_norm(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and _positive(v))
    if b.opset < 17 or x is None:
        return False
    x = b.varied(x)
    axis = b.integer(-x.rank, x.rank - 1)
    norm = x.shape[axis:]
    inputs = [x.name, b.const(1 + b.randn(*norm, scale=0.2))]
    if b.boolean():
        inputs.append(b.const(b.randn(*norm)))
    b.node("LayerNormalization", inputs, [x.shape], axis=axis,
           epsilon=b.choice([1e-5, 1e-3]))  # fmt: skip
    return True


def _reduce(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    op = b.choice(REDUCE)
    axes = sorted(set(b.draw(st.lists(st.integers(0, x.rank - 1), min_size=1, max_size=x.rank))))
    if op in ("ReduceMax", "ReduceMin", "ReduceMean") and any(x.shape[a] == 0 for a in axes):
        op = "ReduceSum"  # max/min/mean of an empty set have no (finite) value
    keep = b.boolean()
    if b.boolean():
        axes_attr = [a - x.rank for a in axes]  # negative spelling
    else:
        axes_attr = axes
    out = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    inputs = [x.name]
    attrs = {"keepdims": int(keep)}
    if op == "ReduceSum" or b.opset >= 18:
        inputs.append(b.ints(axes_attr))
    else:
        attrs["axes"] = axes_attr
    b.node(op, inputs, [out], **attrs)
    return True


def _reshape(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    shape = list(x.shape)
    how = b.choice(["merge", "split", "unsqueeze", "flatten", "squeeze", "zero_copy"])
    if how == "merge" and len(shape) >= 2:
        i = b.integer(0, len(shape) - 2)
        shape[i : i + 2] = [shape[i] * shape[i + 1]]
    elif how == "split":
        i = b.integer(0, len(shape) - 1)
        f = [d for d in range(2, shape[i]) if shape[i] % d == 0]
        if f:
            d = b.choice(f)
            shape[i : i + 1] = [d, shape[i] // d]
    elif how == "unsqueeze" and len(shape) < 5:
        shape.insert(b.integer(0, len(shape)), 1)
    elif how == "flatten":
        axis = b.integer(0, x.rank)
        out = (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))
        b.node("Flatten", [x.name], [out], axis=axis)
        return True
    elif how == "squeeze" and 1 in shape:
        axes = [i for i, d in enumerate(shape) if d == 1]
        b.node("Squeeze", [x.name, b.ints(axes)], [tuple(d for d in shape if d != 1)])
        return True
    target = list(shape)
    attrs = {}
    if 0 in target:  # a literal 0 dim (zero-size tensor): needs allowzero, else 0 means "copy"
        if b.opset < 14:
            return False
        attrs["allowzero"] = 1
    elif x.size > 0 and b.boolean():
        target[b.integer(0, len(target) - 1)] = -1
    if how == "zero_copy" and not attrs:  # 0 copies the input dim at the same position
        for i in range(min(len(target), x.rank)):
            if target[i] == x.shape[i] and b.boolean():
                target[i] = 0
    b.node("Reshape", [x.name, b.ints(target)], [tuple(shape)], **attrs)
    return True


def _transpose(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 2)
    if x is None:
        return False
    perm = b.draw(st.permutations(range(x.rank)))
    out = b.node("Transpose", [x.name], [tuple(x.shape[p] for p in perm)], perm=perm)[0]
    what = b.choice(["alone", "inverse", "merge", "sink"])
    if what == "inverse":  # cancels
        inv = [perm.index(i) for i in range(x.rank)]
        b.node("Transpose", [out.name], [x.shape], perm=inv)
    elif what == "merge":
        p2 = b.draw(st.permutations(range(x.rank)))
        b.node("Transpose", [out.name], [tuple(out.shape[p] for p in p2)], perm=p2)
    elif what == "sink":  # through an elementwise op, then back
        mid = b.node(b.choice(["Relu", "Sigmoid", "Neg"]), [out.name], [out.shape])[0]
        if b.boolean():
            cshape = b.broadcastable(out.shape, grow=False)  # the rank must stay the same
            mid = b.node("Add", [mid.name, b.const(b.randn(*cshape))],
                         [np.broadcast_shapes(out.shape, cshape)])[0]  # fmt: skip
        inv = [perm.index(i) for i in range(x.rank)]
        b.node("Transpose", [mid.name], [tuple(mid.shape[p] for p in inv)], perm=inv)
    return True


def _concat(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    axis = b.integer(-x.rank, x.rank - 1)
    ax = axis % x.rank
    parts = [x]
    for _ in range(b.integer(1, 2)):
        if b.boolean():
            other = b.pick(lambda v: v.rank == x.rank and all(
                d == e for i, (d, e) in enumerate(zip(v.shape, x.shape)) if i != ax))  # fmt: skip
            parts.append(other)
        else:
            shape = list(x.shape)
            shape[ax] = b.integer(1, 3)
            parts.append(Val(b.const(b.randn(*shape)), tuple(shape)))
    out = list(x.shape)
    out[ax] = sum(p.shape[ax] for p in parts)
    b.node("Concat", [p.name for p in parts], [tuple(out)], axis=axis)
    return True


def _split(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and max(v.shape) >= 2)
    if x is None:
        return False
    ax = b.choice([i for i, d in enumerate(x.shape) if d >= 2])
    dim = x.shape[ax]
    axis = ax - x.rank if b.boolean() else ax
    n = b.integer(2, min(3, dim))
    if b.boolean():  # explicit sizes
        cuts = sorted(b.draw(st.lists(st.integers(1, dim - 1), min_size=n - 1, max_size=n - 1,
                                      unique=True)))  # fmt: skip
        sizes = [e - s for s, e in zip([0, *cuts], [*cuts, dim])]
        inputs = [x.name, b.ints(sizes)]
        attrs = {"axis": axis}
    else:
        if b.opset < 18:
            if dim % n:
                return False
            sizes = [dim // n] * n
            attrs = {"axis": axis}
        else:
            chunk = -(-dim // n)
            sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
            n = len(sizes)
            attrs = {"axis": axis, "num_outputs": n}
        inputs = [x.name]
    shapes = []
    for s in sizes:
        shape = list(x.shape)
        shape[ax] = s
        shapes.append(tuple(shape))
    b.node("Split", inputs, shapes, **attrs)
    return True


def _slice_len(dim: int, start: int, end: int, step: int) -> int:
    """Slice's output length in ONNX semantics (clamping differs from Python's for step < 0:
    a start before the first element clamps to 0 there, not to "empty")."""
    if dim == 0:
        return 0
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return max(0, -(-(start - end) // -step))


def _slice(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    axes = b.draw(st.lists(st.integers(0, x.rank - 1), min_size=1, max_size=x.rank, unique=True))
    starts, ends, steps, out = [], [], [], list(x.shape)
    big = np.iinfo(np.int64).max
    for a in axes:
        dim = x.shape[a]
        step = b.choice([1, 1, 2, -1, -2])
        start = b.integer(-dim - 1, dim + 1)
        # "to the end" spelled as +-INT64_MAX; with step < 0 only -INT64_MAX: onnxruntime reads
        # INT64_MAX there as "to the beginning" where the ONNX spec clamps it to dim - 1
        end = b.choice([b.integer(-dim - 1, dim + 1), big if step > 0 else -big, -big])
        starts.append(start)
        ends.append(end)
        steps.append(step)
        out[a] = _slice_len(dim, start, end, step)
    inputs = [x.name, b.ints(starts), b.ints(ends)]
    if steps != [1] * len(axes) or b.boolean():
        inputs += [b.ints([a - x.rank if b.boolean() else a for a in axes]), b.ints(steps)]
    elif axes != list(range(len(axes))) or b.boolean():
        inputs.append(b.ints(axes))
    else:
        out = list(x.shape)  # default axes are 0..len-1: recompute for them
        for i, (s, e) in enumerate(zip(starts, ends)):
            out[i] = _slice_len(x.shape[i], s, e, 1)
    b.node("Slice", inputs, [tuple(out)])
    return True


def _gather(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1 and _positive(v))
    if x is None:
        return False
    ax = b.integer(0, x.rank - 1)
    dim = x.shape[ax]
    ishape = b.choice([(), (1,), (2,), (3,), (2, 2)])
    idx = b.rng.integers(-dim, dim, ishape).astype(np.int64)
    out = x.shape[:ax] + ishape + x.shape[ax + 1 :]
    b.node("Gather", [x.name, b.const(idx, "i")], [out], axis=ax - x.rank if b.boolean() else ax)
    return True


def _pad(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 1)
    mode = b.choice(["constant", "reflect", "edge"])
    pads_b, pads_e = [], []
    for d in x.shape:
        lim = {"constant": 2, "reflect": min(2, d - 1), "edge": 2 if d > 0 else 0}[mode]
        lim = max(lim, 0)
        pads_b.append(b.integer(0, lim))
        pads_e.append(b.integer(0, lim))
    if mode != "constant" and x.size == 0:
        mode = "constant"
    inputs = [x.name, b.ints(pads_b + pads_e)]
    if mode == "constant" and b.boolean():
        inputs.append(b.const(np.float32(b.choice([0.0, 1.5, -2.0]))))
    out = tuple(d + p + q for d, p, q in zip(x.shape, pads_b, pads_e))
    b.node("Pad", inputs, [out], mode=mode)
    return True


def _resize(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank == 4 and _positive(v))
    if x is None:
        return False
    mode = b.choice(["nearest", "linear"])
    sh, sw = b.choice([1.0, 2.0, 0.5, 1.5, 3.0]), b.choice([1.0, 2.0, 0.5, 1.5])
    out = (x.shape[0], x.shape[1], math.floor(x.shape[2] * sh),
           math.floor(x.shape[3] * sw))  # fmt: skip
    if min(out) == 0:
        return False
    ctm = b.choice(["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if mode == "nearest":
        # round_prefer_* only with integer scales: at other ratios some ties round differently
        # from onnxruntime in the native kernel (a known open issue, see
        # tests/lower/test_resize_nearest_ties.py), which would stop every long run
        modes = ["floor", "ceil"]
        if sh == int(sh) and sw == int(sw):
            modes += ["round_prefer_floor", "round_prefer_ceil"]
        attrs["nearest_mode"] = b.choice(modes)
    if b.boolean():
        inputs = [x.name, "", b.const(np.array([1, 1, sh, sw], np.float32))]
    else:
        inputs = [x.name, "", "", b.ints(list(out))]
    b.node("Resize", inputs, [out], **attrs)
    return True


def _int_path(b: Builder) -> bool:
    """An int64 graph input through integer arithmetic and a Cast to float."""
    shape = b.choice([(3,), (2, 3), (1, 4)])
    name = b.fresh("n")
    b.inputs.append((name, INT64, shape))
    b.feeds[name] = b.rng.integers(-5, 6, shape).astype(np.int64)
    t = b.raw(b.choice(["Add", "Mul", "Sub"]), [name, b.ints(b.rng.integers(-3, 4, shape[-1:]))])[0]
    b.node("Cast", [t], [shape], to=FLOAT)
    return True


def _shape_math(b: Builder) -> bool:
    """Shape -> Gather -> Concat -> Reshape: static shapes make it all foldable."""
    x = b.pick(lambda v: v.rank >= 2 and _positive(v))
    if x is None:
        return False
    shape = b.raw("Shape", [x.name])[0]
    first = b.raw("Gather", [shape, b.ints([0])], axis=0)[0]
    target = b.raw("Concat", [first, b.ints([-1])], axis=0)[0]
    b.node("Reshape", [x.name, target], [(x.shape[0], x.size // x.shape[0])])
    return True


def _constant_subgraph(b: Builder) -> bool:
    """Constant-only arithmetic (initializers and Constant nodes) used by a live op."""
    x = b.pick()
    shape = b.broadcastable(x.shape)
    c1 = b.const(b.randn(*shape))
    c2 = b.fresh("k")
    b.nodes.append(helper.make_node("Constant", [], [c2], name=b.fresh("constant"),
                                    value=numpy_helper.from_array(b.randn(*shape))))  # fmt: skip
    s = b.raw(b.choice(["Add", "Mul", "Sub"]), [c1, c2])[0]
    if b.boolean():
        s = b.raw("Relu", [s])[0]
    b.node(b.choice(["Add", "Mul"]), [x.name, s], [np.broadcast_shapes(x.shape, shape)])
    return True


RANDOM_OPS: dict[str, tuple[Callable[[Builder], bool], int]] = {
    "unary": (_unary, 4),
    "binary": (_binary, 4),
    "conv": (lambda b: _conv(b) is not None, 3),
    "matmul": (_matmul, 2),
    "gemm": (_gemm, 1),
    "pool": (_pool, 2),
    "softmax": (_softmax, 1),
    "layer_norm": (_layer_norm, 1),
    "reduce": (_reduce, 2),
    "reshape": (_reshape, 2),
    "transpose": (_transpose, 2),
    "concat": (_concat, 2),
    "split": (_split, 1),
    "slice": (_slice, 2),
    "gather": (_gather, 1),
    "pad": (_pad, 1),
    "resize": (_resize, 1),
    "int_path": (_int_path, 1),
    "shape_math": (_shape_math, 1),
    "constant_subgraph": (_constant_subgraph, 1),
}
