"""Benchmark: our optimizer against onnxsim, onnxslim and the original model, on the model zoo.

For every zoo model each contender produces an optimized model; we then count nodes (subgraphs
included), check the numerics against the original in onnxruntime on ``zoo.sample_inputs`` and
time onnxruntime CPU inference. Contenders:

==============  ==========================================================================
original        the zoo model as exported
ours            ``optimize_file`` at O2, default options (the headline)
ours+pin        same, every symbolic input dim pinned to the sample size (``input_shapes``)
ours+opset20    same as ``ours`` with ``target_opset=20`` (models below opset 20 only)
onnxsim         ``onnxsim.simplify(model)``, defaults
onnxsim+pin     ``onnxsim.simplify(model, overwrite_input_shapes=<sample shapes>)``
onnxslim        ``onnxslim.slim(model)``, defaults
onnxslim+pin    ``onnxslim.slim(model, input_shapes=<sample shapes>)``
==============  ==========================================================================

Every tool runs in a separate worker process (so a crash or a print in a tool cannot take the
benchmark down or garble stdout); a failure is recorded as ``failed: <one line>``.

Latency is what users see: onnxruntime CPU, ``intra_op_num_threads=2``,
``inter_op_num_threads=1``, ``ORT_ENABLE_ALL``. All sessions of a model are created up front,
warmed up, then timed in rounds; each round visits every contender once in a shuffled order and
times a batch of K runs (K chosen so that a batch of the original takes ~50 ms). We report the
median per-run time per contender, its interquartile range and the ratio to the original.

Command line::

    python tools/compare.py [--zoo-dir DIR] [--only NAME ...] [--rounds N] [--json PATH]
                            [--no-latency]

prints Markdown tables and verdict lines on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/compare.py`
    sys.path.insert(0, str(REPO_ROOT))

ORIGINAL = "original"
HEADLINE = ("ours", "onnxsim", "onnxslim")
PINNED = ("ours+pin", "onnxsim+pin", "onnxslim+pin")
ATOL, RTOL = 1e-4, 1e-3  # the optimizer's own default check tolerance
NOISE_RATIO = 1.03
TARGET_OPSET = 20
TOOL_TIMEOUT_S = 900.0

Shapes = dict[str, list[int]]
Producer = Callable[[str, str, Shapes], dict[str, Any]]


def _log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# ------------------------------------------------------------------------------ machine


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load, package versions, commit and date: what a benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version()}
    for pkg in ("onnxruntime", "onnx", "onnxsim", "onnxslim", "numpy", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "versions": versions,
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def format_machine(info: Mapping[str, Any]) -> str:
    v = info["versions"]
    load = info.get("loadavg")
    return (
        f"Machine: {info['cpu']}, {info['usable_cpus'] or info['logical_cpus']} usable of "
        f"{info['logical_cpus']} logical CPUs"
        + (f", load average {load[0]:.2f}" if load else "")
        + f"; {info['platform']}; "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f"; commit {info.get('commit') or '?'}; {info['date']}"
    )


# ------------------------------------------------------------------------------ node counting


def op_counts(model: onnx.ModelProto | onnx.GraphProto) -> dict[str, int]:
    """Nodes per op type (``domain::Op`` outside the default domain), subgraphs included."""
    graph = model.graph if isinstance(model, onnx.ModelProto) else model
    counts: dict[str, int] = {}
    for node in graph.node:
        op = (
            f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        )
        counts[op] = counts.get(op, 0) + 1
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                for k, v in op_counts(sub).items():
                    counts[k] = counts.get(k, 0) + v
    return dict(sorted(counts.items()))


def count_nodes(model: onnx.ModelProto | onnx.GraphProto) -> int:
    """All nodes, including those in subgraphs (If/Loop/Scan bodies), at any depth."""
    return sum(op_counts(model).values())


# ------------------------------------------------------------------------------ contenders


def produce_ours(src: str, dst: str, shapes: Shapes, **options: Any) -> dict[str, Any]:
    """Our optimizer at O2 (check on, as a user runs it); ``options`` go to OptimizeOptions."""
    from optimizer.optimize import OptimizeOptions, optimize_file

    report = optimize_file(src, dst, OptimizeOptions(level="O2", **options))
    return {
        "seconds": report.total_seconds,
        "self_check_max_abs": report.check.max_abs if report.check else None,
        "rules": dict(report.rules),
        "pass_seconds": dict(report.pass_seconds),
    }


def produce_ours_pinned(src: str, dst: str, shapes: Shapes) -> dict[str, Any]:
    return produce_ours(src, dst, shapes, input_shapes=shapes)


def produce_onnxsim(src: str, dst: str, shapes: Shapes, pin: bool = False) -> dict[str, Any]:
    import onnxsim

    t0 = time.perf_counter()
    kwargs = {"overwrite_input_shapes": shapes} if pin else {}
    model, ok = onnxsim.simplify(onnx.load(src), **kwargs)
    seconds = time.perf_counter() - t0
    if not ok:
        raise RuntimeError("onnxsim: its own check reports the simplified model differs")
    onnx.save(model, dst)
    return {"seconds": seconds}


def produce_onnxslim(src: str, dst: str, shapes: Shapes, pin: bool = False) -> dict[str, Any]:
    import onnxslim

    t0 = time.perf_counter()
    kwargs = (
        {"input_shapes": [f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()]} if pin else {}
    )
    model = onnxslim.slim(onnx.load(src), **kwargs)
    seconds = time.perf_counter() - t0
    if model is None:
        raise RuntimeError("onnxslim.slim returned None")
    onnx.save(model, dst)
    return {"seconds": seconds}


@dataclass(frozen=True)
class Contender:
    """A tool setting: ``produce(src, dst, sample_shapes) -> info`` writes the model to dst.

    ``produce`` must be picklable (a module-level function or a partial of one): it runs in
    a worker process.
    """

    name: str
    produce: Producer
    applies: Callable[[Mapping[str, Any]], bool] | None = None


def _below_target_opset(entry: Mapping[str, Any]) -> bool:
    return int(entry.get("opset", TARGET_OPSET)) < TARGET_OPSET


DEFAULT_CONTENDERS: tuple[Contender, ...] = (
    Contender("ours", produce_ours),
    Contender("ours+pin", produce_ours_pinned),
    Contender(
        f"ours+opset{TARGET_OPSET}",
        functools.partial(produce_ours, target_opset=TARGET_OPSET),
        _below_target_opset,
    ),
    Contender("onnxsim", produce_onnxsim),
    Contender("onnxsim+pin", functools.partial(produce_onnxsim, pin=True)),
    Contender("onnxslim", produce_onnxslim),
    Contender("onnxslim+pin", functools.partial(produce_onnxslim, pin=True)),
)


# ------------------------------------------------------------------------------ worker process


def _worker_main(conn: Any) -> None:
    # Tools print (tables, banners): keep our stdout for the report.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for mod in ("onnxsim", "onnxslim", "optimizer.optimize"):  # warm imports
        with contextlib.suppress(Exception):
            __import__(mod)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, args = job
        try:
            conn.send((True, fn(*args)))
        except BaseException as exc:  # report anything, keep serving
            conn.send((False, _one_line(exc)))


class ToolWorker:
    """One long-lived spawned process that runs producers; restarted if it dies or hangs."""

    def __init__(self, timeout: float = TOOL_TIMEOUT_S) -> None:
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the worker. Raises RuntimeError with one line on any failure."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        try:
            self._conn.send((fn, args))
        except Exception as exc:  # e.g. an unpicklable producer
            raise RuntimeError(f"cannot send the job to the worker: {_one_line(exc)}") from None
        if not self._conn.poll(self.timeout):
            self._kill()
            raise RuntimeError(f"timed out after {self.timeout:.0f}s")
        try:
            ok, value = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self._kill()
            raise RuntimeError(f"the tool crashed the worker process (exit code {code})") from None
        if not ok:
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(Exception):
                self._conn.send(None)
            self._proc.join(10)
        self._kill()

    def __enter__(self) -> ToolWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ onnxruntime


def make_session(path: str | os.PathLike[str]) -> Any:
    """The session users get: CPU, 2 intra-op threads, 1 inter-op thread, ORT_ENABLE_ALL."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_abs_error(
    want: Sequence[np.ndarray],
    want_names: Sequence[str],
    got: Sequence[np.ndarray],
    got_names: Sequence[str],
) -> tuple[float, bool]:
    """Largest |got - want| over all outputs (matched by name, else by position) and whether
    every element is within ``ATOL + RTOL * |want|``. A shape mismatch raises ValueError."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} outputs, the original has {len(want)}")
    by_name = dict(zip(got_names, got, strict=True))
    pairs = (
        [(n, w, by_name[n]) for n, w in zip(want_names, want, strict=True)]
        if set(want_names) == set(got_names)
        else list(zip(want_names, want, got, strict=True))
    )
    worst, close = 0.0, True
    for name, w, g in pairs:
        if w.shape != g.shape:
            raise ValueError(f"output {name}: shape {list(g.shape)}, original {list(w.shape)}")
        w64, g64 = np.asarray(w, np.float64), np.asarray(g, np.float64)
        if w64.size:
            nan_w, nan_g = np.isnan(w64), np.isnan(g64)
            if (nan_w != nan_g).any():
                return float("inf"), False
            diff = np.abs(np.where(nan_w, 0.0, g64 - w64))
            worst = max(worst, float(diff.max()))
            close = close and bool((diff <= ATOL + RTOL * np.abs(np.where(nan_w, 0.0, w64))).all())
    return worst, close


def measure_latency(
    sessions: Mapping[str, Any],
    feeds: Mapping[str, np.ndarray],
    rounds: int = 30,
    batch_seconds: float = 0.05,
    warmup_seconds: float = 0.3,
    seed: int = 0,
    reference: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Interleaved timing: per round, every session in a shuffled order runs a batch of K.

    K is the same for all contenders, chosen so a batch of ``reference`` (default: the first
    session) takes about ``batch_seconds``. Returns per contender: median / q1 / q3 / min
    milliseconds per run, the per-round samples, K, and (when ``reference`` is timed) the
    median ratio to it plus the median of the per-round paired ratios.
    """
    names = list(sessions)
    reference = reference if reference in sessions else names[0]
    feeds = dict(feeds)
    single: dict[str, float] = {}
    for name in names:  # warm-up: first runs allocate, compile and fill caches
        sess, runs, t_start = sessions[name], 0, time.perf_counter()
        while runs < 3 or (time.perf_counter() - t_start < warmup_seconds and runs < 50):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            single[name] = min(single.get(name, float("inf")), time.perf_counter() - t0)
            runs += 1
    k = max(1, round(batch_seconds / max(single[reference], 1e-6)))
    samples: dict[str, list[float]] = {n: [] for n in names}
    order = list(names)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            run = sessions[name].run
            t0 = time.perf_counter()
            for _ in range(k):
                run(None, feeds)
            samples[name].append((time.perf_counter() - t0) / k * 1e3)
    out: dict[str, dict[str, Any]] = {}
    ref = samples[reference]
    for name in names:
        s = samples[name]
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else (s[0],) * 3
        out[name] = {
            "median_ms": statistics.median(s),
            "q1_ms": q1,
            "q3_ms": q3,
            "min_ms": min(s),
            "runs_per_batch": k,
            "rounds": rounds,
            "samples_ms": [round(x, 5) for x in s],
        }
    ref_stats = out[reference]
    for name in names:
        st = out[name]
        st["ratio"] = st["median_ms"] / ref_stats["median_ms"]
        st["paired_ratio"] = statistics.median(
            a / b for a, b in zip(samples[name], ref, strict=True)
        )
        # within noise: at most 3% slower, or slower by less than the reference's IQR
        st["within_noise"] = st["ratio"] <= NOISE_RATIO or (
            st["median_ms"] - ref_stats["median_ms"] <= ref_stats["q3_ms"] - ref_stats["q1_ms"]
        )
    return out


# ------------------------------------------------------------------------------ comparison


def sample_shapes(feeds: Mapping[str, np.ndarray]) -> Shapes:
    return {k: [int(d) for d in v.shape] for k, v in feeds.items()}


def _node_info(path: Path) -> dict[str, Any]:
    ops = op_counts(onnx.load(path, load_external_data=False))
    return {"nodes": sum(ops.values()), "ops": ops}


def compare_model(
    entry: Mapping[str, Any],
    zoo: Path,
    work: Path,
    worker: ToolWorker,
    contenders: Sequence[Contender] = DEFAULT_CONTENDERS,
    rounds: int = 30,
    latency: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs every contender on one zoo model; returns nodes, errors, latencies per contender."""
    from tools.zoo import sample_inputs

    name = entry["name"]
    src = zoo / entry.get("file", f"{name}.onnx")
    feeds = sample_inputs(entry, np.random.default_rng(seed))
    shapes = sample_shapes(feeds)
    results: dict[str, dict[str, Any]] = {
        ORIGINAL: {"status": "ok", "path": str(src), **_node_info(src)}
    }
    for c in contenders:
        if c.applies is not None and not c.applies(entry):
            continue
        dst = work / f"{name}.{c.name.replace('+', '_')}.onnx"
        t0 = time.perf_counter()
        try:
            info = worker.call(c.produce, str(src), str(dst), shapes)
            results[c.name] = {"status": "ok", "path": str(dst), **_node_info(dst), **info}
        except Exception as exc:
            msg = str(exc) if isinstance(exc, RuntimeError) else _one_line(exc)
            results[c.name] = {"status": f"failed: {msg}"}
        _log(f"{name}: {c.name}: {results[c.name]['status']} ({time.perf_counter() - t0:.1f}s)")

    sessions: dict[str, Any] = {}
    for cname, r in results.items():
        if r["status"] != "ok":
            continue
        try:
            sessions[cname] = make_session(r["path"])
        except Exception as exc:
            if cname == ORIGINAL:
                raise
            r["status"] = f"failed: onnxruntime cannot load it: {_one_line(exc)}"
    want = sessions[ORIGINAL].run(None, feeds)
    want_names = [o.name for o in sessions[ORIGINAL].get_outputs()]
    for cname, sess in list(sessions.items()):
        r = results[cname]
        try:
            got = sess.run(None, feeds)
            r["max_abs_error"], r["close"] = max_abs_error(
                want, want_names, got, [o.name for o in sess.get_outputs()]
            )
        except Exception as exc:
            r["status"] = f"failed: wrong results: {_one_line(exc)}"
            del sessions[cname]
    if latency:
        _log(f"{name}: timing {len(sessions)} contenders, {rounds} rounds")
        timings = measure_latency(sessions, feeds, rounds=rounds, seed=seed, reference=ORIGINAL)
        for cname, st in timings.items():
            results[cname]["latency"] = st
    return {
        "name": name,
        "exporter": entry.get("exporter"),
        "opset": entry.get("opset"),
        "sample_shapes": shapes,
        "contenders": results,
    }


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


def run_comparison(
    zoo: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    contenders: Sequence[Contender] = DEFAULT_CONTENDERS,
    rounds: int = 30,
    latency: bool = True,
    work_dir: str | os.PathLike[str] | None = None,
    tool_timeout: float = TOOL_TIMEOUT_S,
) -> dict[str, Any]:
    """Compares every contender on the zoo at ``zoo`` (all its models unless ``names``)."""
    from tools.zoo import load_index

    zoo = Path(zoo)
    entries = load_index(zoo)
    if names:
        known = {e["name"] for e in entries}
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(f"not in {zoo}/zoo.json: {', '.join(missing)}")
        entries = [e for e in entries if e["name"] in names]
    info = machine_info()
    models = []
    with contextlib.ExitStack() as stack:
        work = (
            Path(work_dir)
            if work_dir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="compare-")))
        )
        work.mkdir(parents=True, exist_ok=True)
        worker = stack.enter_context(ToolWorker(tool_timeout))
        for i, entry in enumerate(entries, 1):
            _log(f"[{i}/{len(entries)}] {entry['name']}")
            models.append(compare_model(entry, zoo, work, worker, contenders, rounds, latency))
    info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "machine": info,
        "settings": {
            "zoo": str(zoo),
            "rounds": rounds,
            "latency": latency,
            "session": {
                "provider": "CPUExecutionProvider",
                "intra_op_num_threads": 2,
                "inter_op_num_threads": 1,
                "graph_optimization_level": "ORT_ENABLE_ALL",
            },
            "tolerance": {"atol": ATOL, "rtol": RTOL},
        },
        "contenders": [ORIGINAL] + [c.name for c in contenders],
        "models": models,
        "verdicts": verdicts(models, latency),
    }


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


# ------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--zoo-dir", type=Path, help="a built zoo (default: the cached zoo, built if needed)"
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="compare only these models")
    parser.add_argument(
        "--rounds", type=int, default=30, help="interleaved timing rounds (default 30)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every number to PATH")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--work-dir", type=Path, help="keep the produced models here")
    parser.add_argument(
        "--tool-timeout", type=float, default=TOOL_TIMEOUT_S, help="seconds per tool run"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    zoo = args.zoo_dir
    if zoo is None:
        from tools.zoo import zoo_dir

        _log("locating / building the cached zoo")
        zoo = zoo_dir(args.only)
    try:
        result = run_comparison(
            zoo,
            args.only,
            rounds=args.rounds,
            latency=not args.no_latency,
            work_dir=args.work_dir,
            tool_timeout=args.tool_timeout,
        )
    except (KeyError, FileNotFoundError) as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
