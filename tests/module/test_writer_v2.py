"""write_module for CUDA (format version 2): cubin files, launch metadata, grid and args.

The bindings here are hand-made (a fake cubin file): what is tested is the writer and the
format's checks, not Triton (tests/lower/test_target_cuda.py compiles real cubins).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from optimizer.errors import InvalidModuleError, UsageError
from optimizer.lower import partition, plan_memory, schedule
from optimizer.module import KernelBinding, write_module
from optimizer.module import format as fmt
from tests.helpers import FLOAT, make_model
from tests.lower.util import to_model

FAKE_CUBIN = b"\x7fELF\x02\x01\x01" + bytes(57) + b"_test_kernel\0"
LAUNCH = {"num_warps": 4, "shared": 1024, "params": ["ptr", "ptr", "i32", "f32", "ptr", "ptr"]}


def _model():
    """softmax(x) -> relu (an output too: no fusion) -> + c: three steps, one constant."""
    proto = make_model(
        [helper.make_node("Softmax", ["x"], ["s"], name="softmax"),
         helper.make_node("Relu", ["s"], ["r"], name="relu"),
         helper.make_node("Add", ["r", "c"], ["y"], name="add")],
        [("x", FLOAT, [4, 16])], [("r", FLOAT, [4, 16]), ("y", FLOAT, [4, 16])],
        {"c": np.arange(16, dtype=np.float32)},
    )  # fmt: skip
    return to_model(proto)


def _bindings(plan, cubin: Path, other: Path) -> list[KernelBinding]:
    out = []
    for i, group in enumerate(plan.schedule.steps):
        n_in = len([v for v in group.inputs if v is not None])
        args = [{"in": 0}, {"out": 0}, {"i32": 64}, {"f32": 0.5}, {"null": 0}, {"null": 0}]
        out.append(KernelBinding(
            name=f"triton.test_{i % 2}", backend="triton", kind="cubin", entry="_test_kernel",
            artifact=cubin if i % 2 == 0 else other, launch=dict(LAUNCH), grid=[2, 1, 1],
            args=args, iparams=[i], fparams=[0.25] * n_in,
        ))  # fmt: skip
    return out


@pytest.fixture
def cubins(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a.cubin", tmp_path / "b.cubin"
    a.write_bytes(FAKE_CUBIN)
    b.write_bytes(FAKE_CUBIN + b"other")
    return a, b


def _write(tmp_path: Path, cubins, edit=None) -> Path:
    model = _model()
    plan = plan_memory(schedule(model, partition(model)))
    bindings = _bindings(plan, *cubins)
    if edit:
        edit(bindings)
    return write_module(model, plan, bindings, tmp_path / "mod", ["cuda"], cuda_arch="sm_90")


def test_cuda_module_is_version_2_with_cubins_grids_and_args(tmp_path: Path, cubins) -> None:
    out = _write(tmp_path, cubins)
    manifest = json.loads((out / "manifest.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["targets"] == ["cuda"] and manifest["cuda"] == {"arch": "sm_90"}
    assert list(manifest)[:6] == ["format", "format_version", "producer", "source_model_sha256",
                                  "targets", "cuda"]  # fmt: skip
    # steps 0 and 2 share a.cubin (one kernel), step 1 has b.cubin
    assert [k["file"] for k in manifest["kernels"]] == ["kernels/0.cubin", "kernels/1.cubin"]
    assert [s["kernel"] for s in plan["steps"]] == [0, 1, 0]
    for k, src in zip(manifest["kernels"], cubins):
        assert k["kind"] == "cubin" and k["entry"] == "_test_kernel" and k["launch"] == LAUNCH
        data = (out / k["file"]).read_bytes()
        assert data == src.read_bytes()
        assert manifest["files"][k["file"]] == {
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    for i, step in enumerate(plan["steps"]):
        assert step["grid"] == [2, 1, 1] and step["iparams"] == [i]
        assert step["args"] == [{"in": 0}, {"out": 0}, {"i32": 64}, {"f32": 0.5}, {"null": 0},
                                {"null": 0}]  # fmt: skip
    assert {v["device"] for v in plan["values"]} == {"cuda"}
    # the strict parsers read it back unchanged
    m = fmt.Manifest.from_json((out / "manifest.json").read_text())
    p = fmt.Plan.from_json((out / "plan.json").read_text())
    assert m.to_dict() == manifest and p.to_dict() == plan
    fmt.validate_module(m, p)


def test_cpu_modules_stay_version_1_without_cuda_fields(tmp_path: Path) -> None:
    model = _model()
    plan = plan_memory(schedule(model, partition(model)))
    bindings = [KernelBinding(f"reference.{g.pattern}", "reference", "python", "m:f")
                for g in plan.schedule.steps]  # fmt: skip
    out = write_module(model, plan, bindings, tmp_path / "cpu")
    manifest = json.loads((out / "manifest.json").read_text())
    plan_json = json.loads((out / "plan.json").read_text())
    assert manifest["format_version"] == 1 and "cuda" not in manifest
    assert all("launch" not in k for k in manifest["kernels"])
    assert all("grid" not in s and "args" not in s for s in plan_json["steps"])
    assert {v["device"] for v in plan_json["values"]} == {"cpu"}


def test_writer_refuses_what_the_runtime_would_reject(tmp_path: Path, cubins) -> None:
    def few_args(bindings):
        bindings[1].args = bindings[1].args[:-1]

    with pytest.raises(InvalidModuleError, match=r"steps\[1\]: 5 args for 6 params"):
        _write(tmp_path, cubins, few_args)
    assert not (tmp_path / "mod").exists()
    model = _model()
    plan = plan_memory(schedule(model, partition(model)))
    with pytest.raises(UsageError, match="targets \\['cuda'\\]"):
        write_module(model, plan, _bindings(plan, *cubins), tmp_path / "m", ["cpu"], cuda_arch="sm_90")


# -- the format's v2 rules, one corruption at a time -------------------------------------------


@pytest.fixture
def written(tmp_path: Path, cubins) -> tuple[dict, dict]:
    out = _write(tmp_path, cubins)
    return (json.loads((out / "manifest.json").read_text()),
            json.loads((out / "plan.json").read_text()))  # fmt: skip


def _kernel(m, p):
    return m["kernels"][0]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m, p: p["steps"][0]["args"].pop(), "steps[0]: 5 args for 6 params of kernel 0"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(0, {"f32": 1.0}),
         "steps[0]: args[0]: f32 does not fit a ptr parameter"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(2, {"in": 0}),
         "steps[0]: args[2]: in does not fit a i32 parameter"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(0, {"in": 3}),
         "steps[0]: args[0]: input 3 of 1"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(1, {"out": 1}),
         "steps[0]: args[1]: output 1 of 1"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(2, {"i32": 2**31}),
         "steps[0]: args[2]: 2147483648 does not fit i32"),
        (lambda m, p: p["steps"][0]["args"].__setitem__(4, {"null": 7}),
         "steps[0]: args[4]: null takes 0"),
        (lambda m, p: p["steps"][1].__setitem__("grid", [0, 1, 1]),
         "steps[1]: grid [0, 1, 1] is not 3 positive counts"),
        (lambda m, p: p["steps"][1].__setitem__("grid", [1, 70000, 1]),
         "steps[1]: grid [1, 70000, 1] is not 3 positive counts"),
        (lambda m, p: p["steps"][1].pop("grid"), "steps[1]: grid None is not 3 positive"),
        (lambda m, p: _kernel(m, p).pop("launch"), "kernels[0]: a cubin kernel needs launch"),
        (lambda m, p: _kernel(m, p)["launch"].__setitem__("num_warps", 3),
         "kernels[0]: launch: num_warps 3 is not a power of two"),
        (lambda m, p: _kernel(m, p)["launch"].__setitem__("shared", -1),
         "kernels[0]: launch: shared -1 is not a byte count"),
        (lambda m, p: _kernel(m, p)["launch"]["params"].__setitem__(0, "f64"),
         "kernels[0]: launch: params must be a list of ptr, i32, i64, f32"),
        (lambda m, p: _kernel(m, p).__setitem__("file", None), "kernels[0]: a cubin kernel needs a file"),
        (lambda m, p: m.__setitem__("format_version", 1), "CUDA modules need format_version 2"),
        (lambda m, p: m.__setitem__("cuda", {"arch": "90"}), "cuda: arch '90' is not an architecture"),
        (lambda m, p: m.pop("cuda"), "cuda: arch None is not an architecture"),
        (lambda m, p: m.__setitem__("targets", ["cpu"]), "need 'cuda' in targets"),
        (lambda m, p: p["values"][0].__setitem__("device", "cpu"),
         "values[0]: device 'cpu' in a cuda module"),
    ],
)  # fmt: skip
def test_v2_problems_are_named(written, edit, message: str) -> None:
    manifest, plan = copy.deepcopy(written)
    edit(manifest, plan)
    problems = fmt.module_problems(fmt.Manifest.from_dict(manifest), fmt.Plan.from_dict(plan))
    assert any(message in p for p in problems), problems


def test_v2_parsing_rejects_malformed_args(written) -> None:
    _, plan = copy.deepcopy(written)
    plan["steps"][0]["args"][0] = {"in": 0, "out": 0}
    with pytest.raises(InvalidModuleError, match=r"steps\[0\]: args\[0\]: expected one of"):
        fmt.Plan.from_dict(plan)
    plan["steps"][0]["args"][0] = {"i32": 1.5}
    with pytest.raises(InvalidModuleError, match=r"args\[0\]: i32: expected int, got float"):
        fmt.Plan.from_dict(plan)


def test_cpu_steps_cannot_carry_grids(tmp_path: Path) -> None:
    model = _model()
    plan = plan_memory(schedule(model, partition(model)))
    bindings = [KernelBinding(f"reference.{g.pattern}", "reference", "python", "m:f")
                for g in plan.schedule.steps]  # fmt: skip
    bindings[0].grid = [1, 1, 1]
    bindings[0].args = []
    with pytest.raises(InvalidModuleError, match="grid and args are for cubin kernels only"):
        write_module(model, plan, bindings, tmp_path / "cpu")
