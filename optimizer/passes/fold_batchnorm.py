"""Fold an inference-mode BatchNormalization into the Conv/ConvTranspose/Gemm before it."""

from __future__ import annotations

import logging

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Model
from optimizer.passes import weights
from optimizer.passes.rewrite import OK, Match, RewritePass, Rule, const, op, var

log = logging.getLogger(__name__)


def _pattern(producer: str):
    return op(
        "BatchNormalization",
        op(producer, var("x"), const("w"), const("b", optional=True), name="conv"),
        const("scale"),
        const("bias"),
        const("mean"),
        const("var"),
        name="bn",
    )


def _bn_scale_shift(m: Match) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``s, t`` with ``BN(y) = y * s + t`` (float64)."""
    bn = m["bn"]
    eps = ir.attr_float(bn, "epsilon", 1e-5)
    gamma, beta, mean, var_ = (
        ir.const_value(m[k]).astype(np.float64) for k in ("scale", "bias", "mean", "var")
    )
    s = gamma / np.sqrt(var_ + eps)
    return s, beta - mean * s


def _check(model: Model, graph: Graph, m: Match) -> Match:
    bn, conv = m["bn"], m["conv"]
    if ir.attr_int(bn, "training_mode", 0):
        return Match.fail("BatchNormalization is in training mode (training_mode=1)", bn)
    if ir.attr_int(bn, "is_test", 1) == 0:
        return Match.fail("BatchNormalization is in training mode (is_test=0)", bn)
    if ir.attr_int(bn, "spatial", 1) != 1:
        return Match.fail("BatchNormalization with spatial=0 normalizes per position", bn)
    for extra in bn.outputs[1:]:
        if not ir.is_empty(extra) and (ir.consumers(extra) or ir.is_graph_output(graph, extra)):
            return Match.fail(f"BatchNormalization output '{extra.name}' (statistics) is used", bn)
    w = ir.const_value(m["w"])
    if not weights.is_float(w.dtype):
        return Match.fail(f"{conv.op} weight has non-float dtype {w.dtype}", conv)
    channels = weights.output_channels(conv, w)
    if channels is None:
        return Match.fail(f"{conv.op} weight shape {w.shape} has no known channel layout", conv)
    for key in ("scale", "bias", "mean", "var"):
        param = ir.const_value(m[key])
        if not weights.is_float(param.dtype):
            return Match.fail(f"BatchNormalization {key} has non-float dtype {param.dtype}", bn)
        if param.shape != (channels,):
            return Match.fail(
                f"BatchNormalization {key} shape {param.shape} != ({channels},) channels", bn
            )
    if conv.op == "Gemm":
        rank = ir.rank(bn.inputs[0])
        if rank not in (None, 2):
            return Match.fail(f"Gemm output has rank {rank}", conv)
    s, _ = _bn_scale_shift(m)
    if not np.all(np.isfinite(s)):
        return Match.fail("BatchNormalization scale is not finite (variance + epsilon <= 0)", bn)
    return OK


def _rewrite(model: Model, graph: Graph, m: Match) -> None:
    s, t = _bn_scale_shift(m)
    weights.fold_channel_affine(graph, m["conv"], s, t, m["bn"].outputs[0])


RULES = [
    Rule(f"{producer}+BatchNormalization folded", _pattern(producer), _check, _rewrite, min_opset=7)
    for producer in weights.WEIGHTED_OPS
]


class FoldBatchnorm(RewritePass):
    """Folds an inference BatchNormalization into the Conv, ConvTranspose or Gemm feeding it.

    ``BN(conv(x))`` becomes ``conv'(x)`` with weight ``W * s`` and bias ``b * s + t`` per
    output channel, where ``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s``
    (computed in float64, stored in the weight's dtype). For ConvTranspose the scale applies
    on the weight's axis 1 within each group; for Gemm on the feature axis of B (axis 1, or
    axis 0 with ``transB=1``), the Gemm's ``beta`` being folded into the new bias.

    Refuses when the BatchNormalization is in training mode or its statistics outputs are
    used, when any BN parameter, the weight or the bias is not a constant, when the conv
    output has another consumer or is a graph output, when parameters do not have one entry
    per output channel, or when dtypes are not float. A standalone BatchNormalization is
    left alone.
    """

    name = "fold_batchnorm"
    summary = "fold BatchNormalization into the preceding Conv/ConvTranspose/Gemm"
    rules = RULES
