"""Human and JSON renderings of an :class:`~optimizer.optimize.OptimizeReport`."""

from __future__ import annotations

from typing import Any

from optimizer.optimize import OptimizeReport


def to_json(report: OptimizeReport) -> dict[str, Any]:
    """A JSON-serializable dict (stable keys, for scripts and CI)."""
    check = report.check
    return {
        "source": report.source,
        "output": report.output,
        "level": report.level,
        "opset": {"before": report.opset_before, "after": report.opset_after},
        "nodes": {"before": report.nodes_before, "after": report.nodes_after},
        "ops_before": dict(sorted(report.ops_before.items())),
        "ops_after": dict(sorted(report.ops_after.items())),
        "size_bytes": {"before": report.size_before, "after": report.size_after},
        "rules": dict(sorted(report.rules.items())),
        "pass_seconds": {k: round(v, 4) for k, v in report.pass_seconds.items()},
        "total_seconds": round(report.total_seconds, 3),
        "modified": report.modified,
        "check": None
        if check is None
        else {
            "ok": check.ok,
            "trials": check.trials,
            "atol": check.atol,
            "rtol": check.rtol,
            "max_abs_error": check.max_abs,
            "max_rel_error": check.max_rel,
            "outputs": {
                o.name: {"max_abs": o.max_abs, "max_rel": o.max_rel, "ok": o.ok}
                for o in check.outputs
            },
        },
        "explanations": report.explanations,
    }


def format_report(report: OptimizeReport, verbose: bool = False) -> str:
    """A compact text report: summary line, op table, rules fired, check result, pass times."""
    lines = [
        f"{report.source} -> {report.output or '(not written)'}  [{report.level}"
        + (
            f", opset {report.opset_before}->{report.opset_after}"
            if report.opset_before != report.opset_after
            else ""
        )
        + "]",
        f"nodes {report.nodes_before} -> {report.nodes_after}   "
        f"size {_fmt_bytes(report.size_before)} -> {_fmt_bytes(report.size_after)}   "
        f"time {report.total_seconds:.2f}s",
    ]
    ops = sorted(set(report.ops_before) | set(report.ops_after))
    changed = [op for op in ops if report.ops_before.get(op, 0) != report.ops_after.get(op, 0)]
    shown = ops if verbose else changed
    if shown:
        width = max(len(op) for op in shown)
        lines.append("ops" + " " * (width - 1) + "before  after")
        for op in shown:
            lines.append(
                f"  {op:<{width}} {report.ops_before.get(op, 0):>6} {report.ops_after.get(op, 0):>6}"
            )
    if report.rules:
        lines.append("rewrites:")
        for rule, count in sorted(report.rules.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {count:>5}  {rule}")
    else:
        lines.append("rewrites: none (the model was already optimal for this pipeline)")
    if report.check is not None:
        c = report.check
        lines.append(
            f"check: {'ok' if c.ok else 'FAILED'} on {c.trials} input set(s), "
            f"max abs error {c.max_abs:.3g}, max rel error {c.max_rel:.3g} "
            f"(tolerance {c.atol:g} abs + {c.rtol:g} rel)"
        )
    else:
        lines.append("check: skipped (--no-check)")
    if verbose:
        lines.append("time per pass:")
        for name, secs in sorted(report.pass_seconds.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {secs:8.3f}s  {name}")
    lines.extend(report.explanations)
    return "\n".join(lines)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
