"""Benchmark: CUDA modules against PyTorch on the same GPU (issue 5, acceptance 2).

Two phases, because compiling needs no GPU and the GPU machine has no network:

    python tools/bench_cuda.py prepare --out bench_cuda/        # here: zoo, weights, references
    python tools/bench_cuda.py run bench_cuda/ --json out.json  # on the GPU machine

``prepare`` copies the zoo's torch-exported models, saves each torch model's ``state_dict`` (so
the GPU machine runs exactly the weights that the ONNX holds) and, per batch size, random feeds
and onnxruntime's fp32 outputs on them. ``run`` compiles each model for ``--target cuda`` per
batch and precision (``optimize model.onnx -o dir/ --target cuda --precision P --input-shape``),
rebuilds the torch model from the zoo's definition with the saved weights, checks every
contender against onnxruntime's outputs, and times them interleaved in one process (A B C D A B
C D ..., medians of the rounds): PyTorch eager, ``torch.compile`` (default mode),
``torch.compile(mode="reduce-overhead")`` (CUDA graphs) and the compiled module. Every contender
is timed the same way: wall clock around N back-to-back inferences on inputs already on the GPU,
synchronized at the end, so host overhead counts for everyone (the module runs with
``run(feeds, out=buffers, stream=torch's current stream)``: enqueued without waiting, as torch's
kernels and graph replays are). fp32 runs with TF32 off
everywhere; fp16 runs torch under ``model.half()``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import zoo  # noqa: E402

log = logging.getLogger("bench_cuda")

#: Zoo models with a torch definition (the paddle-style ones have none to compare against).
TORCH_MODELS = (
    "resnet", "resnet_dynamo", "mobilenetv3", "mobilenetv3_op14", "yolo", "bert", "bert_dynamo",
    "vit", "lstm", "unet",
)  # fmt: skip
CONTENDERS = ("eager", "compile", "compile-ro", "module")
TOLERANCE = {"fp32": (1e-3, 1e-3), "fp16": (5e-2, 5e-2), "bf16": (1e-1, 1e-1)}


# ------------------------------------------------------------------------------ prepare (no GPU)


def prepare(out: Path, names: Sequence[str], batches: Sequence[int]) -> None:
    """Zoo models, torch weights, feeds and onnxruntime references into ``out``."""
    import onnxruntime as ort
    import torch

    src = zoo.zoo_dir(list(names))
    entries = {e["name"]: e for e in zoo.load_index(src)}
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name in names:
        entry = entries[name]
        shutil.copy(src / entry["file"], out / f"{name}.onnx")
        case = zoo._SPECS[name].make()
        torch.save(case.module.state_dict(), out / f"{name}.pt")
        sess = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        for batch in batches:
            feeds = zoo.sample_inputs(entry, rng=batch, dims={"batch": batch})
            outs = sess.run(None, feeds)
            np.savez(out / f"{name}_b{batch}_feeds.npz", **feeds)
            np.savez(out / f"{name}_b{batch}_ref.npz", *outs)
        index.append({"name": name, "inputs": entry["inputs"], "outputs": entry["outputs"]})
        log.info("prepared %s", name)
    (out / "index.json").write_text(json.dumps({"batches": list(batches), "models": index}))


# ------------------------------------------------------------------------------ run (GPU)


def _compile(onnx_path: Path, out_dir: Path, feeds: dict[str, np.ndarray], precision: str) -> str:
    """``optimize --target cuda``; returns "" or the one-line error."""
    shapes = [f"{k}:{'x'.join(map(str, v.shape))}" for k, v in feeds.items()]
    cmd = [sys.executable, "-m", "optimizer.cli", str(onnx_path), "-o", f"{out_dir}/",
           "--target", "cuda", "--precision", precision]  # fmt: skip
    for s in shapes:
        cmd += ["--input-shape", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit {proc.returncode}"
    return ""


def _time(fn: Callable[[], Any], iters: int, sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters * 1e3


def _max_err(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> tuple[float, bool]:
    worst, ok = 0.0, True
    for g, w in zip(got, want):
        g = np.asarray(g, dtype=np.float64).reshape(np.shape(w))
        w = np.asarray(w, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(g - w))) if w.size else 0.0)
        ok = ok and bool(np.all(np.isfinite(g) == np.isfinite(w)))
    return worst, ok


def run(
    work: Path,
    names: Sequence[str],
    batches: Sequence[int],
    precisions: Sequence[str],
    rounds: int,
    target_ms: float,
    contenders: Sequence[str] = CONTENDERS,
) -> list[dict[str, Any]]:
    """Compile, check and time every (model, batch, precision); one row each."""
    import torch

    import optimizer

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    index = json.loads((work / "index.json").read_text())
    rows = []
    for model in index["models"]:
        name = model["name"]
        if names and name not in names:
            continue
        for batch in batches:
            feeds = dict(np.load(work / f"{name}_b{batch}_feeds.npz"))
            ref_npz = np.load(work / f"{name}_b{batch}_ref.npz")
            ref = [ref_npz[f"arr_{i}"] for i in range(len(ref_npz.files))]
            for precision in precisions:
                try:
                    row = _run_one(
                        work,
                        name,
                        batch,
                        precision,
                        feeds,
                        ref,
                        rounds,
                        target_ms,
                        dev,
                        torch,
                        optimizer,
                        contenders,
                    )
                except Exception as exc:  # one broken row is reported, the others still run
                    row = {"model": name, "batch": batch, "precision": precision,
                           "errors": {"row": f"{type(exc).__name__}: {str(exc)[:160]}"}}  # fmt: skip
                rows.append(row)
                _print_row(row)
    return rows


def _run_one(
    work, name, batch, precision, feeds, ref, rounds, target_ms, dev, torch, optimizer, wanted
):
    row: dict[str, Any] = {"model": name, "batch": batch, "precision": precision}
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    case = zoo._SPECS[name].make()
    net = case.module.eval()
    net.load_state_dict(torch.load(work / f"{name}.pt"))
    net = net.to(dev)
    for sub in net.modules():  # plain tensor attributes (e.g. yolo's anchors) follow the model
        for key, val in list(vars(sub).items()):
            if isinstance(val, torch.Tensor) and not isinstance(val, torch.nn.Parameter):
                setattr(sub, key, val.to(dev))
    if half is not None:
        net = net.to(half)
    tin = []
    for n in case.input_names:
        t = torch.from_numpy(feeds[n]).to(dev)
        tin.append(t.to(half) if half is not None and t.is_floating_point() else t)
    contenders: dict[str, Callable[[], Any]] = {}
    errors: dict[str, str] = {}
    with torch.inference_mode():
        contenders["eager"] = lambda: net(*tin)
        for label, mode in (("compile", "default"), ("compile-ro", "reduce-overhead")):
            if label not in wanted:
                continue
            try:
                torch._dynamo.reset()
                fn = torch.compile(net, mode=mode)
                for _ in range(3):
                    fn(*tin)
                contenders[label] = (lambda f: lambda: f(*tin))(fn)
            except Exception as exc:  # a contender that fails is reported, not fatal
                errors[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        mod_dir = work / "modules" / f"{name}_b{batch}_{precision}"
        err = (
            ""
            if (mod_dir / "manifest.json").exists()
            else _compile(work / f"{name}.onnx", mod_dir, feeds, precision)
        )
        if err:
            errors["module"] = err
        else:
            module = optimizer.load(str(mod_dir))
            dfeeds = {n: torch.from_numpy(feeds[n]).to(dev) for n in case.input_names}
            # Outputs written into preallocated torch tensors, as torch.compile's graphs keep
            # theirs: no allocation per run on either side; enqueued on torch's current
            # stream without waiting, as torch's own kernels and graph replays are.
            mod_out = {
                o.name: torch.empty(o.shape, dtype=getattr(torch, o.dtype), device=dev)
                for o in module.outputs
            }
            stream = torch.cuda.current_stream().cuda_stream
            contenders["module"] = lambda: module.run(dfeeds, out=mod_out, stream=stream)
            got = module.run(feeds)
            row["module_err"], row["module_ok"] = _max_err(list(got.values()), ref)
        outs = contenders["eager"]()
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        row["eager_err"], _ = _max_err([o.float().cpu().numpy() for o in outs], ref)
        sync = torch.cuda.synchronize
        iters = {}
        for label, fn in contenders.items():
            ms = _time(fn, 3, sync)
            iters[label] = max(3, min(2000, int(target_ms / max(ms, 1e-3))))
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(rounds):
            for label, fn in contenders.items():
                samples[label].append(_time(fn, iters[label], sync))
    for label in CONTENDERS:
        row[f"{label}_ms"] = statistics.median(samples[label]) if samples.get(label) else None
    row["errors"] = errors
    best_compile = min(
        (row[k] for k in ("compile_ms", "compile-ro_ms") if row.get(k) is not None), default=None
    )
    if row.get("module_ms") and best_compile:
        row["module_vs_best_compile"] = row["module_ms"] / best_compile
    if row.get("module_ms") and row.get("eager_ms"):
        row["module_vs_eager"] = row["module_ms"] / row["eager_ms"]
    return row


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_row(r: dict[str, Any]) -> None:
    print(
        f"| {r['model']} | {r['batch']} | {r['precision']} | "
        + " | ".join(_fmt(r.get(f"{c}_ms")) for c in CONTENDERS)
        + f" | {_fmt(r.get('module_vs_best_compile'))} | {r.get('module_err', '-')} | "
        + "; ".join(f"{k}: {v}" for k, v in r["errors"].items())
        + " |",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="zoo, torch weights, feeds, onnxruntime references")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", nargs="+", default=list(TORCH_MODELS), choices=TORCH_MODELS)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    r = sub.add_parser("run", help="compile, check and time on the GPU")
    r.add_argument("work", type=Path)
    r.add_argument("--only", nargs="+", default=[])
    r.add_argument("--batches", nargs="+", type=int, default=None)
    r.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=list(TOLERANCE))
    r.add_argument("--rounds", type=int, default=10)
    r.add_argument("--target-ms", type=float, default=20.0, help="time per timed batch")
    r.add_argument("--json", type=Path, default=None)
    r.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench_cuda] %(message)s")
    if args.cmd == "prepare":
        prepare(args.out, args.only, args.batches)
        return 0
    import torch

    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip
    print("| model | batch | precision | " + " | ".join(f"{c} ms" for c in CONTENDERS)
          + " | module / best compile | module max err | errors |")  # fmt: skip
    print("|---|--:|---|" + "--:|" * (len(CONTENDERS) + 2) + "---|")
    batches = args.batches or json.loads((args.work / "index.json").read_text())["batches"]
    rows = run(
        args.work, args.only, batches, args.precisions, args.rounds, args.target_ms,
        args.contenders,
    )  # fmt: skip
    ratios = [r["module_vs_best_compile"] for r in rows if r.get("module_vs_best_compile")]
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        print(f"\ngeometric mean module / best torch.compile: {geo:.3f}x over {len(ratios)} rows")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "8")
    sys.exit(main())
