"""Times the Triton GEMM / convolution kernels against PyTorch (cuBLAS / cuDNN) on one GPU.

    python tools/bench_triton_kernels.py [--dtypes float32,float16] [--batches 1,16]
        [--only conv,gemm] [--rounds 3] [--tf32] [--sweep] [--markdown out.md]

Shapes: the distinct convolution classes of ResNet-50 (stem, 1x1 and 3x3 of every stage,
the stride-2 ones), BERT-base's GEMMs at sequence 128 (QKV, attention output, FFN in and
out, the batched Q @ K^T), MobileNetV2's depthwise 3x3 layers and ResNet-50's pools
(``--only`` picks among conv, gemm, dw, pool; pools count one "flop" per window tap). Each case runs our plan (the tile the shape rule picks, launched as
the compiled module would) and the PyTorch op on the same device tensors. Both are timed as
CUDA-graph replays (``triton.testing.do_bench_cudagraph``: no Python launch cost on either
side, as modules replay graphs), interleaved A B A B over ``--rounds`` rounds; the table shows
the median of the per-round medians, TFLOP/s and the ratio ours / torch (< 1: ours faster).
fp16 convolutions outside the pointwise mode are also timed with the other setting of the
register prefetch (column "alt"). fp32 compares IEEE fp32 on both sides (TF32 off in cuBLAS
and cuDNN, ``input_precision="ieee"`` in ours) unless ``--tf32``; cuDNN runs with
``benchmark = True`` (its best algorithm). Every case is also checked against torch in
float64 (relative L2 error, printed). ``--sweep`` instead times every candidate tiling of each
case (ours only) and prints the rule's pick against the best.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass
from typing import Any

CONV_CASES = [
    # name, C, H (= W), Co, k, stride, pad  -- ResNet-50 v1.5 (stride on the 3x3)
    ("stem7x7s2", 3, 224, 64, 7, 2, 3),
    ("l1.1x1a", 64, 56, 64, 1, 1, 0),
    ("l1.3x3", 64, 56, 64, 3, 1, 1),
    ("l1.1x1b", 64, 56, 256, 1, 1, 0),
    ("l2.3x3s2", 128, 56, 128, 3, 2, 1),
    ("l2.down1x1s2", 256, 56, 512, 1, 2, 0),
    ("l3.3x3", 256, 14, 256, 3, 1, 1),
    ("l3.1x1", 1024, 14, 256, 1, 1, 0),
    ("l4.3x3", 512, 7, 512, 3, 1, 1),
    ("l4.1x1b", 512, 7, 2048, 1, 1, 0),
]


DW_CASES = [
    # name, C, H (= W), k, stride  -- MobileNetV2's depthwise 3x3 layers (pad 1)
    ("mbv2.dw32", 32, 112, 3, 1),
    ("mbv2.dw144s2", 144, 56, 3, 2),
    ("mbv2.dw192", 192, 28, 3, 1),
    ("mbv2.dw960", 960, 7, 3, 1),
]

POOL_CASES = [
    # name, kind, C, H (= W), k, stride, pad
    ("rn50.maxpool", "max", 64, 112, 3, 2, 1),
    ("avgpool3x3", "avg", 256, 28, 3, 1, 1),
    ("rn50.gap", "global", 2048, 7, 7, 1, 0),
]


def gemm_cases(batch: int, smoke: bool = False) -> list[tuple[str, tuple, tuple, tuple, int]]:
    """name, A shape, B shape, Y shape, trans_b -- BERT-base, sequence 128."""
    s, h = (16, 64) if smoke else (128, 768)
    return [
        ("qkv", (batch, s, h), (h, 3 * h), (batch, s, 3 * h), 0),
        ("attn_out", (batch, s, h), (h, h), (batch, s, h), 0),
        ("ffn_in", (batch, s, h), (h, 4 * h), (batch, s, 4 * h), 0),
        ("ffn_out", (batch, s, 4 * h), (4 * h, h), (batch, s, h), 0),
        ("q@k^T", (batch, 12, s, 64), (batch, 12, s, 64), (batch, 12, s, s), 1),
    ]


@dataclass
class Case:
    op: str
    name: str
    dtype: str
    batch: int
    plan: Callable[..., Any]  # (config=None, prefetch=None) -> TritonLaunch
    inputs: list[Any]
    output: Any
    torch_fn: Callable[[], Any]
    ref: Any
    flops: float
    candidates: list[Any]
    alt_prefetch: bool | None  # the other prefetch setting worth timing, if any


def build_cases(args: argparse.Namespace) -> Iterator[Case]:
    import torch
    import torch.nn.functional as F
    from optimizer.kernels.triton.conv import (
        conv_candidates,
        plan_conv2d,
        plan_depthwise_conv2d,
    )
    from optimizer.kernels.triton.gemm import gemm_candidates, plan_gemm
    from optimizer.kernels.triton.launch import TensorDesc
    from optimizer.kernels.triton.pool import (
        plan_avgpool2d,
        plan_global_avgpool,
        plan_maxpool2d,
    )

    dev = "cpu" if args.smoke else "cuda"
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    gen = torch.Generator(device=dev).manual_seed(0)
    for dtype in args.dtypes.split(","):
        dt = tdt[dtype]
        for batch in (int(b) for b in args.batches.split(",")):
            if "conv" in args.only:
                for name, c, h, co, k, s, p in CONV_CASES:
                    if args.smoke:  # CPU interpreter: same code paths, tiny sizes
                        c, h, co = min(c, 40), min(h, 9 if k < 7 else 16), min(co, 48)
                    x = torch.randn(batch, c, h, h, device=dev, generator=gen).to(dt)
                    w = torch.randn(co, c, k, k, device=dev, generator=gen) / (c * k * k) ** 0.5
                    w = w.to(dt)
                    b = torch.randn(co, device=dev, generator=gen).to(dt)
                    oh = (h + 2 * p - k) // s + 1
                    y = torch.empty(batch, co, oh, oh, device=dev, dtype=dt)
                    descs = [TensorDesc(tuple(t.shape), dtype) for t in (x, w, b)]
                    odesc = [TensorDesc(tuple(y.shape), dtype)]
                    ip, fp = [s, s, p, p, p, p, 1, 1, 1, 0, 0], [0.0, 0.0]

                    def plan(config=None, prefetch=None, d=descs, o=odesc, ip=ip, fp=fp):
                        return plan_conv2d(
                            d, o, ip, fp, config=config, allow_tf32=args.tf32, prefetch=prefetch
                        )

                    default = plan()
                    alt = None
                    if dtype != "float32" and not default.constexprs["POINTWISE"]:
                        alt = not default.constexprs["PREFETCH"]
                    yield Case(
                        "conv", name, dtype, batch, plan, [x, w, b], y,
                        lambda x=x, w=w, b=b, s=s, p=p: F.conv2d(x, w, b, stride=s, padding=p),
                        F.conv2d(x.double(), w.double(), b.double(), stride=s, padding=p),
                        2.0 * batch * co * oh * oh * c * k * k,
                        conv_candidates("conv2d_f32", descs, odesc, ip, fp, args.tf32), alt,
                    )  # fmt: skip
            if "dw" in args.only:
                for name, c, h, k, s in DW_CASES:
                    if args.smoke:
                        c, h = min(c, 24), min(h, 12)
                    x = torch.randn(batch, c, h, h, device=dev, generator=gen).to(dt)
                    w = (torch.randn(c, 1, k, k, device=dev, generator=gen) / k).to(dt)
                    b = torch.randn(c, device=dev, generator=gen).to(dt)
                    oh = (h + 2 - k) // s + 1
                    y = torch.empty(batch, c, oh, oh, device=dev, dtype=dt)
                    descs = [TensorDesc(tuple(t.shape), dtype) for t in (x, w, b)]
                    odesc = [TensorDesc(tuple(y.shape), dtype)]
                    ip = [s, s, 1, 1, 1, 1, 1, 1, c, 0, 0]

                    def plan(config=None, prefetch=None, d=descs, o=odesc, ip=ip):
                        return plan_depthwise_conv2d(d, o, ip, [0.0, 0.0])

                    yield Case(
                        "dw", name, dtype, batch, plan, [x, w, b], y,
                        lambda x=x, w=w, b=b, s=s, c=c: F.conv2d(x, w, b, stride=s, padding=1, groups=c),
                        F.conv2d(x.double(), w.double(), b.double(), stride=s, padding=1, groups=c),
                        2.0 * batch * c * oh * oh * k * k, [], None,
                    )  # fmt: skip
            if "pool" in args.only:
                for name, kind, c, h, k, s, p in POOL_CASES:
                    if args.smoke:
                        c, h = min(c, 24), min(h, 12 if kind != "global" else 7)
                        k = min(k, h)
                    x = torch.randn(batch, c, h, h, device=dev, generator=gen).to(dt)
                    oh = 1 if kind == "global" else (h + 2 * p - k) // s + 1
                    y = torch.empty(batch, c, oh, oh, device=dev, dtype=dt)
                    d, o = [TensorDesc(tuple(x.shape), dtype)], [TensorDesc(tuple(y.shape), dtype)]
                    if kind == "global":
                        ip = []
                        fn = plan_global_avgpool
                        theirs = lambda x=x: F.adaptive_avg_pool2d(x, 1)  # noqa: E731
                        ref = F.adaptive_avg_pool2d(x.double(), 1)
                    elif kind == "max":
                        ip = [k, k, s, s, p, p, p, p, 1, 1, 0]
                        fn = plan_maxpool2d
                        theirs = lambda x=x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p)  # noqa: E731
                        ref = F.max_pool2d(x.double(), k, s, p)
                    else:
                        ip = [k, k, s, s, p, p, p, p, 1, 1, 0, 1]
                        fn = plan_avgpool2d
                        theirs = lambda x=x, k=k, s=s, p=p: F.avg_pool2d(x, k, s, p)  # noqa: E731
                        ref = F.avg_pool2d(x.double(), k, s, p, count_include_pad=True)

                    def plan(config=None, prefetch=None, fn=fn, d=d, o=o, ip=ip):
                        return fn(d, o, ip, [])

                    yield Case(
                        "pool", name, dtype, batch, plan, [x], y, theirs, ref,
                        float(batch * c * oh * oh * k * k), [], None,
                    )  # fmt: skip
            if "gemm" in args.only:
                for name, ash, bsh, ysh, tb in gemm_cases(batch, args.smoke):
                    a = torch.randn(*ash, device=dev, generator=gen).to(dt)
                    bm = (torch.randn(*bsh, device=dev, generator=gen) / ash[-1] ** 0.5).to(dt)
                    y = torch.empty(*ysh, device=dev, dtype=dt)
                    descs = [TensorDesc(tuple(t.shape), dtype) for t in (a, bm)]
                    odesc = [TensorDesc(ysh, dtype)]
                    ip, fp = [0, tb, 0, 0], [1.0, 1.0, 0.0, 0.0]

                    def plan(config=None, prefetch=None, d=descs, o=odesc, ip=ip, fp=fp):
                        return plan_gemm(d, o, ip, fp, config=config, allow_tf32=args.tf32)

                    bt = bm.transpose(-1, -2) if tb else bm
                    nb = 1
                    for d in ysh[:-2]:
                        nb *= d
                    yield Case(
                        "gemm", name, dtype, batch, plan, [a, bm], y,
                        lambda a=a, bt=bt: torch.matmul(a, bt),
                        torch.matmul(a.double(), bt.double()),
                        2.0 * nb * ysh[-2] * ysh[-1] * ash[-1],
                        gemm_candidates(descs, odesc, ip, fp, args.tf32), None,
                    )  # fmt: skip


def tile_of(launch: Any) -> str:
    c = launch.constexprs
    if "BLOCK_CO" in c:
        return f"{c['BLOCK_CO']}x{c['BLOCK_P']}x{c['BLOCK_K']}"
    if "BLOCK_M" in c:
        return f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}"
    if "ROWS" in c:
        return f"{c['ROWS']}x{c['BLOCK_S']}"
    return str(c.get("BLOCK", "-"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", default="float32,float16")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--only", default="conv,gemm,dw,pool")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rep", type=int, default=20, help="ms of replays per timing")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 on both sides")
    ap.add_argument("--sweep", action="store_true", help="time every candidate tiling instead")
    ap.add_argument("--markdown", help="also write the table here")
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # CPU self-test
    args = ap.parse_args(argv)

    try:
        import torch
        import triton
        from triton.testing import do_bench_cudagraph
    except ImportError as e:
        print(f"bench_triton_kernels: needs torch and triton ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() and not args.smoke:
        print("bench_triton_kernels: no CUDA device", file=sys.stderr)
        return 2
    if args.smoke:  # under TRITON_INTERPRET=1: one plain timed call per contender

        def do_bench_cudagraph(f, rep, return_mode):
            t0 = time.perf_counter()
            f()
            return (time.perf_counter() - t0) * 1e3

    from optimizer.kernels.triton.launch import launch_torch

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True

    def runner(launch: Any, case: Case) -> Callable[[], None]:
        return lambda: launch_torch(launch, case.inputs, [case.output])

    def bench(fns: list[Callable[[], Any]]) -> list[float]:
        for _ in range(3):  # compile / cuDNN autotune outside the graphs
            for f in fns:
                f()
        if not args.smoke:
            torch.cuda.synchronize()
        times: list[list[float]] = [[] for _ in fns]
        # Graphs are captured on a side stream (older Triton refuses the default one).
        with torch.cuda.stream(torch.cuda.Stream()) if not args.smoke else _nullcontext():
            for _ in range(args.rounds):
                for i, f in enumerate(fns):
                    times[i].append(do_bench_cudagraph(f, rep=args.rep, return_mode="median"))
        return [statistics.median(t) for t in times]

    def rel_err(case: Case) -> float:
        d = (case.output.double() - case.ref).norm()
        return float(d / case.ref.norm().clamp_min(1e-30))

    head = (
        f"device: {'cpu (smoke)' if args.smoke else torch.cuda.get_device_name()}; torch {torch.__version__}, triton "
        f"{triton.__version__}; TF32 {'on' if args.tf32 else 'off'}; CUDA-graph replays, "
        f"median of {args.rounds} interleaved rounds"
    )
    lines = [head, ""]
    if args.sweep:
        lines += ["| op | case | dtype | batch | rule's tile | rule ms | best tile | best ms | rule/best |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        ratios = []
        for case in build_cases(args):
            if not case.candidates:
                continue
            fns, tiles = [], []
            for cfg in case.candidates:
                try:
                    launch = case.plan(config=cfg)
                    launch_torch(launch, case.inputs, [case.output])
                except Exception as e:  # a tiling that does not compile: skip, say so
                    print(f"  {case.name} {cfg.key()}: {type(e).__name__}", flush=True)
                    continue
                fns.append(runner(launch, case))
                tiles.append(cfg.key())
            ts = bench(fns)
            best = min(range(len(ts)), key=ts.__getitem__)
            ratios.append(ts[0] / ts[best])
            lines.append(
                f"| {case.op} | {case.name} | {case.dtype} | {case.batch} | {tiles[0]} | "
                f"{ts[0]:.4f} | {tiles[best]} | {ts[best]:.4f} | {ts[0] / ts[best]:.2f} |"
            )
            print(lines[-1], flush=True)
        if ratios:
            lines.append(f"\ngeomean rule/best: {statistics.geometric_mean(ratios):.2f}")
    else:
        lines += ["| op | case | dtype | batch | tile | ours ms | alt ms | torch ms | ours TFLOP/s "
                  "| torch TFLOP/s | ours/torch | rel err |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        rows = []
        for case in build_cases(args):
            t0 = time.perf_counter()
            launch = case.plan()
            fns = [runner(launch, case)]
            fns[0]()
            if not args.smoke:
                torch.cuda.synchronize()
            err = rel_err(case)
            compile_s = time.perf_counter() - t0
            if case.alt_prefetch is not None:
                fns.append(runner(case.plan(prefetch=case.alt_prefetch), case))
            fns.append(case.torch_fn)
            ts = bench(fns)
            ours, theirs = ts[0], ts[-1]
            alt = "-"
            if len(ts) == 3:
                alt = f"{ts[1]:.4f} (prefetch {'on' if case.alt_prefetch else 'off'})"
            rows.append((case.op, case.dtype, ours / theirs))
            lines.append(
                f"| {case.op} | {case.name} | {case.dtype} | {case.batch} | {tile_of(launch)} | "
                f"{ours:.4f} | {alt} | {theirs:.4f} | {case.flops / ours / 1e9:.1f} | "
                f"{case.flops / theirs / 1e9:.1f} | {ours / theirs:.2f} | {err:.1e} |"
            )
            print(lines[-1] + f" compile {compile_s:.1f}s", flush=True)
        for op in ("conv", "gemm", "dw", "pool"):
            for dtype in args.dtypes.split(","):
                sel = [r[2] for r in rows if r[0] == op and r[1] == dtype]
                if sel:
                    gm = statistics.geometric_mean(sel)
                    lines.append(
                        f"\ngeomean ours/torch {op} {dtype}: {gm:.2f} over {len(sel)} cases"
                    )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
