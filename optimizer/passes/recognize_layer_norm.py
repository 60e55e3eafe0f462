"""Decomposed layer normalization (torch's legacy export) -> LayerNormalization."""

from __future__ import annotations

import math

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes.rewrite import OK, Match, OpPattern, RewritePass, Rule, const, op, var

MIN_OPSET = 17  # LayerNormalization-17
# LayerNormalization computes in float32 (stash_type has no float64 choice): a float64
# decomposition would lose precision, so only float16/float32 are fused.
_FLOAT_TYPES = (np.dtype(np.float16), np.dtype(np.float32))


def _centered(name: str) -> OpPattern:
    """``x - ReduceMean(x)``; the variance branch and the numerator share this one node."""
    mean = op("ReduceMean", var("x"), const("mean_axes", optional=True), name=f"mean_{name}")
    return op("Sub", var("x"), mean, name=f"sub_{name}", shared=True)


def _pattern(square: str) -> OpPattern:
    """``(x - m) / Sqrt(ReduceMean((x - m)^2) + eps)`` with the square as Pow or Mul."""
    d = _centered("v")
    sq = (
        op("Pow", d, const("two"), name="square")
        if square == "Pow"
        else op("Mul", d, d, name="square")
    )
    variance = op("ReduceMean", sq, const("var_axes", optional=True), name="variance")
    std = op("Sqrt", op("Add", variance, const("eps")))
    return op("Div", _centered("n"), std, name="root")


def _reduced_axes(model: Model, node: Node, key: str, m: Match, r: int) -> list[int] | Match:
    """Sorted non-negative axes of a keepdims ReduceMean (attribute < 18, input from 18)."""
    if ir.attr_int(node, "keepdims", 1) != 1:
        return Match.fail("ReduceMean drops the reduced axes (keepdims=0)", node)
    if model.opset < 18:
        axes = ir.attr_ints(node, "axes")
    else:
        array = ir.const_value(m.values.get(key))
        axes = None if array is None else [int(a) for a in array.reshape(-1)]
    if not axes:
        return Match.fail("ReduceMean has no constant axes (reduces everything)", node)
    if any(not -r <= a < r for a in axes):
        return Match.fail(f"ReduceMean axes {axes} out of range for rank {r}", node)
    return sorted(a % r for a in axes)


def _check(model: Model, graph: Graph, m: Match) -> Match:
    if model.opset < MIN_OPSET:
        return Match.fail(
            f"LayerNormalization needs opset >= {MIN_OPSET} (model has {model.opset}); "
            f"use --target-opset {MIN_OPSET}"
        )
    return check_decomposed(model, graph, m)


def check_decomposed(model: Model, graph: Graph, m: Match) -> Match:
    """The opset-independent checks of a matched decomposition (shared with the lowering's
    ``optimizer/lower/fuse_norm.py``)."""
    sub = m["sub_n"]
    if sub is not m["sub_v"]:
        return Match.fail("numerator and variance centre different values", sub)
    d = sub.outputs[0]
    users = ir.consumers(d)
    if ir.is_graph_output(graph, d) or len(users) != 2:
        return Match.fail("x - mean has consumers outside the normalization", sub)
    x = m["x"]
    dtype = ir.numpy_dtype_of(x)
    if dtype not in _FLOAT_TYPES:
        return Match.fail(f"not fused for {dtype} inputs (LayerNormalization computes in float32)")
    r = ir.rank(x)
    if r is None:
        return Match.fail("rank of x unknown")
    mean_axes = _reduced_axes(model, m["mean_n"], "mean_axes", m, r)
    if isinstance(mean_axes, Match):
        return mean_axes
    var_axes = _reduced_axes(model, m["variance"], "var_axes", m, r)
    if isinstance(var_axes, Match):
        return var_axes
    k = len(mean_axes)
    if mean_axes != list(range(r - k, r)) or var_axes != mean_axes:
        return Match.fail(f"reduces axes {mean_axes} / {var_axes}, not the last dims of rank {r}")
    if m["square"].op == "Pow":
        two = ir.const_value(m["two"])
        if two is None or two.size != 1 or float(two.reshape(())) != 2.0:
            return Match.fail("Pow exponent is not 2", m["square"])
    eps = _epsilon(m["eps"], r)
    if eps is None:
        return Match.fail("epsilon is not a non-negative scalar constant")
    if _normalized_shape(x, k) is None:
        return Match.fail(f"normalized shape (last {k} dims of x) not static")
    return OK


def _epsilon(value: Value, r: int) -> float | None:
    array = ir.const_value(value)
    if array is None or array.size != 1 or array.ndim > r:
        return None
    eps = float(array.reshape(()))
    return eps if eps >= 0 and math.isfinite(eps) else None


def _normalized_shape(x: Value, k: int) -> tuple[int, ...] | None:
    shape = x.shape
    if shape is None or len(shape) < k:
        return None
    tail = shape[len(shape) - k :]
    if any(not isinstance(d, (int, np.integer)) or d <= 0 for d in tail):
        return None
    return tuple(int(d) for d in tail)


def _as_affine(array: np.ndarray, r: int, norm: tuple[int, ...]) -> np.ndarray | None:
    """``array`` as a Scale/B of shape ``norm``, if it broadcasts only over the normalized dims."""
    if array.ndim > r:
        return None
    full = array.reshape((1,) * (r - array.ndim) + array.shape)
    lead, tail = full.shape[: r - len(norm)], full.shape[r - len(norm) :]
    if any(d != 1 for d in lead) or any(t not in (1, n) for t, n in zip(tail, norm, strict=True)):
        return None
    return np.ascontiguousarray(np.broadcast_to(full.reshape(tail), norm))


def _affine_step(graph: Graph, value: Value, op_type: str, dtype, r, norm):
    """The ``value * c`` / ``value + c`` that follows, with ``c`` as a Scale/B array."""
    user = ir.single_consumer(graph, value)
    if user is None or user.op != op_type or len(user.inputs) != 2:
        return None
    other = user.inputs[1] if user.inputs[0] is value else user.inputs[0]
    array = ir.const_value(other)
    if array is None or other is value or array.dtype != dtype:
        return None
    affine = _as_affine(array, r, norm)
    return None if affine is None else (user, affine)


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    x = m["x"]
    dtype = ir.numpy_dtype_of(x)
    r = ir.rank(x)
    k = len(_reduced_axes(model, m["mean_n"], "mean_axes", m, r))  # type: ignore[arg-type]
    norm = _normalized_shape(x, k)
    assert norm is not None and r is not None and dtype is not None  # guaranteed by _check
    last = m["root"].outputs[0]
    # The affine tail torch emits after the normalization, absorbed when it is per-channel.
    scale = bias = None
    step = _affine_step(graph, last, "Mul", dtype, r, norm)
    if step is not None:
        m.nodes["scale"], scale = step
        last = step[0].outputs[0]
    step = _affine_step(graph, last, "Add", dtype, r, norm)
    if step is not None:
        m.nodes["bias"], bias = step
        last = step[0].outputs[0]
    if scale is None:
        scale = np.ones(norm, dtype)
    inputs = [x, ir.make_constant(graph, scale, "ln_scale")]
    if bias is not None:
        inputs.append(ir.make_constant(graph, bias, "ln_bias"))
    out = ir.make_value(graph, f"{last.name}_ln", dtype=last.dtype, shape=last.shape)
    attrs = {"axis": -k, "epsilon": _epsilon(m["eps"], r)}
    ir.add_node(graph, "LayerNormalization", inputs, [out], attrs=attrs, name="LayerNormalization")
    ir.replace_all_uses(graph, last, out)


RULES = [
    Rule("LayerNormalization", _pattern("Pow"), _check, _rewrite),
    Rule("LayerNormalization", _pattern("Mul"), _check, _rewrite),
]


class RecognizeLayerNorm(RewritePass):
    """Fuses the decomposed layer norm into ``LayerNormalization`` (opset >= 17).

    Matches torch's legacy export::

        m = ReduceMean(x, axes); d = x - m
        v = ReduceMean(Pow(d, 2) or d * d, axes)
        y = d / Sqrt(v + eps) [* gamma] [+ beta]

    where ``axes`` are the last K dims (attribute before opset 18, constant input from 18)
    and ``d`` feeds exactly the square and the division. A following ``* gamma`` / ``+ beta``
    with constants that vary only along the normalized dims becomes Scale / B (broadcast to
    the normalized shape); without them Scale is ones and B (optional) is omitted. The
    dynamo exporter emits LayerNormalization directly, so it needs nothing here.

    Refuses: opset < 17 (the reason names ``--target-opset 17``), axes that are not the
    trailing dims or differ between the two means, keepdims=0, an exponent other than 2,
    a non-constant or non-scalar epsilon, a non-static normalized shape, inputs other than
    float16/float32 (float64 would lose precision in the float32 computation),
    and intermediates with extra consumers (graph outputs included). Numerics differ from
    the decomposition by float rounding (LayerNormalization computes in float32).
    """

    name = "recognize_layer_norm"
    summary = "fuse decomposed layer normalization into LayerNormalization"
    rules = RULES
