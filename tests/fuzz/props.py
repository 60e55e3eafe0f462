"""The differential properties every generated graph must satisfy, and reproducer saving.

:func:`check_case` runs one :class:`~tests.fuzz.graphs.FuzzCase` through:

1. ``optimize_model`` (O2, with the pass manager's verify-each instrument: graph invariants
   are checked after every pass) -> the optimized model matches the original in onnxruntime;
2. ``compile_model`` of the optimized model, whose own O2 run (verify-each on) must report no
   change: the optimizer is at a fixed point, so a second ``optimize`` changes nothing (this
   is also what makes compiling the optimized model the same as compiling the original);
3. the compiled module's outputs match onnxruntime's on the original (reference fallback
   allowed; fallback steps are counted);
4. neither the optimized model nor the module yields NaN where the original had none.

On a failure (a mismatch, or an exception from the optimizer / compiler) hypothesis shrinks
the example; its final replay of the minimal example saves the model as ``<sha1>.onnx`` (its
inputs beside it as ``.npz``) in ``$FUZZ_REPRO_DIR`` (default ``tests/fuzz/repro/``, ignored by
git), and the assertion message names the file. Outside hypothesis every failure is saved.

Cost per graph is kept small: onnxruntime runs on one thread (``$FUZZ_THREADS``), the module
on the case's 1 to 3 threads (so the kernels' parallel splits are fuzzed too), and modules are written under ``/dev/shm`` where it exists (the module writer fsyncs every
file; on tmpfs that is free).

Environment: ``$FUZZ_LOG`` names a file that gets one line per graph run through optimize and
compile (``ok NODES STEPS FALLBACK_STEPS OPS``) and one per failure (``fail ...``);
``$FUZZ_DEADLINE`` (a Unix time) makes every later example skip the test, so a time-limited
run (``tools/fuzz_long.py``) stops cleanly; a failure being shrunk gets ``$FUZZ_GRACE`` seconds
more (default 120). The first failure of a process is also saved before shrinking, under
``unshrunk/`` in the reproducer directory (an ``unshrunk PATH ...`` log line).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import event
from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions, optimize_model
from tests.fuzz.graphs import FuzzCase

ATOL, RTOL = 1e-4, 1e-3
REPRO_DIR = Path(os.environ.get("FUZZ_REPRO_DIR") or Path(__file__).parent / "repro")
THREADS = int(os.environ.get("FUZZ_THREADS", "1"))
TMP_ROOT = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@dataclass
class Stats:
    """Counts over a session (printed by the fuzz tests' summary)."""

    graphs: int = 0  # run through optimize + compile, every property checked
    nodes: int = 0
    steps: int = 0
    fallback_steps: int = 0
    optimized_changed: int = 0
    failures: int = 0  # failing examples, shrinking steps included


STATS = Stats()
FALLBACK_OPS: Counter[str] = Counter()
_first_failure: list[float] = []


class FuzzFailure(AssertionError):
    pass


def _log(line: str) -> None:
    path = os.environ.get("FUZZ_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line.replace("\n", " ") + "\n")


def _is_final_replay() -> bool:
    """True in hypothesis's last run of a (shrunk) failing example, or outside hypothesis."""
    try:
        return current_build_context().is_final
    except InvalidArgument:
        return True


def _stop_at_deadline() -> None:
    deadline = os.environ.get("FUZZ_DEADLINE")
    if not deadline:
        return
    limit = float(deadline)
    if _first_failure:  # let hypothesis finish shrinking, within a grace period
        limit = max(limit, _first_failure[0] + float(os.environ.get("FUZZ_GRACE", "120")))
    if time.time() > limit:
        pytest.skip("fuzz: time limit reached")


def save_repro(case: FuzzCase, directory: Path | None = None) -> Path:
    """Writes the model (and its feeds) under ``directory`` (REPRO_DIR); returns its path."""
    data = case.model.SerializeToString()
    directory = directory or REPRO_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha1(data).hexdigest()[:16]}.onnx"
    path.write_bytes(data)
    np.savez(path.with_suffix(".npz"), **case.feeds)
    return path


def run_ort(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime without graph optimizations (the reference), on THREADS threads."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # no warnings about zero-size outputs
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


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


def check_case(case: FuzzCase) -> None:
    """Asserts every property on ``case``; on failure saves the reproducer and names it."""
    _stop_at_deadline()
    onnx.checker.check_model(case.model, full_check=True)  # a generator bug, not a finding
    want = run_ort(case.model, case.feeds)
    names = [o.name for o in case.model.graph.output]
    declared = [tuple(d.dim_value for d in o.type.tensor_type.shape.dim)
                for o in case.model.graph.output]  # fmt: skip
    assert [w.shape for w in want] == declared, f"generator shape bug: {declared} vs {case.ops}"
    try:
        _check(case, want, names)
    except Exception as err:
        STATS.failures += 1
        if not _first_failure:
            _first_failure.append(time.time())
        first = f"{type(err).__name__}: {err}".split("\n")[0][:300]
        # only the final replay (the shrunk example) is saved; one raise site for all runs,
        # so that hypothesis sees one failure origin
        path = save_repro(case) if _is_final_replay() else "(not saved while shrinking)"
        if len(_first_failure) == 1:  # the first failure: saved unshrunk, in case time runs out
            _first_failure.append(time.time())
            _log(f"unshrunk {save_repro(case, REPRO_DIR / 'unshrunk')} {first}")
        _log(f"fail {path} {first}")
        raise FuzzFailure(f"{type(err).__name__}: {err}\n  reproducer: {path}") from err


def _check(case: FuzzCase, want: list[np.ndarray], names: list[str]) -> None:
    optimized, report = optimize_model(_load(case.model), OptimizeOptions(check=False, verify=True))
    proto = optimized.to_proto()
    inputs = {i.name for i in proto.graph.input}
    got = run_ort(proto, {k: v for k, v in case.feeds.items() if k in inputs})
    _compare("optimized model vs original (onnxruntime)", want, got, names)

    with tempfile.TemporaryDirectory(prefix="odc-fuzz-", dir=TMP_ROOT) as tmp:
        out = Path(tmp) / "module"
        options = CompileOptions(OptimizeOptions(check=False, verify=True), tactic_cache=False)
        creport = compile_model(optimized, out, options)
        again = creport.optimize
        assert again is not None and not again.modified, (
            f"a second optimize changed the model: {dict(again.rules) if again else None}"
        )
        module = optimizer.load(out)
        module.set_num_threads(case.threads)
        result = module.run(case.feeds)
    assert list(result) == names, f"module outputs {list(result)} != {names}"
    _compare("compiled module vs onnxruntime", want, list(result.values()), names)

    fallback = sum(1 for r in creport.steps if r.fallback)
    STATS.graphs += 1
    STATS.nodes += len(case.model.graph.node)
    STATS.optimized_changed += int(report.modified)
    STATS.steps += len(creport.steps)
    STATS.fallback_steps += fallback
    FALLBACK_OPS.update(f["op"] for f in creport.fallbacks)
    try:  # hypothesis's statistics (pytest --hypothesis-show-statistics)
        event(f"compiled steps falling back: {min(fallback, 3)}{'+' if fallback >= 3 else ''}")
    except InvalidArgument:  # called outside a hypothesis test
        pass
    fell = ",".join(sorted({f["op"] for f in creport.fallbacks})) or "-"
    _log(f"ok {len(case.model.graph.node)} {len(creport.steps)} {fallback} {fell}")


def summary() -> str:
    """One line: the session's counts (the graph count is the acceptance number)."""
    return (
        f"fuzz: {STATS.graphs} graphs run through optimize + compile ({STATS.nodes} nodes), "
        f"{STATS.failures} failing examples, optimizer changed {STATS.optimized_changed}, "
        f"compiled steps {STATS.steps}, fallback steps {STATS.fallback_steps} "
        f"{dict(FALLBACK_OPS.most_common())}"
    )


def quiet() -> None:
    """Silences the optimizer's per-pass INFO logs and fallback warnings while fuzzing."""
    logging.getLogger("optimizer").setLevel(logging.ERROR)
