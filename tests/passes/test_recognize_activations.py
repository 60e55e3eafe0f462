from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer.passes.recognize_activations import RecognizeActivations
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
F32 = np.float32


def f(v: float) -> np.ndarray:
    return np.asarray(v, dtype=F32)


def model(nodes, consts, opset, outputs=(("y", SHAPE),)):
    return make_model(
        nodes,
        [("x", FLOAT, SHAPE)],
        [(name, FLOAT, shape) for name, shape in outputs],
        {k: (f(v) if isinstance(v, (int, float)) else v) for k, v in consts.items()},
        opset=opset,
    )


def relu6_plus3(opset: int, out: str = "c", lo: float = 0.0, hi: float = 6.0):
    """Add(x, 3) -> Clip(0, 6) in the opset's Clip signature."""
    nodes = [N("Add", ["x", "three"], ["a"])]
    consts: dict = {"three": 3.0}
    if opset < 11:
        nodes.append(N("Clip", ["a"], [out], min=lo, max=hi))
    else:
        nodes.append(N("Clip", ["a", "lo", "hi"], [out]))
        consts.update(lo=lo, hi=hi)
    return nodes, consts


# -- HardSigmoid --------------------------------------------------------------------------------


def test_hard_sigmoid_from_affine_clip():
    proto = model(
        [
            N("Mul", ["x", "a"], ["m"]),
            N("Add", ["m", "b"], ["s"]),
            N("Clip", ["s", "zero", "one"], ["y"]),
        ],
        {"a": 0.2, "b": 0.5, "zero": 0.0, "one": 1.0},
        13,
    )
    m = assert_rewrites(RecognizeActivations(), proto, ["HardSigmoid"], {"HardSigmoid": 1})
    attrs = m.graph.nodes[0].attrs
    assert attrs["alpha"] == pytest.approx(0.2) and attrs["beta"] == pytest.approx(0.5)


@pytest.mark.parametrize("opset", [10, 13])
@pytest.mark.parametrize("op_type, k", [("Div", 6.0), ("Mul", 1.0 / 6.0)])
def test_hard_sigmoid_from_relu6(opset, op_type, k):
    nodes, consts = relu6_plus3(opset)
    proto = model([*nodes, N(op_type, ["c", "k"], ["y"])], {**consts, "k": k}, opset)
    m = assert_rewrites(RecognizeActivations(), proto, ["HardSigmoid"], {"HardSigmoid": 1})
    attrs = m.graph.nodes[0].attrs
    assert attrs["alpha"] == pytest.approx(1 / 6) and attrs["beta"] == pytest.approx(0.5)


def test_hard_sigmoid_wrong_divisor_unchanged():
    nodes, consts = relu6_plus3(13)
    assert_unchanged(
        RecognizeActivations(),
        model([*nodes, N("Div", ["c", "k"], ["y"])], {**consts, "k": 5.0}, 13),
    )


def test_hard_sigmoid_wrong_clip_bounds_unchanged():
    nodes, consts = relu6_plus3(13, lo=-1.0)
    assert_unchanged(
        RecognizeActivations(),
        model([*nodes, N("Div", ["c", "k"], ["y"])], {**consts, "k": 6.0}, 13),
    )


def test_hard_sigmoid_clip_output_also_used_unchanged():
    nodes, consts = relu6_plus3(13)
    proto = model(
        [*nodes, N("Div", ["c", "k"], ["y"])],
        {**consts, "k": 6.0},
        13,
        outputs=[("y", SHAPE), ("c", SHAPE)],
    )
    assert_unchanged(RecognizeActivations(), proto)


def test_hard_sigmoid_non_scalar_constant_unchanged():
    nodes, consts = relu6_plus3(13)
    consts["three"] = np.full([8], 3.0, F32)
    assert_unchanged(
        RecognizeActivations(),
        model([*nodes, N("Div", ["c", "k"], ["y"])], {**consts, "k": 6.0}, 13),
    )


# -- HardSwish ----------------------------------------------------------------------------------


def test_hard_swish_from_torch_opset13_export_upgraded():
    # torch's legacy exporter at opset 13: HardSigmoid(alpha=1/6 rounded) then Mul.
    nodes = [
        N("HardSigmoid", ["x"], ["h"], alpha=0.1666667, beta=0.5),
        N("Mul", ["x", "h"], ["y"]),
    ]
    assert_rewrites(RecognizeActivations(), model(nodes, {}, 14), ["HardSwish"], {"HardSwish": 1})


def test_hard_swish_below_opset14_unchanged_with_reason():
    nodes = [
        N("HardSigmoid", ["x"], ["h"], alpha=0.1666667, beta=0.5),
        N("Mul", ["x", "h"], ["y"]),
    ]
    proto = model(nodes, {}, 13)
    assert_unchanged(RecognizeActivations(), proto, "HardSwish needs opset >= 14 (model has 13)")


def test_hard_swish_wrong_alpha_unchanged():
    nodes = [N("HardSigmoid", ["x"], ["h"], alpha=0.2, beta=0.5), N("Mul", ["x", "h"], ["y"])]
    assert_unchanged(RecognizeActivations(), model(nodes, {}, 14))


def test_hard_swish_other_multiplicand_unchanged():
    nodes = [
        N("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
        N("Relu", ["x"], ["r"]),
        N("Mul", ["r", "h"], ["y"]),
    ]
    assert_unchanged(RecognizeActivations(), model(nodes, {}, 14))


@pytest.mark.parametrize("op_type, k", [("Div", 6.0), ("Mul", 1.0 / 6.0)])
def test_hard_swish_x_times_clip_then_scaled(op_type, k):
    nodes, consts = relu6_plus3(14)
    nodes += [N("Mul", ["x", "c"], ["p"]), N(op_type, ["p", "k"], ["y"])]
    assert_rewrites(
        RecognizeActivations(),
        model(nodes, {**consts, "k": k}, 14),
        ["HardSwish"],
        {"HardSwish": 1},
    )


@pytest.mark.parametrize("op_type, k", [("Div", 6.0), ("Mul", 1.0 / 6.0)])
def test_hard_swish_x_times_scaled_clip(op_type, k):
    nodes, consts = relu6_plus3(14)
    nodes += [N(op_type, ["c", "k"], ["g"]), N("Mul", ["g", "x"], ["y"])]
    assert_rewrites(
        RecognizeActivations(),
        model(nodes, {**consts, "k": k}, 14),
        ["HardSwish"],
        {"HardSwish": 1},
    )


def test_hard_swish_form_at_opset13_gives_hard_sigmoid():
    nodes, consts = relu6_plus3(13)
    nodes += [N("Div", ["c", "k"], ["g"]), N("Mul", ["x", "g"], ["y"])]
    assert_rewrites(
        RecognizeActivations(),
        model(nodes, {**consts, "k": 6.0}, 13),
        ["HardSigmoid", "Mul"],
        {"HardSigmoid": 1},
    )


# -- Gelu ---------------------------------------------------------------------------------------


def erf_gate(div: bool, one: float = 1.0, s: float | None = None) -> tuple[list, dict]:
    """g = Erf(x / sqrt 2) + 1 (or x * 0.7071)."""
    if s is None:
        s = math.sqrt(2.0) if div else 1 / math.sqrt(2.0)
    nodes = [
        N("Div" if div else "Mul", ["x", "s"], ["e_in"]),
        N("Erf", ["e_in"], ["e"]),
        N("Add", ["e", "one"], ["g"]),
    ]
    return nodes, {"s": s, "one": one}


def tanh_gate(pow_cube: bool, kappa: float = 0.044715) -> tuple[list, dict]:
    """g = 1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)), as torch (x*x*x) or HF (Pow) write it."""
    if pow_cube:
        cube = [N("Pow", ["x", "three"], ["cube"])]
    else:
        cube = [N("Mul", ["x", "x"], ["sq"]), N("Mul", ["x", "sq"], ["cube"])]
    nodes = [
        *cube,
        N("Mul", ["kappa", "cube"], ["kc"]),
        N("Add", ["x", "kc"], ["inner"]),
        N("Mul", ["beta", "inner"], ["t_in"]),
        N("Tanh", ["t_in"], ["t"]),
        N("Add", ["one", "t"], ["g"]),
    ]
    consts = {"three": 3.0, "kappa": kappa, "beta": math.sqrt(2 / math.pi), "one": 1.0}
    return nodes, consts


def outer(order: int) -> list:
    """0.5 * x * g in three association orders."""
    return [
        [N("Mul", ["x", "half"], ["hx"]), N("Mul", ["hx", "g"], ["y"])],
        [N("Mul", ["g", "half"], ["hg"]), N("Mul", ["x", "hg"], ["y"])],
        [N("Mul", ["x", "g"], ["xg"]), N("Mul", ["half", "xg"], ["y"])],
    ][order]


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("div", [True, False])
def test_gelu_erf(order, div):
    nodes, consts = erf_gate(div)
    proto = model([*nodes, *outer(order)], {**consts, "half": 0.5}, 20)
    m = assert_rewrites(RecognizeActivations(), proto, ["Gelu"], {"Gelu": 1})
    assert m.graph.nodes[0].attrs.get("approximate", "none") == "none"


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("pow_cube", [True, False])
def test_gelu_tanh(order, pow_cube):
    nodes, consts = tanh_gate(pow_cube)
    proto = model([*nodes, *outer(order)], {**consts, "half": 0.5}, 20)
    m = assert_rewrites(RecognizeActivations(), proto, ["Gelu"], {"Gelu(tanh)": 1})
    assert m.graph.nodes[0].attrs["approximate"] == "tanh"


def test_gelu_float16_constants_within_tolerance():
    nodes, consts = erf_gate(True)
    consts = {k: np.asarray(v, np.float16) for k, v in {**consts, "half": 0.5}.items()}
    proto = make_model(
        [*nodes, *outer(2)],
        [("x", onnx.TensorProto.FLOAT16, SHAPE)],
        [("y", onnx.TensorProto.FLOAT16, SHAPE)],
        consts,
        opset=20,
    )
    assert_rewrites(RecognizeActivations(), proto, ["Gelu"], {"Gelu": 1}, atol=2e-3, rtol=2e-3)


def test_gelu_below_opset20_unchanged_with_reason():
    nodes, consts = erf_gate(True)
    proto = model([*nodes, *outer(0)], {**consts, "half": 0.5}, 18)
    want = "Gelu needs opset >= 20 (model has 18); use --target-opset 20"
    assert_unchanged(RecognizeActivations(), proto, want)


def test_gelu_wrong_half_unchanged():
    nodes, consts = erf_gate(True)
    assert_unchanged(
        RecognizeActivations(), model([*nodes, *outer(0)], {**consts, "half": 0.4}, 20)
    )


def test_gelu_wrong_sqrt2_unchanged():
    nodes, consts = erf_gate(True, s=1.5)
    assert_unchanged(
        RecognizeActivations(), model([*nodes, *outer(1)], {**consts, "half": 0.5}, 20)
    )


def test_gelu_tanh_wrong_kappa_unchanged():
    nodes, consts = tanh_gate(True, kappa=0.05)
    assert_unchanged(
        RecognizeActivations(), model([*nodes, *outer(0)], {**consts, "half": 0.5}, 20)
    )


def test_gelu_intermediate_with_extra_consumer_unchanged():
    nodes, consts = erf_gate(True)
    proto = model(
        [*nodes, *outer(2)], {**consts, "half": 0.5}, 20, outputs=[("y", SHAPE), ("e", SHAPE)]
    )
    assert_unchanged(RecognizeActivations(), proto)


def test_gelu_inside_loop_body():
    nodes, consts = erf_gate(True)
    body = helper.make_graph(
        [*nodes, *outer(0), N("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", onnx.TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
            helper.make_tensor_value_info("y", FLOAT, SHAPE),
        ],
        [onnx.numpy_helper.from_array(f(v), k) for k, v in {**consts, "half": 0.5}.items()],
    )
    proto = make_model(
        [N("Loop", ["n", ""], ["ys"], body=body)],
        [("x", FLOAT, SHAPE), ("n", onnx.TensorProto.INT64, [])],
        [("ys", FLOAT, [None, *SHAPE])],
        opset=20,
    )
    m, res = run_pass(RecognizeActivations(), proto)
    assert dict(res.stats) == {"Gelu": 1}
    loop_body = m.graph.nodes[0].attrs["body"]
    assert [n.op for n in loop_body.nodes] == ["Identity", "Gelu"] or [
        n.op for n in loop_body.nodes
    ] == ["Gelu", "Identity"]
    feeds = {"x": np.random.default_rng(0).standard_normal(SHAPE).astype(F32), "n": np.array(2)}
    assert_equivalent(proto, m, feeds)
