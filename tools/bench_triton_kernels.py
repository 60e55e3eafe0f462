"""Times the Triton GEMM / convolution kernels against PyTorch (cuBLAS / cuDNN) on one GPU.

    python tools/bench_triton_kernels.py [--dtypes float32,float16] [--batches 1,16]
        [--only conv,gemm] [--rounds 3] [--tf32] [--markdown out.md]

Shapes: the distinct convolution classes of ResNet-50 (stem, 1x1 and 3x3 of every stage,
the stride-2 ones) and BERT-base's GEMMs at sequence 128 (QKV, attention output, FFN in and
out, the batched Q @ K^T). Each case runs our plan (the tile the shape rule picks, launched as
the compiled module would) and the PyTorch op on the same device tensors. Both are timed as
CUDA-graph replays (``triton.testing.do_bench_cudagraph``: no Python launch cost on either
side, as modules replay graphs), interleaved A B A B over ``--rounds`` rounds; the table shows
the median of the per-round medians, TFLOP/s and the ratio ours / torch (< 1: ours faster).
fp32 compares IEEE fp32 on both sides (TF32 off in cuBLAS and cuDNN, ``input_precision="ieee"``
in ours) unless ``--tf32``; cuDNN runs with ``benchmark = True`` (its best algorithm). Every
case is also checked against torch in float64 (relative L2 error, printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _conv_cases() -> list[tuple[str, int, int, int, int, int, int]]:
    # name, C, H (= W), Co, k, stride, pad  -- ResNet-50 v1.5 (stride on the 3x3)
    return [
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


def _gemm_cases(batch: int) -> list[tuple[str, tuple, tuple, tuple, int]]:
    # name, A shape, B shape, Y shape, trans_b   -- BERT-base, sequence 128
    s, h = 128, 768
    return [
        ("qkv", (batch, s, h), (h, 3 * h), (batch, s, 3 * h), 0),
        ("attn_out", (batch, s, h), (h, h), (batch, s, h), 0),
        ("ffn_in", (batch, s, h), (h, 4 * h), (batch, s, 4 * h), 0),
        ("ffn_out", (batch, s, 4 * h), (4 * h, h), (batch, s, h), 0),
        ("q@k^T", (batch, 12, s, 64), (batch, 12, s, 64), (batch, 12, s, s), 1),
    ]


def _rel_err(out, ref) -> float:
    d = (out.double() - ref).norm()
    return float(d / ref.norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", default="float32,float16")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--only", default="conv,gemm")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rep", type=int, default=20, help="ms of replays per timing")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 for fp32 on both sides")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)

    try:
        import torch
        import triton
        from triton.testing import do_bench_cudagraph
    except ImportError as e:
        print(f"bench_triton_kernels: needs torch and triton ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_triton_kernels: no CUDA device", file=sys.stderr)
        return 2
    import torch.nn.functional as F
    from optimizer.kernels.triton.conv import plan_conv2d
    from optimizer.kernels.triton.gemm import plan_gemm
    from optimizer.kernels.triton.launch import TensorDesc, launch_torch

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    dev = "cuda"
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    rows: list[tuple] = []
    gen = torch.Generator(device=dev).manual_seed(0)

    def timed(ours, theirs) -> tuple[float, float]:
        for _ in range(3):  # compile / cuDNN autotune outside the graphs
            ours()
            theirs()
        torch.cuda.synchronize()
        a, b = [], []
        for _ in range(args.rounds):
            a.append(do_bench_cudagraph(ours, rep=args.rep, return_mode="median"))
            b.append(do_bench_cudagraph(theirs, rep=args.rep, return_mode="median"))
        return statistics.median(a), statistics.median(b)

    for dtype in args.dtypes.split(","):
        dt = tdt[dtype]
        for batch in (int(b) for b in args.batches.split(",")):
            if "conv" in args.only:
                for name, c, h, co, k, s, p in _conv_cases():
                    x = torch.randn(batch, c, h, h, device=dev, generator=gen).to(dt)
                    w = (
                        torch.randn(co, c, k, k, device=dev, generator=gen) / (c * k * k) ** 0.5
                    ).to(dt)
                    b = torch.randn(co, device=dev, generator=gen).to(dt)
                    oh = (h + 2 * p - k) // s + 1
                    y = torch.empty(batch, co, oh, oh, device=dev, dtype=dt)
                    descs = [TensorDesc(tuple(t.shape), dtype) for t in (x, w, b)]
                    ip = [s, s, p, p, p, p, 1, 1, 1, 0, 0]
                    t0 = time.perf_counter()
                    launch = plan_conv2d(descs, [TensorDesc(tuple(y.shape), dtype)], ip, [0.0, 0.0],
                                         allow_tf32=args.tf32)  # fmt: skip
                    launch_torch(launch, [x, w, b], [y])
                    torch.cuda.synchronize()
                    compile_s = time.perf_counter() - t0
                    ref = F.conv2d(x.double(), w.double(), b.double(), stride=s, padding=p)
                    err = _rel_err(y, ref)
                    t_ours, t_torch = timed(
                        lambda: launch_torch(launch, [x, w, b], [y]),  # noqa: B023
                        lambda: F.conv2d(x, w, b, stride=s, padding=p),  # noqa: B023
                    )
                    flops = 2.0 * batch * co * oh * oh * c * k * k
                    cfg = launch.constexprs
                    tile = f"{cfg['BLOCK_CO']}x{cfg['BLOCK_P']}x{cfg['BLOCK_K']}"
                    rows.append(
                        ("conv", name, dtype, batch, tile, t_ours, t_torch, flops, err, compile_s)
                    )
                    print(_fmt(rows[-1]), flush=True)
            if "gemm" in args.only:
                for name, ash, bsh, ysh, tb in _gemm_cases(batch):
                    a = torch.randn(*ash, device=dev, generator=gen).to(dt)
                    bm = (torch.randn(*bsh, device=dev, generator=gen) / ash[-1] ** 0.5).to(dt)
                    y = torch.empty(*ysh, device=dev, dtype=dt)
                    descs = [TensorDesc(tuple(t.shape), dtype) for t in (a, bm)]
                    t0 = time.perf_counter()
                    launch = plan_gemm(descs, [TensorDesc(ysh, dtype)], [0, tb, 0, 0], [1.0, 1.0, 0, 0],
                                       allow_tf32=args.tf32)  # fmt: skip
                    launch_torch(launch, [a, bm], [y])
                    torch.cuda.synchronize()
                    compile_s = time.perf_counter() - t0
                    bt = bm.transpose(-1, -2) if tb else bm
                    ref = torch.matmul(a.double(), bt.double())
                    err = _rel_err(y, ref)
                    t_ours, t_torch = timed(
                        lambda: launch_torch(launch, [a, bm], [y]),  # noqa: B023
                        lambda: torch.matmul(a, bt),  # noqa: B023
                    )
                    m, kk = ysh[-2], ash[-1]
                    nb = 1
                    for d in ysh[:-2]:
                        nb *= d
                    flops = 2.0 * nb * m * ysh[-1] * kk
                    cfg = launch.constexprs
                    tile = f"{cfg['BLOCK_M']}x{cfg['BLOCK_N']}x{cfg['BLOCK_K']}"
                    rows.append(
                        ("gemm", name, dtype, batch, tile, t_ours, t_torch, flops, err, compile_s)
                    )
                    print(_fmt(rows[-1]), flush=True)

    dev_name = torch.cuda.get_device_name()
    lines = [
        f"device: {dev_name}; torch {torch.__version__}, triton {triton.__version__}; "
        f"TF32 {'on' if args.tf32 else 'off'}; CUDA-graph replays, median of {args.rounds} "
        "interleaved rounds",
        "",
        "| op | case | dtype | batch | tile | ours ms | torch ms | ours TFLOP/s | torch TFLOP/s "
        "| ours/torch | rel err |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        op, name, dtype, batch, tile, to, tt, fl, err, _ = r
        lines.append(
            f"| {op} | {name} | {dtype} | {batch} | {tile} | {to:.4f} | {tt:.4f} | "
            f"{fl / to / 1e9:.1f} | {fl / tt / 1e9:.1f} | {to / tt:.2f} | {err:.1e} |"
        )
    for op in ("conv", "gemm"):
        for dtype in args.dtypes.split(","):
            sel = [r[5] / r[6] for r in rows if r[0] == op and r[2] == dtype]
            if sel:
                gm = statistics.geometric_mean(sel)
                lines.append(f"\ngeomean ours/torch {op} {dtype}: {gm:.2f} over {len(sel)} cases")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


def _fmt(r: tuple) -> str:
    op, name, dtype, batch, tile, to, tt, _fl, err, cs = r
    return (
        f"{op:4s} {name:13s} {dtype:8s} b{batch:<3d} {tile:11s} ours {to * 1e3:8.1f} us  "
        f"torch {tt * 1e3:8.1f} us  x{to / tt:5.2f}  err {err:.1e}  compile {cs:.1f}s"
    )


if __name__ == "__main__":
    sys.exit(main())
