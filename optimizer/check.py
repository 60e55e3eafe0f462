"""Numerical equivalence checking against onnxruntime.

The original and the optimized model run in onnxruntime (its own graph optimizations off,
so neither side is rewritten behind our back) on the same inputs: random ones drawn for the
declared or pinned shapes, plus any the user gives. Outputs are compared elementwise with
``|got - want| <= atol + rtol * |want|`` (NumPy's allclose rule); NaN must match NaN.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from optimizer.errors import CheckFailedError, OptimizerError, UsageError
from optimizer.ir import Model

log = logging.getLogger(__name__)

# Sizes tried, in order, for symbolic dimensions nobody pinned: the first one the original
# model runs with is used (2 avoids hiding broadcasting bugs that size 1 would mask).
_DEFAULT_DIM_TRIALS = (2, 1, 4, 8, 16, 32, 64)
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


@dataclass
class OutputDiff:
    """Comparison of one output over all trials."""

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    new_nan: bool = False
    detail: str = ""


@dataclass
class CheckReport:
    """Outcome of a numerical check."""

    ok: bool
    trials: int
    outputs: list[OutputDiff] = field(default_factory=list)
    atol: float = 1e-4
    rtol: float = 1e-3

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def first_failure(self) -> OutputDiff | None:
        return next((o for o in self.outputs if not o.ok), None)


class Session:
    """An onnxruntime session over a Model (large models go through a temporary file)."""

    def __init__(self, model: Model, threads: int = 0) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 4  # fatal only: failures come back to us as exceptions
        if threads:
            opts.intra_op_num_threads = threads
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        try:
            if model.serialized_size() > (1 << 30):
                self._tmp = tempfile.TemporaryDirectory(prefix="optimizer-check-")
                path = Path(self._tmp.name) / "model.onnx"
                model.save(path, external_data=True)
                self.sess = ort.InferenceSession(
                    str(path), opts, providers=["CPUExecutionProvider"]
                )
            else:
                data = model.to_proto().SerializeToString()
                self.sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception hierarchy
            raise OptimizerError(f"onnxruntime cannot load the model: {_first_line(exc)}") from None
        self.inputs = self.sess.get_inputs()
        self.output_names = [o.name for o in self.sess.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        names = {i.name for i in self.inputs}
        return self.sess.run(None, {k: v for k, v in feeds.items() if k in names})


# Largest random input the check makes (elements): a declared dimension of 2**40 is legal ONNX
# but cannot be allocated; refuse it with a message instead of a MemoryError.
_MAX_RANDOM_ELEMENTS = 1 << 28


def random_feeds(
    session: Session,
    shapes: Mapping[str, Sequence[int]],
    rng: np.random.Generator,
    default_dim: int = 2,
    distribution: str = "normal",
) -> dict[str, np.ndarray]:
    """Random inputs for a session's inputs; ``shapes`` overrides declared shapes."""
    feeds: dict[str, np.ndarray] = {}
    for inp in session.inputs:
        dtype = _ORT_TYPES.get(inp.type)
        if dtype is None:
            raise UsageError(
                f"input '{inp.name}' has type {inp.type}: cannot make random data for it"
            )
        dims = shapes.get(inp.name)
        if dims is None:
            dims = [d if isinstance(d, int) and d > 0 else default_dim for d in inp.shape]
        dims = list(dims)
        numel = 1
        for d in dims:
            numel *= int(d)
        if numel > _MAX_RANDOM_ELEMENTS:
            raise UsageError(
                f"input '{inp.name}' has shape {dims} ({numel} elements): too large to make random "
                "data for the check; pin a smaller shape with --input-shape NAME:DIMS or use --no-check"
            )
        if np.issubdtype(dtype, np.floating):
            if distribution == "uniform":
                data = rng.uniform(-1.0, 1.0, dims)
            else:
                data = rng.standard_normal(dims)
            feeds[inp.name] = data.astype(dtype)
        elif dtype == np.bool_:
            feeds[inp.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            # Small non-negative integers: valid token ids, indices and masks for most models.
            feeds[inp.name] = rng.integers(0, 2 if "mask" in inp.name.lower() else 10, dims).astype(
                dtype
            )
    return feeds


def make_trial_feeds(
    reference: Session,
    shapes: Mapping[str, Sequence[int]],
    user_feeds: Sequence[Mapping[str, np.ndarray]] = (),
    trials: int = 2,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Input sets for the check: the user's, then ``trials`` random ones that run."""
    out = [dict(f) for f in user_feeds]
    rng = np.random.default_rng(seed)
    last_error = ""
    for dim in _DEFAULT_DIM_TRIALS:
        candidate = random_feeds(reference, shapes, rng, default_dim=dim)
        try:
            reference.run(candidate)
        except Exception as exc:
            last_error = _first_line(exc)
            continue
        out.append(candidate)
        out.extend(random_feeds(reference, shapes, rng, default_dim=dim) for _ in range(trials - 1))
        return out
    if out:
        return out
    raise UsageError(
        "the original model does not run on random inputs of the declared shapes "
        f"({last_error}); pin them with --input-shape NAME:DIMS or give inputs with --input NAME=FILE.npy"
    )


def compare_outputs(
    names: Sequence[str],
    want: Sequence[np.ndarray],
    got: Sequence[np.ndarray],
    atol: float,
    rtol: float,
    diffs: dict[str, OutputDiff] | None = None,
) -> dict[str, OutputDiff]:
    """Accumulates per-output errors of one trial into ``diffs``."""
    diffs = diffs if diffs is not None else {}
    for name, w, g in zip(names, want, got):
        d = diffs.setdefault(name, OutputDiff(name))
        w, g = np.asarray(w), np.asarray(g)
        if w.shape != g.shape or w.dtype != g.dtype:
            d.ok = False
            d.detail = f"shape/dtype {g.shape}/{g.dtype} != {w.shape}/{w.dtype}"
            continue
        if w.size == 0:
            continue
        if not np.issubdtype(w.dtype, np.number) and w.dtype != np.bool_:
            if not np.array_equal(w, g):
                d.ok, d.detail = False, "values differ"
            continue
        wf, gf = w.astype(np.float64), g.astype(np.float64)
        nan_w, nan_g = np.isnan(wf), np.isnan(gf)
        if np.any(nan_g & ~nan_w):
            d.ok, d.new_nan = False, True
            d.detail = "NaN where the original has none"
        if np.any(nan_w & ~nan_g):
            d.ok = False
            d.detail = d.detail or "a NaN of the original disappeared"
        both = ~(nan_w | nan_g)
        inf_mismatch = both & (np.isinf(wf) | np.isinf(gf)) & (wf != gf)
        if np.any(inf_mismatch):
            d.ok = False
            d.detail = d.detail or "infinities differ"
        finite = both & np.isfinite(wf) & np.isfinite(gf)
        err = np.abs(gf - wf)[finite]
        ref = np.abs(wf)[finite]
        if err.size:
            d.max_abs = max(d.max_abs, float(err.max()))
            d.max_rel = max(d.max_rel, float((err / np.maximum(ref, 1e-12)).max()))
            if np.any(err > atol + rtol * ref):
                d.ok = False
                d.detail = (
                    d.detail or f"max abs error {d.max_abs:.3g}, max rel error {d.max_rel:.3g}"
                )
    return diffs


def check_equivalent(
    reference: Session,
    candidate: Model,
    feeds: Sequence[Mapping[str, np.ndarray]],
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> CheckReport:
    """Runs both models on every input set and compares every output."""
    cand = Session(candidate)
    if cand.output_names != reference.output_names:
        return CheckReport(
            False,
            0,
            [
                OutputDiff(
                    "outputs",
                    ok=False,
                    detail=f"outputs {cand.output_names} != {reference.output_names}",
                )
            ],
        )
    diffs: dict[str, OutputDiff] = {}
    for f in feeds:
        want = reference.run(f)
        try:
            got = cand.run(f)
        except Exception as exc:
            return CheckReport(
                False,
                0,
                [OutputDiff("run", ok=False, detail=f"optimized model fails: {_first_line(exc)}")],
            )
        compare_outputs(reference.output_names, want, got, atol, rtol, diffs)
    outputs = list(diffs.values())
    return CheckReport(all(o.ok for o in outputs), len(feeds), outputs, atol, rtol)


def describe_failure(report: CheckReport) -> str:
    bad = report.first_failure()
    if bad is None:
        return "outputs match"
    return (
        f"output '{bad.name}': {bad.detail} (tolerance {report.atol:g} abs + {report.rtol:g} rel)"
    )


def raise_mismatch(report: CheckReport, culprit: str | None) -> None:
    where = ""
    if culprit and "#" in culprit:
        where = f"; first bad pass: {culprit} (skip it with --disable {culprit.split('#')[0]})"
    elif culprit:
        where = f"; the mismatch comes from {culprit}"
    raise CheckFailedError(
        f"optimized model does not match the original: {describe_failure(report)}{where}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
