from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer.passes.fold_affine_into_conv import FoldAffineIntoConv
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

RNG = np.random.default_rng(11)
X = [1, 4, 5, 5]
Y = [1, 6, 3, 3]


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _conv_then(
    affine: str, c: np.ndarray, bias: bool = True, conv_first: bool = True, group: int = 1
) -> onnx.ModelProto:
    inits = {"w": _f32(6, 4 // group, 3, 3), "c": c}
    conv_in = ["x", "w"]
    if bias:
        inits["b"] = _f32(6)
        conv_in.append("b")
    operands = ["y", "c"] if conv_first else ["c", "y"]
    nodes = [
        helper.make_node("Conv", conv_in, ["y"], group=group),
        helper.make_node(affine, operands, ["z"]),
    ]
    return make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, Y)], inits)


def _channels(*shape: int) -> np.ndarray:
    return RNG.uniform(0.5, 2.0, shape).astype(np.float32)


@pytest.mark.parametrize(
    ("affine", "shape", "conv_first"),
    [
        ("Mul", (6, 1, 1), True),
        ("Mul", (1, 6, 1, 1), False),
        ("Mul", (), True),
        ("Div", (6, 1, 1), True),
        ("Add", (1, 6, 1, 1), False),
        ("Add", (1,), True),
        ("Sub", (6, 1, 1), True),
    ],
)
def test_conv_affine(affine: str, shape: tuple[int, ...], conv_first: bool) -> None:
    proto = _conv_then(affine, _channels(*shape), conv_first=conv_first)
    assert_rewrites(FoldAffineIntoConv(), proto, ["Conv"], {f"{affine} folded into Conv": 1})


@pytest.mark.parametrize("affine", ["Add", "Mul"])
def test_conv_without_bias(affine: str) -> None:
    proto = _conv_then(affine, _channels(6, 1, 1), bias=False, group=2)
    assert_rewrites(FoldAffineIntoConv(), proto, ["Conv"], {f"{affine} folded into Conv": 1})


def test_mul_then_add_chain() -> None:
    inits = {"w": _f32(6, 4, 3, 3), "s": _channels(6, 1, 1), "t": _channels(1, 6, 1, 1)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node("Mul", ["y", "s"], ["m"]),
        helper.make_node("Add", ["m", "t"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, Y)], inits)
    assert_rewrites(
        FoldAffineIntoConv(),
        proto,
        ["Conv"],
        {"Mul folded into Conv": 1, "Add folded into Conv": 1},
    )


def test_convtranspose_group2_mul() -> None:
    inits = {"w": _f32(4, 3, 3, 3), "b": _f32(6), "c": _channels(6, 1, 1)}
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2),
        helper.make_node("Mul", ["y", "c"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, [1, 6, 7, 7])], inits)
    assert_rewrites(
        FoldAffineIntoConv(), proto, ["ConvTranspose"], {"Mul folded into ConvTranspose": 1}
    )


@pytest.mark.parametrize(
    ("affine", "trans_b", "shape"),
    [("Mul", 0, (3,)), ("Div", 1, (1, 3)), ("Add", 1, (3,)), ("Sub", 0, ())],
)
def test_gemm_affine(affine: str, trans_b: int, shape: tuple[int, ...]) -> None:
    inits = {"w": _f32(3, 5) if trans_b else _f32(5, 3), "cb": _f32(4, 3), "c": _channels(*shape)}
    nodes = [
        helper.make_node("Gemm", ["x", "w", "cb"], ["y"], transB=trans_b, alpha=0.5, beta=2.0),
        helper.make_node(affine, ["y", "c"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [4, 5])], [("z", FLOAT, [4, 3])], inits)
    assert_rewrites(FoldAffineIntoConv(), proto, ["Gemm"], {f"{affine} folded into Gemm": 1})


def test_gemm_without_c_add() -> None:
    inits = {"w": _f32(5, 3), "c": _channels(3)}
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["y"]),
        helper.make_node("Add", ["c", "y"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [4, 5])], [("z", FLOAT, [4, 3])], inits)
    assert_rewrites(FoldAffineIntoConv(), proto, ["Gemm"], {"Add folded into Gemm": 1})


def test_inside_loop_body() -> None:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Conv", ["state", "w"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("Mul", ["y", "c"], ["next"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("state", FLOAT, [1, 4, 5, 5]),
        ],
        [
            helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("next", FLOAT, [1, 4, 5, 5]),
        ],
    )
    inits = {"w": _f32(4, 4, 3, 3) * 0.3, "c": _channels(4, 1, 1), "trip": np.array(3, np.int64)}
    nodes = [helper.make_node("Loop", ["trip", "", "x"], ["z"], body=body)]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, X)], inits)
    model, res = run_pass(FoldAffineIntoConv(), proto)
    assert dict(res.stats) == {"Mul folded into Conv": 1}
    assert [n.op for n in model.graph.nodes[0].attrs["body"].nodes] == ["Identity", "Conv"]
    assert_equivalent(proto, model)


# -- negatives ----------------------------------------------------------------------------------
# Structural refusals use Div/Sub: for the commutative Mul/Add the matcher's reason depends on
# how it reports failures over both operand orders, not on this pass.


def test_spatially_varying_constant_unchanged() -> None:
    proto = _conv_then("Mul", _channels(6, 3, 3))
    assert_unchanged(FoldAffineIntoConv(), proto, "varies along non-channel axis 2")


def test_constant_on_last_axis_unchanged() -> None:
    # [C] on a conv output broadcasts along the width axis, not the channels.
    inits = {"w": _f32(3, 4, 3, 3), "c": _channels(3)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node("Mul", ["y", "c"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, [1, 3, 3, 3])], inits)
    assert_unchanged(FoldAffineIntoConv(), proto, "varies along non-channel axis 3")


def test_constant_broadcasting_to_new_rank_unchanged() -> None:
    inits = {"w": _f32(6, 4, 3, 3), "c": _channels(1, 1, 6, 1, 1)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node("Mul", ["y", "c"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, [1, *Y])], inits)
    assert_unchanged(FoldAffineIntoConv(), proto, "would broadcast the rank-4 output")


def test_constant_broadcasting_channels_unchanged() -> None:
    # One-channel conv output times a [3,1,1] constant: broadcast makes 3 channels.
    inits = {"w": _f32(1, 4, 3, 3), "c": _channels(3, 1, 1)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node("Add", ["y", "c"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, [1, 3, 3, 3])], inits)
    assert_unchanged(FoldAffineIntoConv(), proto, "3 entries on the channel axis, output has 1")


def test_division_by_zero_unchanged() -> None:
    c = _channels(6, 1, 1)
    c[2] = 0.0
    assert_unchanged(FoldAffineIntoConv(), _conv_then("Div", c), "contains 0")


def test_constant_minus_conv_unchanged() -> None:
    assert_unchanged(
        FoldAffineIntoConv(),
        _conv_then("Sub", _channels(6, 1, 1), conv_first=False),
        "'c' is not produced by Conv",
    )


def test_conv_output_with_two_consumers_unchanged() -> None:
    proto = _conv_then("Div", _channels(6, 1, 1))
    proto.graph.node.append(helper.make_node("Relu", ["y"], ["r"]))
    proto.graph.output.append(helper.make_tensor_value_info("r", FLOAT, Y))
    assert_unchanged(FoldAffineIntoConv(), proto, "output has other consumers")


def test_conv_output_is_graph_output_unchanged() -> None:
    proto = _conv_then("Sub", _channels(6, 1, 1))
    proto.graph.output.append(helper.make_tensor_value_info("y", FLOAT, Y))
    assert_unchanged(FoldAffineIntoConv(), proto, "output has other consumers")


def test_non_constant_operand_unchanged() -> None:
    inits = {"w": _f32(6, 4, 3, 3)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node("Div", ["y", "s"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, X), ("s", FLOAT, [6, 1, 1])], [("z", FLOAT, Y)], inits)
    assert_unchanged(FoldAffineIntoConv(), proto, "'s' is not a constant")
