"""Conv + HardSwish written as x * HardSigmoid(x) (opset < 14) compiles to one fused conv step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model


def test_conv_decomposed_hardswish_fuses_and_matches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("HardSigmoid", ["c"], ["s"], alpha=1 / 6, beta=0.5, name="hs"),
        helper.make_node("Mul", ["c", "s"], ["h"], name="mul"),
        helper.make_node("Conv", ["h", "dw"], ["d"], pads=[2, 2, 2, 2], group=8, name="dwconv"),
        helper.make_node("HardSigmoid", ["d"], ["t"], alpha=1 / 6, beta=0.5, name="hs2"),
        helper.make_node("Mul", ["t", "d"], ["y"], name="mul2"),
    ]
    weights = {
        "w": (0.5 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32),
        "b": rng.standard_normal(8).astype(np.float32),
        "dw": (0.5 * rng.standard_normal((8, 1, 5, 5))).astype(np.float32),
    }
    proto = make_model(
        nodes, [("x", FLOAT, [1, 3, 6, 6])], [("y", FLOAT, [1, 8, 6, 6])], weights, opset=13
    )
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(input_shapes={"x": [1, 3, 6, 6]}, check=False))
    report = compile_model(model, tmp_path / "m", options)
    kernels = report.kernel_counts()
    assert "native.unary_f32" not in kernels, kernels
    assert len(report.steps) == 2, kernels
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = want.run(None, {"x": x})
    (got,) = optimizer.load(tmp_path / "m").run({"x": x}).values()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
