"""Verdicts and Markdown rendering of tools/compare.py results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tools.benchlib import ATOL, NOISE_RATIO, RTOL, format_machine

ORIGINAL = "original"
HEADLINE = ("ours", "onnxsim", "onnxslim")
PINNED = ("ours+pin", "onnxsim+pin", "onnxslim+pin")


def verdicts(models: Sequence[Mapping[str, Any]], latency: bool) -> dict[str, dict[str, Any]]:
    """The acceptance criteria, each ``{"ok": bool | None, "exceptions": [...], "line": str}``."""

    def status(m: Mapping[str, Any], c: str) -> str:
        r = m["contenders"].get(c)
        return r["status"] if r else "not run"

    def nodes(m: Mapping[str, Any], c: str) -> int | None:
        r = m["contenders"].get(c)
        return r["nodes"] if r and r["status"] == "ok" else None

    def node_verdict(ours: str, others: Sequence[str]) -> dict[str, Any]:
        exceptions = []
        for m in models:
            mine = nodes(m, ours)
            theirs = {o: n for o in others if (n := nodes(m, o)) is not None}
            if mine is None:
                exceptions.append(f"{m['name']}: {ours} {status(m, ours)}")
            elif theirs and mine > min(theirs.values()):
                best = min(theirs, key=lambda o: theirs[o])
                diff = _op_diff(m["contenders"][ours]["ops"], m["contenders"][best]["ops"])
                exceptions.append(f"{m['name']}: {ours} {mine} > {best} {theirs[best]} [{diff}]")
        label = f"node count {ours} <= min({', '.join(others)}) on every model"
        return _verdict(label, exceptions)

    out = {
        "nodes": node_verdict("ours", ("onnxsim", "onnxslim")),
        "nodes_pinned": node_verdict("ours+pin", ("onnxsim+pin", "onnxslim+pin")),
    }
    label = (
        f"latency ours <= original (within noise: ratio <= {NOISE_RATIO} or difference inside "
        "the interquartile range) on every model"
    )
    if not latency:
        out["latency"] = {"ok": None, "exceptions": [], "line": f"{label}: not measured"}
    else:
        exceptions = []
        for m in models:
            r = m["contenders"].get("ours", {})
            if "latency" not in r:
                exceptions.append(f"{m['name']}: ours {status(m, 'ours')}")
            elif not r["latency"]["within_noise"]:
                exceptions.append(f"{m['name']}: ratio {r['latency']['ratio']:.3f}")
        out["latency"] = _verdict(label, exceptions)
    bad = [
        f"{m['name']}: {c} max abs error {r['max_abs_error']:.3g}"
        for m in models
        for c, r in m["contenders"].items()
        if r["status"] == "ok" and c != ORIGINAL and not r.get("close", True)
    ]
    out["numerics"] = _verdict(
        f"every successful result matches the original (|err| <= {ATOL:g} + {RTOL:g}*|ref|)", bad
    )
    return out


def _op_diff(mine: Mapping[str, int], theirs: Mapping[str, int]) -> str:
    """``Mul +4, Gemm -1``: how many more (or fewer) nodes of each op type ``mine`` has."""
    delta = {op: mine.get(op, 0) - theirs.get(op, 0) for op in sorted(set(mine) | set(theirs))}
    return ", ".join(f"{op} {d:+d}" for op, d in sorted(delta.items(), key=lambda kv: -kv[1]) if d)


def _verdict(label: str, exceptions: list[str]) -> dict[str, Any]:
    line = f"{label}: {'yes' if not exceptions else 'no'}"
    if exceptions:
        line += f" (exceptions: {'; '.join(exceptions)})"
    return {"ok": not exceptions, "exceptions": exceptions, "line": line}


# ------------------------------------------------------------------------------ rendering


def _cell_nodes(r: Mapping[str, Any] | None) -> str:
    if r is None:
        return "-"
    return str(r["nodes"]) if r["status"] == "ok" else "failed"


def _cell_ms(r: Mapping[str, Any] | None) -> str:
    if r is None or "latency" not in r:
        return "failed" if r is not None and r["status"] != "ok" else "-"
    return f"{r['latency']['median_ms']:.3f}"


def _cell_ratio(r: Mapping[str, Any] | None) -> str:
    if r is None or "latency" not in r:
        return "-"
    st = r["latency"]
    return f"{st['ratio']:.3f}" + ("" if st["within_noise"] else " (slower)")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(result: Mapping[str, Any]) -> str:
    """The headline table, the variants table, numerics and tool times, failures, verdicts."""
    models = result["models"]
    measured = result["settings"]["latency"]
    names = result["contenders"]
    opset_variants = [c for c in names if c.startswith("ours+opset")]
    lines = [format_machine(result["machine"]), ""]
    lines.append(
        f"onnxruntime {result['machine']['versions'].get('onnxruntime')} CPU, intra_op_num_threads=2, "
        f"inter_op_num_threads=1, ORT_ENABLE_ALL; {result['settings']['rounds']} interleaved rounds, "
        "median ms per run"
        if measured
        else "latency not measured (--no-latency)"
    )
    lines.append("")
    lines.append("### Default settings (headline)")
    lines.append("")
    header = ["model", "opset"] + [f"nodes {c}" for c in (ORIGINAL, *HEADLINE)]
    if measured:
        header += [f"ms {c}" for c in (ORIGINAL, *HEADLINE)] + ["ours / original"]
    rows = []
    for m in models:
        cs = m["contenders"]
        row = [m["name"], str(m["opset"])] + [_cell_nodes(cs.get(c)) for c in (ORIGINAL, *HEADLINE)]
        if measured:
            row += [_cell_ms(cs.get(c)) for c in (ORIGINAL, *HEADLINE)] + [
                _cell_ratio(cs.get("ours"))
            ]
        rows.append(row)
    lines += _table(header, rows)

    variants = [c for c in (*PINNED, *opset_variants) if c in names]
    if variants:
        lines += ["", "### Pinned input shapes (sample sizes) and opset upgrade", ""]
        header = ["model", "pinned shapes"] + [f"nodes {c}" for c in variants]
        if measured:
            header += [f"ms {c}" for c in variants] + [
                f"{c} / original" for c in variants if c.startswith("ours")
            ]
        rows = []
        for m in models:
            cs = m["contenders"]
            pins = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in m["sample_shapes"].items())
            row = [m["name"], pins] + [_cell_nodes(cs.get(c)) for c in variants]
            if measured:
                row += [_cell_ms(cs.get(c)) for c in variants]
                row += [_cell_ratio(cs.get(c)) for c in variants if c.startswith("ours")]
            rows.append(row)
        lines += _table(header, rows)

    others = [c for c in names if c != ORIGINAL]
    lines += ["", "### Numerics (max abs error vs original) and tool time (s)", ""]
    header = ["model"] + [f"err {c}" for c in others] + [f"s {c}" for c in others]
    rows = []
    for m in models:
        cs = m["contenders"]
        row = [m["name"]]
        for c in others:
            r = cs.get(c)
            row.append(
                "-"
                if r is None
                else (
                    "failed"
                    if r["status"] != "ok"
                    else f"{r['max_abs_error']:.2g}" + ("" if r.get("close", True) else " (!)")
                )
            )
        for c in others:
            r = cs.get(c)
            row.append("-" if r is None or "seconds" not in r else f"{r['seconds']:.2f}")
        rows.append(row)
    lines += _table(header, rows)

    failures = [
        (m["name"], c, r["status"])
        for m in models
        for c, r in m["contenders"].items()
        if r["status"] != "ok"
    ]
    if failures:
        lines += ["", "Failures:"]
        lines += [f"- {model} / {c}: {status}" for model, c, status in failures]
    lines += ["", "### Verdicts", ""]
    lines += [v["line"] for v in result["verdicts"].values()]
    return "\n".join(lines)
