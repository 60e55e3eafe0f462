"""CUDA modules with NVRTC steps: where ``prefer_nvrtc`` picks the NVRTC kernel, the step records
its cubin (kernel ``backend`` ``nvrtc``) and the plan passes the module format's validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from optimizer.kernels.cuda import nvrtc, plans

from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.module import format as fmt
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(nvrtc.available() is not None,
                                reason=f"NVRTC not installed: {nvrtc.available()}")  # fmt: skip
INT64 = onnx.TensorProto.INT64


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "odc-cache"))


def _compile(proto: onnx.ModelProto, out: Path, **kw) -> tuple[dict, dict, object]:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    report = compile_model(model, out, CompileOptions(OptimizeOptions(check=False), target="cuda",
                                                      **kw))  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    fmt.validate_module(fmt.Manifest.from_dict(manifest), fmt.Plan.from_dict(plan))
    return manifest, plan, report


def _resize_model() -> onnx.ModelProto:
    scales = np.array([1, 1, 2, 2], np.float32)
    return make_model(
        [helper.make_node("Resize", ["x", "", "s"], ["y"], name="up", mode="linear"),
         helper.make_node("Relu", ["y"], ["z"], name="relu")],
        [("x", FLOAT, [1, 2, 4, 4])], [("z", FLOAT, [1, 2, 8, 8])], {"s": scales},
    )  # fmt: skip


def _embedding_model() -> onnx.ModelProto:
    table = np.random.default_rng(0).standard_normal((50, 64)).astype(np.float32)
    return make_model(
        [helper.make_node("Gather", ["table", "ids"], ["e"], name="embed", axis=0),
         helper.make_node("Relu", ["e"], ["y"], name="relu")],
        [("ids", INT64, [2, 3])], [("y", FLOAT, [2, 3, 64])], {"table": table},
    )  # fmt: skip


def _steps_by_backend(manifest: dict, plan: dict) -> dict[str, list[dict]]:
    kernels = {k["id"]: k for k in manifest["kernels"]}
    out: dict[str, list[dict]] = {}
    for step in plan["steps"]:
        kernel = kernels[step["kernel"]]
        out.setdefault(kernel["backend"], []).append({"step": step, "kernel": kernel})
    return out


def test_resize_step_runs_the_nvrtc_kernel_where_the_rule_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(plans, "prefer_nvrtc", lambda entry, *a: entry.startswith("resize"))
    for precision in ("fp32", "fp16"):
        out = tmp_path / precision
        manifest, plan, report = _compile(_resize_model(), out, precision=precision)
        by = _steps_by_backend(manifest, plan)
        (nv,) = by["nvrtc"]
        kernel, step = nv["kernel"], nv["step"]
        suffix = {"fp32": "f32", "fp16": "f16"}[precision]
        assert kernel["name"] == "nvrtc.resize_bilinear" and kernel["kind"] == "cubin"
        assert kernel["entry"] == f"resize_bilinear_{suffix}"
        data = (out / kernel["file"]).read_bytes()
        assert data[:4] == b"\x7fELF" and kernel["entry"].encode() + b"\0" in data
        assert kernel["launch"]["shared"] == 0
        params = kernel["launch"]["params"]
        assert params == ["ptr", "ptr", "i64", "i64"] + ["i32"] * 8
        assert len(step["args"]) == len(params)
        assert step["args"][:2] == [{"in": 0}, {"out": 0}]
        assert step["grid"] == [1, 1, 1]  # 2 planes x 8 rows: one 16 x 8 tile
        assert all(k["name"] != "triton.resize_bilinear" for k in manifest["kernels"])
        assert "triton" in by  # the Relu (and the casts)
        # CPU emulation keeps the Triton twin's launch for the step
        assert any(getattr(la, "name", "") == "triton.resize_bilinear"
                   for la in report.cuda.launches)  # fmt: skip


def test_embedding_gather_by_the_rule(tmp_path, monkeypatch) -> None:
    manifest, _, _ = _compile(_embedding_model(), tmp_path / "default", precision="fp16")
    assert {k["backend"] for k in manifest["kernels"]} == {"triton"}  # Triton measured faster
    monkeypatch.setattr(plans, "prefer_nvrtc", lambda entry, *a: entry == "gather")
    manifest, plan, _ = _compile(_embedding_model(), tmp_path / "m", precision="fp16")
    by = _steps_by_backend(manifest, plan)
    (nv,) = by["nvrtc"]
    assert nv["kernel"]["entry"] == "gather_u128_i64"  # 64 fp16 = 8 x 16 bytes a row
    assert nv["step"]["args"][:3] == [{"in": 0}, {"in": 1}, {"out": 0}]


def _gap_model() -> onnx.ModelProto:
    return make_model(
        [helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap")],
        [("x", FLOAT, [1, 64, 7, 7])], [("y", FLOAT, [1, 64, 1, 1])],
    )  # fmt: skip


def test_a_small_global_avgpool_is_nvrtc_by_default(tmp_path) -> None:
    manifest, plan, _ = _compile(_gap_model(), tmp_path / "m")
    (nv,) = _steps_by_backend(manifest, plan)["nvrtc"]
    assert nv["kernel"]["entry"] == "global_avgpool_f32"
    assert nv["kernel"]["launch"]["params"] == ["ptr", "ptr", "i64", "i64", "f32"]
    assert nv["step"]["args"] == [{"in": 0}, {"out": 0}, {"i64": 64}, {"i64": 49},
                                  {"f32": pytest.approx(1 / 49)}]  # fmt: skip


def test_without_nvrtc_the_triton_kernel_is_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(nvrtc, "available", lambda: "NVRTC is not installed")
    monkeypatch.setattr(plans, "prefer_nvrtc", lambda entry, *a: True)
    manifest, _, _ = _compile(_embedding_model(), tmp_path / "m")
    assert {k["backend"] for k in manifest["kernels"]} == {"triton"}
    assert "triton.gather" in {k["name"] for k in manifest["kernels"]}
