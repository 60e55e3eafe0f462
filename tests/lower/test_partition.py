"""Partitioning into fusion groups: epilogues, elementwise chains, singles, static shapes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from optimizer.errors import UnsupportedModelError
from optimizer.lower import PartitionOptions, describe_partition, partition
from tests.helpers import FLOAT, make_model
from tests.lower.util import to_model

RNG = np.random.default_rng(0)
X = ("x", FLOAT, [1, 4, 8, 8])


def w(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def conv(out: str = "c", bias: bool = True, x: str = "x") -> helper.NodeProto:
    inputs = [x, "W", "B"] if bias else [x, "W"]
    return helper.make_node("Conv", inputs, [out], name=f"conv_{out}", pads=[1, 1, 1, 1])


CONV_W = {"W": w(4, 4, 3, 3), "B": w(4)}


def groups_of(proto, options=None):
    model = to_model(proto)
    groups = partition(model, options)
    assert sorted(id(n) for g in groups for n in g.nodes) == sorted(
        id(n) for n in model.graph.nodes
    )
    return groups


def patterns(groups) -> list[str]:
    return [g.pattern for g in groups]


def test_conv_bias_relu_fuses_into_one_group() -> None:
    proto = make_model(
        [conv(), helper.make_node("Relu", ["c"], ["y"], name="relu")],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    (group,) = groups_of(proto)
    assert group.pattern == "conv+bias+relu"
    assert group.kind == "epilogue"
    assert [n.op for n in group.nodes] == ["Conv", "Relu"]
    assert [v.name for v in group.inputs] == ["x", "W", "B"]
    assert [v.name for v in group.outputs] == ["y"]
    assert group.epilogue.activation == "relu" and group.epilogue.residual is None
    text = group.describe()
    assert "conv+bias+relu" in text and "Conv 'conv_c'" in text and "W:const[4x4x3x3]" in text


def test_conv_with_two_consumers_is_not_fused() -> None:
    proto = make_model(
        [
            conv(),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
            helper.make_node("Add", ["r", "s"], ["y"], name="add"),
        ],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    groups = groups_of(proto)
    # relu and sigmoid both read the conv output, so neither joins the conv's epilogue; they
    # fuse with the add into one elementwise loop that reads the conv output twice.
    assert patterns(groups) == ["conv+bias", "relu+sigmoid+add"]
    assert len(groups[0].nodes) == 1
    assert [v.name for v in groups[1].inputs] == ["c"]


def test_conv_output_that_is_a_graph_output_is_not_fused() -> None:
    proto = make_model(
        [conv(), helper.make_node("Relu", ["c"], ["y"], name="relu")],
        [X],
        [("c", FLOAT, [1, 4, 8, 8]), ("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    assert patterns(groups_of(proto)) == ["conv+bias", "relu"]


def test_bias_residual_and_activation_in_order() -> None:
    proto = make_model(
        [
            conv(bias=False),
            helper.make_node("Add", ["bias", "c"], ["b"], name="bias_add"),
            helper.make_node("Add", ["b", "x"], ["a"], name="residual"),
            helper.make_node("Clip", ["a", "lo", "hi"], ["y"], name="relu6"),
        ],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        {"W": w(4, 4, 3, 3), "bias": w(4, 1, 1), "lo": np.float32(0), "hi": np.float32(6)},
    )
    (group,) = groups_of(proto)
    assert group.pattern == "conv+bias+add+clip"
    assert group.epilogue.bias.name == "bias" and group.epilogue.residual.name == "x"
    # anchor inputs (the conv's own bias slot omitted), bias, residual, clip bounds
    assert [v and v.name for v in group.inputs] == ["x", "W", None, "bias", "x", "lo", "hi"]


def test_bias_varying_along_space_is_not_a_bias() -> None:
    proto = make_model(
        [conv(bias=False), helper.make_node("Add", ["c", "k"], ["y"], name="add")],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        {"W": w(4, 4, 3, 3), "k": w(1, 1, 8, 8)},
    )
    assert patterns(groups_of(proto)) == ["conv", "add"]


def test_clip_with_computed_bounds_is_not_an_epilogue() -> None:
    proto = make_model(
        [conv(), helper.make_node("Clip", ["c", "lo"], ["y"], name="clip")],
        [X, ("lo", FLOAT, [])],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    assert patterns(groups_of(proto)) == ["conv+bias", "clip"]


def test_silu_epilogue() -> None:
    proto = make_model(
        [
            conv(),
            helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
            helper.make_node("Mul", ["s", "c"], ["y"], name="mul"),
        ],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    (group,) = groups_of(proto)
    assert group.pattern == "conv+bias+silu"
    assert [n.name for n in group.epilogue.activation_nodes] == ["sig", "mul"]


def test_hardswish_epilogue_decomposed() -> None:
    """HardSwish as exported below opset 14: x * HardSigmoid(x; 1/6, 0.5)."""

    def model(alpha: float):
        return make_model(
            [
                conv(),
                helper.make_node("HardSigmoid", ["c"], ["s"], name="hs", alpha=alpha, beta=0.5),
                helper.make_node("Mul", ["c", "s"], ["y"], name="mul"),
            ],
            [X],
            [("y", FLOAT, [1, 4, 8, 8])],
            CONV_W,
            opset=13,
        )

    (group,) = groups_of(model(1 / 6))
    assert group.pattern == "conv+bias+hardswish"
    assert [n.name for n in group.epilogue.activation_nodes] == ["hs", "mul"]
    # another slope is no HardSwish: the conv stays alone
    assert patterns(groups_of(model(0.2)))[0] == "conv+bias"


def test_matmul_bias_gelu() -> None:
    proto = make_model(
        [
            helper.make_node("MatMul", ["t", "M"], ["m"], name="mm"),
            helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
            helper.make_node("Gelu", ["a"], ["y"], name="gelu"),
        ],
        [("t", FLOAT, [2, 5, 8])],
        [("y", FLOAT, [2, 5, 6])],
        {"M": w(8, 6), "b": w(6)},
        opset=20,
    )
    (group,) = groups_of(proto)
    assert group.pattern == "matmul+bias+gelu"


def test_epilogue_respects_options() -> None:
    proto = make_model(
        [conv(), helper.make_node("Relu", ["c"], ["y"], name="relu")],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    only_sigmoid = PartitionOptions(activations=frozenset({"sigmoid"}))
    assert patterns(groups_of(proto, only_sigmoid)) == ["conv+bias", "relu"]
    none = PartitionOptions(epilogues=False, elementwise=False)
    assert patterns(groups_of(proto, none)) == ["conv", "relu"]


def test_elementwise_chain_fuses() -> None:
    proto = make_model(
        [
            helper.make_node("Sub", ["x", "k1"], ["a"], name="sub"),
            helper.make_node("Mul", ["a", "k2"], ["b"], name="mul"),
            helper.make_node("Relu", ["b"], ["c"], name="relu"),
            helper.make_node("Add", ["c", "z"], ["y"], name="add"),
        ],
        [X, ("z", FLOAT, [1, 4, 8, 8])],
        [("y", FLOAT, [1, 4, 8, 8])],
        {"k1": w(4, 1, 1), "k2": np.float32(2)},
    )
    (group,) = groups_of(proto)
    assert group.kind == "elementwise"
    assert group.pattern == "sub+mul+relu+add"
    assert [v.name for v in group.inputs] == ["x", "k1", "k2", "z"]
    assert [v.name for v in group.outputs] == ["y"]


def test_elementwise_fan_out_inside_the_group() -> None:
    proto = make_model(
        [
            helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
            helper.make_node("Mul", ["x", "s"], ["y"], name="mul"),
        ],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
    )
    (group,) = groups_of(proto)
    assert group.pattern == "sigmoid+mul" and [v.name for v in group.inputs] == ["x"]


def test_elementwise_value_read_outside_stays_materialized() -> None:
    proto = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Exp", ["r"], ["e"], name="exp"),
            helper.make_node("Neg", ["e"], ["y"], name="neg"),
            helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2]),
        ],
        [X],
        [("y", FLOAT, [1, 4, 8, 8]), ("p", FLOAT, [1, 4, 7, 7])],
    )
    assert sorted(patterns(groups_of(proto))) == ["exp+neg", "maxpool", "relu"]


def test_elementwise_shape_change_splits_the_chain() -> None:
    # a per-channel computation broadcast into the big tensor: two loops, two groups
    proto = make_model(
        [
            helper.make_node("Sigmoid", ["g"], ["s"], name="gate"),
            helper.make_node("Mul", ["s", "k"], ["t"], name="scale"),
            helper.make_node("Mul", ["x", "t"], ["y"], name="apply"),
            helper.make_node("Relu", ["y"], ["out"], name="relu"),
        ],
        [X, ("g", FLOAT, [1, 4, 1, 1])],
        [("out", FLOAT, [1, 4, 8, 8])],
        {"k": np.float32(3)},
    )
    assert patterns(groups_of(proto)) == ["sigmoid+mul", "mul+relu"]


def test_describe_partition_lists_every_group() -> None:
    proto = make_model(
        [conv(), helper.make_node("Relu", ["c"], ["y"], name="relu")],
        [X],
        [("y", FLOAT, [1, 4, 8, 8])],
        CONV_W,
    )
    text = describe_partition(groups_of(proto))
    assert text.splitlines()[0].startswith("1 groups (2 nodes fused)")
    assert "[0] conv+bias+relu" in text


def test_symbolic_input_dimension_names_input_and_flag() -> None:
    proto = make_model(
        [helper.make_node("Relu", ["images"], ["y"])],
        [("images", FLOAT, ["batch", 3, 8, 8])],
        [("y", FLOAT, ["batch", 3, 8, 8])],
    )
    with pytest.raises(UnsupportedModelError) as err:
        partition(to_model(proto))
    message = str(err.value)
    assert "input 'images'" in message and "'batch'" in message
    assert "--input-shape images:" in message


def test_data_dependent_shape_names_the_node() -> None:
    proto = make_model(
        [helper.make_node("NonZero", ["x"], ["nz"], name="find")],
        [X],
        [("nz", 7, [4, "n"])],
    )
    with pytest.raises(UnsupportedModelError, match="output of NonZero node 'find'"):
        partition(to_model(proto))
