"""End to end on the model zoo (acceptance 1 of the optimizer issue).

Every zoo model: the optimized model passes the full ONNX checker, matches the original in
onnxruntime (fp32: 1e-4 abs / 1e-3 rel), has fewer nodes, and a second run changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("torch")

from optimizer import ir
from optimizer.check import Session, check_equivalent
from optimizer.optimize import OptimizeOptions, optimize_model
from tools import zoo


@pytest.fixture(scope="session")
def zoo_entries() -> dict[str, tuple[Path, dict]]:
    root = zoo.zoo_dir()
    return {e["name"]: (root / e["file"], e) for e in zoo.load_index(root)}


@pytest.mark.parametrize("name", zoo.MODELS)
def test_zoo_model_optimizes_equal_and_smaller(name: str, zoo_entries, tmp_path: Path) -> None:
    path, entry = zoo_entries[name]
    feeds = [zoo.sample_inputs(entry, seed) for seed in (0, 1)]
    model = ir.load(path)
    options = OptimizeOptions(inputs=feeds, trials=1, verify=True)
    optimized, report = optimize_model(model, options)

    out = tmp_path / f"{name}.opt.onnx"
    optimized.save(out)
    onnx.checker.check_model(str(out), full_check=True)
    assert report.check is not None and report.check.ok
    # Independent re-check on fresh inputs, from the saved file.
    reference = Session(ir.load(path))
    fresh = [zoo.sample_inputs(entry, np.random.default_rng(7))]
    recheck = check_equivalent(reference, ir.load(out), fresh, atol=1e-4, rtol=1e-3)
    assert recheck.ok, recheck.outputs
    assert report.nodes_after < report.nodes_before, (report.ops_before, report.ops_after)

    _, second = optimize_model(ir.load(out), OptimizeOptions(inputs=feeds[:1], trials=1))
    assert not second.modified, f"second run still rewrote: {dict(second.rules)}"
    assert second.nodes_after == report.nodes_after
