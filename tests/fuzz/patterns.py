"""Fusion-pattern steps of the fuzz strategies: the exact patterns the optimizer's rules and
the partitioner target (Conv+BatchNormalization, Conv+Add+Relu, Conv+per-channel affine,
Pad+Conv, decomposed LayerNorm, Gelu, HardSwish; transpose pairs and MatMul+Add are in
``ops.py``) and near-misses that must not fire (a wrong constant, a wrong axis, an extra
consumer, a non-constant operand). :data:`PATTERNS` lists them with their weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tests.fuzz.builder import Builder, Val, _positive
from tests.fuzz.ops import _conv, _matmul, _transpose


def _conv_bn(b: Builder) -> bool:
    c = _conv(b)
    if c is None:
        return False
    m = c.shape[1]
    near = b.choice(["ok", "ok", "extra_consumer", "non_const"])
    scale = b.const(1 + b.randn(m, scale=0.3))
    bias = b.const(b.randn(m))
    mean = b.const(b.randn(m, scale=0.3))
    var_ = b.const(b.rng.uniform(0.5, 2.0, m).astype(np.float32))
    if near == "non_const":  # the scale comes from the graph: must not be folded
        scale = b.node("Sigmoid", [scale], [(m,)])[0].name
    b.node("BatchNormalization", [c.name, scale, bias, mean, var_], [c.shape],
           epsilon=b.choice([1e-5, 1e-3]))  # fmt: skip
    if near == "extra_consumer":
        b.node("Relu", [c.name], [c.shape])
    return True


def _conv_add_relu(b: Builder) -> bool:
    c = _conv(b)
    if c is None:
        return False
    m = c.shape[1]
    rank = c.rank
    kind = b.choice(["bias", "bias_rank", "residual", "wrong_axis", "full"])
    if kind == "bias":
        other = Val(b.const(b.randn(m, *([1] * (rank - 2)))), (m,) + (1,) * (rank - 2))
    elif kind == "bias_rank":
        other = Val(b.const(b.randn(1, m, *([1] * (rank - 2)))), (1, m) + (1,) * (rank - 2))
    elif kind == "wrong_axis":  # per-last-axis: not a channel bias
        shape = (1,) * (rank - 1) + (c.shape[-1],)
        other = Val(b.const(b.randn(*shape)), shape)
    elif kind == "full":
        other = Val(b.const(b.randn(*c.shape)), c.shape)
    else:
        other = b.pick(lambda v: v.shape == c.shape and v is not c) or c
    s = b.node("Add", [c.name, other.name] if b.boolean() else [other.name, c.name],
               [np.broadcast_shapes(c.shape, other.shape)])[0]  # fmt: skip
    act = b.choice(["Relu", "Relu", "Clip", "Sigmoid", "none"])
    if act == "Clip":
        b.node("Clip", [s.name, b.const(np.float32(0)), b.const(np.float32(6))], [s.shape])
    elif act != "none":
        b.node(act, [s.name], [s.shape])
    return True


def _conv_affine(b: Builder) -> bool:
    """Conv then a per-channel Mul and/or Add (folded into the weights) or Pad then Conv."""
    if b.boolean():
        x = b.pick(lambda v: v.rank == 4 and _positive(v))
        if x is None:
            return False
        p = [0, 0, b.integer(0, 2), b.integer(0, 2), 0, 0, b.integer(0, 2), b.integer(0, 2)]
        if b.integer(0, 3) == 0:
            p[1] = 1  # a channel pad: cannot go into the Conv
        inputs = [x.name, b.ints(p)]
        val = b.choice([None, 0.0, 1.0])
        if val is not None:
            inputs.append(b.const(np.float32(val)))
        shape = tuple(d + p[i] + p[i + 4] for i, d in enumerate(x.shape))
        padded = b.node("Pad", inputs, [shape], mode="constant")[0]
        _conv(b, padded)
        return True
    c = _conv(b)
    if c is None:
        return False
    m = c.shape[1]
    ones = (1,) * (c.rank - 2)
    shape = b.choice([(m, *ones), (1, m, *ones), (1,), (1, *ones, c.shape[-1])])
    vals = b.const(b.randn(*shape))
    out = b.node(b.choice(["Mul", "Add", "Sub", "Div"]) if shape != (1,) else "Mul",
                 [c.name, vals], [np.broadcast_shapes(c.shape, shape)])[0]  # fmt: skip
    if b.boolean():
        b.node("Add", [out.name, b.const(b.randn(*shape))], [out.shape])
    return True


def _decomposed_ln(b: Builder) -> bool:
    x = b.pick(lambda v: v.rank >= 2 and _positive(v))
    if x is None:
        return False
    x = b.varied(x)
    near = b.choice(["ok", "ok", "ok", "wrong_axis", "wrong_const", "extra_consumer",
                     "keepdims"])  # fmt: skip
    k = b.integer(1, min(2, x.rank - 1))
    axes = list(range(x.rank - k, x.rank))
    var_axes = axes
    if near == "wrong_axis":
        var_axes = [x.rank - k - 1] if k == 1 else axes[:1]
    red = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    vred = tuple(1 if i in var_axes else d for i, d in enumerate(x.shape))

    def mean(v: str, ax: list[int], shape: tuple[int, ...], keep: int = 1) -> Val:
        spelled = [a - x.rank for a in ax] if b.boolean() else ax
        if b.opset >= 18:
            return b.node("ReduceMean", [v, b.ints(spelled)], [shape], keepdims=keep)[0]
        return b.node("ReduceMean", [v], [shape], axes=spelled, keepdims=keep)[0]

    mu = mean(x.name, axes, red)
    d = b.node("Sub", [x.name, mu.name], [x.shape])[0]
    if near == "wrong_const":
        sq = b.node("Pow", [d.name, b.const(np.float32(4.0))], [x.shape])[0]
    elif b.boolean():
        sq = b.node("Pow", [d.name, b.const(np.float32(2.0))], [x.shape])[0]
    else:
        sq = b.node("Mul", [d.name, d.name], [x.shape])[0]
    if near == "keepdims":
        v0 = mean(sq.name, var_axes, tuple(d for i, d in enumerate(x.shape) if i not in var_axes),
                  keep=0)  # fmt: skip
        var = b.node("Unsqueeze", [v0.name, b.ints(var_axes)], [vred])[0]
    else:
        var = mean(sq.name, var_axes, vred)
    eps = b.node("Add", [var.name, b.const(np.float32(b.choice([1e-5, 1e-6, 1e-3])))], [vred])[0]
    std = b.node("Sqrt", [eps.name], [vred])[0]
    y = b.node("Div", [d.name, std.name], [x.shape])[0]
    if near == "extra_consumer":
        b.node("Neg", [mu.name], [red])
    if b.boolean():
        norm = x.shape[-k:]
        y = b.node("Mul", [y.name, b.const(1 + b.randn(*norm, scale=0.2))], [x.shape])[0]
        if b.boolean():
            b.node("Add", [y.name, b.const(b.randn(*norm))], [x.shape])
    return True


def _gelu(b: Builder) -> bool:
    x = b.pick()
    near = b.choice(["ok", "ok", "wrong_const", "extra_consumer", "tanh"])
    if near == "tanh":
        cube = b.node("Pow", [x.name, b.const(np.float32(3.0))], [x.shape])[0]
        inner = b.node("Mul", [cube.name, b.const(np.float32(0.044715))], [x.shape])[0]
        s = b.node("Add", [x.name, inner.name], [x.shape])[0]
        t = b.node("Mul", [s.name, b.const(np.float32(math.sqrt(2 / math.pi)))], [x.shape])[0]
        e = b.node("Tanh", [t.name], [x.shape])[0]
    else:
        if b.boolean():
            q = b.node("Div", [x.name, b.const(np.float32(math.sqrt(2.0)))], [x.shape])[0]
        else:
            c = 0.6 if near == "wrong_const" else 1 / math.sqrt(2.0)
            q = b.node("Mul", [x.name, b.const(np.float32(c))], [x.shape])[0]
        e = b.node("Erf", [q.name], [x.shape])[0]
    one = b.node("Add", [e.name, b.const(np.float32(1.0))], [x.shape])[0]
    if b.boolean():
        h = b.node("Mul", [x.name, one.name], [x.shape])[0]
        b.node("Mul", [h.name, b.const(np.float32(0.5))], [x.shape])
    else:
        h = b.node("Mul", [x.name, b.const(np.float32(0.5))], [x.shape])[0]
        b.node("Mul", [h.name, one.name], [x.shape])
    if near == "extra_consumer":
        b.node("Sigmoid", [one.name], [x.shape])
    return True


def _hardswish(b: Builder) -> bool:
    x = b.pick()
    form = b.choice(["clip", "clip_mul", "hardsigmoid", "wrong_const", "relu6"])
    if form == "hardsigmoid":
        g = b.node("HardSigmoid", [x.name], [x.shape], alpha=1 / 6, beta=0.5)[0]
        b.node("Mul", [x.name, g.name] if b.boolean() else [g.name, x.name], [x.shape])
        return True
    s = b.node("Add", [x.name, b.const(np.float32(3.0))], [x.shape])[0]
    hi = 5.0 if form == "wrong_const" else 6.0
    c = b.node("Clip", [s.name, b.const(np.float32(0.0)), b.const(np.float32(hi))], [x.shape])[0]
    if form == "clip_mul":
        g = b.node("Mul", [c.name, b.const(np.float32(1 / 6))], [x.shape])[0]
        b.node("Mul", [x.name, g.name], [x.shape])
    elif form == "relu6":  # HardSigmoid only: Clip(x + 3, 0, 6) / 6
        b.node("Div", [c.name, b.const(np.float32(6.0))], [x.shape])
    else:
        m = b.node("Mul", [x.name, c.name], [x.shape])[0]
        b.node("Div", [m.name, b.const(np.float32(6.0))], [x.shape])
    return True


PATTERNS: dict[str, tuple[Callable[[Builder], bool], int]] = {
    "conv_bn": (_conv_bn, 2),
    "conv_add_relu": (_conv_add_relu, 2),
    "conv_affine": (_conv_affine, 2),
    "decomposed_ln": (_decomposed_ln, 2),
    "gelu": (_gelu, 1),
    "hardswish": (_hardswish, 1),
    "transpose": (_transpose, 1),
    "matmul": (_matmul, 1),
}
