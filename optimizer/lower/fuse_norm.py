"""Decomposed layer normalization as one fusion group (any opset; the lowering's counterpart of
``optimizer/passes/recognize_layer_norm.py``, which needs LayerNormalization-17 in the graph).

Matches torch's legacy export, with the same checks as the graph rule::

    m = ReduceMean(x, axes); d = x - m
    v = ReduceMean(Pow(d, 2) or d * d, axes)
    y = d / Sqrt(v + eps)   or   d * Reciprocal(Sqrt(v + eps))
    [y = y * gamma] [y = y + beta]

``axes`` are the last K dims of ``x`` (keepdims), ``eps`` a finite non-negative scalar
constant, ``gamma`` / ``beta`` constants varying only along the normalized dims, every
intermediate read only inside the pattern (no graph output), float32 throughout. The group is
bound to ``layer_norm_f32`` (``bind_reduce.bind_layer_norm_group``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model, Node, Value
from optimizer.passes import recognize_layer_norm as rln
from optimizer.passes.rewrite import Match, OpPattern, const, match, op, var


@dataclass
class LayerNormMatch:
    """Roles of a decomposed layer norm.

    Attributes:
        nodes: Members in topological order (the affine Mul / Add last when present).
        x: The normalized tensor.
        axis: First normalized axis (non-negative; the normalized dims are ``axis..rank-1``).
        epsilon: The constant added to the variance.
        scale: The affine ``gamma`` broadcast to the normalized shape (None: none).
        bias: The affine ``beta`` broadcast to the normalized shape (None: none).
        scale_value: The constant ``gamma`` came from.
        bias_value: The constant ``beta`` came from.
    """

    nodes: list[Node]
    x: Value
    axis: int
    epsilon: float
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale_value: Value | None = None
    bias_value: Value | None = None

    @property
    def output(self) -> Value:
        return self.nodes[-1].outputs[0]


def _centered(name: str) -> OpPattern:
    mean = op("ReduceMean", var("x"), const("mean_axes", optional=True), name=f"mean_{name}")
    return op("Sub", var("x"), mean, name=f"sub_{name}", shared=True)


def _pattern(square: str, divide: str) -> OpPattern:
    d = _centered("v")
    sq = (
        op("Pow", d, const("two"), name="square")
        if square == "Pow"
        else op("Mul", d, d, name="square")
    )
    variance = op("ReduceMean", sq, const("var_axes", optional=True), name="variance")
    std = op("Sqrt", op("Add", variance, const("eps"), name="add_eps"), name="sqrt")
    if divide == "Div":
        return op("Div", _centered("n"), std, name="root")
    return op("Mul", _centered("n"), op("Reciprocal", std, name="recip"), name="root")


PATTERNS = [_pattern(sq, div) for sq in ("Pow", "Mul") for div in ("Div", "Reciprocal")]
_ORDER = ["mean_n", "sub_n", "square", "variance", "add_eps", "sqrt", "recip", "root"]


def match_layer_norm(model: Model, graph: Graph, root: Node) -> LayerNormMatch | Match:
    """The decomposed layer norm ending at ``root`` (its Div / Mul), or a failed Match."""
    if root.op not in ("Div", "Mul"):
        return Match.fail(f"{root.op} cannot end a layer norm", root)
    m: Match = Match.fail("no pattern", root)
    for pattern in PATTERNS:
        m = match(graph, pattern, root)
        if m:
            break
    if not m:
        return m
    checked = rln.check_decomposed(model, graph, m)
    if not checked:
        return checked
    x = m["x"]
    if ir.numpy_dtype_of(x) != np.dtype(np.float32):
        return Match.fail("only float32 is lowered to layer_norm_f32")
    shape = ir.static_shape(x)
    out_shape = ir.static_shape(root.outputs[0])
    if shape is None or out_shape != shape:
        return Match.fail("x and the result must have one static shape", root)
    r = len(shape)
    axes = rln._reduced_axes(model, m["mean_n"], "mean_axes", m, r)
    assert not isinstance(axes, Match)  # checked above
    k = len(axes)
    norm = tuple(shape[r - k :])
    eps = rln._epsilon(m["eps"], r)
    assert eps is not None
    nodes = [m.nodes[key] for key in _ORDER if key in m.nodes]
    result = LayerNormMatch(nodes=nodes, x=x, axis=r - k, epsilon=eps)
    last = root.outputs[0]
    dtype = np.dtype(np.float32)
    for op_type in ("Mul", "Add"):
        step = rln._affine_step(graph, last, op_type, dtype, r, norm)
        if step is None:
            continue
        user, affine = step
        if ir.static_shape(user.outputs[0]) != shape:
            break
        other = user.inputs[1] if user.inputs[0] is last else user.inputs[0]
        if op_type == "Mul":
            result.scale, result.scale_value = affine, other
        else:
            result.bias, result.bias_value = affine, other
        nodes.append(user)
        last = user.outputs[0]
    return result
