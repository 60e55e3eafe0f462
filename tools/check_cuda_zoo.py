"""Acceptance check of the CUDA target: every zoo model compiled for ``--target cuda`` matches
onnxruntime (CPU) when run on the GPU. Two phases, since compiling needs no GPU:

    python tools/check_cuda_zoo.py prepare --out zc/ [--precisions fp32 fp16] [--slim]   # here
    python tools/check_cuda_zoo.py run zc/                                               # GPU

``prepare`` compiles each zoo model at its sample shapes (``zoo.sample_inputs``, seed 0) per
precision and saves the feeds and onnxruntime's outputs (``--slim`` drops each module's
reference copy of the optimized graph, which the runtime never reads, to keep the directory
small for a transfer). ``run`` loads every module with ``optimizer.load``, runs it twice (the
first run captures the CUDA graph, the second replays it) and compares both with onnxruntime:
fp32 within 1e-3 absolute + 1e-3 relative (TF32 off), fp16 / bf16 within 2e-2 x max(1, max|ref|)
absolute + 2e-2 relative, NaN / Inf where onnxruntime has them. Exit code 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import bench_cuda, zoo  # noqa: E402


def prepare(out: Path, precisions: list[str], slim: bool) -> None:
    import onnxruntime as ort

    src = zoo.zoo_dir(list(zoo.MODELS))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry in zoo.load_index(src):
        name = entry["name"]
        if name not in zoo.MODELS:
            continue
        feeds = zoo.sample_inputs(entry, rng=0)
        sess = ort.InferenceSession(str(src / entry["file"]), providers=["CPUExecutionProvider"])
        ref = sess.run(None, feeds)
        np.savez(out / f"{name}_feeds.npz", **feeds)
        np.savez(out / f"{name}_ref.npz", **dict(zip([o.name for o in sess.get_outputs()], ref)))
        for precision in precisions:
            module = out / f"{name}_{precision}"
            start = time.perf_counter()
            err = bench_cuda._compile(src / entry["file"], module, feeds, precision)
            print(f"{name} {precision}: {err or 'compiled'} ({time.perf_counter() - start:.1f} s)")
            if not err and slim:
                manifest = json.loads((module / "manifest.json").read_text())
                del manifest["files"]["graph.onnx"]
                (module / "graph.onnx").unlink()
                (module / "manifest.json").write_text(json.dumps(manifest, indent=1))
            rows.append({"model": name, "precision": precision, "error": err})
    (out / "index.json").write_text(json.dumps(rows))


def _compare(got: np.ndarray, want: np.ndarray, precision: str) -> tuple[float, bool]:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if want.size == 0:
        return 0.0, got.shape == want.shape
    finite = np.isfinite(want)
    same_nonfinite = bool(np.all(np.isfinite(got) == finite)) and bool(
        np.all(got[~finite] == want[~finite])
    )
    worst = float(np.max(np.abs(got[finite] - want[finite]), initial=0.0))
    if precision == "fp32":
        atol, rtol = 1e-3, 1e-3
    else:
        atol, rtol = 2e-2 * max(1.0, float(np.max(np.abs(want[finite]), initial=0.0))), 2e-2
    ok = same_nonfinite and bool(np.allclose(got[finite], want[finite], atol=atol, rtol=rtol))
    return worst, ok


def run(work: Path) -> int:
    import optimizer

    failures = 0
    print("| model | precision | steps | max abs err | max abs ref | ok |")
    print("|---|---|--:|--:|--:|---|")
    for row in json.loads((work / "index.json").read_text()):
        name, precision = row["model"], row["precision"]
        if row["error"]:
            print(f"| {name} | {precision} | - | - | - | compile failed: {row['error']} |")
            failures += 1
            continue
        feeds = dict(np.load(work / f"{name}_feeds.npz"))
        ref = dict(np.load(work / f"{name}_ref.npz"))
        try:
            module = optimizer.load(work / f"{name}_{precision}")
            runs = [module.run(feeds), module.run(feeds)]
        except Exception as exc:  # reported per model, the others still run
            print(f"| {name} | {precision} | - | - | - | {type(exc).__name__}: {exc} |")
            failures += 1
            continue
        worst, ok, scale = 0.0, True, 0.0
        for out in runs:
            for key, want in ref.items():
                err, good = _compare(out[key], want, precision)
                worst, ok = max(worst, err), ok and good
                scale = max(scale, float(np.max(np.abs(want), initial=0.0)))
        failures += not ok
        print(f"| {name} | {precision} | {len(module.steps)} | {worst:.3g} | {scale:.3g} | "
              f"{'yes' if ok else 'NO'} |")  # fmt: skip
    print(f"{failures} failing")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--precisions", nargs="+", default=["fp32", "fp16"])
    p.add_argument("--slim", action="store_true", help="drop each module's graph.onnx")
    r = sub.add_parser("run")
    r.add_argument("work", type=Path)
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare(args.out, args.precisions, args.slim)
    else:
        sys.exit(run(args.work))


if __name__ == "__main__":
    main()
