"""--target cpu,cuda: one module with a cpu plan and a cuda plan (format version 3).

A small CNN (conv + relu, global average pool, flatten, gemm, softmax: real native kernels and
their real Triton twins) is compiled once through the CLI and once through the Python API.
Checked: the layout (top-level index, cpu/ a version-1 module, cuda/ a version-2 module, each
byte-identical to what --target cpu / --target cuda writes), loading on this machine (auto picks
cpu without a driver; the cpu plan matches onnxruntime), the cuda plan run step by step through
the Triton interpreter against onnxruntime, atomicity when the cuda part cannot be compiled, and
the CLI's one-line usage errors. The ``gpu`` test loads with auto on a GPU and expects cuda.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

pytest.importorskip("triton")

from optimizer.kernels.registry import UnsupportedOpError

from optimizer import ir, runtime
from optimizer.cli import main
from optimizer.errors import UsageError
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.lower.multi_target import MultiTargetReport, target_options
from optimizer.optimize import OptimizeOptions, compile_to_module
from optimizer.runtime import ModuleError
from tests.helpers import FLOAT, make_model
from tests.lower.test_target_cuda import emulate_module

RNG = np.random.default_rng(0)
W = (RNG.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
B = RNG.standard_normal(8).astype(np.float32)
G = RNG.standard_normal((10, 8)).astype(np.float32)
GB = RNG.standard_normal(10).astype(np.float32)


def _driver_present() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def small_cnn() -> onnx.ModelProto:
    return make_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"], name="relu"),
         helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
         helper.make_node("Flatten", ["p"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="fc", transB=1),
         helper.make_node("Softmax", ["y"], ["prob"], name="sm", axis=1)],
        [("x", FLOAT, [1, 3, 8, 8])], [("prob", FLOAT, [1, 10])],
        {"w": W, "b": B, "g": G, "gb": GB},
    )  # fmt: skip


def _feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 3, 8, 8)).astype(np.float32)}


def _reference(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.fixture(scope="module", autouse=True)
def cubin_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cubin / tactic cache for the file, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ODC_CACHE_DIR", str(tmp_path_factory.mktemp("odc-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model, and modules for cpu, cuda and cpu,cuda written by the CLI."""
    root = tmp_path_factory.mktemp("multi")
    model = root / "cnn.onnx"
    onnx.save(small_cnn(), model)
    out = {"model": model}
    for name, target in (("cpu", "cpu"), ("cuda", "cuda"), ("both", "cpu,cuda")):
        out[name] = root / name
        assert main([str(model), "-o", f"{out[name]}/", "--target", target, "-q"]) == 0
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_layout_is_an_index_over_one_complete_module_per_target(built: dict[str, Path]) -> None:
    both = built["both"]
    index = _json(both / "manifest.json")
    assert index["format_version"] == 3 and index["targets"] == ["cpu", "cuda"]
    assert index["inputs"] == [{"name": "x", "dtype": "float32", "shape": [1, 3, 8, 8]}]
    assert index["outputs"] == [{"name": "prob", "dtype": "float32", "shape": [1, 10]}]
    assert sorted(index["files"]) == ["__init__.py", "cpu/manifest.json", "cuda/manifest.json"]
    assert _json(both / "cpu" / "manifest.json")["format_version"] == 1
    cuda = _json(both / "cuda" / "manifest.json")
    assert cuda["format_version"] == 2 and cuda["cuda"] == {"arch": "sm_90"}
    assert {k["kind"] for k in cuda["kernels"]} == {"cubin"}
    # Each part is exactly the single-target module: same plan, weights, kernels, manifest.
    for target in ("cpu", "cuda"):
        single = built[target]
        for name in ["manifest.json", "plan.json", "weights.bin"]:
            assert (both / target / name).read_bytes() == (single / name).read_bytes(), name
        for name in _json(single / "manifest.json")["files"]:
            assert (both / target / name).read_bytes() == (single / name).read_bytes(), name
    assert not [p.name for p in both.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_auto_picks_cpu_without_a_driver_and_matches_onnxruntime(built: dict[str, Path]) -> None:
    if _driver_present():
        pytest.skip("an NVIDIA driver is present: auto picks cuda (see the gpu test)")
    m = runtime.load(built["both"])
    assert m.device == "cpu" and m.targets == ("cpu", "cuda")
    assert m.target_note == "cuda skipped: NVIDIA driver not found (libcuda.so.1)"
    assert "device='cpu'" in repr(m)
    feeds = _feeds()
    got = m.run(feeds)["prob"]
    np.testing.assert_allclose(got, _reference(built["model"], feeds), rtol=1e-5, atol=1e-6)
    assert [k for k, _ in m.steps] == [k for k, _ in runtime.load(built["cpu"]).steps]


def test_forcing_a_target(built: dict[str, Path]) -> None:
    m = runtime.load(built["both"], target="cpu")
    assert m.device == "cpu" and m.target_note == ""
    if not _driver_present():
        with pytest.raises(ModuleError, match=r"^module targets cuda: NVIDIA driver not found"):
            runtime.load(built["both"], target="cuda")
    with pytest.raises(ModuleError, match=r"module has no cuda target \(it carries cpu\)"):
        runtime.load(built["cpu"], target="cuda")
    with pytest.raises(ModuleError, match="target must be 'auto', 'cpu' or 'cuda', got 'gpu'"):
        runtime.load(built["both"], target="gpu")


def test_the_cuda_part_computes_the_model_on_the_interpreter(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """The cuda plan (compiled through the Python API this time) run step by step through
    Triton's interpreter on the CPU matches onnxruntime."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("runs the plan on the CPU interpreter")
    model = ir.Model.from_proto(small_cnn())
    options = CompileOptions(OptimizeOptions(check=False), target="cpu,cuda")
    report = compile_model(model, tmp_path / "m", options)
    assert isinstance(report, MultiTargetReport) and list(report.targets) == ["cpu", "cuda"]
    assert report.targets["cuda"].output == str(tmp_path / "m" / "cuda")
    assert (tmp_path / "m" / "cuda" / "plan.json").read_bytes() == (
        built["cuda"] / "plan.json"
    ).read_bytes()
    feeds = _feeds(2)
    got = emulate_module(tmp_path / "m" / "cuda", report.targets["cuda"].cuda.launches, feeds)
    np.testing.assert_allclose(got["prob"], _reference(built["model"], feeds), atol=1e-5)


def test_python_api_applies_precision_to_the_cuda_part_only(
    built: dict[str, Path], tmp_path: Path
) -> None:
    report = compile_to_module(built["model"], tmp_path / "m", OptimizeOptions(check=False),
                               target="cpu,cuda", precision="fp16")  # fmt: skip
    assert "cpu/:" in report.format() and "cuda/:" in report.format()
    assert set(report.to_json()["targets"]) == {"cpu", "cuda"}
    dtypes = {t: {v["dtype"] for v in _json(tmp_path / "m" / t / "plan.json")["values"]}
              for t in ("cpu", "cuda")}  # fmt: skip
    assert "float16" in dtypes["cuda"] and dtypes["cpu"] == {"float32"}
    if not _driver_present():
        assert runtime.load(tmp_path / "m").device == "cpu"


def test_options_per_part() -> None:
    options = CompileOptions(target="cpu,cuda", precision="bf16", arch="sm_80", tune=True)
    cpu, cuda = target_options(options, "cpu"), target_options(options, "cuda")
    assert (cpu.target, cpu.precision, cpu.arch, cpu.tune) == ("cpu", "fp32", "sm_90", True)
    assert (cuda.target, cuda.precision, cuda.arch, cuda.tune) == ("cuda", "bf16", "sm_80", True)


def test_a_cuda_part_that_cannot_compile_leaves_nothing_behind(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """CumSum has no native kernel (the cpu part would fall back) and so no cuda twin."""
    proto = make_model(
        [helper.make_node("CumSum", ["x", "axis"], ["y"], name="cs")],
        [("x", FLOAT, [2, 8])], [("y", FLOAT, [2, 8])], {"axis": np.array(1, np.int64)},
    )  # fmt: skip
    model = ir.Model.from_proto(proto)
    out = tmp_path / "m"
    with pytest.raises(UnsupportedOpError) as err:
        compile_model(model, out, CompileOptions(OptimizeOptions(check=False), target="cpu,cuda"))
    text = str(err.value)
    assert text.startswith("the cuda part of --target cpu,cuda: unsupported op CumSum")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # An existing module at the output stays as it was.
    existing = tmp_path / "kept"
    compile_model(ir.Model.from_proto(small_cnn()), existing,
                  CompileOptions(OptimizeOptions(check=False), target="cpu"))  # fmt: skip
    before = (existing / "manifest.json").read_bytes()
    with pytest.raises(UnsupportedOpError):
        compile_model(model, existing, CompileOptions(OptimizeOptions(check=False),
                                                      target="cpu,cuda"))  # fmt: skip
    assert (existing / "manifest.json").read_bytes() == before


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--target", "cpu,cpu"], "--target cpu,cpu: target 'cpu' is given twice"),
        (["--target", "gpu"], "--target gpu: unknown target (use cpu or cuda), or both"),
        (["--target", "cpu,gpu"], "--target cpu,gpu: unknown target 'gpu' (use cpu or cuda)"),
        (["--target", "cpu,"], "--target cpu,: unknown target '' (use cpu or cuda)"),
        (["--precision", "fp16"], "--precision applies to --target cuda only"),
        (["--target", "cpu", "--arch", "sm_80"], "--arch applies to --target cuda only"),
        (["--target", "cpu,cuda", "--arch", "sm_1"], "--arch sm_1: unknown CUDA architecture"),
        (["--target", "cuda,cpu", "--precision", "fp8"], "--precision fp8: unknown precision"),
    ],
)
def test_cli_usage_errors_are_one_line(
    built: dict[str, Path], tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    out = tmp_path / "mod"
    assert main([str(built["model"]), "-o", f"{out}/", "--no-check", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optimize: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_python_api_usage_errors(tmp_path: Path) -> None:
    model = ir.Model.from_proto(small_cnn())
    for target in ("cpu,cpu", "tpu", ""):
        with pytest.raises(UsageError, match="--target"):
            compile_model(model, tmp_path / "m", CompileOptions(target=target))
    assert not (tmp_path / "m").exists()


@pytest.mark.gpu
def test_auto_picks_cuda_on_a_gpu_and_matches(built: dict[str, Path]) -> None:
    if not _driver_present():
        pytest.skip("no NVIDIA driver")
    m = runtime.load(built["both"])
    if m.device != "cuda":
        pytest.skip(f"this GPU does not run sm_90 cubins: {m.target_note}")
    assert m.target_note == "" and m.targets == ("cpu", "cuda")
    feeds = _feeds()
    want = _reference(built["model"], feeds)
    np.testing.assert_allclose(m.run(feeds)["prob"], want, rtol=1e-4, atol=1e-5)
    cpu = runtime.load(built["both"], target="cpu")
    np.testing.assert_allclose(cpu.run(feeds)["prob"], want, rtol=1e-5, atol=1e-6)
