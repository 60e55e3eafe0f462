"""Pad -> the native ``pad`` kernel (kernels/native/pad.cc): compiled module vs onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import optimizer
from optimizer import ir
from optimizer.lower.bind_pad import value_bits
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import make_model

DTYPES = {
    "float32": TensorProto.FLOAT,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
    "float16": TensorProto.FLOAT16,
}


def _compile_and_compare(proto: onnx.ModelProto, out: Path, feeds: dict):
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    report = compile_model(model, out, CompileOptions(OptimizeOptions(input_shapes=shapes,
                                                                      check=False)))  # fmt: skip
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    got = optimizer.load(out).run(feeds)
    for g, w in zip(got.values(), want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    return report


def _pad_model(dtype: str, shape: list[int], pads: list[int], mode: str, value=None,
               axes: list[int] | None = None, opset: int = 17) -> onnx.ModelProto:  # fmt: skip
    ins = ["x", "pads"]
    weights: dict[str, np.ndarray] = {"pads": np.array(pads, np.int64)}
    if value is not None or axes is not None:
        ins.append("cv" if value is not None else "")
        if value is not None:
            weights["cv"] = np.array(value, dtype=dtype)
    if axes is not None:
        ins.append("axes")
        weights["axes"] = np.array(axes, np.int64)
    node = helper.make_node("Pad", ins, ["y"], mode=mode, name="pad")
    et = DTYPES[dtype]
    rank, ax = len(shape), axes if axes is not None else list(range(len(shape)))
    out = list(shape)
    for i, a in enumerate(ax):
        out[a % rank] += pads[i] + pads[i + len(ax)]
    return make_model([node], [("x", et, shape)], [("y", et, out)], weights, opset=opset)


def _feed(dtype: str, shape: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 100, shape).astype(dtype)


CASES = [
    # mode, dtype, shape, pads, value
    ("constant", "float32", [1, 3, 5, 6], [0, 0, 1, 2, 0, 0, 2, 1], 0.5),
    ("constant", "int64", [2, 4, 5], [1, 0, 2, 0, 3, 1], 7),
    ("constant", "uint8", [3, 7], [2, 1, 0, 3], 255),
    ("constant", "float16", [2, 3, 4], [0, 1, 1, 1, 0, 2], -1.5),
    ("constant", "float32", [1, 2, 6, 7], [0, 0, -1, 2, 0, 0, 1, -3], None),  # crop + pad
    ("reflect", "float32", [1, 2, 6, 7], [0, 0, 2, 3, 0, 0, 1, 4], None),
    ("reflect", "int64", [2, 5, 4], [0, 1, -1, 0, -2, 2], None),
    ("edge", "float32", [1, 3, 4, 5], [0, 0, 3, 1, 0, 0, 2, 6], None),
    ("edge", "uint8", [4, 6], [-1, 2, 2, -3], None),
]


@pytest.mark.parametrize("mode,dtype,shape,pads,value", CASES)
def test_pad_matches_onnxruntime(tmp_path: Path, mode, dtype, shape, pads, value) -> None:
    proto = _pad_model(dtype, shape, pads, mode, value)
    report = _compile_and_compare(proto, tmp_path / "m", {"x": _feed(dtype, shape)})
    assert not report.fallbacks, report.fallbacks
    assert report.kernel_counts().get("native.pad") == 1


def test_pad_wrap_and_axes_opset19(tmp_path: Path) -> None:
    proto = _pad_model("float32", [2, 3, 4, 5], [2, -1, 3, 4], "wrap", axes=[1, -1], opset=19)
    report = _compile_and_compare(proto, tmp_path / "m", {"x": _feed("float32", [2, 3, 4, 5])})
    assert not report.fallbacks, report.fallbacks
    assert report.kernel_counts().get("native.pad") == 1


def test_pad_opset10_attributes(tmp_path: Path) -> None:
    node = helper.make_node("Pad", ["x"], ["y"], mode="constant", pads=[0, 1, 2, 0, 3, 1],
                            value=2.5, name="pad")  # fmt: skip
    proto = make_model([node], [("x", TensorProto.FLOAT, [2, 3, 4])],
                       [("y", TensorProto.FLOAT, [2, 7, 7])], opset=10)  # fmt: skip
    report = _compile_and_compare(proto, tmp_path / "m", {"x": _feed("float32", [2, 3, 4])})
    assert not report.fallbacks, report.fallbacks


def test_pad_rejects_runtime_constant_value(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode="constant", name="pad")
    proto = make_model(
        [node],
        [("x", TensorProto.FLOAT, [2, 3]), ("v", TensorProto.FLOAT, [1])],
        [("y", TensorProto.FLOAT, [3, 5])],
        {"pads": np.array([1, 0, 0, 2], np.int64)},
    )
    feeds = {"x": _feed("float32", [2, 3]), "v": np.array([3.0], np.float32)}
    with caplog.at_level(logging.WARNING):
        report = _compile_and_compare(proto, tmp_path / "m", feeds)
    assert report.fallback_ops == ["Pad"]
    assert any("constant_value must be constant" in f["reason"] for f in report.fallbacks)


def test_value_bits() -> None:
    assert value_bits(1.0, "float32") == 0x3F800000
    assert value_bits(-1, "int64") == -1
    assert value_bits(np.array([255]), "uint8") == 255
    assert value_bits(-2.0, "float64") == int(np.array(-2.0).view(np.int64))
