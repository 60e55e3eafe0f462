"""Split-K convolutions inside a CUDA module: the workspace region they keep zero is placed
after every other step's scratch (an LSTM's here), and the plan computes the model."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model
from tests.lower.test_target_cuda import _read, emulate_module

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="runs the plan on the CPU interpreter"
)


def _model(rng: np.random.Generator) -> onnx.ModelProto:
    """A late-ResNet-like 3x3 convolution over a 4x4 map (few tiles, long K: split) and an LSTM
    (its kernel uses the workspace as scratch)."""
    S, B, N_IN, H = 3, 2, 4, 5

    def w(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        helper.make_node("LSTM", ["s", "lw", "lr", "lb"], ["h", ""], name="lstm", hidden_size=H),
    ]
    inits = {"cw": w(96, 64, 3, 3, scale=0.05), "cb": w(96), "lw": w(1, 4 * H, N_IN),
             "lr": w(1, 4 * H, H), "lb": w(1, 8 * H)}  # fmt: skip
    return make_model(
        nodes, [("x", FLOAT, [1, 64, 4, 4]), ("s", FLOAT, [S, B, N_IN])],
        [("y", FLOAT, [1, 96, 4, 4]), ("h", FLOAT, [S, 1, B, H])], inits, opset=14,
    )  # fmt: skip


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("fp16", 4e-3)])
def test_split_k_region_follows_the_scratch_and_the_plan_computes(
    tmp_path, precision: str, tol: float
) -> None:
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(3)
    proto = _model(rng)
    feeds = {"x": rng.standard_normal((1, 64, 4, 4)).astype(np.float32),
             "s": rng.standard_normal((3, 2, 4)).astype(np.float32)}  # fmt: skip
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip(["y", "h"], sess.run(None, feeds)))

    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False), target="cuda", precision=precision)
    report = compile_model(model, tmp_path / "m", options)
    _, plan = _read(tmp_path / "m")
    launches = report.cuda.launches
    split = [i for i, la in enumerate(launches) if la.zeroed_base]
    scratch = [i for i, la in enumerate(launches) if la.workspace and not la.zeroed_base]
    assert len(split) == 1 and scratch, "expected one split-K conv and one scratch user"
    (i,) = split
    assert launches[i].constexprs["SPLIT_K"] > 1 and launches[i].grid[2] > 1
    base = launches[i].args["ws_base"].value
    assert base >= max(launches[j].workspace for j in scratch) and base % 256 == 0
    step = plan["steps"][i]
    assert {"i64": base} in step["args"] and step["workspace"] == base + launches[i].workspace

    # (that the kernel leaves its region zero is checked in tests/kernels/triton/test_conv.py)
    got = emulate_module(tmp_path / "m", launches, feeds)
    for k, v in want.items():
        np.testing.assert_allclose(got[k].reshape(v.shape), v, rtol=tol, atol=tol, err_msg=k)
