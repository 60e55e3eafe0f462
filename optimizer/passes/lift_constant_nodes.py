"""Constant nodes -> initializers (Paddle and some exporters emit weights as Constant nodes)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result


def constant_node_value(node: ir.Node) -> np.ndarray | None:
    """The tensor a ``Constant`` node produces, for any of its value_* attributes."""
    attrs = node.attrs
    if "value" in attrs:
        value = attrs["value"]
        return value.values if isinstance(value, ir.Constant) else np.asarray(value)
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    return None  # value_string(s) / sparse_value: left as nodes


class LiftConstantNodes(Pass):
    """Turns ``Constant`` nodes into initializers so every later pass sees plain constants.

    Constants that are graph outputs stay nodes (an output must be computed by the graph).
    """

    name = "lift_constant_nodes"
    summary = "turn Constant nodes into initializers"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for graph, node in ir.iter_nodes(model.graph):
            if node.op != "Constant" or (node.domain or "") not in ("", "ai.onnx"):
                continue
            out = node.outputs[0]
            if ir.is_graph_output(graph, out):
                continue
            array = constant_node_value(node)
            if array is None:
                continue
            const = ir.Constant(out.name, _c_array(array))
            users = ir.consumers(out)
            ir.remove_node(graph, node)
            for user in users:
                for i, value in enumerate(user.inputs):
                    if value is out:
                        user.inputs[i] = const
            stats["Constant node lifted"] += 1
        return result(model, stats)


def _c_array(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns 0-d arrays (scalars) into shape [1].
    return np.asarray(array, order="C")
