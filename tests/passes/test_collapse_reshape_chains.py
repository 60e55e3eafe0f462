from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer.passes.collapse_reshape_chains import CollapseReshapeChains
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    op_list,
    random_feeds,
    run_pass,
)

I64 = np.int64


def _i64(*values):
    return np.array(values, I64)


def _target(model):
    node = next(n for n in model.graph.nodes if n.op == "Reshape")
    return node.inputs[1].values.tolist()


# -- static chains -----------------------------------------------------------------------------


def test_static_chain_of_four_becomes_one_reshape():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Reshape", ["a", "s1"], ["b"]),
        helper.make_node("Unsqueeze", ["b", "ax"], ["c"]),
        helper.make_node("Flatten", ["c"], ["d"], axis=1),
        helper.make_node("Squeeze", ["d", "ax0"], ["e"]),
        helper.make_node("Relu", ["e"], ["y"]),
    ]
    inits = {"s1": _i64(4, 6), "ax": _i64(0), "ax0": _i64(0)}
    proto = make_model(nodes, [("x", FLOAT, [2, 3, 4])], [("y", FLOAT, [24])], inits)
    model = assert_rewrites(
        CollapseReshapeChains(), proto, ["Relu", "Reshape", "Relu"], {"reshape chain collapsed": 1}
    )
    assert _target(model) == [24]


def test_static_chain_at_graph_output_keeps_name():
    nodes = [
        helper.make_node("Flatten", ["x"], ["a"], axis=1),
        helper.make_node("Reshape", ["a", "s"], ["y"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2, 3, 4])], [("y", FLOAT, [6, 4])], {"s": _i64(-1, 4)})
    model = assert_rewrites(
        CollapseReshapeChains(), proto, ["Reshape"], {"reshape chain collapsed": 1}
    )
    assert model.graph.nodes[0].outputs[0].name == "y"
    assert _target(model) == [6, 4]


def test_static_chain_with_zero_sized_dim_uses_allowzero():
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
        helper.make_node("Reshape", ["a", "s"], ["y"]),
    ]
    proto = make_model(
        nodes, [("x", FLOAT, [0, 3])], [("y", FLOAT, [3, 0])], {"ax": _i64(0), "s": _i64(3, -1)}
    )
    model = assert_rewrites(
        CollapseReshapeChains(), proto, ["Reshape"], {"reshape chain collapsed": 1}
    )
    assert model.graph.nodes[0].attrs["allowzero"] == 1
    # Before opset 14 a literal 0 cannot be written: only the symbolic merge applies.
    old = make_model(
        [
            helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
            helper.make_node("Reshape", ["a", "s"], ["y"]),
        ],
        [("x", FLOAT, [0, 3])],
        [("y", FLOAT, [3, 0])],
        {"ax": _i64(0), "s": _i64(3, -1)},
        opset=13,
    )
    assert_rewrites(CollapseReshapeChains(), old, ["Reshape"], {"Reshape merged": 1})


def test_static_chain_from_symbolic_input():
    # x has a symbolic dim, but the final shape is static: one Reshape suffices.
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
    ]
    inits = {"s1": _i64(-1), "s2": _i64(2, 6)}
    proto = make_model(nodes, [("x", FLOAT, ["N", 4])], [("y", FLOAT, [2, 6])], inits)
    model, res = run_pass(CollapseReshapeChains(), proto)
    assert dict(res.stats) == {"reshape chain collapsed": 1}
    assert op_list(model) == ["Reshape"]
    assert _target(model) == [2, 6]
    assert_equivalent(proto, model, {"x": np.ones((3, 4), np.float32)})


def test_opset11_axes_attributes():
    nodes = [
        helper.make_node("Unsqueeze", ["x"], ["a"], axes=[0]),
        helper.make_node("Squeeze", ["a"], ["b"], axes=[2]),
        helper.make_node("Neg", ["b"], ["y"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [2, 1])], [("y", FLOAT, [1, 2])], opset=11)
    model = assert_rewrites(
        CollapseReshapeChains(), proto, ["Reshape", "Neg"], {"reshape chain collapsed": 1}
    )
    assert _target(model) == [1, 2]


# -- symbolic chains ---------------------------------------------------------------------------


def _sym(nodes, inits, in_shape, out_shape, opset=17):
    return make_model(nodes, [("x", FLOAT, in_shape)], [("y", FLOAT, out_shape)], inits, opset)


def test_symbolic_reshape_reshape_merged():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["b"]),
        helper.make_node("Neg", ["b"], ["y"]),
    ]
    inits = {"s1": _i64(0, 12), "s2": _i64(-1, 3, 4)}
    proto = _sym(nodes, inits, ["N", 3, 4], ["N", 3, 4])
    model = assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Reshape", "Neg"],
        {"Reshape merged": 1},
        feeds=random_feeds(proto, dims={"N": 5}),
    )
    assert _target(model) == [-1, 3, 4]


def test_symbolic_flatten_then_reshape_merged():
    nodes = [
        helper.make_node("Flatten", ["x"], ["a"], axis=1),
        helper.make_node("Reshape", ["a", "s"], ["y"]),
    ]
    proto = _sym(nodes, {"s": _i64(-1, 2, 6)}, ["N", 3, 4], ["N", 2, 6])
    assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Reshape"],
        {"Reshape merged": 1},
        feeds=random_feeds(proto, dims={"N": 2}),
    )


def test_symbolic_reshape_with_copy_dim_kept():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
    ]
    inits = {"s1": _i64(-1, 12), "s2": _i64(0, 3, 4)}
    assert_unchanged(CollapseReshapeChains(), _sym(nodes, inits, ["N", 3, 4], ["N", 3, 4]))


def test_symbolic_reshape_allowzero_merged():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"], allowzero=1),
    ]
    inits = {"s1": _i64(-1), "s2": _i64(-1, 2)}
    proto = _sym(nodes, inits, ["N", 2], ["M", 2])
    model = assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Reshape"],
        {"Reshape merged": 1},
        feeds=random_feeds(proto, dims={"N": 3}),
    )
    assert model.graph.nodes[0].attrs["allowzero"] == 1


@pytest.mark.parametrize("opset", [11, 17])
def test_symbolic_unsqueeze_unsqueeze_merged(opset):
    def unsq(i, o, axes):
        if opset < 13:
            return [helper.make_node("Unsqueeze", [i], [o], axes=axes)]
        return [helper.make_node("Unsqueeze", [i, f"{o}_ax"], [o])]

    nodes = [*unsq("x", "a", [0, -1]), *unsq("a", "b", [2]), helper.make_node("Neg", ["b"], ["y"])]
    inits = {} if opset < 13 else {"a_ax": _i64(0, -1), "b_ax": _i64(2)}
    # x [N, M] -> a [1, N, M, 1] -> b [1, N, 1, M, 1]
    proto = _sym(nodes, inits, ["N", "M"], [1, "N", 1, "M", 1], opset)
    model = assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Unsqueeze", "Neg"],
        {"Unsqueeze merged": 1},
        feeds=random_feeds(proto, dims={"N": 2, "M": 3}),
    )
    node = model.graph.nodes[0]
    axes = node.attrs["axes"] if opset < 13 else node.inputs[1].values.tolist()
    assert list(axes) == [0, 2, 4]


def test_symbolic_squeeze_squeeze_merged():
    nodes = [
        helper.make_node("Squeeze", ["x", "a1"], ["a"]),
        helper.make_node("Squeeze", ["a", "a2"], ["b"]),
        helper.make_node("Neg", ["b"], ["y"]),
    ]
    # x [1, N, 1, M, 1] -> a [N, 1, M] (axes 0, 4) -> b [N, M] (axis 1 = x's axis 2)
    inits = {"a1": _i64(0, -1), "a2": _i64(1)}
    proto = _sym(nodes, inits, [1, "N", 1, "M", 1], ["N", "M"])
    model = assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Squeeze", "Neg"],
        {"Squeeze merged": 1},
        feeds=random_feeds(proto, dims={"N": 2, "M": 3}),
    )
    assert model.graph.nodes[0].inputs[1].values.tolist() == [0, 2, 4]


def test_unsqueeze_squeeze_cancelled():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "ax"], ["a"]),
        helper.make_node("Squeeze", ["a", "ax2"], ["b"]),
        helper.make_node("Neg", ["b"], ["y"]),
    ]
    proto = _sym(nodes, {"ax": _i64(1), "ax2": _i64(-2)}, ["N", 3], ["N", 3])
    assert_rewrites(
        CollapseReshapeChains(),
        proto,
        ["Relu", "Neg"],
        {"Unsqueeze-Squeeze cancelled": 1},
        feeds=random_feeds(proto, dims={"N": 2}),
    )


def test_squeeze_unsqueeze_cancelled_static_to_graph_output():
    # x -> Squeeze -> Unsqueeze -> y: nothing left to compute, an Identity keeps 'y'.
    nodes = [
        helper.make_node("Squeeze", ["x", "ax"], ["a"]),
        helper.make_node("Unsqueeze", ["a", "ax"], ["y"]),
    ]
    proto = _sym(nodes, {"ax": _i64(1)}, [2, 1, 3], [2, 1, 3])
    assert_rewrites(
        CollapseReshapeChains(), proto, ["Identity"], {"Squeeze-Unsqueeze cancelled": 1}
    )


def test_unsqueeze_squeeze_other_axis_kept():
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
        helper.make_node("Squeeze", ["a", "ax2"], ["y"]),
    ]
    assert_unchanged(
        CollapseReshapeChains(), _sym(nodes, {"ax": _i64(0), "ax2": _i64(2)}, ["N", 1], [1, "N"])
    )


def test_squeeze_without_axes_not_merged():
    nodes = [
        helper.make_node("Squeeze", ["x", "ax"], ["a"]),
        helper.make_node("Squeeze", ["a"], ["y"]),
    ]
    assert_unchanged(CollapseReshapeChains(), _sym(nodes, {"ax": _i64(0)}, [1, "N", 1], ["M"]))


# -- negatives ---------------------------------------------------------------------------------


def test_intermediate_with_two_consumers_kept():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
        helper.make_node("Neg", ["a"], ["z"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [2, 6])],
        [("y", FLOAT, [3, 4]), ("z", FLOAT, [12])],
        {"s1": _i64(12), "s2": _i64(3, 4)},
    )
    assert_unchanged(CollapseReshapeChains(), proto)


def test_intermediate_graph_output_kept():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s2"], ["y"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [2, 6])],
        [("y", FLOAT, [3, 4]), ("a", FLOAT, [12])],
        {"s1": _i64(12), "s2": _i64(3, 4)},
    )
    assert_unchanged(CollapseReshapeChains(), proto)


def test_runtime_target_shape_kept():
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"]),
        helper.make_node("Reshape", ["a", "s"], ["y"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, ["N", 4]), ("s", TensorProto.INT64, [2])],
        [("y", FLOAT, ["A", "B"])],
        {"s1": _i64(-1)},
    )
    assert_unchanged(CollapseReshapeChains(), proto)


def test_inside_if_branch():
    branch_nodes = [
        helper.make_node("Unsqueeze", ["x", "ax"], ["a"]),
        helper.make_node("Flatten", ["a"], ["b"], axis=0),
        helper.make_node("Reshape", ["b", "s"], ["t"]),
    ]
    then = helper.make_graph(
        branch_nodes,
        "then",
        [],
        [helper.make_tensor_value_info("t", FLOAT, [6])],
        [numpy_helper.from_array(_i64(0), "ax"), numpy_helper.from_array(_i64(-1), "s")],
    )
    other = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s0"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", FLOAT, [6])],
        [numpy_helper.from_array(_i64(6), "s0")],
    )
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    proto = make_model(
        nodes, [("x", FLOAT, [2, 3]), ("c", TensorProto.BOOL, [])], [("y", FLOAT, [6])]
    )
    model, res = run_pass(CollapseReshapeChains(), proto)
    assert dict(res.stats) == {"reshape chain collapsed": 1}
    branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in branch.nodes] == ["Reshape"]
    assert branch.outputs[0].name == "t"
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for c in (True, False):
        assert_equivalent(proto, model, {"x": x, "c": np.array(c)})
