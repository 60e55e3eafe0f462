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
import functools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/compare.py`
    sys.path.insert(0, str(REPO_ROOT))

from tools.benchlib import (  # noqa: E402
    ATOL,
    RTOL,
    _one_line,
    machine_info,
    make_session,
    max_abs_error,
    measure_latency,
    op_counts,
    zoo_entries,
)
from tools.compare_report import ORIGINAL, render_markdown, verdicts  # noqa: E402

TARGET_OPSET = 20
TOOL_TIMEOUT_S = 900.0

Shapes = dict[str, list[int]]
Producer = Callable[[str, str, Shapes], dict[str, Any]]


def _log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


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
    zoo = Path(zoo)
    entries = zoo_entries(zoo, names)
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
