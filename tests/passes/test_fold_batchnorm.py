from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from optimizer.passes.fold_batchnorm import FoldBatchnorm
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

RNG = np.random.default_rng(7)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _bn_params(c: int) -> dict[str, np.ndarray]:
    return {
        "gamma": _f32(c),
        "beta": _f32(c),
        "mean": _f32(c),
        "var": RNG.uniform(0.5, 2.0, c).astype(np.float32),
    }


def _bn(inp: str = "y", out: str = "z", **attrs) -> onnx.NodeProto:
    return helper.make_node(
        "BatchNormalization", [inp, "gamma", "beta", "mean", "var"], [out], epsilon=1e-3, **attrs
    )


def _conv_bn(group: int = 1, bias: bool = True, **kw) -> onnx.ModelProto:
    inits = {"w": _f32(4, 4 // group, 3, 3), **_bn_params(4)}
    conv_in = ["x", "w"]
    if bias:
        inits["b"] = _f32(4)
        conv_in.append("b")
    nodes = [helper.make_node("Conv", conv_in, ["y"], group=group, pads=[1, 1, 1, 1]), _bn()]
    return make_model(
        nodes, [("x", FLOAT, [1, 4, 5, 5])], [("z", FLOAT, [1, 4, 5, 5])], inits, **kw
    )


CONV_STATS = {"Conv+BatchNormalization folded": 1}


def test_conv_bn_with_bias() -> None:
    assert_rewrites(FoldBatchnorm(), _conv_bn(), ["Conv"], CONV_STATS)


def test_conv_bn_without_bias_creates_bias() -> None:
    assert_rewrites(FoldBatchnorm(), _conv_bn(bias=False), ["Conv"], CONV_STATS)


def test_grouped_conv_bn() -> None:
    assert_rewrites(FoldBatchnorm(), _conv_bn(group=2), ["Conv"], CONV_STATS)


def test_depthwise_conv_bn_opset9() -> None:
    assert_rewrites(FoldBatchnorm(), _conv_bn(group=4, opset=9), ["Conv"], CONV_STATS)


def test_gemm_bn_float64() -> None:
    inits = {k: v.astype(np.float64) for k, v in _bn_params(2).items()}
    inits["w"] = _f32(3, 2).astype(np.float64)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"]), _bn()]
    f64 = onnx.TensorProto.DOUBLE
    proto = make_model(nodes, [("x", f64, [4, 3])], [("z", f64, [4, 2])], inits)
    assert_rewrites(FoldBatchnorm(), proto, ["Gemm"], {"Gemm+BatchNormalization folded": 1})


def _convtranspose_bn(group: int, bias: bool = True) -> onnx.ModelProto:
    c_in, c_out = 4, 6
    inits = {"w": _f32(c_in, c_out // group, 3, 3), **_bn_params(c_out)}
    conv_in = ["x", "w"]
    if bias:
        inits["b"] = _f32(c_out)
        conv_in.append("b")
    nodes = [
        helper.make_node("ConvTranspose", conv_in, ["y"], group=group, strides=[2, 2]),
        _bn(),
    ]
    return make_model(
        nodes, [("x", FLOAT, [2, c_in, 3, 3])], [("z", FLOAT, [2, c_out, 7, 7])], inits
    )


def test_convtranspose_bn() -> None:
    assert_rewrites(
        FoldBatchnorm(),
        _convtranspose_bn(group=1, bias=False),
        ["ConvTranspose"],
        {"ConvTranspose+BatchNormalization folded": 1},
    )


def test_convtranspose_bn_group2() -> None:
    assert_rewrites(
        FoldBatchnorm(),
        _convtranspose_bn(group=2),
        ["ConvTranspose"],
        {"ConvTranspose+BatchNormalization folded": 1},
    )


def _gemm_bn(trans_b: int, with_c: bool = True, **attrs) -> onnx.ModelProto:
    k, n = 5, 3
    inits = {"w": _f32(n, k) if trans_b else _f32(k, n), **_bn_params(n)}
    gemm_in = ["x", "w"]
    if with_c:
        inits["c"] = _f32(n)
        gemm_in.append("c")
    nodes = [helper.make_node("Gemm", gemm_in, ["y"], transB=trans_b, **attrs), _bn()]
    return make_model(nodes, [("x", FLOAT, [4, k])], [("z", FLOAT, [4, n])], inits)


def test_gemm_bn_transb0() -> None:
    assert_rewrites(FoldBatchnorm(), _gemm_bn(0), ["Gemm"], {"Gemm+BatchNormalization folded": 1})


def test_gemm_bn_transb1_alpha_beta() -> None:
    proto = _gemm_bn(1, alpha=0.7, beta=0.3)
    assert_rewrites(FoldBatchnorm(), proto, ["Gemm"], {"Gemm+BatchNormalization folded": 1})


def test_gemm_bn_without_c() -> None:
    assert_rewrites(
        FoldBatchnorm(), _gemm_bn(1, with_c=False), ["Gemm"], {"Gemm+BatchNormalization folded": 1}
    )


def test_gemm_bn_matrix_c() -> None:
    inits = {"w": _f32(5, 3), "c": _f32(4, 3), **_bn_params(3)}
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y"], beta=2.0), _bn()]
    proto = make_model(nodes, [("x", FLOAT, [4, 5])], [("z", FLOAT, [4, 3])], inits)
    assert_rewrites(FoldBatchnorm(), proto, ["Gemm"], {"Gemm+BatchNormalization folded": 1})


def test_followed_by_more_nodes_and_shared_weight() -> None:
    # Two convs share one weight: folding one must not change the other's weight.
    inits = {"w": _f32(4, 4, 1, 1), **_bn_params(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        _bn(),
        helper.make_node("Conv", ["z", "w"], ["u"]),
        helper.make_node("Relu", ["u"], ["out"]),
    ]
    proto = make_model(nodes, [("x", FLOAT, [1, 4, 3, 3])], [("out", FLOAT, [1, 4, 3, 3])], inits)
    assert_rewrites(FoldBatchnorm(), proto, ["Conv", "Conv", "Relu"], CONV_STATS)


def test_inside_if_branch() -> None:
    inits = {"w": _f32(4, 4, 3, 3), **_bn_params(4)}
    then_graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"]), _bn(out="t")],
        "then",
        [],
        [helper.make_tensor_value_info("t", FLOAT, [1, 4, 3, 3])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", FLOAT, [1, 4, 3, 3])],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["z"], then_branch=then_graph, else_branch=else_graph)
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1, 4, 5, 5]), ("cond", onnx.TensorProto.BOOL, [])],
        [("z", FLOAT, [1, 4, 3, 3])],
        inits,
    )
    model, res = run_pass(FoldBatchnorm(), proto)
    assert dict(res.stats) == CONV_STATS
    then_ops = [n.op for n in model.graph.nodes[0].attrs["then_branch"].nodes]
    assert then_ops == ["Conv"]
    for cond in (True, False):
        feeds = {"x": _f32(1, 4, 5, 5), "cond": np.array(cond)}
        assert_equivalent(proto, model, feeds)


# -- negatives ----------------------------------------------------------------------------------


def test_conv_output_with_two_consumers_unchanged() -> None:
    proto = _conv_bn()
    proto.graph.node.append(helper.make_node("Relu", ["y"], ["r"]))
    proto.graph.output.append(helper.make_tensor_value_info("r", FLOAT, [1, 4, 5, 5]))
    assert_unchanged(FoldBatchnorm(), proto, "output has other consumers")


def test_conv_output_is_graph_output_unchanged() -> None:
    proto = _conv_bn()
    proto.graph.output.append(helper.make_tensor_value_info("y", FLOAT, [1, 4, 5, 5]))
    assert_unchanged(FoldBatchnorm(), proto, "output has other consumers")


def test_standalone_bn_unchanged() -> None:
    nodes = [_bn(inp="x")]
    proto = make_model(
        nodes, [("x", FLOAT, [1, 4, 5, 5])], [("z", FLOAT, [1, 4, 5, 5])], _bn_params(4)
    )
    assert_unchanged(FoldBatchnorm(), proto, "is not produced by")


def test_non_constant_mean_unchanged() -> None:
    inits = {"w": _f32(4, 4, 3, 3), **_bn_params(4)}
    del inits["mean"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]), _bn()]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1, 4, 5, 5]), ("mean", FLOAT, [4])],
        [("z", FLOAT, [1, 4, 3, 3])],
        inits,
    )
    assert_unchanged(FoldBatchnorm(), proto, "'mean' is not a constant")


def test_non_constant_weight_unchanged() -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]), _bn()]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1, 4, 5, 5]), ("w", FLOAT, [4, 4, 3, 3])],
        [("z", FLOAT, [1, 4, 3, 3])],
        _bn_params(4),
    )
    assert_unchanged(FoldBatchnorm(), proto, "'w' is not a constant")


def test_training_mode_unchanged() -> None:
    inits = {"w": _f32(4, 4, 3, 3), **_bn_params(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node(
            "BatchNormalization",
            ["y", "gamma", "beta", "mean", "var"],
            ["z", "running_mean", "running_var"],
            training_mode=1,
        ),
    ]
    proto = make_model(
        nodes, [("x", FLOAT, [1, 4, 5, 5])], [("z", FLOAT, [1, 4, 3, 3])], inits, opset=15
    )
    assert_unchanged(FoldBatchnorm(), proto, "training mode")


def test_statistics_output_used_unchanged() -> None:
    inits = {"w": _f32(4, 4, 3, 3), **_bn_params(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"]),
        helper.make_node(
            "BatchNormalization",
            ["y", "gamma", "beta", "mean", "var"],
            ["z", "run_mean", "run_var", "saved_mean", "saved_var"],
        ),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1, 4, 5, 5])],
        [("z", FLOAT, [1, 4, 3, 3]), ("run_mean", FLOAT, [4])],
        inits,
        opset=9,
    )
    assert_unchanged(FoldBatchnorm(), proto, "(statistics) is used")


def test_non_constant_bias_unchanged() -> None:
    inits = {"w": _f32(4, 4, 3, 3), **_bn_params(4)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"]), _bn()]
    proto = make_model(
        nodes,
        [("x", FLOAT, [1, 4, 5, 5]), ("b", FLOAT, [4])],
        [("z", FLOAT, [1, 4, 3, 3])],
        inits,
    )
    assert_unchanged(FoldBatchnorm(), proto, "'b' is not a constant")
