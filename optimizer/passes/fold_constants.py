"""Constant folding, shape subgraphs over partially known shapes included."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes import constant_evaluators as ev
from optimizer.passes.base import Pass, PassContext, PassResult, result
from optimizer.passes.lift_constant_nodes import constant_node_value
from optimizer.passes.op_sets import RANDOM_OPS

log = logging.getLogger(__name__)

# A fold may create this many constant elements more than it makes dead: shape tensors
# and small tables, never a broadcast of a scalar to a big tensor.
SLACK_ELEMENTS = 1024

NONDETERMINISTIC = RANDOM_OPS
# Ops producing or reading sequence / optional values, which constants cannot hold.
NON_TENSOR = frozenset(
    {
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceAt",
        "SequenceInsert",
        "SequenceErase",
        "SequenceLength",
        "SequenceMap",
        "SplitToSequence",
        "ConcatFromSequence",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
    }
)
# Ops that read only their input's shape: foldable when inference pinned enough of it.
_SHAPE_READERS = frozenset({"Shape", "Size", "Gather", "Slice"})


class FoldConstants(Pass):
    """Replaces nodes whose inputs are all constants by the constants they compute.

    Evaluation uses the fast NumPy evaluators of ``constant_evaluators`` and ONNX's reference
    evaluator for every other op. Shape subgraphs fold as soon as inference knows enough:
    ``Shape(x)`` and ``Size(x)`` when x's shape is static, ``Gather``/``Slice`` of a ``Shape``
    when the selected dimensions are static (others may stay symbolic). So Shape -> Gather ->
    Unsqueeze -> Concat -> Reshape chains collapse once input shapes are pinned. Subgraphs
    (If/Loop/Scan bodies) are folded too; a folded graph output keeps its name through an
    Identity of the constant.

    Refuses (leaves the node, logging the reason at debug level): random ops and Dropout in
    training mode, nodes holding subgraphs, sequence/optional ops, non-default domains
    (``ai.onnx.ml`` only at version 1, the version the reference evaluator is asked for),
    dtypes NumPy cannot hold (strings, bfloat16, float8), results disagreeing with inferred
    dtypes or shapes, evaluation errors, and any fold that would bloat the model: an output
    over ``ctx.fold_size_limit`` elements, or more new elements than the constant inputs it
    makes dead plus ``SLACK_ELEMENTS`` (an Expand of a scalar to a big tensor stays).
    """

    name = "fold_constants"
    summary = "evaluate nodes whose inputs are constants, and shapes inference pinned"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        for graph in list(ir.iter_graphs(model.graph)):
            folder = _Folder(model, graph, ctx, stats)
            for node in list(graph.nodes):
                if id(node) not in folder.removed:
                    folder.visit(node)
        return result(model, stats)


class _Folder:
    """Folds the nodes of one graph (scope), in order, so chains fold in one sweep."""

    def __init__(self, model: Model, graph: ir.Graph, ctx: PassContext, stats: Counter[str]):
        self.model, self.graph, self.ctx, self.stats = model, graph, ctx, stats
        self.opset = model.opset
        self.own_nodes = {id(n) for n in graph.nodes}
        self.removed: set[int] = set()
        imports = getattr(model.graph, "import_domains", None) or []
        ml = [o.version for o in imports if o.domain == "ai.onnx.ml"]
        self.domains = {"", "ai.onnx"} | ({"ai.onnx.ml"} if ml == [1] else set())

    def visit(self, node: ir.Node) -> None:
        inputs = [v for v in node.inputs if not ir.is_empty(v)]
        all_constant = all(ir.is_constant(v) for v in inputs)
        if not all_constant and node.op not in _SHAPE_READERS:
            return
        if not inputs and node.op != "Constant":
            return  # nothing to evaluate from (a random generator or an odd op)
        if node.op in ("Identity", "Constant") and any(
            ir.is_graph_output(self.graph, o) for o in node.outputs
        ):
            return  # already the folded form of a graph output
        reason = self._refusal(node)
        if reason is not None:
            log.debug("not folding %s (%s): %s", node.name, node.op, reason)
        elif all_constant:
            arrays = [None if ir.is_empty(v) else ir.const_value(v) for v in node.inputs]
            key = "Constant node lifted" if node.op == "Constant" else "node folded"
            self._fold(node, arrays, key)
        else:
            self._fold_shape(node)

    # -- refusals --------------------------------------------------------------------------

    def _refusal(self, node: ir.Node) -> str | None:
        domain = node.domain or ""
        if domain not in self.domains:
            return f"domain '{domain}' is not evaluated"
        if node.op in NONDETERMINISTIC:
            return "nondeterministic op"
        if node.op in NON_TENSOR or any(
            getattr(v, "type", "tensor_type") != "tensor_type"
            for v in [*node.inputs, *node.outputs]
        ):
            return "sequence or optional values"
        if ir.subgraphs(node):
            return "node holds subgraphs"
        if node.op == "Dropout" and self._dropout_may_train(node):
            return "Dropout may run in training mode"
        return None

    def _dropout_may_train(self, node: ir.Node) -> bool:
        if self.opset < 7:
            return ir.attr_int(node, "is_test", 0) != 1
        if self.opset < 12 or len(node.inputs) < 3 or ir.is_empty(node.inputs[2]):
            return False
        mode = ir.const_value(node.inputs[2])
        return mode is None or bool(mode.reshape(-1)[0])

    # -- folding -----------------------------------------------------------------------------

    def _fold(self, node: ir.Node, arrays: list[np.ndarray | None], key: str) -> None:
        if any(a is not None and a.dtype not in ev.FOLDABLE_DTYPES for a in arrays):
            log.debug("not folding %s (%s): input dtype NumPy cannot hold", node.name, node.op)
            return
        dead = self._dead_elements(node)
        estimate = _estimated_sizes(node, arrays)
        if estimate is not None and not self._fits(estimate, dead):
            log.debug("not folding %s (%s): %s elements would bloat", node.name, node.op, estimate)
            return
        if node.op == "Constant":
            value = constant_node_value(node)
            if value is None:
                return
            values = [value]
        else:
            try:
                values = ev.evaluate(node, arrays, self.opset)
            except Exception as exc:  # any evaluation failure only means "not foldable"
                log.debug("not folding %s (%s): evaluation failed: %s", node.name, node.op, exc)
                return
        self._replace(node, values, key, dead)

    def _fold_shape(self, node: ir.Node) -> None:
        """Shape/Size of a static shape; Gather/Slice of a Shape whose picked dims are static."""
        source = node.inputs[0]
        if node.op in ("Shape", "Size"):
            dims = source.shape
            if dims is None:
                return
            picked = ev.shape_dims(node, dims) if node.op == "Shape" else list(dims)
            if _known(picked):
                value = picked if node.op == "Shape" else math.prod(picked)
                self._replace(node, [np.array(value, dtype=np.int64)], f"{node.op} folded", 0)
            return
        shape_node = ir.producer(source)
        rest = node.inputs[1:]
        if (
            shape_node is None
            or shape_node.op != "Shape"
            or (shape_node.domain or "") not in ("", "ai.onnx")
            or shape_node.inputs[0].shape is None
            or not all(ir.is_constant(v) or ir.is_empty(v) for v in rest)
        ):
            return
        dims = ev.shape_dims(shape_node, shape_node.inputs[0].shape)
        positions_in = [np.arange(len(dims), dtype=np.int64)]
        positions_in += [None if ir.is_empty(v) else ir.const_value(v) for v in rest]
        try:
            positions = ev.evaluate(node, positions_in, self.opset)[0]
        except Exception as exc:
            log.debug("not folding %s (%s) of a Shape: %s", node.name, node.op, exc)
            return
        picked = [dims[int(p)] for p in positions.reshape(-1)]
        if not _known(picked):
            return
        value = np.array(picked, dtype=np.int64).reshape(positions.shape)
        if self._replace(node, [value], f"{node.op} of Shape folded", 0):
            self._drop_if_unused(shape_node)

    def _replace(self, node: ir.Node, values: Sequence[np.ndarray], key: str, dead: int) -> bool:
        """Checks the computed outputs, then swaps them in as constants. True if done."""
        if len(values) < len(node.outputs):
            log.debug("not folding %s (%s): too few results", node.name, node.op)
            return False
        pairs = zip(node.outputs, values[: len(node.outputs)], strict=True)
        outs = [(o, np.asarray(v)) for o, v in pairs if not ir.is_empty(o)]
        for out, value in outs:
            want_dtype, want_shape = ir.numpy_dtype_of(out), ir.static_shape(out)
            problem = None
            if value.dtype not in ev.FOLDABLE_DTYPES:
                problem = f"result dtype {value.dtype}"
            elif want_dtype is not None and value.dtype != want_dtype:
                problem = f"result dtype {value.dtype}, inferred {want_dtype}"
            elif want_shape is not None and tuple(value.shape) != want_shape:
                problem = f"result shape {value.shape}, inferred {want_shape}"
            if problem:
                log.debug("not folding %s (%s): %s", node.name, node.op, problem)
                return False
        if not self._fits([v.size for _, v in outs], dead):
            log.debug("not folding %s (%s): result would bloat the model", node.name, node.op)
            return False
        ir.remove_node(self.graph, node)
        self.removed.add(id(node))
        for out, value in outs:
            array = np.array(value, copy=True, order="C")
            if ir.is_graph_output(self.graph, out):
                const = ir.make_constant(self.model.graph, array, out.name)
            else:
                const = ir.Constant(out.name, array)  # the old value is detached: reuse its name
            ir.replace_all_uses(self.graph, out, const)
        self.stats[key] += 1
        return True

    def _drop_if_unused(self, node: ir.Node) -> None:
        if id(node) not in self.own_nodes or id(node) in self.removed:
            return
        if any(o.outputs or ir.is_graph_output(self.graph, o) for o in node.outputs):
            return
        ir.remove_node(self.graph, node)
        self.removed.add(id(node))
        self.stats["unused Shape removed"] += 1

    # -- size limit --------------------------------------------------------------------------

    def _dead_elements(self, node: ir.Node) -> int:
        """Elements of the constant inputs that only this node reads (freed by folding it)."""
        total, seen = 0, set()
        for value in node.inputs:
            if not ir.is_constant(value) or id(value) in seen:
                continue
            seen.add(id(value))
            if all(user is node for user in value.outputs) and not ir.is_graph_output(
                self.graph, value
            ):
                total += ir.const_value(value).size
        return total

    def _fits(self, sizes: Sequence[int], dead: int) -> bool:
        total = sum(sizes)
        if total <= dead:
            return True  # the model does not grow
        return total <= dead + SLACK_ELEMENTS and max(sizes) <= self.ctx.fold_size_limit


def _known(dims: Sequence) -> bool:
    return all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims
    )


def _estimated_sizes(node: ir.Node, arrays: list[np.ndarray | None]) -> list[int] | None:
    """Output element counts before evaluating (from inference or cheap arithmetic)."""
    shapes = [ir.static_shape(o) for o in node.outputs if not ir.is_empty(o)]
    if all(s is not None for s in shapes):
        return [math.prod(s) for s in shapes]
    try:
        if node.op == "ConstantOfShape":
            return [math.prod(int(d) for d in arrays[0].reshape(-1))]
        if node.op == "Expand":
            target = tuple(int(d) for d in arrays[1].reshape(-1))
            return [math.prod(np.broadcast_shapes(arrays[0].shape, target))]
        if node.op == "Tile":
            return [arrays[0].size * math.prod(int(r) for r in arrays[1].reshape(-1))]
        if node.op == "Range":
            return [ev.range_length(arrays[0], arrays[1], arrays[2])]
    except Exception:  # malformed inputs: the evaluator will refuse them
        return None
    return None
