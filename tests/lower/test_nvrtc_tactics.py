"""``--target cuda --tune``: steps with a hand-written CUDA C++ twin (kernels/cuda, NVRTC) carry
the other backend as a tactic: the NVRTC kernel where Triton is the default (resize), the Triton
kernel where NVRTC is (small global average pools)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

pytest.importorskip("cuda.bindings.nvrtc", reason="NVRTC (the cuda extra) is not installed")


def _model() -> onnx.ModelProto:
    scales = np.array([1, 1, 2, 2], np.float32)
    return make_model(
        [helper.make_node("Resize", ["x", "", "scales"], ["r"], name="resize", mode="linear"),
         helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap")],
        [("x", FLOAT, [1, 8, 5, 6])], [("y", FLOAT, [1, 8, 1, 1])], {"scales": scales},
        opset=13,
    )  # fmt: skip


@pytest.mark.parametrize("tune", [False, True])
def test_nvrtc_twins_are_tactics(tmp_path, tune: bool) -> None:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(_model().SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False), target="cuda", tune=tune)
    compile_model(model, tmp_path / "m", options)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    plan = json.loads((tmp_path / "m" / "plan.json").read_text())
    backend = {k["id"]: k["backend"] for k in manifest["kernels"]}
    steps = {s["node"]: s for s in plan["steps"]}
    resize, gap = steps["resize"], steps["gap"]
    assert backend[resize["kernel"]] == "triton"  # Triton's resize is the faster default
    assert backend[gap["kernel"]] == "nvrtc"  # NVRTC's warp-per-plane pool is, at 8 planes
    if not tune:
        assert "tactics" not in resize and "tactics" not in gap
        return
    assert [backend[t["kernel"]] for t in resize["tactics"]] == ["nvrtc"]
    assert [backend[t["kernel"]] for t in gap["tactics"]] == ["triton"]
    for tactic in [*resize["tactics"], *gap["tactics"]]:
        assert tactic["grid"] and tactic["args"]
