from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer.passes.fuse_matmul_add_into_gemm import FuseMatmulAddIntoGemm
from tests.helpers import (
    FLOAT,
    INT64,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

RNG = np.random.default_rng(5)
STATS = {"MatMul+Add -> Gemm": 1}


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _matmul_add(
    a_shape: list, bias: np.ndarray, out_shape: list, bias_first: bool = False, opset: int = 17
) -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["y"]),
        helper.make_node("Add", ["c", "y"] if bias_first else ["y", "c"], ["z"]),
    ]
    k = a_shape[-1]
    inits = {"w": _f32(k, 3), "c": bias}
    return make_model(nodes, [("a", FLOAT, a_shape)], [("z", FLOAT, out_shape)], inits, opset)


@pytest.mark.parametrize("shape", [(3,), (1, 3), (4, 3), (), (4, 1), (1,)])
def test_bias_shapes(shape: tuple[int, ...]) -> None:
    assert_rewrites(
        FuseMatmulAddIntoGemm(), _matmul_add([4, 5], _f32(*shape), [4, 3]), ["Gemm"], STATS
    )


def test_bias_first_operand() -> None:
    assert_rewrites(
        FuseMatmulAddIntoGemm(),
        _matmul_add([4, 5], _f32(3), [4, 3], bias_first=True),
        ["Gemm"],
        STATS,
    )


def test_symbolic_rows_with_row_vector_bias() -> None:
    proto = _matmul_add(["n", 5], _f32(1, 3), ["n", 3])
    assert_rewrites(FuseMatmulAddIntoGemm(), proto, ["Gemm"], STATS)


def test_opset9() -> None:
    assert_rewrites(
        FuseMatmulAddIntoGemm(), _matmul_add([4, 5], _f32(3), [4, 3], opset=9), ["Gemm"], STATS
    )


def test_non_constant_b() -> None:
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["y"]),
        helper.make_node("Add", ["y", "c"], ["z"]),
    ]
    proto = make_model(
        nodes, [("a", FLOAT, [4, 5]), ("b", FLOAT, [5, 3])], [("z", FLOAT, [4, 3])], {"c": _f32(3)}
    )
    assert_rewrites(FuseMatmulAddIntoGemm(), proto, ["Gemm"], STATS)


def test_inside_if_branch() -> None:
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"]), helper.make_node("Add", ["y", "c"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", FLOAT, [4, 3])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", FLOAT, [4, 3])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["z"], then_branch=then_graph, else_branch=else_graph)
    ]
    proto = make_model(
        nodes,
        [("a", FLOAT, [4, 5]), ("cond", onnx.TensorProto.BOOL, [])],
        [("z", FLOAT, [4, 3])],
        {"w": _f32(5, 3), "c": _f32(3)},
    )
    model, res = run_pass(FuseMatmulAddIntoGemm(), proto)
    assert dict(res.stats) == STATS
    assert [n.op for n in model.graph.nodes[0].attrs["then_branch"].nodes] == ["Gemm"]
    assert [n.op for n in model.graph.nodes[0].attrs["else_branch"].nodes] == ["MatMul"]
    for cond in (True, False):
        assert_equivalent(proto, model, {"a": _f32(4, 5), "cond": np.array(cond)})


# -- negatives ----------------------------------------------------------------------------------


def test_rank3_matmul_unchanged() -> None:
    proto = _matmul_add([2, 4, 5], _f32(3), [2, 4, 3])
    assert_unchanged(
        FuseMatmulAddIntoGemm(), proto, "has rank 3: Gemm takes only a 2-D A (a batched"
    )


def test_unknown_rank_unchanged() -> None:
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["y"]),
        helper.make_node("Add", ["y", "c"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("a", FLOAT, None)],
        [helper.make_tensor_value_info("z", FLOAT, None)],
        [
            onnx.numpy_helper.from_array(_f32(5, 3), "w"),
            onnx.numpy_helper.from_array(_f32(3), "c"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "rank of MatMul input 'a' is unknown")


def test_bias_changing_output_shape_unchanged() -> None:
    proto = _matmul_add([1, 5], _f32(4, 3), [4, 3])
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "does not broadcast to the output")


def test_rank3_bias_unchanged() -> None:
    proto = _matmul_add([4, 5], _f32(2, 4, 3), [2, 4, 3])
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "would broadcast the 2-D output to rank 3")


def test_full_bias_with_symbolic_rows_unchanged() -> None:
    proto = _matmul_add(["n", 5], _f32(4, 3), ["n", 3])
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "output dimension 0 is not known to be 4")


def test_matmul_output_with_two_consumers_unchanged() -> None:
    proto = _matmul_add([4, 5], _f32(3), [4, 3])
    proto.graph.node.append(helper.make_node("Relu", ["y"], ["r"]))
    proto.graph.output.append(helper.make_tensor_value_info("r", FLOAT, [4, 3]))
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "output has other consumers")


def test_non_constant_bias_unchanged() -> None:
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["y"]),
        helper.make_node("Add", ["y", "c"], ["z"]),
    ]
    proto = make_model(
        nodes, [("a", FLOAT, [4, 5]), ("c", FLOAT, [3])], [("z", FLOAT, [4, 3])], {"w": _f32(5, 3)}
    )
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "'c' is not a constant")


def test_integer_matmul_unchanged() -> None:
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["y"]),
        helper.make_node("Add", ["y", "c"], ["z"]),
    ]
    inits = {"w": np.ones((5, 3), np.int64), "c": np.ones(3, np.int64)}
    proto = make_model(nodes, [("a", INT64, [4, 5])], [("z", INT64, [4, 3])], inits)
    assert_unchanged(FuseMatmulAddIntoGemm(), proto, "is not float")
