from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer import ir
from optimizer.passes.base import PassContext
from optimizer.passes.recognize_layer_norm import RecognizeLayerNorm
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_rewrites,
    assert_unchanged,
    make_model,
    run_pass,
)

N = helper.make_node
SHAPE = [2, 3, 8]
STAT = {"LayerNormalization": 1}
RNG = np.random.default_rng(0)


def reduce_mean(opset: int, inp: str, out: str, axes: list[int], key: str, consts: dict):
    if opset < 18:
        return N("ReduceMean", [inp], [out], axes=axes)
    consts[key] = np.asarray(axes, np.int64)
    return N("ReduceMean", [inp, key], [out])


def ln_model(
    opset: int = 17,
    shape: list = SHAPE,
    axes: list[int] | None = None,
    square: str = "Pow",
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    eps: float | None = 1e-5,
    two: float = 2.0,
    extra_outputs: tuple[tuple[str, list], ...] = (),
):
    """torch's legacy layer_norm export; ``eps=None`` makes epsilon a graph input."""
    axes = axes if axes is not None else [-1]
    consts: dict = {}
    nodes = [
        reduce_mean(opset, "x", "mean", axes, "axes_m", consts),
        N("Sub", ["x", "mean"], ["d"]),
    ]
    if square == "Pow":
        nodes.append(N("Pow", ["d", "two"], ["sq"]))
        consts["two"] = np.float32(two)
    else:
        nodes.append(N("Mul", ["d", "d"], ["sq"]))
    nodes += [
        reduce_mean(opset, "sq", "var", axes, "axes_v", consts),
        N("Add", ["var", "eps"], ["ve"]),
        N("Sqrt", ["ve"], ["std"]),
        N("Div", ["d", "std"], ["n"]),
    ]
    last = "n"
    if gamma is not None:
        nodes.append(N("Mul", [last, "gamma"], ["scaled"]))
        consts["gamma"], last = gamma, "scaled"
    if beta is not None:
        nodes.append(N("Add", [last, "beta"], ["shifted"]))
        consts["beta"], last = beta, "shifted"
    nodes.append(N("Identity", [last], ["y"]))
    inputs = [("x", FLOAT, shape)]
    if eps is None:
        inputs.append(("eps", FLOAT, []))
    else:
        consts["eps"] = np.float32(eps)
    outputs = [("y", FLOAT, shape), *[(n, FLOAT, s) for n, s in extra_outputs]]
    return make_model(nodes, inputs, outputs, consts, opset=opset)


def ln_node(model: ir.Model) -> ir.Node:
    return next(n for n in model.graph.nodes if n.op == "LayerNormalization")


@pytest.mark.parametrize("opset", [17, 18, 20])
@pytest.mark.parametrize("square", ["Pow", "Mul"])
def test_affine_layer_norm(opset, square):
    gamma = RNG.standard_normal([8]).astype(np.float32)
    beta = RNG.standard_normal([8]).astype(np.float32)
    proto = ln_model(opset, square=square, gamma=gamma, beta=beta, eps=1e-5)
    model = assert_rewrites(RecognizeLayerNorm(), proto, ["LayerNormalization", "Identity"], STAT)
    node = ln_node(model)
    assert node.attrs["axis"] == -1
    assert node.attrs["epsilon"] == pytest.approx(1e-5)
    np.testing.assert_array_equal(node.inputs[1].values, gamma)
    np.testing.assert_array_equal(node.inputs[2].values, beta)


def test_plain_layer_norm_gets_unit_scale_and_no_bias():
    model = assert_rewrites(
        RecognizeLayerNorm(), ln_model(18), ["LayerNormalization", "Identity"], STAT
    )
    node = ln_node(model)
    assert len(node.inputs) == 2
    np.testing.assert_array_equal(node.inputs[1].values, np.ones([8], np.float32))


def test_bias_only():
    beta = RNG.standard_normal([8]).astype(np.float32)
    model = assert_rewrites(
        RecognizeLayerNorm(), ln_model(17, beta=beta), ["LayerNormalization", "Identity"], STAT
    )
    np.testing.assert_array_equal(ln_node(model).inputs[2].values, beta)


def test_last_two_dims_with_broadcast_affine():
    shape = [2, 4, 3, 5]
    gamma = RNG.standard_normal([1, 5]).astype(np.float32)  # broadcast over dim -2
    beta = RNG.standard_normal([3, 1]).astype(np.float32)
    proto = ln_model(18, shape=shape, axes=[2, 3], gamma=gamma, beta=beta)
    model = assert_rewrites(RecognizeLayerNorm(), proto, ["LayerNormalization", "Identity"], STAT)
    node = ln_node(model)
    assert node.attrs["axis"] == -2
    assert node.inputs[1].values.shape == (3, 5) and node.inputs[2].values.shape == (3, 5)


def test_graph_output_is_the_normalized_value():
    gamma = RNG.standard_normal([8]).astype(np.float32)
    proto = ln_model(17, gamma=gamma)
    # Drop the trailing Identity: the Mul output itself is the graph output.
    proto.graph.node.pop()
    proto.graph.node[-1].output[0] = "y"
    onnx.checker.check_model(proto, full_check=True)
    model = assert_rewrites(RecognizeLayerNorm(), proto, ["LayerNormalization"], STAT)
    assert model.graph.outputs[0].name == "y"


def test_affine_with_per_row_gamma_is_left_outside():
    gamma = RNG.standard_normal([3, 1]).astype(np.float32)  # varies along a batch dim
    model = assert_rewrites(
        RecognizeLayerNorm(),
        ln_model(17, gamma=gamma),
        ["LayerNormalization", "Mul", "Identity"],
        STAT,
    )
    assert len(ln_node(model).inputs) == 2


def test_opset13_unchanged_with_reason():
    proto = ln_model(13)
    assert_unchanged(RecognizeLayerNorm(), proto)
    model = ir.Model.from_proto(proto)
    ir.infer_shapes(model)
    ctx = PassContext(explain={"LayerNormalization"})
    RecognizeLayerNorm()(model, ctx)
    assert any("LayerNormalization needs opset >= 17 (model has 13)" in e for e in ctx.explanations)


def test_axis_not_last_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, axes=[1]))


def test_different_axes_unchanged():
    proto = ln_model(17, shape=[2, 3, 8], axes=[-1])
    # The variance reduces over [-2, -1] while the mean reduces over [-1].
    proto.graph.node[3].attribute[0].ints[:] = [-2, -1]
    assert_unchanged(RecognizeLayerNorm(), proto)


def test_eps_not_constant_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, eps=None))


def test_exponent_not_two_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, two=3.0))


def test_centered_value_with_extra_consumer_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, extra_outputs=(("d", SHAPE),)))


def test_variance_is_graph_output_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, extra_outputs=(("var", [2, 3, 1]),)))


def test_float64_unchanged():
    proto = ln_model(17)
    onnx_double = onnx.TensorProto.DOUBLE
    for vi in [*proto.graph.input, *proto.graph.output]:
        vi.type.tensor_type.elem_type = onnx_double
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            init.CopyFrom(
                onnx.numpy_helper.from_array(
                    onnx.numpy_helper.to_array(init).astype(np.float64), init.name
                )
            )
    onnx.checker.check_model(proto, full_check=True)
    assert_unchanged(RecognizeLayerNorm(), proto)


def test_symbolic_normalized_dim_unchanged():
    assert_unchanged(RecognizeLayerNorm(), ln_model(17, shape=[2, 3, "C"]))


def test_inside_if_branch():
    inner = ln_model(17, beta=np.ones([8], np.float32))
    then_graph = helper.make_graph(
        list(inner.graph.node),
        "then",
        [],
        [helper.make_tensor_value_info("y", FLOAT, SHAPE)],
        list(inner.graph.initializer),
    )
    else_graph = helper.make_graph(
        [N("Neg", ["x"], ["e"])], "else", [], [helper.make_tensor_value_info("e", FLOAT, SHAPE)]
    )
    proto = make_model(
        [N("If", ["c"], ["out"], then_branch=then_graph, else_branch=else_graph)],
        [("x", FLOAT, SHAPE), ("c", onnx.TensorProto.BOOL, [])],
        [("out", FLOAT, SHAPE)],
    )
    model, res = run_pass(RecognizeLayerNorm(), proto)
    assert dict(res.stats) == STAT
    branch = model.graph.nodes[0].attrs["then_branch"]
    assert [n.op for n in branch.nodes] == ["LayerNormalization", "Identity"]
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    for c in (True, False):
        assert_equivalent(proto, model, {"x": x, "c": np.array(c)})
