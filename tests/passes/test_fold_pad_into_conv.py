from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer.passes.fold_pad_into_conv import FoldPadIntoConv
from tests.helpers import (
    FLOAT,
    INT64,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

RNG = np.random.default_rng(3)
X = [1, 2, 5, 6]


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _pad_node(opset: int, pads: list[int], value: float | None = None, **attrs) -> tuple:
    """A Pad x -> p in the form of ``opset`` and the initializers it needs."""
    if opset < 11:
        if value is not None:
            attrs["value"] = value
        return helper.make_node("Pad", ["x"], ["p"], pads=pads, **attrs), {}
    inits = {"pads": np.array(pads, np.int64)}
    inputs = ["x", "pads"]
    if value is not None:
        inits["value"] = np.array(value, np.float32)
        inputs.append("value")
    return helper.make_node("Pad", inputs, ["p"], **attrs), inits


def _pad_then(
    consumer: onnx.NodeProto,
    opset: int,
    pads: list[int],
    out_shape: list[int],
    value: float | None = None,
    inits: dict | None = None,
    **pad_attrs,
) -> onnx.ModelProto:
    pad, pad_inits = _pad_node(opset, pads, value, **pad_attrs)
    return make_model(
        [pad, consumer],
        [("x", FLOAT, X)],
        [("z", FLOAT, out_shape)],
        {**pad_inits, **(inits or {})},
        opset=opset,
    )


def _conv(**attrs) -> onnx.NodeProto:
    return helper.make_node("Conv", ["p", "w", "b"], ["z"], **attrs)


def _conv_inits() -> dict[str, np.ndarray]:
    return {"w": _f32(3, 2, 3, 3), "b": _f32(3)}


CONV = {"Pad folded into Conv": 1}


@pytest.mark.parametrize("opset", [10, 13])
def test_pad_into_conv(opset: int) -> None:
    # Asymmetric pads on top of the conv's own pads.
    proto = _pad_then(
        _conv(pads=[1, 0, 0, 1]), opset, [0, 0, 1, 2, 0, 0, 2, 1], [1, 3, 7, 8], 0.0, _conv_inits()
    )
    model = assert_rewrites(FoldPadIntoConv(), proto, ["Conv"], CONV)
    assert model.graph.nodes[0].attrs["pads"] == [2, 2, 2, 2]


def test_pad_into_conv_without_value_or_conv_pads() -> None:
    proto = _pad_then(
        _conv(strides=[2, 2]), 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 3, 3, 3], None, _conv_inits()
    )
    assert_rewrites(FoldPadIntoConv(), proto, ["Conv"], CONV)


@pytest.mark.parametrize("axes", [[2, 3], [-1, -2]])
def test_pad_with_axes_opset18(axes: list[int]) -> None:
    pads = [1, 2, 0, 1] if axes == [2, 3] else [2, 1, 1, 0]
    inits = {"pads": np.array(pads, np.int64), "axes": np.array(axes, np.int64), **_conv_inits()}
    nodes = [helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"]), _conv()]
    proto = make_model(nodes, [("x", FLOAT, X)], [("z", FLOAT, [1, 3, 4, 7])], inits, opset=18)
    model = assert_rewrites(FoldPadIntoConv(), proto, ["Conv"], CONV)
    assert model.graph.nodes[0].attrs["pads"] == [1, 2, 0, 1]


def test_conv1d() -> None:
    inits = {"pads": np.array([0, 0, 2, 0, 0, 1], np.int64), "w": _f32(3, 2, 3)}
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Conv", ["p", "w"], ["z"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [1, 2, 6])], [("z", FLOAT, [1, 3, 7])], inits)
    assert_rewrites(FoldPadIntoConv(), proto, ["Conv"], CONV)


@pytest.mark.parametrize("count_include_pad", [None, 1])
def test_pad_into_average_pool(count_include_pad: int | None) -> None:
    attrs = {} if count_include_pad is None else {"count_include_pad": count_include_pad}
    pool_pads = [0, 0, 0, 0] if count_include_pad is None else [1, 0, 0, 1]
    pool = helper.make_node(
        "AveragePool", ["p"], ["z"], kernel_shape=[3, 3], pads=pool_pads, **attrs
    )
    out = [1, 2, 5, 6] if count_include_pad is None else [1, 2, 6, 7]
    proto = _pad_then(pool, 13, [0, 0, 1, 1, 0, 0, 1, 1], out)
    model = assert_rewrites(
        FoldPadIntoConv(), proto, ["AveragePool"], {"Pad folded into AveragePool": 1}
    )
    assert model.graph.nodes[0].attrs["count_include_pad"] == 1


def test_neg_inf_pad_into_max_pool() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z"], kernel_shape=[3, 3], strides=[2, 2])
    proto = _pad_then(pool, 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 2, 3, 3], -np.inf)
    assert_rewrites(FoldPadIntoConv(), proto, ["MaxPool"], {"Pad folded into MaxPool": 1})


def test_neg_inf_pad_into_max_pool_opset10_unused_indices() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z", "idx"], kernel_shape=[2, 2])
    proto = _pad_then(pool, 10, [0, 0, 1, 0, 0, 0, 0, 1], [1, 2, 5, 6], -np.inf)
    assert_rewrites(FoldPadIntoConv(), proto, ["MaxPool"], {"Pad folded into MaxPool": 1})


def test_inside_if_branch() -> None:
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), **_conv_inits()}
    then_graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads"], ["p"]), _conv()],
        "then",
        [],
        [helper.make_tensor_value_info("z", FLOAT, [1, 3, 5, 6])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["e"], pads=[1, 1, 1, 1])],
        "else",
        [],
        [helper.make_tensor_value_info("e", FLOAT, [1, 3, 5, 6])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, X), ("cond", onnx.TensorProto.BOOL, [])],
        [("out", FLOAT, [1, 3, 5, 6])],
        inits,
    )
    model, res = run_pass(FoldPadIntoConv(), proto)
    assert dict(res.stats) == CONV
    then_branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in then_branch.nodes] == ["Conv"]
    assert [o.name for o in then_branch.outputs] == ["z"]
    for cond in (True, False):
        assert_equivalent(proto, model, {"x": _f32(*X), "cond": np.array(cond)})


# -- negatives ----------------------------------------------------------------------------------


def test_zero_pad_before_max_pool_unchanged() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z"], kernel_shape=[3, 3])
    proto = _pad_then(pool, 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 2, 5, 6], 0.0)
    assert_unchanged(FoldPadIntoConv(), proto, "Pad value 0.0 is not -inf")


def test_zero_pad_before_max_pool_opset10_unchanged() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z"], kernel_shape=[3, 3])
    proto = _pad_then(pool, 10, [0, 0, 1, 1, 0, 0, 1, 1], [1, 2, 5, 6])
    assert_unchanged(FoldPadIntoConv(), proto, "Pad value 0.0 is not -inf")


def test_nonzero_value_before_conv_unchanged() -> None:
    proto = _pad_then(_conv(), 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 3, 5, 6], 1.0, _conv_inits())
    assert_unchanged(FoldPadIntoConv(), proto, "Pad value 1.0 is not 0")


def test_reflect_mode_unchanged() -> None:
    proto = _pad_then(
        _conv(), 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 3, 5, 6], None, _conv_inits(), mode="reflect"
    )
    assert_unchanged(FoldPadIntoConv(), proto, "mode is 'reflect'")


def test_channel_pad_unchanged() -> None:
    inits = {"w": _f32(3, 3, 3, 3), "b": _f32(3)}
    proto = _pad_then(_conv(), 13, [0, 1, 0, 0, 0, 0, 0, 0], [1, 3, 3, 4], None, inits)
    assert_unchanged(FoldPadIntoConv(), proto, "pads the batch or channel axis")


def test_negative_pads_unchanged() -> None:
    proto = _pad_then(_conv(), 13, [0, 0, -1, 0, 0, 0, 0, 0], [1, 3, 2, 4], None, _conv_inits())
    assert_unchanged(FoldPadIntoConv(), proto, "negative pads")


def test_non_constant_pads_unchanged() -> None:
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]), _conv()]
    proto = make_model(
        nodes,
        [("x", FLOAT, X), ("pads", INT64, [8])],
        [("z", FLOAT, [1, 3, None, None])],
        _conv_inits(),
    )
    assert_unchanged(FoldPadIntoConv(), proto, "'pads' is not a constant")


def test_auto_pad_unchanged() -> None:
    proto = _pad_then(
        _conv(auto_pad="SAME_UPPER"),
        13,
        [0, 0, 1, 1, 0, 0, 1, 1],
        [1, 3, 7, 8],
        None,
        _conv_inits(),
    )
    assert_unchanged(FoldPadIntoConv(), proto, "auto_pad=SAME_UPPER")


def test_pad_with_two_consumers_unchanged() -> None:
    proto = _pad_then(_conv(), 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 3, 5, 6], None, _conv_inits())
    proto.graph.node.append(helper.make_node("Relu", ["p"], ["r"]))
    proto.graph.output.append(helper.make_tensor_value_info("r", FLOAT, [1, 2, 7, 8]))
    assert_unchanged(FoldPadIntoConv(), proto, "output has other consumers")


def test_average_pool_excluding_own_pads_unchanged() -> None:
    pool = helper.make_node("AveragePool", ["p"], ["z"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    proto = _pad_then(pool, 13, [0, 0, 1, 1, 0, 0, 1, 1], [1, 2, 7, 8])
    assert_unchanged(FoldPadIntoConv(), proto, "count_include_pad=0")


def test_pool_ceil_mode_unchanged() -> None:
    pool = helper.make_node(
        "AveragePool", ["p"], ["z"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1
    )
    proto = _pad_then(pool, 13, [0, 0, 1, 1, 0, 0, 0, 0], [1, 2, 3, 4])
    assert_unchanged(FoldPadIntoConv(), proto, "ceil_mode=1")


def test_pool_pads_reaching_kernel_unchanged() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z"], kernel_shape=[2, 2])
    proto = _pad_then(pool, 13, [0, 0, 2, 0, 0, 0, 0, 0], [1, 2, 6, 5], -np.inf)
    assert_unchanged(FoldPadIntoConv(), proto, "reach the kernel size")


def test_max_pool_indices_used_unchanged() -> None:
    pool = helper.make_node("MaxPool", ["p"], ["z", "idx"], kernel_shape=[2, 2])
    proto = _pad_then(pool, 13, [0, 0, 1, 0, 0, 0, 0, 1], [1, 2, 5, 6], -np.inf)
    proto.graph.output.append(helper.make_tensor_value_info("idx", INT64, [1, 2, 5, 6]))
    assert_unchanged(FoldPadIntoConv(), proto, "Indices output 'idx' is used")
