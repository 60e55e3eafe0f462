"""Benchmark: compiled modules against onnxruntime on the model zoo (issue 3, acceptance 2-3).

For every zoo model:

1. compile it (``compile_model``, every symbolic input dim pinned to the zoo sample size) into a
   temporary module directory and load it with ``optimizer.load``, 2 threads;
2. create the onnxruntime session users get on the ORIGINAL model (``benchlib.make_session``:
   CPU, 2 intra-op threads, 1 inter-op thread, ORT_ENABLE_ALL);
3. check the module's outputs against onnxruntime's (1e-4 abs + 1e-3 rel);
4. time both interleaved in this process (``benchlib.measure_latency``: per round a shuffled
   order, a batch of K runs each, medians) and report the ratio compiled / onnxruntime;
5. memory: the module's peak activation arena (planned bytes), and, each in a fresh
   subprocess, the peak RSS growth of creating + running the compiled module and the
   onnxruntime session (``/proc/self/clear_refs`` resets the high-water mark after the imports
   and the feeds are in memory; growth = VmHWM - VmRSS at that point);
6. where the time goes: ``module.profile(feeds)`` aggregated per kernel name (top kernels by
   time) and the share of the reference (Python fallback) kernels.

Command line::

    python tools/bench_compiled.py [--zoo-dir DIR] [--only NAME ...] [--rounds N]
                                   [--json PATH] [--no-rss] [--profile-iterations N]

prints Markdown tables on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/bench_compiled.py`
    sys.path.insert(0, str(REPO_ROOT))

from tools.benchlib import (  # noqa: E402
    ATOL,
    RTOL,
    _one_line,
    format_machine,
    machine_info,
    make_session,
    max_abs_error,
    measure_latency,
    zoo_entries,
)

THREADS = 2
COMPILED, ORT = "compiled", "onnxruntime"
TOP_KERNELS = 5
RSS_TIMEOUT_S = 600.0


def _log(msg: str) -> None:
    print(f"[bench_compiled] {msg}", file=sys.stderr, flush=True)


def _import_retry(what: str, attempts: int = 5, delay: float = 3.0) -> Any:
    """Imports ``what``; retries a few times (the package may be rebuilt concurrently)."""
    import importlib

    for i in range(attempts):
        try:
            return importlib.import_module(what)
        except ImportError:
            if i == attempts - 1:
                raise
            _log(f"import {what} failed, retrying in {delay:.0f}s")
            time.sleep(delay)
    raise AssertionError("unreachable")


class ModuleSession:
    """Adapts a CompiledModule to the ``sess.run(None, feeds)`` call measure_latency makes."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self, _names: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.module.run(feeds).values())


# ------------------------------------------------------------------------------ compile


def sample_dims(entry: Mapping[str, Any], shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    return {
        d: int(size)
        for i in entry["inputs"]
        for d, size in zip(i["shape"], shapes[i["name"]], strict=True)
        if isinstance(d, str)
    }


def compile_entry(src: Path, out: Path, shapes: Mapping[str, list[int]]) -> Any:
    ir = _import_retry("optimizer.ir")
    lower = _import_retry("optimizer.lower.compile")
    opt = _import_retry("optimizer.optimize")
    options = lower.CompileOptions(opt.OptimizeOptions(input_shapes=dict(shapes), check=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lower.compile_model(ir.load(src), out, options)


def load_module(path: Path, threads: int = THREADS) -> Any:
    optimizer = _import_retry("optimizer")
    module = optimizer.load(path)
    module.set_num_threads(threads)
    return module


# ------------------------------------------------------------------------------ profile


def profile_kernels(
    module: Any, feeds: Mapping[str, np.ndarray], fallback_kernels: set[str], iterations: int
) -> dict[str, Any]:
    """Per-kernel totals of ``module.profile`` (median per step over ``iterations`` runs)."""
    steps = module.profile(dict(feeds), iterations=iterations)
    per_kernel: dict[str, dict[str, Any]] = {}
    for st in steps:
        k = per_kernel.setdefault(st.kernel, {"kernel": st.kernel, "steps": 0, "seconds": 0.0})
        k["steps"] += 1
        k["seconds"] += st.seconds
    total = sum(k["seconds"] for k in per_kernel.values())
    rows = sorted(per_kernel.values(), key=lambda k: -k["seconds"])
    for k in rows:
        k["share"] = k["seconds"] / total if total else 0.0
        k["fallback"] = k["kernel"] in fallback_kernels
    fb = sum(k["seconds"] for k in rows if k["fallback"])
    return {
        "iterations": iterations,
        "total_ms": total * 1e3,
        "fallback_ms": fb * 1e3,
        "fallback_share": fb / total if total else 0.0,
        "kernels": rows,
    }


# ------------------------------------------------------------------------------ RSS (subprocess)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _rss_child(kind: str, path: str, feeds_path: str, runs: int) -> None:
    """In a fresh process: peak RSS growth (bytes) of creating + running one contender."""
    import onnxruntime  # noqa: F401  (imports are not part of the growth)

    _import_retry("optimizer")
    with np.load(feeds_path) as data:
        feeds = {k: np.array(data[k]) for k in data.files}
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base_kb, hwm0_kb = _status_kb("VmRSS"), _status_kb("VmHWM")
    if kind == ORT:
        sess = make_session(path)
        for _ in range(runs):
            sess.run(None, feeds)
    else:
        module = load_module(Path(path))
        for _ in range(runs):
            module.run(feeds)
    peak_kb = _status_kb("VmHWM")
    print(
        json.dumps(
            {
                "base_bytes": base_kb * 1024,
                "peak_bytes": peak_kb * 1024,
                "growth_bytes": (peak_kb - base_kb) * 1024,
                "hwm_reset": hwm0_kb <= base_kb + 64,
            }
        )
    )


def rss_growth(kind: str, path: Path, feeds_path: Path, runs: int = 3) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, __file__, "--_rss", kind, str(path), str(feeds_path), str(runs)],
        capture_output=True,
        text=True,
        timeout=RSS_TIMEOUT_S,
        env=env,
        cwd=REPO_ROOT,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"RSS subprocess exit {proc.returncode}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ one model


def bench_model(
    entry: Mapping[str, Any],
    zoo: Path,
    work: Path,
    rounds: int,
    rss: bool,
    profile_iterations: int,
    seed: int = 0,
) -> dict[str, Any]:
    from tools import plan_report
    from tools.zoo import sample_inputs

    name = entry["name"]
    src = zoo / entry.get("file", f"{name}.onnx")
    shapes = plan_report.sample_shapes(entry)
    feeds = sample_inputs(entry, np.random.default_rng(seed), sample_dims(entry, shapes))
    res: dict[str, Any] = {"name": name, "sample_shapes": shapes, "status": "ok"}
    out = work / name
    t0 = time.perf_counter()
    try:
        report = compile_entry(src, out, shapes)
    except Exception as exc:
        res["status"] = f"compile failed: {_one_line(exc)}"
        return res
    res["compile_seconds"] = time.perf_counter() - t0
    res["steps"] = len(report.steps)
    res["fallback_steps"] = sum(1 for r in report.steps if r.fallback)
    res["fallback_ops"] = report.fallback_ops
    res["arena_bytes"] = report.arena_size
    res["naive_arena_bytes"] = report.naive_arena_size
    fallback_kernels = {r.kernel for r in report.steps if r.fallback}
    _log(
        f"{name}: compiled in {res['compile_seconds']:.1f}s, {res['steps']} steps, "
        f"{res['fallback_steps']} fallback"
    )

    module = load_module(out)
    res["module_arena_bytes"] = module.arena_size
    sess = make_session(src)
    want = sess.run(None, feeds)
    want_names = [o.name for o in sess.get_outputs()]
    try:
        got = module.run(feeds)
        res["max_abs_error"], res["close"] = max_abs_error(
            want, want_names, list(got.values()), list(got)
        )
    except Exception as exc:
        res["status"] = f"wrong results: {_one_line(exc)}"
        res["close"] = False
    if not res["close"] and res["status"] == "ok":
        res["status"] = f"mismatch (max abs {res['max_abs_error']:.3g})"

    _log(f"{name}: timing, {rounds} rounds")
    timings = measure_latency(
        {COMPILED: ModuleSession(module), ORT: sess}, feeds, rounds=rounds, seed=seed, reference=ORT
    )
    res["latency"] = timings
    res["ratio"] = timings[COMPILED]["ratio"]

    res["profile"] = profile_kernels(module, feeds, fallback_kernels, profile_iterations)

    if rss:
        feeds_path = work / f"{name}.feeds.npz"
        np.savez(feeds_path, **feeds)
        del module  # release before spawning children (2-core machine)
        for kind, path in ((COMPILED, out), (ORT, src)):
            try:
                res[f"rss_{kind}"] = rss_growth(kind, path, feeds_path)
            except Exception as exc:
                res[f"rss_{kind}"] = {"error": _one_line(exc)}
    return res


# ------------------------------------------------------------------------------ report


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def geomean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def render_markdown(result: Mapping[str, Any]) -> str:
    models = result["models"]
    lines = [format_machine(result["machine"]), ""]
    s = result["settings"]
    lines.append(
        f"Settings: {THREADS} threads each (module.set_num_threads({THREADS}); onnxruntime "
        "intra_op 2 / inter_op 1, ORT_ENABLE_ALL, original model); interleaved, "
        f"{s['rounds']} rounds, a 50 ms pause before each batch (idle thread pools stop "
        f"spinning); tolerance {ATOL} abs + {RTOL} rel."
    )
    lines.append("")
    lines.append("### Latency")
    lines.append("")
    lines.append(
        "| model | steps | fallback steps | max abs err | ok | compiled ms (IQR) "
        "| onnxruntime ms (IQR) | ratio | paired ratio |"
    )
    lines.append("|---|--:|--:|--:|:-:|--:|--:|--:|--:|")
    for m in models:
        if "latency" not in m:
            lines.append(f"| {m['name']} | - | - | - | - | {m['status']} | - | - | - |")
            continue
        c, o = m["latency"][COMPILED], m["latency"][ORT]
        lines.append(
            f"| {m['name']} | {m['steps']} | {m['fallback_steps']}"
            + (f" ({', '.join(m['fallback_ops'])})" if m["fallback_ops"] else "")
            + f" | {m.get('max_abs_error', float('nan')):.2e} | {'yes' if m['close'] else 'NO'} "
            f"| {c['median_ms']:.3f} ({c['q1_ms']:.3f}-{c['q3_ms']:.3f}) "
            f"| {o['median_ms']:.3f} ({o['q1_ms']:.3f}-{o['q3_ms']:.3f}) "
            f"| {m['ratio']:.2f}x | {c['paired_ratio']:.2f}x |"
        )
    summ = result["summary"]
    lines.append("")
    gm = summ["geomean_ratio"]
    lines.append(
        f"Geometric mean ratio compiled/onnxruntime: **{gm:.3f}x** over {summ['timed']} models "
        f"(target <= 1.25x); worst {summ['worst_model']} {summ['worst_ratio']:.2f}x "
        f"(target <= 2x); models > 2x: {', '.join(summ['over_2x']) or 'none'}; "
        f"numerics ok: {summ['close']}/{summ['timed']}."
        if gm
        else "No model timed."
    )
    lines.append("")
    lines.append("### Memory")
    lines.append("")
    lines.append(
        "Peak arena = planned activation arena of the module. RSS growth = peak RSS (VmHWM) minus "
        "RSS after imports and feeds, creating the module/session and running it 3 times, in a "
        "fresh process (weights included for both: onnxruntime copies them, the module mmaps them)."
    )
    lines.append("")
    lines.append(
        "| model | peak arena MiB | arena w/o reuse MiB | compiled RSS growth MiB "
        "| onnxruntime RSS growth MiB | arena <= ORT growth |"
    )
    lines.append("|---|--:|--:|--:|--:|:-:|")
    for m in models:
        if "arena_bytes" not in m:
            continue
        rc, ro = m.get(f"rss_{COMPILED}") or {}, m.get(f"rss_{ORT}") or {}
        gc, go = rc.get("growth_bytes"), ro.get("growth_bytes")
        lines.append(
            f"| {m['name']} | {_mib(m['arena_bytes'])} | {_mib(m['naive_arena_bytes'])} "
            f"| {_mib(gc) if 'error' not in rc else rc['error']} "
            f"| {_mib(go) if 'error' not in ro else ro['error']} "
            f"| {'-' if go is None else ('yes' if m['arena_bytes'] <= go else 'NO')} |"
        )
    lines.append("")
    lines.append("### Where the compiled module's time goes")
    lines.append("")
    lines.append(
        "`module.profile(feeds)` per-step medians summed per kernel; fallback = Python reference "
        "kernels. Profiled total includes per-step timing overhead."
    )
    lines.append("")
    lines.append(
        f"| model | profiled ms | fallback share | top {TOP_KERNELS} kernels (ms, share, steps) |"
    )
    lines.append("|---|--:|--:|---|")
    for m in models:
        p = m.get("profile")
        if not p:
            continue
        top = "; ".join(
            f"{k['kernel']}{' [fb]' if k['fallback'] else ''} {k['seconds'] * 1e3:.3f} "
            f"({k['share']:.0%}, x{k['steps']})"
            for k in p["kernels"][:TOP_KERNELS]
        )
        lines.append(
            f"| {m['name']} | {p['total_ms']:.3f} | {p['fallback_share']:.1%} "
            f"({p['fallback_ms']:.3f} ms) | {top} |"
        )
    lines.append("")
    return "\n".join(lines)


def summarize(models: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    timed = [m for m in models if "ratio" in m]
    ratios = {m["name"]: m["ratio"] for m in timed}
    worst = max(ratios, key=ratios.get) if ratios else None
    return {
        "timed": len(timed),
        "close": sum(1 for m in timed if m.get("close")),
        "geomean_ratio": geomean(list(ratios.values())),
        "worst_model": worst,
        "worst_ratio": ratios.get(worst) if worst else None,
        "over_2x": [n for n, r in ratios.items() if r > 2.0],
        "fallback_steps_total": sum(m.get("fallback_steps", 0) for m in models),
        "failed": [m["name"] for m in models if m["status"] != "ok"],
    }


def run_bench(
    zoo: Path,
    names: Sequence[str] | None,
    rounds: int,
    rss: bool,
    profile_iterations: int,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    entries = zoo_entries(zoo, names)
    info = machine_info()
    models = []
    with contextlib.ExitStack() as stack:
        work = (
            Path(work_dir)
            if work_dir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-compiled-")))
        )
        work.mkdir(parents=True, exist_ok=True)
        for i, entry in enumerate(entries, 1):
            _log(f"[{i}/{len(entries)}] {entry['name']}")
            try:
                models.append(bench_model(entry, zoo, work, rounds, rss, profile_iterations))
            except Exception as exc:
                models.append({"name": entry["name"], "status": f"failed: {_one_line(exc)}"})
                _log(f"{entry['name']}: {models[-1]['status']}")
    info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "machine": info,
        "settings": {
            "zoo": str(zoo),
            "rounds": rounds,
            "threads": THREADS,
            "rss": rss,
            "profile_iterations": profile_iterations,
            "session": {
                "provider": "CPUExecutionProvider",
                "intra_op_num_threads": 2,
                "inter_op_num_threads": 1,
                "graph_optimization_level": "ORT_ENABLE_ALL",
            },
            "tolerance": {"atol": ATOL, "rtol": RTOL},
        },
        "models": models,
        "summary": summarize(models),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_rss"]:  # internal: the RSS child
        _rss_child(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zoo-dir", type=Path, help="a built zoo (default: the cached zoo)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these models")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every number here")
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument(
        "--profile-iterations", type=int, default=10, help="runs per profile (default 10)"
    )
    parser.add_argument("--work-dir", type=Path, help="keep the compiled modules here")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    zoo = args.zoo_dir
    if zoo is None:
        from tools.zoo import zoo_dir

        zoo = zoo_dir()
    result = run_bench(
        zoo, args.only, args.rounds, not args.no_rss, args.profile_iterations, args.work_dir
    )
    print(render_markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    failed = result["summary"]["failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
