"""The optimize job through the Python API: opset upgrade, interface preservation, pinning."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer import ir
from optimizer.errors import UsageError
from optimizer.optimize import OptimizeOptions, optimize_model
from tests.helpers import FLOAT, make_model, op_list, random_feeds, run_ort


def _gelu_erf(opset: int) -> onnx.ModelProto:
    """0.5 * x * (1 + erf(x / sqrt(2))), as the legacy torch exporter writes GELU."""
    nodes = [
        helper.make_node("Div", ["x", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["a"]),
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["y"]),
    ]
    inits = {
        "sqrt2": np.array(math.sqrt(2.0), np.float32),
        "one": np.array(1.0, np.float32),
        "half": np.array(0.5, np.float32),
    }
    return make_model(nodes, [("x", FLOAT, ["N", 8])], [("y", FLOAT, ["N", 8])], inits, opset=opset)


def test_target_opset_unlocks_gelu() -> None:
    proto = _gelu_erf(13)
    kept, _ = optimize_model(ir.Model.from_proto(proto), OptimizeOptions(trials=2))
    assert op_list(kept) == ["Div", "Erf", "Add", "Mul", "Mul"]  # no Gelu at opset 13
    upgraded, report = optimize_model(ir.Model.from_proto(proto), OptimizeOptions(target_opset=20))
    assert op_list(upgraded) == ["Gelu"]
    assert (report.opset_before, report.opset_after) == (13, 20)
    assert report.check is not None and report.check.ok
    out = upgraded.to_proto()
    onnx.checker.check_model(out, full_check=True)
    feeds = random_feeds(proto, dims={"N": 4})
    np.testing.assert_allclose(run_ort(out, feeds)[0], run_ort(proto, feeds)[0], atol=1e-5)


def test_target_opset_older_than_model_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="older than the model's opset 13"):
        optimize_model(ir.Model.from_proto(_gelu_erf(13)), OptimizeOptions(target_opset=11))


def test_interface_and_opset_imports_are_kept() -> None:
    proto = _gelu_erf(17)
    proto.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    out, _ = optimize_model(ir.Model.from_proto(proto))
    saved = out.to_proto()
    assert {(o.domain, o.version) for o in saved.opset_import} >= {("", 17), ("ai.onnx.ml", 3)}
    assert [(i.name, i.type) for i in saved.graph.input] == [
        (i.name, i.type) for i in proto.graph.input
    ]
    assert [(o.name, o.type) for o in saved.graph.output] == [
        (o.name, o.type) for o in proto.graph.output
    ]


def test_pinned_shapes_fold_shape_subgraphs() -> None:
    # y = Reshape(x, Concat(Shape(x)[0], [-1])): pinning N folds the shape computation away.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    inits = {
        "zero": np.array(0, np.int64),
        "axes": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 2, 3])], [("y", FLOAT, ["N", 6])], inits, opset=13
    )
    pinned, _ = optimize_model(
        ir.Model.from_proto(proto), OptimizeOptions(input_shapes={"x": [4, 2, 3]})
    )
    assert op_list(pinned) == ["Reshape", "Relu"]
    assert pinned.graph.inputs[0].shape == [4, 2, 3]
    dynamic, _ = optimize_model(ir.Model.from_proto(proto))
    assert op_list(dynamic) == ["Reshape", "Relu"]  # copy-dim 0 keeps N dynamic
    assert dynamic.graph.inputs[0].shape == ["N", 2, 3]
