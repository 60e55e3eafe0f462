"""Every zoo model packages into a module that re-reads, validates, and whose graph.onnx runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("torch")

from optimizer import ir, lower
from optimizer.module import KernelBinding, Manifest, Plan, validate_module, write_module
from optimizer.optimize import OptimizeOptions, optimize_model
from tools import plan_report, zoo


@pytest.mark.parametrize("name", zoo.MODELS)
def test_zoo_model_packages(name: str, tmp_path: Path) -> None:
    root = zoo.zoo_dir()
    entry = next(e for e in zoo.load_index(root) if e["name"] == name)
    shapes = plan_report.sample_shapes(entry)
    model = ir.load(root / entry["file"])
    ir.pin_input_shapes(model, shapes)
    optimized, _ = optimize_model(model, OptimizeOptions(input_shapes=shapes, check=False))
    plan = lower.plan_memory(lower.schedule(optimized, lower.partition(optimized)))
    bindings = [
        KernelBinding(
            f"reference.{g.pattern}", "reference", "python", "optimizer.kernels.reference:run"
        )
        for g in plan.schedule.steps
    ]
    out = write_module(optimized, plan, bindings, tmp_path / name)

    manifest = Manifest.from_json((out / "manifest.json").read_text())
    module_plan = Plan.from_json((out / "plan.json").read_text())
    validate_module(manifest, module_plan, (out / "weights.bin").stat().st_size)
    for rel, f in manifest.files.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == f.sha256
    assert [s.name for s in manifest.inputs] == [i["name"] for i in entry["inputs"]]
    assert module_plan.arena_size == plan.arena_size

    feeds = zoo.sample_inputs(entry, 0, dict(zip(*_dims(entry, shapes))))
    want = ort.InferenceSession(str(root / entry["file"])).run(None, feeds)
    got = ort.InferenceSession(str(out / "graph.onnx")).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-3)


def _dims(entry: dict, shapes: dict[str, list[int]]) -> tuple[list[str], list[int]]:
    """Symbol -> size pairs of the pinned shapes (so the feeds match them)."""
    names, sizes = [], []
    for i in entry["inputs"]:
        for d, size in zip(i["shape"], shapes[i["name"]]):
            if isinstance(d, str):
                names.append(d)
                sizes.append(size)
    return names, sizes
