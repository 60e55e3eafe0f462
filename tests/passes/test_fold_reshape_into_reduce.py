from __future__ import annotations

import numpy as np
from onnx import helper

from optimizer.passes.fold_reshape_into_reduce import FoldReshapeIntoReduce
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    random_feeds,
)


def _head(opset: int, target: list[int], out_shape: list, second=None):
    """ReduceMean over H, W with keepdims=1, then Reshape (the dynamo classifier head)."""
    if opset >= 18:
        reduce = helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1)
        inits = {"axes": np.array([2, 3], np.int64)}
    else:
        reduce = helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1)
        inits = {}
    inits["target"] = np.array(target, np.int64)
    nodes = [reduce, helper.make_node("Reshape", ["m", "target"], ["y"])]
    outputs = [("y", FLOAT, out_shape)]
    if second:
        nodes.append(helper.make_node("Relu", ["m"], ["z"]))
        outputs.append(("z", FLOAT, ["N", 8, 1, 1]))
    return make_model(nodes, [("x", FLOAT, ["N", 8, 5, 5])], outputs, inits, opset=opset)


def test_reduce_mean_reshape_becomes_keepdims_0() -> None:
    for opset in (13, 18):
        proto = _head(opset, [-1, 8], ["N", 8])
        model = assert_rewrites(
            FoldReshapeIntoReduce(),
            proto,
            ["ReduceMean"],
            {"Reshape folded into ReduceMean keepdims=0": 1},
            feeds=random_feeds(proto, dims={"N": 1}),
        )
        assert model.graph.nodes[0].attrs["keepdims"] == 0
        assert_equivalent(proto, model, random_feeds(proto, dims={"N": 3}))


def test_flatten_after_reduce_sum() -> None:
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["m"], keepdims=1),
        helper.make_node("Flatten", ["m"], ["y"], axis=1),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [2, 8, 5, 5])],
        [("y", FLOAT, [2, 8])],
        {"axes": np.array([2, 3], np.int64)},
        opset=13,
    )
    assert_rewrites(
        FoldReshapeIntoReduce(),
        proto,
        ["ReduceSum"],
        {"Flatten folded into ReduceSum keepdims=0": 1},
    )


def test_reshape_that_mixes_dims_is_kept() -> None:
    # [N, 8, 1, 1] -> [-1, 4]: not the reduction minus its axes.
    assert_unchanged(FoldReshapeIntoReduce(), _head(18, [-1, 4], ["M", 4]))


def test_reduction_with_another_consumer_is_kept() -> None:
    assert_unchanged(FoldReshapeIntoReduce(), _head(18, [-1, 8], ["N", 8], second=True))
