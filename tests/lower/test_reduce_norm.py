"""Compiled reductions (reduce_f32), decomposed layer norms (one layer_norm_f32 group at any
opset) and Casts to float32 of integer inputs (eltwise_program_f32), against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optimizer.lower import PartitionOptions, bind, bind_reduce, partition
from tests.helpers import FLOAT, make_model
from tests.lower.test_compile_e2e import _check_against_ort, _compile, _rand
from tests.lower.util import to_model

X_SHAPE = [2, 5, 16]


def _layer_norm_model(
    opset: int = 13,
    square: str = "Pow",
    divide: str = "Div",
    affine: str = "scale+bias",
    axes: tuple[int, ...] = (-1,),
    var_axes: tuple[int, ...] | None = None,
    eps_input: bool = False,
    extra: str | None = None,
) -> onnx.ModelProto:
    """x -> decomposed layer norm -> y; ``extra`` adds a reader of an intermediate."""
    rng = np.random.default_rng(3)
    weights: dict[str, np.ndarray] = {"two": np.array(2.0, np.float32)}
    if not eps_input:
        weights["eps"] = np.array(1e-5, np.float32)
    inputs = [("x", FLOAT, X_SHAPE)]
    if eps_input:
        inputs.append(("eps", FLOAT, []))

    def mean(src: str, dst: str, ax: tuple[int, ...], name: str) -> list[onnx.NodeProto]:
        if opset >= 18:
            weights[f"{name}_axes"] = np.array(ax, np.int64)
            return [helper.make_node("ReduceMean", [src, f"{name}_axes"], [dst], name=name)]
        return [helper.make_node("ReduceMean", [src], [dst], axes=list(ax), name=name)]

    nodes = [*mean("x", "m", axes, "mean"), helper.make_node("Sub", ["x", "m"], ["d"], name="sub")]
    if square == "Pow":
        nodes.append(helper.make_node("Pow", ["d", "two"], ["sq"], name="pow"))
    else:
        nodes.append(helper.make_node("Mul", ["d", "d"], ["sq"], name="square"))
    nodes += mean("sq", "v", var_axes or axes, "variance")
    nodes += [
        helper.make_node("Add", ["v", "eps"], ["ve"], name="add_eps"),
        helper.make_node("Sqrt", ["ve"], ["std"], name="sqrt"),
    ]
    if divide == "Div":
        nodes.append(helper.make_node("Div", ["d", "std"], ["n"], name="div"))
    else:
        nodes += [
            helper.make_node("Reciprocal", ["std"], ["rstd"], name="recip"),
            helper.make_node("Mul", ["rstd", "d"], ["n"], name="mul_rstd"),
        ]
    last = "n"
    if "scale" in affine:
        weights["gamma"] = _rand(rng, 16)
        nodes.append(helper.make_node("Mul", [last, "gamma"], ["g"], name="mul_gamma"))
        last = "g"
    if "bias" in affine:
        weights["beta"] = _rand(rng, 1, 16)
        nodes.append(helper.make_node("Add", ["beta", last], ["b"], name="add_beta"))
        last = "b"
    nodes.append(helper.make_node("Relu", [last], ["y"], name="relu"))
    outputs = [("y", FLOAT, X_SHAPE)]
    if extra == "d":
        nodes.append(helper.make_node("Neg", ["d"], ["y2"], name="extra"))
        outputs.append(("y2", FLOAT, X_SHAPE))
    elif extra == "v":
        outputs.append(("v", FLOAT, [2, 5, 1]))
    return make_model(nodes, inputs, outputs, weights, opset=opset)


def _feeds(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    x = _rand(np.random.default_rng(4), *X_SHAPE, scale=3.0) + 1.0
    feeds = {"x": x}
    if any(i.name == "eps" for i in proto.graph.input):
        feeds["eps"] = np.array(1e-3, np.float32)
    return feeds


def _shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    return {
        "x": X_SHAPE,
        **({"eps": []} if any(i.name == "eps" for i in proto.graph.input) else {}),
    }


@pytest.mark.parametrize("square", ["Pow", "Mul"])
@pytest.mark.parametrize("divide", ["Div", "Reciprocal"])
@pytest.mark.parametrize("affine", ["", "scale", "bias", "scale+bias"])
def test_decomposed_layer_norm_is_one_native_step(
    tmp_path: Path, square: str, divide: str, affine: str
) -> None:
    proto = _layer_norm_model(13, square, divide, affine)
    report = _compile(proto, tmp_path / "m", _shapes(proto))
    assert not report.fallbacks, report.fallbacks
    kernels = [r.kernel for r in report.steps]
    assert kernels.count("native.layer_norm_f32") == 1, report.steps
    assert "native.reduce_f32" not in kernels
    _check_against_ort(proto, tmp_path / "m", _feeds(proto))


@pytest.mark.parametrize("opset", [13, 18])
def test_decomposed_layer_norm_over_two_axes(tmp_path: Path, opset: int) -> None:
    proto = _layer_norm_model(opset, axes=(1, 2), affine="")
    report = _compile(proto, tmp_path / "m", _shapes(proto))
    assert not report.fallbacks
    assert [r.kernel for r in report.steps].count("native.layer_norm_f32") == 1, report.steps
    _check_against_ort(proto, tmp_path / "m", _feeds(proto))


@pytest.mark.parametrize(
    "kw",
    [
        {"axes": (1,)},  # not the last axis
        {"axes": (-1,), "var_axes": (1,)},  # the two means disagree
        {"extra": "d"},  # x - mean read outside the norm
        {"extra": "v"},  # the variance is a graph output
        {"eps_input": True},  # epsilon not a constant
    ],
    ids=["wrong-axis", "axes-differ", "extra-consumer", "variance-output", "eps-input"],
)
def test_layer_norm_near_misses_stay_unfused(tmp_path: Path, kw: dict) -> None:
    proto = _layer_norm_model(13, **kw)
    report = _compile(proto, tmp_path / "m", _shapes(proto))
    assert "layer_norm" not in {r.pattern for r in report.steps}, report.steps
    assert "native.layer_norm_f32" not in {r.kernel for r in report.steps}
    assert not report.fallbacks, report.fallbacks  # the pieces are native on their own
    assert "native.reduce_f32" in {r.kernel for r in report.steps}
    _check_against_ort(proto, tmp_path / "m", _feeds(proto))


REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
              "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"]  # fmt: skip


def _reduce_model(op: str, opset: int, axes: list[int] | None, keepdims: int, noop: int = 0):
    shape = [3, 4, 5, 6]
    inputs = ["x"]
    weights = {}
    attrs: dict = {"keepdims": keepdims}
    axes_as_input = opset >= (13 if op == "ReduceSum" else 18)
    if axes is not None:
        if axes_as_input:
            weights["axes"] = np.array(axes, np.int64)
            inputs.append("axes")
        else:
            attrs["axes"] = axes
    if noop:
        attrs["noop_with_empty_axes"] = noop
    node = helper.make_node(op, inputs, ["r"], name="reduce", **attrs)
    # a following elementwise op, so the reduction is not the only step
    nodes = [node, helper.make_node("Neg", ["r"], ["y"], name="neg")]
    if axes is None:
        out = list(shape) if noop else ([1] * len(shape) if keepdims else [])
    else:
        red = {a % len(shape) for a in axes}
        out = [1 if i in red else d for i, d in enumerate(shape) if keepdims or i not in red]
    return make_model(nodes, [("x", FLOAT, shape)], [("y", FLOAT, out)], weights, opset=opset)


def _reduce_input(op: str) -> np.ndarray:
    x = _rand(np.random.default_rng(5), 3, 4, 5, 6)
    if op == "ReduceLogSum":
        return np.abs(x) + 0.1
    if op == "ReduceProd":
        return (1.0 + 0.1 * x).astype(np.float32)
    return x


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize(
    "axes,keepdims,noop",
    [
        ([-1], 1, 0),
        ([1], 0, 0),
        ([0, 2], 1, 0),
        ([2, 3], 1, 0),
        ([1, 3], 0, 0),
        (None, 0, 0),
        (None, 1, 1),
    ],
)
@pytest.mark.parametrize("opset", [13, 18])
def test_reduce_native_matches_ort(
    tmp_path: Path, op: str, axes: list[int] | None, keepdims: int, noop: int, opset: int
) -> None:
    if noop and opset < 18 and op != "ReduceSum":
        pytest.skip("noop_with_empty_axes is an opset-18 attribute (ReduceSum: 13)")
    proto = _reduce_model(op, opset, axes, keepdims, noop)
    report = _compile(proto, tmp_path / "m", {"x": [3, 4, 5, 6]})
    assert not report.fallbacks, report.fallbacks
    if not noop:
        assert "native.reduce_f32" in {r.kernel for r in report.steps}, report.steps
    _check_against_ort(proto, tmp_path / "m", {"x": _reduce_input(op)})


def _mask_model(mask_type: int, chain: bool) -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["mask"], ["c"], to=TensorProto.FLOAT, name="cast")]
    if chain:
        nodes += [
            helper.make_node("Sub", ["one", "c"], ["s"], name="sub"),
            helper.make_node("Mul", ["s", "big"], ["y"], name="mul"),
        ]
    else:
        nodes[0].output[0] = "y"
    weights = {"one": np.array(1.0, np.float32), "big": np.array(-1e4, np.float32)}
    if not chain:
        weights = {}
    return make_model(
        nodes, [("mask", mask_type, [2, 1, 1, 7])], [("y", FLOAT, [2, 1, 1, 7])], weights
    )


@pytest.mark.parametrize(
    "mask_type", [TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL, TensorProto.UINT8]
)
@pytest.mark.parametrize("chain", [True, False], ids=["cast+sub+mul", "cast"])
def test_cast_to_float_is_native(tmp_path: Path, mask_type: int, chain: bool) -> None:
    proto = _mask_model(mask_type, chain)
    report = _compile(proto, tmp_path / "m", {"mask": [2, 1, 1, 7]})
    assert not report.fallbacks, report.fallbacks
    assert {r.kernel for r in report.steps} == {"native.eltwise_program_f32"}
    dtype = helper.tensor_dtype_to_np_dtype(mask_type)
    mask = np.random.default_rng(6).integers(0, 2, (2, 1, 1, 7)).astype(dtype)
    _check_against_ort(proto, tmp_path / "m", {"mask": mask})


def test_integer_computation_falls_back_with_reason(tmp_path: Path) -> None:
    """Cast to int64 and an int64 Add: no native kernel takes them, the reason says why."""
    nodes = [
        helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64, name="to_int"),
        helper.make_node("Add", ["i", "k"], ["s"], name="int_add"),
        helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT, name="to_float"),
    ]
    proto = make_model(
        nodes, [("x", FLOAT, [3, 4])], [("y", FLOAT, [3, 4])], {"k": np.array(3, np.int64)}
    )
    report = _compile(proto, tmp_path / "m", {"x": [3, 4]})
    assert report.fallbacks
    reasons = " ".join(f["reason"] for f in report.fallbacks)
    assert "float32" in reasons, reasons
    x = (5 * _rand(np.random.default_rng(7), 3, 4)).astype(np.float32)
    _check_against_ort(proto, tmp_path / "m", {"x": x})


def test_layer_norm_group_roles() -> None:
    groups = partition(to_model(_layer_norm_model(13, "Pow", "Div", "scale+bias")))
    (group,) = [g for g in groups if g.kind == "layer_norm"]
    assert [n.op for n in group.nodes] == [
        "ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"
    ]  # fmt: skip
    norm = group.norm
    assert norm is not None and norm.x.name == "x" and norm.axis == 2
    assert norm.epsilon == pytest.approx(1e-5)
    assert norm.scale is not None and norm.scale.shape == (16,)
    assert norm.bias is not None and norm.bias.shape == (16,)
    assert group.outputs[0].name == "b"
    # every external value is a group input, so the reference fallback can run the group too
    assert {v.name for v in group.inputs} >= {"x", "two", "eps", "gamma", "beta"}


def test_layer_norm_group_falls_back_whole_when_rejected(monkeypatch, tmp_path: Path) -> None:
    def reject(graph, group):
        raise bind.Reject("layer_norm_f32", "rejected by the test")

    monkeypatch.setattr(bind_reduce, "bind_layer_norm_group", reject)
    proto = _layer_norm_model(13, "Mul", "Reciprocal", "scale+bias")
    report = _compile(proto, tmp_path / "m", _shapes(proto))
    assert {f["pattern"] for f in report.fallbacks} == {"layer_norm"}
    assert "rejected by the test" in report.fallbacks[0]["reason"]
    _check_against_ort(proto, tmp_path / "m", _feeds(proto))


def test_layer_norm_option_off_keeps_the_pieces() -> None:
    model = to_model(_layer_norm_model(13))
    groups = partition(model, PartitionOptions(layer_norm=False))
    assert all(g.kind != "layer_norm" for g in groups)


def _reduce_node(opset: int, axes_input: bool, axes: list[int] | None = None):
    inputs = ["x", "axes"] if axes_input else ["x"]
    attrs = {} if axes_input or axes is None else {"axes": axes}
    node = helper.make_node("ReduceMean", inputs, ["y"], name="mean", **attrs)
    graph_inputs = [("x", FLOAT, [2, 3, 4])]
    if axes_input:
        graph_inputs.append(("axes", TensorProto.INT64, [1]))
    proto = helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info(n, t, s) for n, t, s in graph_inputs],
            [helper.make_tensor_value_info("y", FLOAT, None)],
        ),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model = to_model(proto)
    return next(n for n in model.graph.nodes if n.op == "ReduceMean")


def test_reduce_binder_rejects_with_reasons() -> None:
    with pytest.raises(bind.Reject, match="axes must be a constant input"):
        bind_reduce.reduce_flags(_reduce_node(18, axes_input=True), 18, 3)
    with pytest.raises(bind.Reject, match="out of range"):
        bind_reduce.reduce_flags(_reduce_node(13, False, [3]), 13, 3)
    with pytest.raises(bind.Reject, match="given twice"):
        bind_reduce.reduce_flags(_reduce_node(13, False, [1, -2]), 13, 3)
    assert bind_reduce.reduce_flags(_reduce_node(13, False, [-1, 0]), 13, 3) == [1, 0, 1]
    assert bind_reduce.reduce_flags(_reduce_node(13, False), 13, 3) == [1, 1, 1]
