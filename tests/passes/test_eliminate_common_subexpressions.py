from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from optimizer.passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from tests.helpers import FLOAT, assert_equivalent, assert_rewrites, assert_unchanged, make_model

BOOL = TensorProto.BOOL
node = helper.make_node
MERGED = "duplicate node merged"


def test_identical_relu_branches_merge():
    proto = make_model(
        [node("Relu", ["x"], ["a"]), node("Relu", ["x"], ["b"]), node("Add", ["a", "b"], ["y"])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3])],
    )
    model = assert_rewrites(EliminateCommonSubexpressions(), proto, ["Relu", "Add"], {MERGED: 1})
    add = model.graph.nodes[1]
    assert add.inputs[0] is add.inputs[1]


def _conv_pair(w2, attrs2=None):
    w1 = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    attrs = {"pads": [1, 1, 1, 1], "strides": [1, 1]}
    nodes = [
        node("Conv", ["x", "w1"], ["a"], **attrs),
        node("Conv", ["x", "w2"], ["b"], **(attrs2 or attrs)),
        node("Add", ["a", "b"], ["y"]),
    ]
    return make_model(
        nodes,
        [("x", FLOAT, [1, 3, 8, 8])],
        [("y", FLOAT, [1, 4, 8, 8])],
        {"w1": w1, "w2": w1.copy() if w2 is None else w2},
    )


def test_conv_branches_with_equal_weight_bytes_merge():
    assert_rewrites(EliminateCommonSubexpressions(), _conv_pair(None), ["Conv", "Add"], {MERGED: 1})


def test_conv_branches_with_different_weights_or_attributes_stay():
    assert_unchanged(EliminateCommonSubexpressions(), _conv_pair(np.ones((4, 3, 3, 3), np.float32)))
    assert_unchanged(
        EliminateCommonSubexpressions(),
        _conv_pair(None, {"auto_pad": "SAME_UPPER", "strides": [1, 1]}),
    )
    # Default strides, spelled differently.
    assert_unchanged(EliminateCommonSubexpressions(), _conv_pair(None, {"pads": [1, 1, 1, 1]}))


@pytest.mark.parametrize(
    ("attrs1", "attrs2"),
    [({"alpha": 0.1}, {"alpha": 0.2}), ({"alpha": 0.1}, {})],
    ids=["different_value", "missing_attribute"],
)
def test_different_attributes_do_not_merge(attrs1, attrs2):
    proto = make_model(
        [
            node("LeakyRelu", ["x"], ["a"], **attrs1),
            node("LeakyRelu", ["x"], ["b"], **attrs2),
            node("Add", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [4])],
        [("y", FLOAT, [4])],
    )
    assert_unchanged(EliminateCommonSubexpressions(), proto)


def test_constants_with_same_bytes_but_other_shape_do_not_merge():
    proto = make_model(
        [
            node("Mul", ["x", "c1"], ["a"]),
            node("Mul", ["x", "c2"], ["b"]),
            node("Add", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [4, 4])],
        [("y", FLOAT, [4, 4])],
        {"c1": np.arange(4, dtype=np.float32), "c2": np.arange(4, dtype=np.float32).reshape(4, 1)},
    )
    assert_unchanged(EliminateCommonSubexpressions(), proto)


def test_diamond_chain_of_depth_three_collapses_in_one_run():
    nodes = []
    for branch in "ab":
        nodes += [
            node("Relu", ["x"], [f"{branch}1"]),
            node("Sigmoid", [f"{branch}1"], [f"{branch}2"]),
            node("Mul", [f"{branch}2", "k"], [f"{branch}3"]),
        ]
    nodes.append(node("Add", ["a3", "b3"], ["y"]))
    proto = make_model(
        nodes, [("x", FLOAT, [3])], [("y", FLOAT, [3])], {"k": np.array(2.0, np.float32)}
    )
    assert_rewrites(
        EliminateCommonSubexpressions(), proto, ["Relu", "Sigmoid", "Mul", "Add"], {MERGED: 3}
    )


def test_two_identical_graph_outputs_keep_both_names():
    proto = make_model(
        [node("Relu", ["x"], ["y1"]), node("Relu", ["x"], ["y2"])],
        [("x", FLOAT, [3])],
        [("y1", FLOAT, [3]), ("y2", FLOAT, [3])],
    )
    model = assert_rewrites(
        EliminateCommonSubexpressions(), proto, ["Relu", "Identity"], {MERGED: 1}
    )
    assert [o.name for o in model.graph.outputs] == ["y1", "y2"]


def test_merged_output_that_is_a_graph_output_keeps_its_name():
    proto = make_model(
        [node("Relu", ["x"], ["r"]), node("Neg", ["r"], ["y1"]), node("Relu", ["x"], ["y2"])],
        [("x", FLOAT, [3])],
        [("y1", FLOAT, [3]), ("y2", FLOAT, [3])],
    )
    model = assert_rewrites(EliminateCommonSubexpressions(), proto, ["Relu", "Neg"], {MERGED: 1})
    assert [o.name for o in model.graph.outputs] == ["y1", "y2"]


def test_random_ops_never_merge():
    proto = make_model(
        [
            node("RandomUniformLike", ["x"], ["a"], seed=1.0),
            node("RandomUniformLike", ["x"], ["b"], seed=1.0),
            node("Add", ["a", "b"], ["y"]),
        ],
        [("x", FLOAT, [3])],
        [("y", FLOAT, [3])],
    )
    assert_unchanged(EliminateCommonSubexpressions(), proto)


def _branch(name, op):
    return helper.make_graph(
        [node(op, ["x"], [f"{name}_out"])],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", FLOAT, [3])],
    )


def test_nodes_with_subgraphs_never_merge():
    nodes = [
        node(
            "If", ["c"], ["a"], then_branch=_branch("t1", "Relu"), else_branch=_branch("e1", "Neg")
        ),
        node(
            "If", ["c"], ["b"], then_branch=_branch("t2", "Relu"), else_branch=_branch("e2", "Neg")
        ),
        node("Add", ["a", "b"], ["y"]),
    ]
    assert_unchanged(
        EliminateCommonSubexpressions(),
        make_model(nodes, [("x", FLOAT, [3]), ("c", BOOL, [])], [("y", FLOAT, [3])]),
    )


def test_duplicates_inside_an_if_branch_merge():
    then = helper.make_graph(
        [node("Exp", ["x"], ["p"]), node("Exp", ["x"], ["q"]), node("Sub", ["p", "q"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", FLOAT, [3])],
    )
    proto = make_model(
        [node("If", ["c"], ["y"], then_branch=then, else_branch=_branch("e", "Neg"))],
        [("x", FLOAT, [3]), ("c", BOOL, [])],
        [("y", FLOAT, [3])],
    )
    model = assert_rewrites(EliminateCommonSubexpressions(), proto, ["If"], {MERGED: 1})
    assert [n.op for n in model.graph.nodes[0].attrs["then_branch"].nodes] == ["Exp", "Sub"]
    for cond in (True, False):
        feeds = {"x": np.array([0.5, 1.0, -1.0], np.float32), "c": np.array(cond)}
        assert_equivalent(proto, model, feeds)
