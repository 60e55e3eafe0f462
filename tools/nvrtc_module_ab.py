"""Zoo modules with NVRTC kernels vs the same modules with Triton kernels only (A/B, on a GPU).

    python tools/nvrtc_module_ab.py prepare DIR [--models bert,unet] [--batches 1,16]   # here
    python tools/nvrtc_module_ab.py run DIR                                             # GPU

``prepare`` compiles each zoo model for ``--target cuda --precision fp16`` twice: ``triton``
(``prefer_nvrtc`` returning False: every step a Triton kernel) and ``nvrtc`` (the rule returning
True wherever an NVRTC kernel exists: gather, resize, global average pool), and saves random
feeds with onnxruntime's fp32 outputs. ``run`` loads both with ``optimizer.load`` (the C++
runtime: cubins through the driver, CUDA graph replay), checks each against onnxruntime and
times them interleaved (A B A B ..., medians of rounds of back-to-back runs on device inputs,
outputs into preallocated tensors, as tools/bench_cuda.py times modules).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def prepare(out: Path, models: list[str], batches: list[int]) -> None:
    import onnx
    import onnxruntime as ort
    from optimizer.kernels.cuda import plans

    from optimizer import ir
    from optimizer.lower.compile import CompileOptions, compile_model
    from optimizer.optimize import OptimizeOptions
    from tools import zoo

    src = zoo.zoo_dir(models)
    entries = {e["name"]: e for e in zoo.load_index(src)}
    out.mkdir(parents=True, exist_ok=True)
    index = []
    real_rule = plans.prefer_nvrtc
    for name in models:
        entry = entries[name]
        sess = ort.InferenceSession(str(src / entry["file"]), providers=["CPUExecutionProvider"])
        for batch in batches:
            feeds = zoo.sample_inputs(entry, rng=batch, dims={"batch": batch})
            np.savez(out / f"{name}_b{batch}_feeds.npz", **feeds)
            np.savez(out / f"{name}_b{batch}_ref.npz", *sess.run(None, feeds))
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            counts = {}
            for variant, rule in (("triton", lambda *a: False), ("nvrtc", lambda *a: True)):
                plans.prefer_nvrtc = rule
                try:
                    proto = onnx.load(str(src / entry["file"]))
                    model = ir.Model.from_proto(proto)
                    mdir = out / f"{name}_b{batch}_{variant}"
                    opts = CompileOptions(OptimizeOptions(check=False, input_shapes=shapes),
                                          target="cuda", precision="fp16")  # fmt: skip
                    compile_model(model, mdir, opts)
                finally:
                    plans.prefer_nvrtc = real_rule
                manifest = json.loads((mdir / "manifest.json").read_text())
                kernels = {k["id"]: k for k in manifest["kernels"]}
                plan = json.loads((mdir / "plan.json").read_text())
                used = [kernels[s["kernel"]] for s in plan["steps"]]
                counts[variant] = {"steps": len(used),
                                   "nvrtc": sorted(k["name"] for k in used
                                                   if k["backend"] == "nvrtc")}  # fmt: skip
            index.append({"name": name, "batch": batch, "counts": counts})
            print(name, batch, counts, flush=True)
    (out / "index.json").write_text(json.dumps(index))


def run(root: Path, rounds: int, target_ms: float) -> int:
    import torch

    import optimizer

    dev = torch.device("cuda")
    index = json.loads((root / "index.json").read_text())
    bad = 0
    rows = []
    for item in index:
        name, batch = item["name"], item["batch"]
        feeds = dict(np.load(root / f"{name}_b{batch}_feeds.npz"))
        ref = list(np.load(root / f"{name}_b{batch}_ref.npz").values())
        calls, errs = {}, {}
        for variant in ("triton", "nvrtc"):
            module = optimizer.load(str(root / f"{name}_b{batch}_{variant}"))
            got = list(module.run(feeds).values())
            err = max(float(np.max(np.abs(np.asarray(g, np.float64).reshape(np.shape(w)) - w)))
                      for g, w in zip(got, ref))  # fmt: skip
            errs[variant] = err
            if not err <= 5e-2 * max(1.0, max(float(np.max(np.abs(w))) for w in ref)):
                bad += 1
            dfeeds = {k: torch.from_numpy(v).to(dev) for k, v in feeds.items()}
            outs = {o.name: torch.empty(o.shape, dtype=getattr(torch, o.dtype), device=dev)
                    for o in module.outputs}  # fmt: skip
            stream = torch.cuda.current_stream().cuda_stream
            calls[variant] = (lambda m=module, f=dfeeds, o=outs, s=stream:
                              m.run(f, out=o, stream=s))  # fmt: skip
        iters = {}
        for variant, fn in calls.items():
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            iters[variant] = max(20, min(3000, int(target_ms / max((time.perf_counter() - t0)
                                                                   * 1e3, 1e-3))))  # fmt: skip
        samples = {v: [] for v in calls}
        for _ in range(rounds):
            for variant, fn in calls.items():
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(iters[variant]):
                    fn()
                torch.cuda.synchronize()
                samples[variant].append((time.perf_counter() - t0) / iters[variant] * 1e3)
        med = {v: statistics.median(s) for v, s in samples.items()}
        rows.append((name, batch, item["counts"], med, errs))
    print(f"{'model':8s} {'b':>3s} {'steps':>5s} {'triton ms':>10s} {'nvrtc ms':>10s} "
          f"{'ratio':>6s}  max|err| triton / nvrtc  nvrtc kernels")  # fmt: skip
    for name, batch, counts, med, errs in rows:
        print(f"{name:8s} {batch:3d} {counts['nvrtc']['steps']:5d} {med['triton']:10.4f} "
              f"{med['nvrtc']:10.4f} {med['nvrtc'] / med['triton']:6.3f}  "
              f"{errs['triton']:.2e} / {errs['nvrtc']:.2e}  {counts['nvrtc']['nvrtc']}")  # fmt: skip
    print(f"{bad} module(s) off onnxruntime beyond 5e-2")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("dir", type=Path)
    pp.add_argument("--models", default="bert,unet")
    pp.add_argument("--batches", default="1,16")
    pr = sub.add_parser("run")
    pr.add_argument("dir", type=Path)
    pr.add_argument("--rounds", type=int, default=7)
    pr.add_argument("--target-ms", type=float, default=100.0)
    a = p.parse_args()
    if a.cmd == "prepare":
        prepare(a.dir, a.models.split(","), [int(b) for b in a.batches.split(",")])
        return 0
    return run(a.dir, a.rounds, a.target_ms)


if __name__ == "__main__":
    sys.exit(main())
