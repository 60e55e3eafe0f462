"""Acceptance timing: ``optimize`` on a ~100 MB model must take under 20 s on this machine, and
compiling it into a module (``--module``) under 60 s.

Builds the zoo's ``resnet50_big`` (full-size ResNet-50, via ``tools/zoo.py --big``) into a cache
directory if it is not there yet, then times the command line exactly as a user runs it, in a
subprocess, numerical check on (the default)::

    optimize resnet50_big.onnx -o out.onnx

``--repeat`` times (default 3), reporting every wall time and the median; one more run with
``--json`` gives the per-pass time breakdown.

With ``--module`` it times the compiler instead (issue 3, acceptance 5)::

    optimize resnet50_big.onnx -o out_dir/        (no tuning)

and then, in this process, ``optimizer.load(out_dir)`` and runs: load time, first run, median of
10 runs, and the largest difference from onnxruntime on the same random input.

Command line::

    python tools/time_big.py [--cache-dir DIR] [--repeat N] [--limit SECONDS] [--json PATH]
    python tools/time_big.py --module [--repeat N] [--limit SECONDS]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/time_big.py`
    sys.path.insert(0, str(REPO_ROOT))

from tools.benchlib import format_machine, machine_info  # noqa: E402

MODEL = "resnet50_big"
LIMIT_S = 20.0
MODULE_LIMIT_S = 60.0


def _log(msg: str) -> None:
    print(f"[time_big] {msg}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """``<repo>/.zoo_cache/<zoo source hash>-big``: rebuilt when the zoo sources change."""
    from tools.zoo import source_hash

    return REPO_ROOT / ".zoo_cache" / f"{source_hash()}-big"


def ensure_model(cache: Path) -> Path:
    """The big model's path, building it with ``tools/zoo.py --big`` if missing."""
    path = cache / f"{MODEL}.onnx"
    if path.exists():
        return path
    _log(f"building {MODEL} into {cache} (takes a minute or two)")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "zoo.py"), "--big", "--out", str(cache)],
        check=True,
    )
    _log(f"built in {time.perf_counter() - t0:.0f}s")
    return path


def optimize_command() -> list[str]:
    """The ``optimize`` console script of this interpreter's environment (else ``-m``)."""
    script = Path(sys.executable).with_name("optimize")
    if script.exists():
        return [str(script)]
    found = shutil.which("optimize")
    return [found] if found else [sys.executable, "-m", "optimizer.cli"]


def time_run(model: Path, out: Path | str, extra: Sequence[str] = ()) -> tuple[float, str]:
    """Wall time of one ``optimize MODEL -o OUT`` subprocess and its stdout."""
    cmd = [*optimize_command(), str(model), "-o", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    return wall, proc.stdout


def _mb(path: Path) -> float:
    size = path.stat().st_size
    data = path.with_name(path.name + ".data")
    return (size + (data.stat().st_size if data.exists() else 0)) / 1e6


def time_module(model: Path, repeat: int, limit: float) -> int:
    """``optimize MODEL -o DIR/`` wall times, then load + run the module against onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    import optimizer

    print(f"command: {' '.join(optimize_command())} {model.name} -o out_dir/  (no tuning)")
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="time_big-") as tmp:
        out = Path(tmp) / "module"
        for i in range(repeat):
            if out.exists():
                shutil.rmtree(out)
            wall, _ = time_run(model, f"{out}/")  # a trailing slash: a module directory
            walls.append(wall)
            print(f"compile {i + 1}: {wall:.2f} s")
        t0 = time.perf_counter()
        module = optimizer.load(out)
        load_s = time.perf_counter() - t0
        module.set_num_threads(2)
        feeds = {
            i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)
            for i in module.inputs
        }
        t0 = time.perf_counter()
        got = module.run(feeds)
        first_s = time.perf_counter() - t0
        runs = []
        for _ in range(10):
            t0 = time.perf_counter()
            module.run(feeds)
            runs.append(time.perf_counter() - t0)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        want = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        expected = want.run(None, feeds)
        err = max(float(np.abs(g - w).max()) for g, w in zip(got.values(), expected))
    median = statistics.median(walls)
    print(
        f"median compile of {len(walls)}: {median:.2f} s (min {min(walls):.2f}, max {max(walls):.2f})"
    )
    print(f"load {load_s * 1e3:.0f} ms, first run {first_s * 1e3:.1f} ms, median run "
          f"{statistics.median(runs) * 1e3:.1f} ms (2 threads), max abs diff vs onnxruntime "
          f"{err:.2e}")  # fmt: skip
    ok = median < limit and err < 1e-3
    print(f"compile + load + run of a ResNet-50 under {limit:g} s on this machine, matching "
          f"onnxruntime: {'yes' if ok else 'no'} (median compile {median:.2f} s)")  # fmt: skip
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache-dir", type=Path, help="where resnet50_big.onnx lives / is built")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument(
        "--limit", type=float, help="acceptance limit, seconds (20; 60 with --module)"
    )
    parser.add_argument("--module", action="store_true", help="time `optimize -o DIR/` instead")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)

    model = ensure_model(args.cache_dir or default_cache_dir())
    info = machine_info()
    size_mb = _mb(model)
    print(format_machine(info))
    print(f"model: {model} ({size_mb:.1f} MB)")
    if args.module:
        return time_module(model, args.repeat, args.limit or MODULE_LIMIT_S)
    args.limit = args.limit or LIMIT_S
    print(f"command: {' '.join(optimize_command())} {model.name} -o out.onnx  (check on)")
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="time_big-") as tmp:
        out = Path(tmp) / "out.onnx"
        for i in range(args.repeat):
            wall, _ = time_run(model, out)
            walls.append(wall)
            print(f"run {i + 1}: {wall:.2f} s")
            out.unlink(missing_ok=True)
        json_wall, stdout = time_run(model, out, ["--json"])
        out_mb = _mb(out)
    report: dict[str, Any] = json.loads(stdout)
    median = statistics.median(walls)
    print(f"median of {len(walls)}: {median:.2f} s (min {min(walls):.2f}, max {max(walls):.2f})")
    print(
        f"breakdown of one run (--json, wall {json_wall:.2f} s; in-process total "
        f"{report['total_seconds']:.2f} s; nodes {report['nodes']['before']} -> "
        f"{report['nodes']['after']}; output {out_mb:.1f} MB; check "
        f"{'ok' if report['check'] and report['check']['ok'] else report['check']}):"
    )
    passes = report["pass_seconds"]
    for name, secs in sorted(passes.items(), key=lambda kv: -kv[1]):
        print(f"  {secs:8.3f} s  {name}")
    rest = report["total_seconds"] - sum(passes.values())
    print(f"  {rest:8.3f} s  (load, numerical check, save: total minus passes)")
    print(f"  {json_wall - report['total_seconds']:8.3f} s  (process start-up and imports)")
    ok = median < args.limit
    verdict = (
        f"optimize on a {size_mb:.0f} MB model takes under {args.limit:g} s on this machine: "
        f"{'yes' if ok else 'no'} (median {median:.2f} s)"
    )
    print(verdict)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "model": str(model),
                    "size_mb": size_mb,
                    "wall_seconds": walls,
                    "median_seconds": median,
                    "limit_seconds": args.limit,
                    "ok": ok,
                    "json_run_wall_seconds": json_wall,
                    "report": report,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
