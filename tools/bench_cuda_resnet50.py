"""ResNet-50 (224x224, batch 1) on the GPU, for scale: the compiled module against PyTorch on
the same seeded weights (the zoo's ``resnet50_big``). Two phases, like tools/bench_cuda.py:

    python tools/bench_cuda_resnet50.py prepare --out r50/ [--precision fp16]   # here, no GPU
    python tools/bench_cuda_resnet50.py run r50/                                # on the GPU

``prepare`` compiles the module (``--target cuda``), saves a feed and onnxruntime's output and,
with ``--slim``, drops the module's reference copy of the optimized graph (``graph.onnx``, 45 MB
that the runtime never reads) so the directory fits a 64 MiB transfer. ``run`` checks the module
and torch eager against onnxruntime, then times eager, ``torch.compile(mode="reduce-overhead")``
and the module (``run(out=, stream=)``) interleaved, medians of 7 rounds of 30 inferences.

H100 80GB HBM3, torch 2.11.0+cu130, fp16, 2026-11-24 (this script): eager 7.112 ms, torch.compile
reduce-overhead 0.488 ms, module 0.500 ms (1.02x); module vs onnxruntime fp32 max abs 0.066 on
logits up to 2.36 (torch eager fp16: 0.069). The module's ``profile(feeds)`` (steps launched one by one
between CUDA events) showed 58 steps, 53 of them convolutions (0.62 ms), the 3x3 layers over
56x56 maps at 23 us each (see tools/bench_conv_layout.py).
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

from tools import bench_cuda, zoo  # noqa: E402

NAME = "resnet50_big"


def prepare(out: Path, precision: str, slim: bool) -> None:
    import onnxruntime as ort

    from tools.time_big import default_cache_dir, ensure_model

    src = default_cache_dir()  # the big model's own cache (not the default zoo's directory)
    ensure_model(src)
    entry = next(e for e in zoo.load_index(src) if e["name"] == NAME)
    out.mkdir(parents=True, exist_ok=True)
    feeds = zoo.sample_inputs(entry, rng=1)
    sess = ort.InferenceSession(str(src / entry["file"]), providers=["CPUExecutionProvider"])
    np.savez(out / "feeds.npz", **feeds)
    np.savez(out / "ref.npz", *sess.run(None, feeds))
    module = out / f"module_{precision}"
    err = bench_cuda._compile(src / entry["file"], module, feeds, precision)
    if err:
        sys.exit(f"bench_cuda_resnet50: {err}")
    if slim:
        manifest = json.loads((module / "manifest.json").read_text())
        del manifest["files"]["graph.onnx"]
        (module / "graph.onnx").unlink()
        (module / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "precision.txt").write_text(precision)


def run(work: Path) -> None:
    import torch

    import optimizer

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    precision = (work / "precision.txt").read_text().strip()
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    feeds = dict(np.load(work / "feeds.npz"))
    ref = np.load(work / "ref.npz")["arr_0"]
    module = optimizer.load(work / f"module_{precision}")
    got = module.run(feeds)["logits"]
    print(
        f"module vs onnxruntime: max abs {np.abs(got - ref).max():.3g} (|ref| <= {np.abs(ref).max():.3g})"
    )
    net = zoo._SPECS[NAME].make().module.eval().cuda().to(half)
    x = torch.from_numpy(feeds["input"]).cuda()
    xh = x.to(half)
    dev, out = {"input": x}, {"logits": torch.empty(1, 1000, device="cuda")}
    stream = torch.cuda.current_stream().cuda_stream
    with torch.inference_mode():
        eager = net(xh).float().cpu().numpy()
        print(f"torch eager vs onnxruntime: max abs {np.abs(eager - ref).max():.3g}")
        compiled = torch.compile(net, mode="reduce-overhead")
        for _ in range(3):
            compiled(xh)
        contenders = {
            "eager": lambda: net(xh),
            "torch.compile reduce-overhead": lambda: compiled(xh),
            "module": lambda: module.run(dev, out=out, stream=stream),
        }

        def per_call_ms(fn, n: int) -> float:
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            torch.cuda.synchronize()
            return (time.perf_counter() - start) / n * 1e3

        for fn in contenders.values():
            per_call_ms(fn, 5)
        samples: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(7):
            for label, fn in contenders.items():
                samples[label].append(per_call_ms(fn, 30))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {precision}, batch 1:")
    for label, values in samples.items():
        print(f"  {label}: {statistics.median(values):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--slim", action="store_true", help="drop graph.onnx (45 MB, never read)")
    r = sub.add_parser("run")
    r.add_argument("work", type=Path)
    args = parser.parse_args()
    if args.cmd == "prepare":
        prepare(args.out, args.precision, args.slim)
    else:
        run(args.work)


if __name__ == "__main__":
    main()
