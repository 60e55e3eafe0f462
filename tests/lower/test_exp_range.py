"""The native exp near and past float32 overflow (found by tests/fuzz with large inputs): the
compiled module matches onnxruntime: exp(x) is +inf above log(FLT_MAX) ~ 88.72, and exact to
float precision up to it (the kernel clamped at 88.3 before: exp(88.5) came out 18% low and
exp(100) finite). Exp alone and fused in an elementwise group, every thread count."""

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

X = np.array(
    [-100.0, -87.0, -20.0, -1.0, 0.0, 0.5, 20.0, 80.0, 88.0, 88.3, 88.5, 88.7, 88.72, 88.75,
     89.0, 100.0, 1000.0, np.inf, -np.inf, 88.6, 87.9, 50.0, 10.0, 1.0],
    dtype=np.float32,
).reshape(2, 12)  # fmt: skip


def _model(fused: bool) -> onnx.ModelProto:
    nodes = [helper.make_node("Exp", ["x"], ["e"], name="exp")]
    if fused:  # Exp inside an elementwise program with a Mul and an Add
        nodes = [
            helper.make_node("Mul", ["x", "one"], ["m"], name="mul"),
            helper.make_node("Exp", ["m"], ["n"], name="exp"),
            helper.make_node("Add", ["n", "zero"], ["e"], name="add"),
        ]
    consts = {"one": np.ones((1, 12), np.float32), "zero": np.zeros((2, 1), np.float32)}
    return make_model(nodes, [("x", FLOAT, [2, 12])], [("e", FLOAT, [2, 12])],
                      consts if fused else None)  # fmt: skip


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_exp_near_overflow_matches_onnxruntime(fused: bool, threads: int, tmp_path: Path) -> None:
    proto = _model(fused)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": X}
    )[0]
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    report = compile_model(model, tmp_path / "m", CompileOptions(OptimizeOptions(check=False)))
    assert not report.fallbacks  # the native kernel is what is tested
    module = optimizer.load(tmp_path / "m")
    module.set_num_threads(threads)
    got = module.run({"x": X})["e"]
    assert np.array_equal(np.isinf(got), np.isinf(want)), (got, want)
    # below -87.3 the kernel flushes to 0 (onnxruntime gives denormals ~1e-38): atol covers it
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-37)
