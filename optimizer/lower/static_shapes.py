"""Compiled modules need every shape known at compile time (format version 1)."""

from __future__ import annotations

import logging

from optimizer import ir
from optimizer.errors import UnsupportedModelError
from optimizer.ir import Model, Value

log = logging.getLogger(__name__)


def require_static_shapes(model: Model) -> None:
    """Checks that every top-level value has a known dtype and a fully static shape.

    Graph inputs are checked first, since a symbolic input dimension is what usually leaves
    the rest unknown. If only intermediate shapes are missing, shape inference runs once.

    Raises:
        UnsupportedModelError: a symbolic input dimension (the message names the input and the
            ``--input-shape NAME:DIMS`` flag that pins it) or a value whose shape depends on
            data (the message names the value and the node computing it).
    """
    graph = model.graph
    for value in graph.inputs:
        if ir.static_shape(value) is None:
            raise UnsupportedModelError(_unpinned_input_message(value))
        if ir.numpy_dtype_of(value) is None:
            raise UnsupportedModelError(f"input '{value.name}' has no known element type")
    missing = _unknown_values(model)
    if missing:
        log.debug("%d values without a static shape: running shape inference", len(missing))
        ir.infer_shapes(model, reset=False)
        missing = _unknown_values(model)
    if missing:
        value = missing[0]
        node = ir.producer(value)
        where = f"output of {node.op} node '{node.name}'" if node is not None else "graph value"
        raise UnsupportedModelError(
            f"value '{value.name}' ({where}) has no static shape ({_fmt(value.shape)}); compiled "
            f"modules need every shape known at compile time ({len(missing)} such value(s))"
        )


def _unknown_values(model: Model) -> list[Value]:
    found = []
    for node in model.graph.nodes:
        for value in node.outputs:
            if ir.is_empty(value) or not value.name:  # an omitted (optional) output
                continue
            if ir.static_shape(value) is None or ir.numpy_dtype_of(value) is None:
                found.append(value)
    seen = {id(v) for v in found}
    found.extend(v for v in model.graph.outputs if ir.static_shape(v) is None and id(v) not in seen)
    return found


def _unpinned_input_message(value: Value) -> str:
    shape = value.shape
    if shape is None:
        return (
            f"input '{value.name}' has an unknown rank and shape; compiled modules need static "
            f"shapes: pin it with --input-shape {value.name}:DIMS (e.g. {value.name}:1x3x224x224)"
        )
    symbols = [str(d) for d in shape if not isinstance(d, int) or d < 0]
    example = "x".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in shape)
    return (
        f"input '{value.name}' has symbolic dimension(s) {', '.join(repr(s) for s in symbols)} "
        f"(shape {_fmt(shape)}); compiled modules need static shapes: pin it with "
        f"--input-shape {value.name}:DIMS (e.g. --input-shape {value.name}:{example}, N = a size)"
    )


def _fmt(shape: object) -> str:
    if shape is None:
        return "unknown"
    return "[" + ", ".join(str(d) for d in shape) + "]"  # type: ignore[union-attr]
