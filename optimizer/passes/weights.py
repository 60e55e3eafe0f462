"""Numeric helpers shared by the weight-folding passes (private to those passes).

The folding passes (``fold_batchnorm``, ``fold_affine_into_conv``) all reduce to one move: a
per-output-channel affine map ``y -> y * scale + shift`` applied to the output of a Conv,
ConvTranspose or Gemm is absorbed into that node's weight and bias. This module knows where
the output channels sit in each op's weight layout and builds the folded node.

Arithmetic is done in float64 and stored back in the weight's dtype.
"""

from __future__ import annotations

import numpy as np

from optimizer import ir
from optimizer.ir import Graph, Node, Value

# Ops whose output channels can absorb a per-channel scale and shift.
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm")


def is_float(dtype: object) -> bool:
    """True for the NumPy float dtypes (float16/32/64) a weight can be folded in."""
    try:
        return np.issubdtype(np.dtype(dtype), np.floating)
    except TypeError:
        return False


def output_channels(node: Node, weight: np.ndarray) -> int | None:
    """Number of output channels (the feature axis of Gemm) given the node's weight.

    Conv weights are ``[C_out, C_in/group, k...]``, ConvTranspose weights
    ``[C_in, C_out/group, k...]``, Gemm's B is ``[K, N]`` (``[N, K]`` with ``transB=1``).
    """
    if node.op == "Conv":
        return int(weight.shape[0]) if weight.ndim >= 3 else None
    if node.op == "ConvTranspose":
        group = ir.attr_int(node, "group", 1) or 1
        if weight.ndim < 3 or weight.shape[0] % group:
            return None
        return int(weight.shape[1]) * group
    if node.op == "Gemm":
        if weight.ndim != 2:
            return None
        return int(weight.shape[0] if ir.attr_int(node, "transB", 0) else weight.shape[1])
    return None


def output_rank(node: Node, weight: np.ndarray) -> int:
    """Rank of the node's output: the weight's rank for convolutions, 2 for Gemm."""
    return 2 if node.op == "Gemm" else weight.ndim


def scale_weight(node: Node, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The weight (float64) with output channel ``c`` multiplied by ``scale[c]``."""
    w = weight.astype(np.float64)
    s = scale.astype(np.float64)
    if node.op == "Conv":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    if node.op == "ConvTranspose":
        # Output channel g * (C_out/group) + j is read from w[c_in, j] for the c_in of group g.
        group = ir.attr_int(node, "group", 1) or 1
        c_in, per_group = w.shape[0], w.shape[1]
        kernel = w.shape[2:]
        grouped = w.reshape((group, c_in // group, per_group, *kernel))
        factors = s.reshape((group, 1, per_group) + (1,) * len(kernel))
        return (grouped * factors).reshape(w.shape)
    if node.op == "Gemm":
        return w * (s[:, None] if ir.attr_int(node, "transB", 0) else s[None, :])
    raise ValueError(f"no weight layout known for {node.op}")


def channel_vector(
    array: np.ndarray, rank: int, axis: int, channels: int
) -> tuple[np.ndarray | None, str]:
    """``array`` as a per-channel float64 vector of length ``channels``, or None and why not.

    ``array`` must broadcast against an output of rank ``rank`` without changing its shape
    and vary at most along ``axis`` (the channel axis): a scalar, ``[C,1,1]``, ``[1,C,1,1]``,
    or ``[C]`` when the channel axis is the last one.
    """
    if array.ndim > rank:
        return None, f"constant of rank {array.ndim} would broadcast the rank-{rank} output"
    shape = (1,) * (rank - array.ndim) + tuple(array.shape)
    for i, dim in enumerate(shape):
        if i == axis:
            if dim not in (1, channels):
                return (
                    None,
                    f"constant has {dim} entries on the channel axis, output has {channels}",
                )
        elif dim != 1:
            return None, f"constant shape {tuple(array.shape)} varies along non-channel axis {i}"
    vector = array.astype(np.float64).reshape(shape).reshape(-1)
    return np.broadcast_to(vector, (channels,)).copy(), ""


def fold_channel_affine(
    graph: Graph,
    node: Node,
    scale: np.ndarray | None,
    shift: np.ndarray | None,
    replaced: Value,
) -> Node:
    """Builds a copy of ``node`` computing ``node(x) * scale + shift`` per output channel.

    The copy gets a new weight (and bias, created when ``shift`` is given and the node had
    none) and takes over every use of ``replaced`` (the value the affine map produced).

    Args:
        graph: The graph owning ``node``.
        node: A Conv, ConvTranspose or Gemm whose weight (and bias, if any) are constants.
        scale: Per-output-channel factors (length C_out), or None for 1.
        shift: Per-output-channel offsets (length C_out), or None for 0.
        replaced: The value that the new node's output replaces.

    Returns:
        The new node.
    """
    weight = ir.const_value(node.inputs[1])
    assert weight is not None
    dtype = weight.dtype
    bias_in = node.inputs[2] if len(node.inputs) > 2 and not ir.is_empty(node.inputs[2]) else None
    bias = ir.const_value(bias_in) if bias_in is not None else None
    attrs = dict(node.attrs)

    new_weight = weight if scale is None else scale_weight(node, weight, scale).astype(dtype)
    new_bias: np.ndarray | None = None
    if bias is not None:
        b = bias.astype(np.float64)
        if node.op == "Gemm":
            b = b * (ir.attr_float(node, "beta", 1.0) or 0.0)
            attrs["beta"] = 1.0
        new_bias = b if scale is None else b * scale
    if shift is not None:
        new_bias = shift if new_bias is None else new_bias + shift
        if node.op == "Gemm":
            attrs["beta"] = 1.0

    inputs: list[Value] = [node.inputs[0]]
    inputs.append(ir.make_constant(graph, new_weight, f"{node.inputs[1].name}_folded"))
    if new_bias is not None:
        base = bias_in.name if bias_in is not None else f"{node.name or node.op}_bias"
        inputs.append(ir.make_constant(graph, new_bias.astype(dtype), f"{base}_folded"))
    out = ir.make_value(graph, f"{node.outputs[0].name}_folded", replaced.dtype, replaced.shape)
    new = ir.add_node(graph, node.op, inputs, [out], attrs, name=node.name or node.op)
    ir.replace_all_uses(graph, replaced, out)
    return new
