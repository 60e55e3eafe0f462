from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from optimizer.passes.optimize_transposes import OptimizeTransposes
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    op_list,
    run_pass,
)

T = helper.make_node
CANCELLED = "Transpose pair cancelled"
MERGED = "Transpose pair merged"
SUNK = "Transpose sunk"
NCHW = [1, 3, 4, 5]
NHWC = [1, 4, 5, 3]


def tr(inp: str, out: str, perm: list[int] | None) -> onnx.NodeProto:
    kwargs = {} if perm is None else {"perm": perm}
    return T("Transpose", [inp], [out], **kwargs)


# -- pairs --------------------------------------------------------------------------------------


def test_inverse_pair_cancelled():
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            tr("a", "b", [0, 3, 1, 2]),
            T("Relu", ["b"], ["y"]),
        ],
        [("x", FLOAT, NCHW)],
        [("y", FLOAT, NCHW)],
    )
    assert_rewrites(OptimizeTransposes(), proto, ["Relu"], {CANCELLED: 1})


def test_cancelled_pair_at_graph_output_keeps_name():
    proto = make_model(
        [T("Relu", ["x"], ["r"]), tr("r", "a", [1, 0]), tr("a", "y", [1, 0])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3])],
    )
    model = assert_rewrites(OptimizeTransposes(), proto, ["Relu"], {CANCELLED: 1})
    assert model.graph.outputs[0].name == "y"


def test_default_perm_pair_cancelled():
    proto = make_model(
        [tr("x", "a", None), tr("a", "b", None), T("Neg", ["b"], ["y"])],
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [2, 3, 4])],
    )
    assert_rewrites(OptimizeTransposes(), proto, ["Neg"], {CANCELLED: 1})


def test_pair_merged_into_one_transpose():
    proto = make_model(
        [tr("x", "a", [1, 2, 0]), tr("a", "y", [1, 2, 0])],
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [4, 2, 3])],
    )
    model = assert_rewrites(OptimizeTransposes(), proto, ["Transpose"], {MERGED: 1})
    assert list(model.graph.nodes[0].attrs["perm"]) == [2, 0, 1]


def test_triple_chain_collapses():
    proto = make_model(
        [tr("x", "a", [1, 0, 2]), tr("a", "b", [0, 2, 1]), tr("b", "y", [2, 1, 0])],
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [2, 4, 3])],
    )
    assert_rewrites(OptimizeTransposes(), proto, ["Transpose"], {MERGED: 2})


def test_pair_with_shared_intermediate_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), tr("a", "y", [1, 0]), T("Relu", ["a"], ["z"])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3]), ("z", FLOAT, [3, 2])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_pair_with_intermediate_graph_output_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), tr("a", "y", [1, 0])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3]), ("a", FLOAT, [3, 2])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_default_perm_unknown_rank_unchanged():
    graph = helper.make_graph(
        [tr("x", "a", None), tr("a", "y", None)],
        "unknown_rank",
        [helper.make_tensor_value_info("x", FLOAT, None)],
        [helper.make_tensor_value_info("y", FLOAT, None)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model, res = run_pass(OptimizeTransposes(), proto, infer=False)
    assert res.modified is False
    assert op_list(model) == ["Transpose", "Transpose"]


# -- sinking ------------------------------------------------------------------------------------


def test_sink_through_unary_chain_and_cancel():
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            T("Relu", ["a"], ["b"]),
            T("Clip", ["b", "lo", "hi"], ["c"]),
            T("LeakyRelu", ["c"], ["d"], alpha=0.2),
            T("Cast", ["d"], ["e"], to=onnx.TensorProto.DOUBLE),
            tr("e", "y", [0, 3, 1, 2]),
        ],
        [("x", FLOAT, NCHW)],
        [("y", onnx.TensorProto.DOUBLE, NCHW)],
        {"lo": np.float32(-0.5), "hi": np.float32(0.5)},
    )
    model = assert_rewrites(
        OptimizeTransposes(), proto, ["Relu", "Clip", "LeakyRelu", "Cast"], {SUNK: 1, CANCELLED: 1}
    )
    assert list(model.graph.nodes[0].outputs[0].shape) == NCHW


def test_sink_then_merge():
    proto = make_model(
        [tr("x", "a", [1, 2, 0]), T("Sigmoid", ["a"], ["b"]), tr("b", "y", [1, 2, 0])],
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [4, 2, 3])],
    )
    model = assert_rewrites(
        OptimizeTransposes(), proto, ["Sigmoid", "Transpose"], {SUNK: 1, MERGED: 1}
    )
    assert list(model.graph.nodes[1].attrs["perm"]) == [2, 0, 1]


def test_sink_through_binary_with_constants():
    rng = np.random.default_rng(0)
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            T("Add", ["a", "bias"], ["b"]),
            T("Mul", ["scale", "b"], ["c"]),
            T("Sub", ["c", "full"], ["d"]),
            T("Div", ["d", "two"], ["e"]),
            tr("e", "y", [0, 3, 1, 2]),
        ],
        [("x", FLOAT, NCHW)],
        [("y", FLOAT, NCHW)],
        {
            "bias": rng.standard_normal([3]).astype(np.float32),
            "scale": rng.standard_normal([5, 1]).astype(np.float32),
            "full": rng.standard_normal(NHWC).astype(np.float32),
            "two": np.float32(2.0),
        },
    )
    assert_rewrites(
        OptimizeTransposes(), proto, ["Add", "Mul", "Sub", "Div"], {SUNK: 1, CANCELLED: 1}
    )


def test_sink_shared_constant_is_copied():
    c = np.arange(3, dtype=np.float32)
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            T("Add", ["a", "c"], ["b"]),
            tr("b", "y", [0, 3, 1, 2]),
            T("Mul", ["z", "c"], ["w"]),
        ],
        [("x", FLOAT, NCHW), ("z", FLOAT, [3])],
        [("y", FLOAT, NCHW), ("w", FLOAT, [3])],
        {"c": c},
    )
    assert_rewrites(OptimizeTransposes(), proto, ["Add", "Mul"], {SUNK: 1, CANCELLED: 1})


def test_sink_binary_with_two_same_perm_transposes():
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            tr("z", "b", [0, 2, 3, 1]),
            T("Add", ["a", "b"], ["c"]),
            T("Tanh", ["c"], ["d"]),
            tr("d", "y", [0, 3, 1, 2]),
        ],
        [("x", FLOAT, NCHW), ("z", FLOAT, NCHW)],
        [("y", FLOAT, NCHW)],
    )
    assert_rewrites(OptimizeTransposes(), proto, ["Add", "Tanh"], {SUNK: 2, CANCELLED: 1})


def test_transpose_with_two_consumers_unchanged():
    proto = make_model(
        [
            tr("x", "a", [0, 2, 3, 1]),
            T("Relu", ["a"], ["b"]),
            T("Sigmoid", ["a"], ["c"]),
            tr("b", "y", [0, 3, 1, 2]),
            tr("c", "z", [0, 3, 1, 2]),
        ],
        [("x", FLOAT, NCHW)],
        [("y", FLOAT, NCHW), ("z", FLOAT, NCHW)],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_binary_with_runtime_operand_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), T("Add", ["a", "z"], ["b"]), tr("b", "y", [1, 0])],
        [("x", FLOAT, [2, 3]), ("z", FLOAT, [3, 2])],
        [("y", FLOAT, [2, 3])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_binary_with_different_perm_transposes_unchanged():
    proto = make_model(
        [
            tr("x", "a", [1, 2, 0]),
            tr("z", "b", [2, 0, 1]),
            T("Add", ["a", "b"], ["c"]),
            tr("c", "y", [2, 0, 1]),
        ],
        [("x", FLOAT, [2, 2, 2]), ("z", FLOAT, [2, 2, 2])],
        [("y", FLOAT, [2, 2, 2])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_constant_of_higher_rank_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), T("Add", ["a", "c"], ["b"]), tr("b", "y", [0, 2, 1])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [4, 2, 3])],
        {"c": np.ones([4, 3, 2], np.float32)},
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_chain_ending_in_graph_output_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), T("Relu", ["a"], ["y"])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [3, 2])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_chain_value_that_is_graph_output_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), T("Relu", ["a"], ["r"]), tr("r", "y", [1, 0])],
        [("x", FLOAT, [2, 3])],
        [("y", FLOAT, [2, 3]), ("r", FLOAT, [3, 2])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_clip_with_runtime_bound_unchanged():
    proto = make_model(
        [tr("x", "a", [1, 0]), T("Clip", ["a", "lo"], ["b"]), tr("b", "y", [1, 0])],
        [("x", FLOAT, [2, 3]), ("lo", FLOAT, [])],
        [("y", FLOAT, [2, 3])],
    )
    assert_unchanged(OptimizeTransposes(), proto)


def test_pair_inside_if_branch():
    then_graph = helper.make_graph(
        [tr("x", "a", [1, 0]), T("Exp", ["a"], ["b"]), tr("b", "t_out", [1, 0])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", FLOAT, [2, 3])],
    )
    else_graph = helper.make_graph(
        [T("Neg", ["x"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", FLOAT, [2, 3])],
    )
    proto = make_model(
        [T("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        [("x", FLOAT, [2, 3]), ("cond", onnx.TensorProto.BOOL, [])],
        [("y", FLOAT, [2, 3])],
    )
    model, res = run_pass(OptimizeTransposes(), proto)
    assert dict(res.stats) == {SUNK: 1, CANCELLED: 1}
    then_branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in then_branch.nodes] == ["Exp"]
    for cond in (True, False):
        feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "cond": np.array(cond)}
        assert_equivalent(proto, model, feeds)
