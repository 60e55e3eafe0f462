"""Module format v1 dataclasses: JSON round trips, strict parsing, the load-time rules."""

from __future__ import annotations

import copy
import json

import pytest

from optimizer.module import (
    FORMAT_VERSION,
    FileEntry,
    InvalidModuleError,
    KernelEntry,
    Manifest,
    Plan,
    PlanStep,
    PlanValue,
    TensorSignature,
    module_problems,
    validate_module,
)

HASH = "ab" * 32


def manifest() -> Manifest:
    return Manifest(
        source_model_sha256=HASH,
        inputs=[TensorSignature("x", "float32", [1, 3, 4, 4], 0)],
        outputs=[TensorSignature("y", "float32", [1, 8], 3)],
        kernels=[
            KernelEntry(0, "native.conv2d_nchw", "native", "builtin", "conv2d_nchw"),
            KernelEntry(
                1, "tvm.dense", "tvm", "shared_library", "odc_kernel_dense", "kernels/1.so"
            ),
        ],
        files={
            "plan.json": FileEntry(10, HASH),
            "weights.bin": FileEntry(512, HASH),
            "kernels/1.so": FileEntry(5, HASH),
        },
    )


def plan() -> Plan:
    return Plan(
        arena_size=256,
        values=[
            PlanValue(0, "x", "float32", [1, 3, 4, 4], "input"),
            PlanValue(1, "w", "float32", [8, 3, 1, 1], "weights", offset=0, nbytes=96),
            PlanValue(2, "h", "float32", [1, 8, 4, 4], "arena", offset=0, nbytes=512),
            PlanValue(3, "y", "float32", [1, 8], "output"),
        ],
        steps=[
            PlanStep(0, "conv", [0, 1, -1], [2], iparams=[1, 1, 0, 0, 0, 0], fparams=[0.5]),
            PlanStep(1, "pool", [2], [3], workspace=64),
        ],
    )


def test_manifest_round_trips_through_json() -> None:
    m = manifest()
    text = m.to_json()
    assert Manifest.from_json(text) == m
    d = json.loads(text)
    assert list(d)[:2] == ["format", "format_version"] and d["format_version"] == FORMAT_VERSION
    assert d["kernels"][0]["file"] is None


def test_plan_round_trips_through_json() -> None:
    p = plan()
    p.arena_size = 512
    text = p.to_json()
    assert Plan.from_json(text) == p
    values = json.loads(text)["values"]
    assert "offset" not in values[0] and values[2]["offset"] == 0
    # one value per line: readable and diffable
    assert any(line.strip().startswith('{"id": 2, "name": "h"') for line in text.splitlines())


def test_valid_module_has_no_problems() -> None:
    p = plan()
    p.arena_size = 512
    assert module_problems(manifest(), p, weights_size=512) == []
    validate_module(manifest(), p, weights_size=512)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=3), "format_version 3 is newer than this reader (2)"),
        (lambda d: d.update(format="other"), "format 'other' is not 'onnx-deploy-module'"),
        (lambda d: d.pop("kernels"), "manifest.json: missing key 'kernels'"),
        (
            lambda d: d["inputs"][0].update(shape=[1, "3"]),
            "inputs[0]: shape[1]: expected int, got str",
        ),
        (lambda d: d["kernels"][1].update(id=True), "kernels[1]: id: expected int, got bool"),
        (lambda d: d["files"]["plan.json"].pop("sha256"), "files[plan.json]: missing key 'sha256'"),
    ],
)
def test_manifest_parsing_names_the_bad_field(edit, message: str) -> None:
    d = json.loads(manifest().to_json())
    edit(d)
    with pytest.raises(InvalidModuleError, match=r"invalid module: manifest\.json: ") as err:
        Manifest.from_dict(d)
    assert message in str(err.value)


def test_plan_parsing_names_the_bad_field() -> None:
    d = json.loads(plan().to_json())
    del d["values"][2]["dtype"]
    with pytest.raises(InvalidModuleError, match=r"plan.json: values\[2\]: missing key 'dtype'"):
        Plan.from_dict(d)
    with pytest.raises(InvalidModuleError, match=r"plan\.json: not valid JSON"):
        Plan.from_json("{")


def edited_plan(**changes) -> list[str]:
    p = copy.deepcopy(plan())
    for path, value in changes.items():
        target: object = p
        *parents, field = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else getattr(target, part)  # type: ignore[index]
        setattr(target, field, value)
    return p.problems(weights_size=96, kernel_count=2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "plan.json: values[2]: offset 0 + nbytes 512 exceeds arena_size 256"),
        (
            {"values__2__offset": 32, "arena_size": 1024},
            "values[2]: offset 32 is not a non-negative multiple of 64",
        ),
        ({"values__2__nbytes": 500, "arena_size": 1024}, "values[2]: nbytes 500 != 512"),
        ({"values__1__offset": 64}, "values[1]: offset 64 + nbytes 96 exceeds weights.bin size 96"),
        ({"values__2__dtype": "complex64"}, "values[2]: dtype 'complex64' is not one of"),
        ({"values__3__storage": "heap"}, "values[3]: storage 'heap' is not one of"),
        ({"steps__0__kernel": 7}, "steps[0]: kernel 7 is not in the kernel table"),
        ({"steps__1__inputs": [9]}, "steps[1]: inputs[0]: no value with id 9"),
        ({"steps__0__outputs": [1]}, "steps[0]: outputs[0]: writes weights value 1"),
        ({"steps__0__fparams": [float("inf")]}, "steps[0]: fparams[0] is not finite"),
        ({"alignment": 48}, "alignment 48 is not a power of two"),
    ],
)
def test_plan_rules(changes: dict, message: str) -> None:
    problems = edited_plan(**changes)
    assert any(message in p for p in problems), problems


def test_manifest_rules() -> None:
    m = manifest()
    m.kernels[1].file = "../evil.so"
    m.files["/abs"] = FileEntry(-1, "xyz")
    del m.files["weights.bin"]
    problems = m.problems()
    for expected in [
        "kernels[1]: file '../evil.so' is not a relative path inside the module",
        "files[/abs]: not a relative path",
        "files[/abs]: size -1 is negative",
        "files[/abs]: sha256 is not a lower-case SHA-256 hex digest",
        "files: weights.bin is not listed",
    ]:
        assert any(expected in p for p in problems), (expected, problems)
    with pytest.raises(InvalidModuleError, match=r"invalid module: .* \(and 4 more problems\)"):
        m.validate()


def test_signatures_must_match_the_value_table() -> None:
    m = manifest()
    m.outputs[0].shape = [1, 9]
    p = plan()
    p.arena_size = 512
    problems = module_problems(m, p, 512)
    assert problems == ["manifest.json: outputs[0]: does not match plan.json values id 3"]
