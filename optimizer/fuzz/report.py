"""Human and JSON renderings of a :class:`~optimizer.fuzz.runner.FuzzReport`."""

from __future__ import annotations

import math
from typing import Any

from optimizer.fuzz.compare import OutputStats
from optimizer.fuzz.runner import FuzzReport


def to_json(report: FuzzReport) -> dict[str, Any]:
    """A JSON-serializable dict (stable keys, for scripts and CI); infinities become "inf"."""
    opts = report.options
    return {
        "model": report.model,
        "ok": report.ok,
        "targets": [{"name": n, "summary": s} for n, s in report.targets],
        "iterations": opts.iterations,
        "input_sets": report.runs,
        "samples": report.samples,
        "seed": opts.seed,
        "distributions": list(opts.distributions),
        "inputs": [s.to_json() for s in report.inputs],
        "reference_failures": report.reference_failures,
        "outputs": [_output_json(o) for o in report.outputs],
        "seconds": round(report.seconds, 3),
    }


def _output_json(o: OutputStats) -> dict[str, Any]:
    worst = o.worst
    return {
        "target": o.target,
        "output": o.name,
        "ok": o.ok,
        "atol": o.atol,
        "rtol": o.rtol,
        "input_sets": o.runs,
        "failures": o.failures,
        "max_abs_error": o.max_abs,
        "max_rel_error": o.max_rel,
        "max_tolerance_ratio": _num(o.max_ratio),
        "noise_floor_ratio": _num(o.max_floor),
        "noise_factor": o.noise_factor,
        "nan": {"reference": o.nan_ref, "ours": o.nan_ours},
        "inf": {"reference": o.inf_ref, "ours": o.inf_ours},
        "first_failure": o.first_detail or None,
        "worst": None
        if worst is None
        else {
            "iteration": worst.iteration,
            "distribution": worst.distribution,
            "tolerance_ratio": _num(worst.ratio),
            "noise_floor_ratio": _num(worst.floor),
            "detail": worst.detail or None,
            "saved": worst.saved,
        },
    }


def format_report(report: FuzzReport, verbose: bool = False) -> str:
    """Summary, input table, one row per target and output, then a line per failure."""
    opts = report.options
    samples = report.samples
    lines = [
        f"fuzz {report.model}: {report.runs} input sets ("
        + (f"{samples} given, " if samples else "")
        + f"{opts.iterations} random: {', '.join(opts.distributions)}; seed {opts.seed}) "
        f"in {report.seconds:.1f}s",
        "inputs: " + ("; ".join(s.describe() for s in report.inputs) or "none"),
    ]
    if report.reference_failures:
        lines.append(
            f"skipped {len(report.reference_failures)} input sets the original model fails on "
            f"(first: {report.reference_failures[0]})"
        )
    header = ("target", "output", "max abs", "max rel", "err/tol", "ort-opt/tol", "NaN ref/ours",
              "Inf ref/ours", "result")  # fmt: skip
    rows = [header]
    for o in report.outputs:
        rows.append(
            (
                o.target,
                o.name,
                f"{o.max_abs:.3g}",
                f"{o.max_rel:.3g}",
                _ratio(o.max_ratio),
                _ratio(o.max_floor),
                f"{o.nan_ref}/{o.nan_ours}",
                f"{o.inf_ref}/{o.inf_ours}",
                "ok" if o.ok else f"FAIL {o.failures}/{o.runs}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for name, summary in report.targets:
        lines.append(f"{name}: {summary}")
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    for o in report.outputs:
        if not o.ok or verbose:
            lines.append(describe_worst(o))
    lines.append(
        "result: ok (every output within tolerance)"
        if report.ok
        else f"result: FAIL ({len(report.failures())} of {len(report.outputs)} outputs out of "
        "tolerance)"
    )
    return "\n".join(lines)


def describe_worst(o: OutputStats) -> str:
    """One line on an output's worst input set (and where it was saved)."""
    w = o.worst
    if w is None:
        return f"{o.target} '{o.name}': no input set ran"
    verdict = "FAIL" if w.score > 1 else "ok"
    text = (
        f"{o.target} output '{o.name}': worst at iteration {w.iteration} ({w.distribution}): "
        f"error/tolerance {_ratio(w.ratio)} (tolerance {o.atol:g} abs + {o.rtol:g} rel)"
    )
    if w.floor > 0:
        text += f", onnxruntime-optimized's {_ratio(w.floor)}"
    text += f", {verdict}"
    if w.detail:
        text += f": {w.detail}"
    if w.saved:
        text += f"; input saved in {w.saved}"
    return text


def _ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3g}"


def _num(x: float) -> float | str:
    return "inf" if math.isinf(x) else x
