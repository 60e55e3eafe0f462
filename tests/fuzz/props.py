"""The differential properties every generated graph must satisfy, and reproducer saving.

:func:`check_case` runs one :class:`~tests.fuzz.graphs.FuzzCase` through:

1. ``optimize_model`` (O2, with the pass manager's verify-each instrument: graph invariants
   are checked after every pass) -> the optimized model matches the original in onnxruntime;
2. a second ``optimize_model`` on the result -> no rule fires (a fixed point);
3. ``compile_model`` (reference fallback allowed; the number of fallback steps is recorded)
   -> the compiled module's outputs match onnxruntime's;
4. neither the optimized model nor the module yields NaN where the original had none.

On any failure (a mismatch or an exception from the optimizer/compiler) the model is saved
as ``<sha1>.onnx`` (its inputs beside it as ``.npz``) in ``$FUZZ_REPRO_DIR`` or
``tests/fuzz/repro/`` (ignored by git), and the assertion message names the file; hypothesis
shrinks the example, so the last file named is the minimal reproducer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from hypothesis import event

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions, optimize_model
from tests.fuzz.graphs import FuzzCase
from tests.helpers import run_ort

ATOL, RTOL = 1e-4, 1e-3
LOG = os.environ.get("FUZZ_LOG")  # one line per compiled graph: nodes, steps, fallback steps
REPRO_DIR = Path(os.environ.get("FUZZ_REPRO_DIR") or Path(__file__).parent / "repro")


@dataclass
class Stats:
    """Counts over a session (printed by the fuzz tests' summary, logged with $FUZZ_LOG)."""

    graphs: int = 0
    nodes: int = 0
    steps: int = 0
    fallback_steps: int = 0
    optimized_changed: int = 0


STATS = Stats()
FALLBACK_OPS: Counter[str] = Counter()


class FuzzFailure(AssertionError):
    pass


def save_repro(case: FuzzCase) -> Path:
    """Writes the model (and its feeds) under REPRO_DIR; returns the model's path."""
    data = case.model.SerializeToString()
    REPRO_DIR.mkdir(parents=True, exist_ok=True)
    path = REPRO_DIR / f"{hashlib.sha1(data).hexdigest()[:16]}.onnx"
    path.write_bytes(data)
    np.savez(path.with_suffix(".npz"), **case.feeds)
    return path


def _compare(what: str, want: list[np.ndarray], got: list[np.ndarray], names: list[str]) -> None:
    assert len(want) == len(got), f"{what}: {len(got)} outputs, want {len(want)}"
    for name, w, g in zip(names, want, got):
        g = np.asarray(g)
        assert g.shape == w.shape, f"{what}: output {name} shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what}: output {name} dtype {g.dtype} != {w.dtype}"
        new_nan = np.isnan(g) & ~np.isnan(w)
        assert not new_nan.any(), f"{what}: output {name} has {int(new_nan.sum())} new NaN(s)"
        finite = w[np.isfinite(w)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        try:
            np.testing.assert_allclose(g, w, atol=ATOL * scale, rtol=RTOL, equal_nan=True)
        except AssertionError as err:
            raise AssertionError(f"{what}: output {name} differs: {err}") from None


def _load(proto: onnx.ModelProto) -> ir.Model:
    return ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))


def check_case(case: FuzzCase, compile_: bool = True) -> None:
    """Asserts every property on ``case``; on failure saves the reproducer and names it."""
    onnx.checker.check_model(case.model, full_check=True)  # a generator bug, not a finding
    want = run_ort(case.model, case.feeds)
    names = [o.name for o in case.model.graph.output]
    declared = [
        tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in case.model.graph.output
    ]
    assert [w.shape for w in want] == declared, f"generator shape bug: {declared} vs {case.ops}"
    try:
        _check(case, want, names, compile_)
    except Exception as err:
        path = save_repro(case)
        raise FuzzFailure(f"{type(err).__name__}: {err}\n  reproducer: {path}") from err


def _check(case: FuzzCase, want: list[np.ndarray], names: list[str], compile_: bool) -> None:
    options = OptimizeOptions(check=False, verify=True)
    optimized, report = optimize_model(_load(case.model), options)
    proto = optimized.to_proto()
    inputs = {i.name for i in proto.graph.input}
    got = run_ort(proto, {k: v for k, v in case.feeds.items() if k in inputs})
    _compare("optimized model vs original (onnxruntime)", want, got, names)

    _again, report2 = optimize_model(_load(proto), options)
    assert not report2.modified, f"second optimize changed the model: {dict(report2.rules)}"

    STATS.graphs += 1
    STATS.nodes += len(case.model.graph.node)
    STATS.optimized_changed += int(report.modified)
    if not compile_:
        return
    with tempfile.TemporaryDirectory(prefix="odc-fuzz-") as tmp:
        out = Path(tmp) / "module"
        creport = compile_model(
            _load(case.model), out, CompileOptions(OptimizeOptions(check=False), tactic_cache=False)
        )
        module = optimizer.load(out)
        module.set_num_threads(2)
        result = module.run(case.feeds)
        _compare("compiled module vs onnxruntime", want, list(result.values()), names)
        assert list(result) == names, f"module outputs {list(result)} != {names}"
    fallback = sum(1 for r in creport.steps if r.fallback)
    STATS.steps += len(creport.steps)
    STATS.fallback_steps += fallback
    FALLBACK_OPS.update(f["op"] for f in creport.fallbacks)
    event(f"compiled steps falling back: {min(fallback, 3)}{'+' if fallback >= 3 else ''}")
    if LOG:
        with open(LOG, "a") as f:
            f.write(f"{len(case.model.graph.node)} {len(creport.steps)} {fallback} "
                    f"{','.join(sorted(set(o['op'] for o in creport.fallbacks)))}\n")  # fmt: skip


def quiet() -> None:
    """Silences the optimizer's per-pass INFO logs and fallback warnings while fuzzing."""
    logging.getLogger("optimizer").setLevel(logging.ERROR)
