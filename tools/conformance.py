"""ONNX backend node-test conformance of the optimizer and of the compiled runtime.

The node tests are the ones the installed ``onnx`` package defines
(``onnx.backend.test.case.node``: one small model per op variant with its inputs and expected
outputs; the wheel does not ship the generated ``data/node`` files, so the cases are generated
in-process, exactly as ``backend-test-tools generate-data`` would write them). Each case runs
through two paths:

``optimize``
    ``optimize_model`` (pipeline O2, no numerical check of its own), then the optimized model
    in onnxruntime, compared with the expected outputs. When onnxruntime cannot run the
    *original* model (or gets it wrong), the optimizer path has nothing to run on: such cases
    are counted as ``ort`` (not a failure of this project), with onnxruntime's message.
``compile``
    ``compile_model`` with every input pinned to the test's input shape (reference fallback
    allowed: it is part of the product), ``optimizer.load(dir).run(inputs)``, compared with the
    expected outputs.

Outputs are compared as onnx's backend runner does: same dtype and shape, then
``np.testing.assert_allclose(got, want, rtol, atol)`` with the case's tolerance (rtol 1e-3,
atol 1e-7 unless the case says otherwise); NaN matches NaN.

Each result is one of ``pass``, ``fail`` (wrong numbers, wrong shape or dtype, or an unexpected
exception: a bug), ``refused`` (the project's clear one-line error for something it does not
support: an ``OptimizerError``), ``ort`` (optimize path only, see above) or ``excluded`` (listed
in ``tests/conformance/exclusions.py`` with a reason). A test whose op the project claims to
support (it has a reference kernel, ``kernels/reference``) must end ``pass`` or ``excluded``.

usage: python tools/conformance.py [--path optimize|compile|both] [--only REGEX]
                                   [--json OUT.json] [--markdown OUT.md] [-v]
Exit status: 0 when no claimed-op test fails unexplained, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PATHS = ("optimize", "compile")
STATUSES = ("pass", "fail", "refused", "ort", "excluded")
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


@dataclass
class Result:
    """One node test through one path."""

    test: str
    op: str
    path: str
    status: str
    detail: str = ""
    category: str = ""
    seconds: float = 0.0


def collect(only: str | None = None) -> list[Any]:
    """The node test cases of the installed onnx package (``TestCase`` objects), by name."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    pattern = re.compile(only) if only else None
    cases = [c for c in cases if pattern is None or pattern.search(c.name)]
    return sorted(cases, key=lambda c: c.name)


def op_of(case: Any, by_name: dict[str, Any] | None = None) -> str:
    """The op a test is about: its node's op; an ``_expanded`` test counts for the op it expands."""
    base = _EXPANDED.sub("", case.name)
    if base != case.name and by_name and base in by_name:
        return op_of(by_name[base])
    nodes = list(case.model.graph.node)
    if len(nodes) == 1 or nodes:
        ops = Counter(n.op_type for n in nodes)
        if len(ops) == 1 or not _EXPANDED.search(case.name):
            return nodes[-1].op_type if len(nodes) == 1 else ops.most_common(1)[0][0]
    return "?"


def claimed_ops() -> set[str]:
    """Default-domain ops the project claims to run: those with a reference kernel."""
    from optimizer.kernels import registry

    return {k.op for k in registry.all_kernels() if k.domain == ""}


def _plain(value: Any) -> Any:
    """NumPy scalars -> 0-d arrays; TensorProtos (how onnx stores dtypes NumPy lacks) -> arrays
    when the dtype is a standard NumPy one, else left as they are (not runnable here)."""
    import onnx
    from onnx import numpy_helper

    if isinstance(value, np.generic):
        return np.asarray(value)
    if isinstance(value, onnx.TensorProto):
        array = numpy_helper.to_array(value)
        if array.dtype.kind in "biufc?" and array.dtype.name in np.sctypeDict:
            return array
    return value


def _feeds(case: Any, inputs: Sequence[Any]) -> dict[str, Any]:
    graph = case.model.graph
    inits = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    return {n: _plain(v) for n, v in zip(names, inputs)}


def _compare(want: Sequence[Any], got: Sequence[Any], rtol: float, atol: float) -> str:
    """'' when ``got`` matches ``want`` as onnx's backend runner checks it, else why not."""
    if len(want) != len(got):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (w, g) in enumerate(zip(want, got)):
        w = _plain(w)
        if isinstance(w, list) or not isinstance(w, np.ndarray):
            return f"output {i}: non-tensor expected value ({type(w).__name__}) not compared"
        g = np.asarray(g)
        if g.dtype != w.dtype:
            return f"output {i}: dtype {g.dtype}, expected {w.dtype}"
        if g.shape != w.shape:
            return f"output {i}: shape {g.shape}, expected {w.shape}"
        if w.dtype == object or w.dtype.kind in "USb":
            if not np.array_equal(g, w):
                return f"output {i}: values differ"
            continue
        try:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            keep = [ln for ln in lines if ln.startswith(("Mismatched", "Max absolute", "Max relative"))]
            return f"output {i}: " + "; ".join(keep or lines[:2])
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:240]}"


def _ort_outputs(proto: Any, feeds: dict[str, Any]) -> list[Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _tensor_inputs(case: Any) -> str:
    """'' when every data set is plain tensors, else what is not."""
    for inputs, outputs in case.data_sets:
        for v in list(inputs) + list(outputs):
            if not isinstance(_plain(v), np.ndarray):
                return f"non-tensor value ({type(v).__name__}: sequence or optional)"
    return ""


def run_optimize(case: Any) -> tuple[str, str]:
    """(status, detail) of ``case`` through the graph optimizer + onnxruntime."""
    import onnx

    from optimizer import ir
    from optimizer.errors import OptimizerError
    from optimizer.optimize import OptimizeOptions, optimize_model

    proto = onnx.ModelProto.FromString(case.model.SerializeToString())
    try:
        model = ir.Model.from_proto(proto)
        optimized, _ = optimize_model(model, OptimizeOptions(check=False))
        out_proto = optimized.to_proto()
    except OptimizerError as exc:
        return "refused", _first_line(exc)
    except Exception as exc:
        return "fail", "optimize raised " + _first_line(exc)
    for inputs, want in case.data_sets:
        feeds = _feeds(case, inputs)
        try:
            got = _ort_outputs(out_proto, feeds)
        except Exception as exc:
            why = "onnxruntime cannot run the optimized model: " + _first_line(exc)
            return _ort_baseline(case, feeds, want, why)
        diff = _compare(want, got, case.rtol, case.atol)
        if diff:
            return _ort_baseline(case, feeds, want, diff)
    return "pass", ""


def _ort_baseline(case: Any, feeds: dict[str, Any], want: Sequence[Any], why: str) -> tuple[str, str]:
    """A failure of the optimized model is ours only if onnxruntime passes on the original."""
    try:
        orig = _ort_outputs(case.model, feeds)
    except Exception as exc:
        return "ort", "onnxruntime cannot run the original: " + _first_line(exc)
    base = _compare(want, orig, case.rtol, case.atol)
    if base:
        return "ort", "onnxruntime fails on the original too: " + base
    return "fail", why


def run_compile(case: Any, workdir: Path) -> tuple[str, str]:
    """(status, detail) of ``case`` compiled (shapes pinned to the test's) and run."""
    import onnx

    from optimizer import ir
    from optimizer.errors import OptimizerError
    from optimizer.lower.compile import CompileOptions, compile_model
    from optimizer.optimize import OptimizeOptions
    from optimizer.runtime import load

    bad = _tensor_inputs(case)
    if bad:
        return "refused", "the compiled runtime takes tensors only: " + bad
    proto = onnx.ModelProto.FromString(case.model.SerializeToString())
    inputs0, _ = case.data_sets[0]
    shapes = {k: list(np.asarray(v).shape) for k, v in _feeds(case, inputs0).items()}
    out_dir = workdir / case.name
    try:
        model = ir.Model.from_proto(proto)
        options = CompileOptions(
            optimize=OptimizeOptions(check=False, input_shapes=shapes), tactic_cache=False
        )
        compile_model(model, out_dir, options)
    except OptimizerError as exc:
        return "refused", _first_line(exc)
    except Exception as exc:
        return "fail", "compile raised " + _first_line(exc)
    try:
        module = load(out_dir)
        module.set_num_threads(2)
    except Exception as exc:
        return "fail", "load raised " + _first_line(exc)
    names = [o.name for o in module.outputs]
    for inputs, want in case.data_sets:
        feeds = _feeds(case, inputs)
        if {k: np.asarray(v).shape for k, v in feeds.items()} != {k: tuple(v) for k, v in shapes.items()}:
            # A second data set with other shapes: the module is compiled for the first one.
            continue
        try:
            out = module.run(feeds)
        except Exception as exc:
            return "fail", "run raised " + _first_line(exc)
        diff = _compare(want, [out[n] for n in names], case.rtol, case.atol)
        if diff:
            return "fail", diff
    return "pass", ""


def run_cases(
    cases: Sequence[Any],
    paths: Iterable[str] = PATHS,
    exclusions: dict[str, tuple[str, set[str]]] | None = None,
    progress: bool = False,
) -> list[Result]:
    """Runs every case through every path; excluded (test, path) pairs are not run."""
    from tests.conformance.exclusions import excluded

    by_name = {c.name: c for c in collect_all_names(cases)}
    results: list[Result] = []
    logging.getLogger("optimizer").setLevel(logging.ERROR)
    paths = list(paths)
    with tempfile.TemporaryDirectory(prefix="odc-conformance-") as tmp:
        for index, case in enumerate(cases):
            op = op_of(case, by_name)
            for path in paths:
                hit = excluded(case.name, path) if exclusions is None else _lookup(exclusions, case.name, path)
                if hit is not None:
                    category, reason = hit
                    results.append(Result(case.name, op, path, "excluded", reason, category))
                    continue
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if path == "optimize":
                        status, detail = run_optimize(case)
                    else:
                        status, detail = run_compile(case, Path(tmp))
                results.append(
                    Result(case.name, op, path, status, detail, seconds=time.perf_counter() - start)
                )
            if progress:
                print(f"\r{index + 1}/{len(cases)} {case.name[:60]:60}", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
    return results


def collect_all_names(cases: Sequence[Any]) -> Sequence[Any]:
    return cases


def _lookup(table: dict[str, tuple[str, set[str]]], name: str, path: str) -> tuple[str, str] | None:
    entry = table.get(name)
    if entry and path in entry[1]:
        return entry[0], entry[0]
    return None


def unexplained(results: Sequence[Result], claimed: set[str]) -> list[Result]:
    """Results that break the acceptance rule: a claimed op's test neither passing nor excluded."""
    return [r for r in results if r.op in claimed and r.status not in ("pass", "excluded", "ort")]


def summary(results: Sequence[Result], claimed: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"tests": len({r.test for r in results}), "paths": {}}
    for path in PATHS:
        rows = [r for r in results if r.path == path]
        if not rows:
            continue
        counts = Counter(r.status for r in rows)
        per_op: dict[str, Counter[str]] = defaultdict(Counter)
        for r in rows:
            per_op[r.op][r.status] += 1
        out["paths"][path] = {
            "total": len(rows),
            "run": len(rows) - counts["excluded"],
            "counts": {s: counts[s] for s in STATUSES},
            "excluded_by_category": dict(Counter(r.category for r in rows if r.status == "excluded")),
            "claimed_ops": {
                "tests": sum(1 for r in rows if r.op in claimed),
                "passed": sum(1 for r in rows if r.op in claimed and r.status == "pass"),
                "unexplained": [f"{r.test}: {r.detail}" for r in unexplained(rows, claimed)],
            },
            "per_op": {op: dict(c) for op, c in sorted(per_op.items())},
        }
    out["results"] = [asdict(r) for r in results]
    return out


def markdown(data: dict[str, Any]) -> str:
    lines = ["# ONNX backend node tests", ""]
    lines.append(f"{data['tests']} node tests (onnx {data.get('onnx', '?')}).")
    lines.append("")
    lines.append("| path | total | run | pass | fail | refused | ort | excluded |")
    lines.append("|------|-------|-----|------|------|---------|-----|----------|")
    for path, p in data["paths"].items():
        c = p["counts"]
        lines.append(
            f"| {path} | {p['total']} | {p['run']} | {c['pass']} | {c['fail']} | {c['refused']} "
            f"| {c['ort']} | {c['excluded']} |"
        )
    for path, p in data["paths"].items():
        lines += ["", f"## {path}: excluded by category", ""]
        for cat, n in sorted(p["excluded_by_category"].items(), key=lambda kv: -kv[1]):
            lines.append(f"- {cat}: {n}")
        lines += ["", f"## {path}: per op (pass/total)", ""]
        cells = []
        for op, c in p["per_op"].items():
            cells.append(f"{op} {c.get('pass', 0)}/{sum(c.values())}")
        lines.append(", ".join(cells))
    return "\n".join(lines) + "\n"


def print_report(data: dict[str, Any], verbose: bool) -> None:
    for path, p in data["paths"].items():
        c = p["counts"]
        print(f"== {path}: {p['total']} tests, {p['run']} run: " + ", ".join(f"{s} {c[s]}" for s in STATUSES))
        print("   excluded by category: " + ", ".join(f"{k} {v}" for k, v in sorted(p["excluded_by_category"].items())))
        cl = p["claimed_ops"]
        print(f"   tests of claimed ops: {cl['tests']}, passed {cl['passed']}, unexplained {len(cl['unexplained'])}")
        for line in cl["unexplained"]:
            print(f"     UNEXPLAINED {line}")
        print("   per op (pass/total):")
        row = []
        for op, counts in p["per_op"].items():
            row.append(f"{op} {counts.get('pass', 0)}/{sum(counts.values())}")
        for i in range(0, len(row), 6):
            print("     " + ", ".join(row[i : i + 6]))
    if verbose:
        for r in data["results"]:
            if r["status"] not in ("pass", "excluded"):
                print(f"{r['path']:8} {r['status']:8} {r['test']}: {r['detail']}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", choices=["optimize", "compile", "both"], default="both")
    p.add_argument("--only", metavar="REGEX", help="run the tests whose name matches")
    p.add_argument("--json", metavar="OUT", help="write the full results as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write a markdown summary")
    p.add_argument("-v", "--verbose", action="store_true", help="list every non-passing test")
    args = p.parse_args(argv)
    import onnx

    cases = collect(args.only)
    paths = PATHS if args.path == "both" else (args.path,)
    start = time.perf_counter()
    results = run_cases(cases, paths, progress=sys.stderr.isatty())
    claimed = claimed_ops()
    data = summary(results, claimed)
    data["onnx"] = onnx.__version__
    data["seconds"] = round(time.perf_counter() - start, 1)
    print_report(data, args.verbose)
    print(f"time: {data['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(data))
    bad = sum(len(p["claimed_ops"]["unexplained"]) for p in data["paths"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
