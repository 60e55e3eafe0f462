from __future__ import annotations

import numpy as np
from onnx import helper

from optimizer.passes.reshape_copy_dims import ReshapeCopyDims
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    random_feeds,
)

STATS = {"Reshape target made constant": 1}


def _view_batch_minus_one(opset: int = 13):
    """x.view(x.size(0), -1) as the legacy exporter writes it, dynamic batch."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {
        "zero": np.array(0, np.int64),
        "axes0": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    return make_model(
        nodes, [("x", FLOAT, ["N", 4, 2, 2])], [("y", FLOAT, ["N", 16])], inits, opset=opset
    )


def test_view_size0_minus1_becomes_constant() -> None:
    proto = _view_batch_minus_one()
    model = assert_rewrites(
        ReshapeCopyDims(), proto, ["Reshape"], STATS, feeds=random_feeds(proto, dims={"N": 1})
    )
    assert model.graph.nodes[0].inputs[1].values.tolist() == [0, -1]
    assert_equivalent(proto, model, random_feeds(proto, dims={"N": 3}))


def test_dims_from_another_tensor_with_the_same_symbol() -> None:
    # Reshape(q [B,S,8], Concat(Shape(mask)[0:1], Shape(mask)[1:2], [2], [4])) with mask [B,S].
    nodes = [
        helper.make_node("Shape", ["mask"], ["b"], start=0, end=1),
        helper.make_node("Shape", ["mask"], ["s"], start=1, end=2),
        helper.make_node("Concat", ["b", "s", "heads", "dim"], ["target"], axis=0),
        helper.make_node("Reshape", ["q", "target"], ["y"], allowzero=1),
    ]
    inits = {"heads": np.array([2], np.int64), "dim": np.array([4], np.int64)}
    proto = make_model(
        nodes,
        [("q", FLOAT, ["B", "S", 8]), ("mask", FLOAT, ["B", "S"])],
        [("y", FLOAT, ["B", "S", 2, 4])],
        inits,
        opset=18,
    )
    feeds = random_feeds(proto, dims={"B": 2, "S": 5})
    model = assert_rewrites(ReshapeCopyDims(), proto, ["Reshape"], STATS, feeds=feeds)
    assert "allowzero" not in model.graph.nodes[0].attrs


def test_dim_at_another_position_is_not_rewritten() -> None:
    # target = [x.size(1), -1]: dim 1 lands at position 0, where a copy would take dim 0.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["c"], axis=0),
        helper.make_node("Unsqueeze", ["c", "axes0"], ["c1"]),
        helper.make_node("Concat", ["c1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {
        "one": np.array(1, np.int64),
        "axes0": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
    }
    proto = make_model(
        nodes, [("x", FLOAT, ["N", "C"])], [("y", FLOAT, ["C", "N"])], inits, opset=13
    )
    assert_unchanged(ReshapeCopyDims(), proto)


def test_literal_zero_under_allowzero_is_kept() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["b"], start=0, end=1),
        helper.make_node("Concat", ["b", "zero_two"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], allowzero=1),
    ]
    inits = {"zero_two": np.array([0, 2], np.int64)}
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 0, 2])], [("y", FLOAT, ["N", 0, 2])], inits, opset=15
    )
    assert_unchanged(ReshapeCopyDims(), proto)


def test_single_runtime_entry_becomes_minus_one() -> None:
    # Reshape(y [N*4, 6], Concat(Shape(x)[0:1], [4], [6])) with x [N, 24]: dim 0 of x is not
    # y's dim 0, but it is the only run-time entry, so -1 names it exactly.
    nodes = [
        helper.make_node("Reshape", ["x", "flat_shape"], ["y"]),
        helper.make_node("Shape", ["x"], ["b"], start=0, end=1),
        helper.make_node("Concat", ["b", "four", "six"], ["target"], axis=0),
        helper.make_node("Reshape", ["y", "target"], ["z"]),
    ]
    inits = {
        "flat_shape": np.array([-1, 6], np.int64),
        "four": np.array([4], np.int64),
        "six": np.array([6], np.int64),
    }
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 24])], [("z", FLOAT, ["N", 4, 6])], inits, opset=15
    )
    feeds = random_feeds(proto, dims={"N": 1})
    model = assert_rewrites(ReshapeCopyDims(), proto, ["Reshape", "Reshape"], STATS, feeds=feeds)
    assert model.graph.nodes[1].inputs[1].values.tolist() == [-1, 4, 6]
    assert_equivalent(proto, model, random_feeds(proto, dims={"N": 3}))


def test_two_runtime_entries_are_kept() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["b"], start=0, end=1),
        helper.make_node("Shape", ["x"], ["c"], start=1, end=2),
        helper.make_node("Concat", ["c", "b"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, ["N", "M"])], [("z", FLOAT, ["M", "N"])], opset=15)
    assert_unchanged(ReshapeCopyDims(), proto)
