"""Fold a per-channel constant Mul/Div/Add/Sub into the Conv/ConvTranspose/Gemm before it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model
from optimizer.passes import weights
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, const, op, var

log = logging.getLogger(__name__)

# How each op's per-channel constant c becomes (scale, shift) of y -> y * scale + shift.
_AFFINE: dict[str, Callable[[np.ndarray], tuple[np.ndarray | None, np.ndarray | None]]] = {
    "Mul": lambda c: (c, None),
    "Div": lambda c: (1.0 / c, None),
    "Add": lambda c: (None, c),
    "Sub": lambda c: (None, -c),
}


def _pattern(producer: str, affine: str):
    # Div and Sub are matched with the conv output as their first input only: c / y and
    # c - y are not affine in the weights of y (op() tries both orders for Mul and Add).
    return op(
        affine,
        op(producer, var("x"), const("w"), const("b", optional=True), name="conv"),
        const("c"),
        name="affine",
    )


def _channel_constant(m: Match) -> tuple[np.ndarray | None, str]:
    conv = m["conv"]
    w = ir.const_value(m["w"])
    channels = weights.output_channels(conv, w)
    if channels is None:
        return None, f"{conv.op} weight shape {w.shape} has no known channel layout"
    return weights.channel_vector(ir.const_value(m["c"]), weights.output_rank(conv, w), 1, channels)


def _check(model: Model, graph: Graph, m: Match) -> Match:
    conv, affine = m["conv"], m["affine"]
    w, c = ir.const_value(m["w"]), ir.const_value(m["c"])
    if not weights.is_float(w.dtype) or not weights.is_float(c.dtype):
        return Match.fail(f"{affine.op} on dtype {c.dtype} (only float weights are folded)", affine)
    if w.dtype != c.dtype:
        return Match.fail(f"{affine.op} constant dtype {c.dtype} != weight dtype {w.dtype}", affine)
    rank = ir.rank(conv.outputs[0])
    if rank is not None and rank != weights.output_rank(conv, w):
        return Match.fail(f"{conv.op} output rank {rank} does not match its weight", conv)
    vector, reason = _channel_constant(m)
    if vector is None:
        return Match.fail(f"{affine.op} constant '{m['c'].name}': {reason}", affine)
    if not np.all(np.isfinite(vector)):
        return Match.fail(f"{affine.op} constant '{m['c'].name}' is not finite", affine)
    if affine.op == "Div" and np.any(vector == 0):
        return Match.fail(f"Div constant '{m['c'].name}' contains 0", affine)
    return OK


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    vector, _ = _channel_constant(m)
    assert vector is not None
    scale, shift = _AFFINE[m["affine"].op](vector)
    weights.fold_channel_affine(graph, m["conv"], scale, shift, m["affine"].outputs[0])


RULES = [
    Rule(f"{affine} folded into {producer}", _pattern(producer, affine), _check, _rewrite, 7)
    for producer in weights.WEIGHTED_OPS
    for affine in _AFFINE
]


class FoldAffineIntoConv(RewritePass):
    """Folds a constant per-output-channel Mul/Div/Add/Sub into a Conv, ConvTranspose or Gemm.

    ``conv(x) * c`` and ``conv(x) / c`` scale the weight and bias per output channel;
    ``conv(x) + c`` and ``conv(x) - c`` fold into the bias (created if absent). The constant
    must broadcast against the output without changing its shape and vary only along the
    channel axis: a scalar, ``[C,1,1]``, ``[1,C,1,1]``, or ``[C]`` / ``[1,C]`` for Gemm.

    Refuses when the constant would broadcast the output to a new shape or varies along
    another axis, when the conv output has other consumers or is a graph output, when the
    weight or bias is not constant, when dtypes are not float, when a divisor contains 0,
    and for ``c / conv(x)`` and ``c - conv(x)``.
    """

    name = "fold_affine_into_conv"
    summary = "fold per-channel constant Mul/Div/Add/Sub into Conv/ConvTranspose/Gemm weights"
    rules = RULES
