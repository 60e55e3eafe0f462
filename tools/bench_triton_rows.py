"""Times the Triton softmax / layer norm / attention twins against PyTorch on BERT / ViT shapes.

Run on a GPU machine: ``python tools/bench_triton_rows.py``. Each contender runs through a CUDA
graph (``triton.testing.do_bench_cudagraph``, median), so Python launch overhead is out of the
numbers for both; the Triton launch is exactly the plan's (``launch_torch``). Every case is first
checked against PyTorch in float64 (``|out - ref| / |ref|``). Prints one table: median time, the
ratio torch / triton, and for the memory-bound kernels the achieved bandwidth (bytes read once +
written once).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import torch
import torch.nn.functional as F
import triton
import triton.testing
from optimizer.kernels.triton import attention, norm  # noqa: F401  (registers the plans)
from optimizer.kernels.triton.launch import TensorDesc, launch_torch, plan_for

DT = {"fp32": torch.float32, "fp16": torch.float16}
# (model, batch, heads, seq, hidden)
MODELS = [("bert-base", 1, 12, 128, 768), ("bert-base", 16, 12, 128, 768),
          ("vit-b16", 1, 12, 197, 768), ("vit-b16", 16, 12, 197, 768)]  # fmt: skip


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _time(fn) -> float:
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=40, return_mode="median")


def _variant(launch, grid, num_warps: int, num_stages: int | None = None, **constexprs):
    return dataclasses.replace(
        launch,
        constexprs={**launch.constexprs, **constexprs},
        grid=grid,
        num_warps=num_warps,
        num_stages=launch.num_stages if num_stages is None else num_stages,
    )


def sweep() -> None:
    """Block shapes / warps / dot precision of softmax (ViT rows of 197) and attention."""
    print(f"{'case':34} {'variant':34} {'ms':>8} {'rel err':>8}")
    for dname in ("fp32", "fp16"):
        dt, sdt = DT[dname], {"fp32": "float32", "fp16": "float16"}[dname]
        for b in (1, 16):
            x = torch.randn(b, 12, 197, 197, device="cuda", dtype=dt) * 3
            y = torch.empty_like(x)
            d = TensorDesc(tuple(x.shape), sdt)
            base = plan_for("softmax_f32")([d], [d], [-1, 0], [])
            ref = torch.softmax(x.double(), -1)
            n_rows = b * 12 * 197
            for rows in (1, 2, 4, 8, 16):
                for warps in (1, 2, 4, 8):
                    if rows * 256 // warps < 32 or rows * 256 // warps > 1024:
                        continue
                    v = _variant(base, (triton.cdiv(n_rows, rows),), warps, ROWS=rows)
                    launch_torch(v, [x], [y])
                    err = _rel(y, ref)
                    t = _time(lambda v=v, x=x, y=y: launch_torch(v, [x], [y]))
                    print(
                        f"{'softmax vit ' + dname + ' B=' + str(b):34} "
                        f"{f'rows={rows} warps={warps}':34} {t:8.4f} {err:8.1e}"
                    )
            for b2, s in ((16, 128), (16, 197), (1, 197)):
                q, k, v_ = (torch.randn(b2, 12, s, 64, device="cuda", dtype=dt) for _ in range(3))
                o = torch.empty_like(q)
                dq = TensorDesc(tuple(q.shape), sdt)
                base = plan_for("attention_f32")([dq, dq, dq], [dq], [0, 0], [0.0])
                ref = F.scaled_dot_product_attention(q.double(), k.double(), v_.double())
                precs = ("ieee", "tf32x3", "tf32") if dname == "fp32" else ("tf32",)
                for prec in precs:
                    for bm, bn, warps, stages in (
                        (128, 64, 4, 3),
                        (128, 64, 8, 3),
                        (64, 64, 4, 3),
                        (64, 32, 4, 3),
                        (128, 32, 8, 2),
                        (64, 64, 8, 3),
                    ):
                        if b2 != 16 or s != 197:
                            if (bm, bn, warps, stages) not in ((128, 64, 4, 3), (64, 64, 8, 3)):
                                continue
                        va = _variant(
                            base,
                            (triton.cdiv(s, bm), b2 * 12),
                            warps,
                            stages,
                            BLOCK_M=bm,
                            BLOCK_N=bn,
                            PRECISION=prec,
                        )
                        try:
                            launch_torch(va, [q, k, v_], [o])
                        except Exception as e:  # out of shared memory etc.
                            print(f"attention {dname} B={b2} S={s}: {prec} {bm}x{bn}: {e!r:.60}")
                            continue
                        err = _rel(o, ref)
                        t = _time(
                            lambda va=va, q=q, k=k, v_=v_, o=o: launch_torch(va, [q, k, v_], [o])
                        )
                        print(
                            f"{f'attention {dname} B={b2} S={s}':34} "
                            f"{f'{prec} m{bm} n{bn} w{warps} s{stages}':34} "
                            f"{t:8.4f} {err:8.1e}"
                        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--sweep", action="store_true", help="block / warp / precision variants")
    args = ap.parse_args()
    if args.sweep:
        sweep()
        return
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"triton {triton.__version__}")  # fmt: skip
    rows = []
    for dname in args.dtypes.split(","):
        dt, sdt = DT[dname], {"fp32": "float32", "fp16": "float16"}[dname]
        for model, b, h, s, hid in MODELS:
            # softmax over attention scores [B, H, S, S]
            x = torch.randn(b, h, s, s, device="cuda", dtype=dt) * 3
            y = torch.empty_like(x)
            d = TensorDesc(tuple(x.shape), sdt)
            launch = plan_for("softmax_f32")([d], [d], [-1, 0], [])
            launch_torch(launch, [x], [y])
            err = _rel(y, torch.softmax(x.double(), -1))
            tt = _time(lambda launch=launch, x=x, y=y: launch_torch(launch, [x], [y]))
            tr = _time(lambda x=x: torch.softmax(x, -1))
            gbs = 2 * x.numel() * x.element_size() / tt / 1e6
            rows.append((model, b, dname, "softmax", tt, tr, err, gbs))
            # layer norm over [B*S, hidden] with scale and bias
            x = torch.randn(b * s, hid, device="cuda", dtype=dt)
            w = torch.randn(hid, device="cuda", dtype=dt)
            bb = torch.randn(hid, device="cuda", dtype=dt)
            y = torch.empty_like(x)
            ds = [TensorDesc(tuple(x.shape), sdt), TensorDesc((hid,), sdt), TensorDesc((hid,), sdt)]
            launch = plan_for("layer_norm_f32")(ds, [ds[0]], [-1], [1e-12])
            launch_torch(launch, [x, w, bb], [y])
            err = _rel(y, F.layer_norm(x.double(), (hid,), w.double(), bb.double(), 1e-12))
            tt = _time(
                lambda launch=launch, x=x, w=w, bb=bb, y=y: launch_torch(launch, [x, w, bb], [y])
            )
            tr = _time(lambda x=x, w=w, bb=bb, hid=hid: F.layer_norm(x, (hid,), w, bb, 1e-12))
            gbs = 2 * x.numel() * x.element_size() / tt / 1e6
            rows.append((model, b, dname, "layer_norm", tt, tr, err, gbs))
            # attention [B, H, S, 64], no mask
            dh = hid // h
            q, k, v = (torch.randn(b, h, s, dh, device="cuda", dtype=dt) for _ in range(3))
            o = torch.empty_like(q)
            dq = TensorDesc(tuple(q.shape), sdt)
            launch = plan_for("attention_f32")([dq, dq, dq], [dq], [0, 0], [0.0])
            launch_torch(launch, [q, k, v], [o])
            ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
            err = _rel(o, ref)
            tt = _time(
                lambda launch=launch, q=q, k=k, v=v, o=o: launch_torch(launch, [q, k, v], [o])
            )
            tr = _time(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v))
            tflops = 4 * b * h * s * s * dh / tt / 1e9
            rows.append((model, b, dname, "attention", tt, tr, err, tflops))
    print(f"{'model':10} {'B':>3} {'dt':4} {'kernel':10} {'triton ms':>10} {'torch ms':>9} "
          f"{'torch/tri':>9} {'rel err':>8}  GB/s | TFLOP/s")  # fmt: skip
    for model, b, dname, kern, tt, tr, err, rate in rows:
        print(f"{model:10} {b:3d} {dname:4} {kern:10} {tt:10.4f} {tr:9.4f} {tr / tt:9.2f} "
              f"{err:8.1e}  {rate:.0f}")  # fmt: skip
    geo = math.exp(sum(math.log(r[5] / r[4]) for r in rows) / len(rows))
    print(f"geometric mean torch/triton: {geo:.2f}")


if __name__ == "__main__":
    main()
