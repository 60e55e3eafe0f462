"""Shared benchmark machinery: machine description, node counts, onnxruntime sessions,
numerical error and interleaved latency measurement (A B A B ..., medians).

Used by tools/compare.py and tools/time_big.py; usable by any benchmark that times
contenders against onnxruntime.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO_ROOT = Path(__file__).resolve().parents[1]
ATOL, RTOL = 1e-4, 1e-3  # the optimizer's own default check tolerance
NOISE_RATIO = 1.03  # a latency ratio up to this counts as "the same speed"


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
    settle_seconds: float = 0.05,
) -> dict[str, dict[str, Any]]:
    """Interleaved timing: per round, every session in a shuffled order runs a batch of K.

    K is the same for all contenders, chosen so a batch of ``reference`` (default: the first
    session) takes about ``batch_seconds``. Returns per contender: median / q1 / q3 / min
    milliseconds per run, the per-round samples, K, and (when ``reference`` is timed) the
    median ratio to it plus the median of the per-round paired ratios.

    Before each batch the process sleeps ``settle_seconds``: thread pools keep spinning after a
    run (onnxruntime's intra-op workers for tens of milliseconds by default), and a contender
    timed while another's spinners hold a core loses that core. Measured on a 2-core slice:
    a compiled module run right after an onnxruntime batch took 1.5-1.9x its time alone; after
    a 50 ms pause, its time alone.
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
            if settle_seconds > 0:
                time.sleep(settle_seconds)
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


def zoo_entries(zoo: Path, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The zoo.json entries of ``zoo``, restricted to ``names`` (every name must exist)."""
    from tools.zoo import load_index

    entries = load_index(zoo)
    if names:
        known = {e["name"] for e in entries}
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(f"not in {zoo}/zoo.json: {', '.join(missing)}")
        entries = [e for e in entries if e["name"] in names]
    return entries
