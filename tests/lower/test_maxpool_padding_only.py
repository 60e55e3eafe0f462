"""MaxPool windows that see no input element (found by tests/fuzz): onnxruntime gives the lowest
finite float there (its running max starts at -FLT_MAX), and so must the compiled module.

Dilated taps can step over the whole input: H=1, kernel 2, dilation 2, pads 1/1 reads rows -1
and 1 only. An input of -inf gives -FLT_MAX in onnxruntime too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model


def _maxpool(shape: tuple[int, ...], out: tuple[int, ...], **attrs) -> onnx.ModelProto:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)
    return make_model([node], [("x", FLOAT, list(shape))], [("y", FLOAT, list(out))])


CASES = {
    # 2-D: the native kernel; row 0 of the output reads only padding rows -1 and 1
    "2d_dilated": (
        (1, 3, 1, 3),
        (1, 3, 1, 3),
        dict(kernel_shape=[2, 1], dilations=[2, 1], pads=[1, 0, 1, 0], strides=[2, 1]),
    ),
    # 1-D: the reference kernel (fallback)
    "1d_dilated": (
        (1, 2, 1),
        (1, 2, 1),
        dict(kernel_shape=[2], dilations=[2], pads=[1, 1], strides=[1]),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("fill", ["normal", "neg_inf"])
def test_window_over_padding_only_matches_onnxruntime(name: str, fill: str, tmp_path: Path) -> None:
    shape, out, attrs = CASES[name]
    proto = _maxpool(shape, out, **attrs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if fill == "neg_inf":
        x[...] = -np.inf
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    compile_model(model, tmp_path / "m", CompileOptions(OptimizeOptions(check=False)))
    got = optimizer.load(tmp_path / "m").run({"x": x})["y"]
    assert got.shape == want.shape
    assert np.finfo(np.float32).min in want  # the case really has a window over padding only
    np.testing.assert_array_equal(got, want)
