from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from optimizer.passes.merge_duplicate_initializers import MergeDuplicateInitializers
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

BOOL = TensorProto.BOOL
node = helper.make_node
MERGED = "duplicate initializer merged"
W = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)


def test_identical_matmul_weights_become_one_initializer():
    proto = make_model(
        [
            node("MatMul", ["x", "w1"], ["a"]),
            node("MatMul", ["x", "w2"], ["b"]),
            node("Add", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [2, 4])],
        [("y", FLOAT, [2, 5])],
        {"w1": W, "w2": W.copy()},
    )
    model = assert_rewrites(
        MergeDuplicateInitializers(), proto, ["MatMul", "MatMul", "Add"], {MERGED: 1}
    )
    assert [t.name for t in model.to_proto().graph.initializer] == ["w1"]


def test_same_bytes_with_other_dtype_or_shape_do_not_merge():
    row = np.arange(4, dtype=np.float32)
    proto = make_model(
        [
            node("Add", ["x", "f"], ["a"]),
            node("Add", ["x", "col"], ["b"]),
            node("Add", ["a", "b"], ["y"]),
            node("Add", ["i", "bits"], ["z"]),
        ],
        [("x", FLOAT, [4, 4]), ("i", TensorProto.INT32, [4])],
        [("y", FLOAT, [4, 4]), ("z", TensorProto.INT32, [4])],
        {"f": row, "col": row.reshape(4, 1), "bits": row.view(np.int32)},
    )
    model = assert_unchanged(MergeDuplicateInitializers(), proto)
    assert len(model.to_proto().graph.initializer) == 3


def test_negative_zero_is_not_merged_with_zero():
    proto = make_model(
        [
            node("Div", ["x", "p"], ["a"]),
            node("Div", ["x", "n"], ["b"]),
            node("Sub", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [2])],
        [("y", FLOAT, [2])],
        {"p": np.zeros(2, np.float32), "n": -np.zeros(2, np.float32)},
    )
    assert_unchanged(MergeDuplicateInitializers(), proto)


def test_duplicate_read_inside_an_if_branch_merges_with_the_outer_one():
    then = helper.make_graph(
        [node("MatMul", ["x", "w2"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", FLOAT, [2, 5])],
    )
    other = helper.make_graph(
        [node("MatMul", ["x", "w3"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", FLOAT, [2, 5])],
    )
    proto = make_model(
        [
            node("MatMul", ["x", "w1"], ["a"]),
            node("If", ["c"], ["b"], then_branch=then, else_branch=other),
            node("Add", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [2, 4]), ("c", BOOL, [])],
        [("y", FLOAT, [2, 5])],
        {"w1": W, "w2": W.copy(), "w3": W + 1},
    )
    model, res = run_pass(MergeDuplicateInitializers(), proto)
    assert dict(res.stats) == {MERGED: 1}
    branch = model.graph.nodes[1].attrs["then_branch"]
    assert branch.nodes[0].inputs[1] is model.graph.nodes[0].inputs[1]
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    for cond in (True, False):
        assert_equivalent(proto, model, {"x": x, "c": np.array(cond)})
