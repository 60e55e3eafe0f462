"""Drop all-zero initial states of LSTM / GRU / RNN nodes (a missing state means zero)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result
from optimizer.passes.lift_constant_nodes import constant_node_value

log = logging.getLogger(__name__)

# Optional state inputs per op: initial_h for all three, initial_c for LSTM only.
STATE_INPUTS: dict[str, tuple[int, ...]] = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}

# Ops that turn an all-zero first input into an all-zero output.
_ZERO_PRESERVING = frozenset({"Cast", "Expand", "Identity"})
_MAX_DEPTH = 8


class DropZeroRnnStates(Pass):
    """Removes ``initial_h`` / ``initial_c`` inputs of LSTM, GRU and RNN that are provably zero.

    The ONNX spec defines an omitted initial state as zero, so an explicit zero state is dead
    weight; worse, torch's legacy exporter builds ``torch.zeros(layers, batch, hidden)`` as a
    ``Shape -> Gather -> Unsqueeze -> Concat -> ConstantOfShape`` chain that every inference
    pays for. The input becomes an empty (omitted) optional input and trailing empty inputs are
    trimmed; the now-dead chain is left for ``eliminate_dead_code``.

    A state is provably zero when it is an all-zero constant (initializer or ``Constant``
    node), a ``ConstantOfShape`` whose ``value`` is absent or all zeros (its shape may be
    dynamic), or such a value seen through ``Cast`` / ``Expand`` / ``Identity``. Refuses graph
    inputs, non-zero values, anything computed otherwise, and non-default-domain nodes. Other
    consumers of the zero value keep reading it.

    Not a rule table: the rewrite edits one input of the matched node in place, and the zero
    proof walks a chain of variable length, which the fixed pattern builder does not express.
    """

    name = "drop_zero_rnn_states"
    summary = "drop all-zero initial_h/initial_c inputs of LSTM/GRU/RNN"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for graph, node in ir.iter_nodes(model.graph):
            indices = STATE_INPUTS.get(node.op)
            if indices is None or (node.domain or "") not in ("", "ai.onnx"):
                continue
            dropped = False
            for index in indices:
                if index >= len(node.inputs) or ir.is_empty(node.inputs[index]):
                    continue
                state = node.inputs[index]
                if not _is_provably_zero(graph, state):
                    continue
                node.inputs[index] = _empty_value()
                stats[f"{node.op} initial state dropped"] += 1
                log.debug("%s: dropped zero state %s (input %d)", node.name, state.name, index)
                dropped = True
            if dropped:
                # Trailing omitted inputs may simply be left out, which keeps the node minimal.
                while node.inputs and ir.is_empty(node.inputs[-1]):
                    node.inputs.pop()
        return result(model, stats)


def _empty_value() -> ir.Variable:
    """An omitted optional input. Belongs in the IR facade (e.g. ``ir.empty_value()``)."""
    return ir.Variable("", dtype=None, shape=None)


def _is_provably_zero(graph: ir.Graph, value: ir.Value, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH or ir.is_empty(value):
        return False
    array = ir.const_value(value)
    if array is not None:
        return _all_zero(array)
    if ir.is_graph_input(graph, value):
        return False
    node = ir.producer(value)
    if node is None or (node.domain or "") not in ("", "ai.onnx"):
        return False
    if node.op == "Constant":
        array = constant_node_value(node)
        return array is not None and _all_zero(array)
    if node.op == "ConstantOfShape":
        fill = node.attrs.get("value")
        if fill is None:
            return True  # the default fill is float 0
        fill_array = fill.values if isinstance(fill, ir.Constant) else np.asarray(fill)
        return _all_zero(fill_array)
    if node.op in _ZERO_PRESERVING and node.inputs:
        return _is_provably_zero(graph, node.inputs[0], depth + 1)
    return False


def _all_zero(array: np.ndarray) -> bool:
    array = np.asarray(array)
    if array.dtype.kind not in "biufc":
        return False
    return bool(np.all(array == 0))
