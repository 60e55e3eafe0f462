"""Convolution input layout on the GPU: the Triton implicit-GEMM kernel reading NCHW X (2-byte
gathers along pixels) vs channels-last X (``x_nhwc=True``: a tap's channels are contiguous,
vector loads), with cuDNN (torch, NCHW and channels_last) for scale. fp16, 3x3, graph-replayed
(20 launches per CUDA graph, medians of 7 replays, microseconds per launch). Needs a GPU.

    python tools/bench_conv_layout.py

H100 80GB HBM3, torch 2.11, the GPU machine's Triton 3.6 (JIT), 2026-11-24 (this script):

    shape (n, c, h, w, co, k, stride) | cudnn nchw | cudnn nhwc | triton nchw | triton nhwc
    (16, 16, 64, 64, 16, 3, 1)        |  23.9 | 13.2 |  24.9 |  17.3
    (16, 32, 64, 64, 16, 3, 1)        |  27.3 | 16.6 |  24.3 |  19.8
    (16, 32, 32, 32, 32, 3, 1)        |  15.0 |  8.0 |  12.0 |  11.0
    (16, 64, 56, 56, 64, 3, 1)        |  39.2 | 23.3 | 266.9 |  81.1
    (16, 128, 56, 56, 128, 3, 2)      |  35.8 | 17.7 | 283.7 | 103.9
    (16, 32, 64, 64, 64, 3, 2)        |  21.4 | 11.9 |  33.8 |  11.9

Channels-last input cuts the big-map layers 3x; the CUDA lowering does not produce NHWC
activations yet (a layout pass over convolution chains is the next step).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer.kernels.triton.conv import plan_conv2d
from optimizer.kernels.triton.launch import TensorDesc, launch_torch

SHAPES = [  # n, c, h, w, co, k, stride
    (16, 16, 64, 64, 16, 3, 1),
    (16, 32, 64, 64, 16, 3, 1),
    (16, 32, 32, 32, 32, 3, 1),
    (16, 64, 32, 32, 32, 3, 1),
    (16, 128, 16, 16, 64, 3, 1),
    (16, 64, 56, 56, 64, 3, 1),
    (16, 128, 56, 56, 128, 3, 2),
    (1, 64, 56, 56, 64, 3, 1),
    (16, 32, 64, 64, 64, 3, 2),
]


def graph_us(fn, reps: int = 20) -> float:
    """Microseconds per call of ``fn``: ``reps`` calls captured in one CUDA graph, replayed."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        fn()
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(reps):
                fn()
    times = []
    for _ in range(7):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / reps * 1e3)
    return statistics.median(times)


def row(n: int, c: int, h: int, w: int, co: int, k: int, stride: int) -> str:
    conv = torch.nn.functional.conv2d
    pad = k // 2
    x = torch.randn(n, c, h, w, device="cuda", dtype=torch.float16)
    wt = torch.randn(co, c, k, k, device="cuda", dtype=torch.float16) / (c * k * k) ** 0.5
    b = torch.randn(co, device="cuda", dtype=torch.float16)
    ref = conv(x, wt, b, stride=stride, padding=pad)
    y = torch.empty_like(ref)
    ip = [stride, stride, pad, pad, pad, pad, 1, 1, 1, 0, 0]
    wd, bd = TensorDesc((co, c, k, k), "float16"), TensorDesc((co,), "float16")
    yd = TensorDesc(tuple(ref.shape), "float16")
    nchw = plan_conv2d([TensorDesc((n, c, h, w), "float16"), wd, bd], [yd], ip, [0, 0])
    nhwc = plan_conv2d([TensorDesc((n, h, w, c), "float16"), wd, bd], [yd], ip, [0, 0], x_nhwc=True)
    x_cl = x.permute(0, 2, 3, 1).contiguous()
    work = torch.zeros(max(nchw.workspace, nhwc.workspace, 1), dtype=torch.uint8, device="cuda")
    errors = []
    for launch, xin in ((nchw, x), (nhwc, x_cl)):
        launch_torch(launch, [xin, wt, b], [y], work)
        errors.append((y - ref).abs().max().item())
    xc = x.contiguous(memory_format=torch.channels_last)
    wc = wt.contiguous(memory_format=torch.channels_last)
    times = [
        graph_us(lambda: conv(x, wt, b, stride=stride, padding=pad)),
        graph_us(lambda: conv(xc, wc, b, stride=stride, padding=pad)),
        graph_us(lambda: launch_torch(nchw, [x, wt, b], [y], work)),
        graph_us(lambda: launch_torch(nhwc, [x_cl, wt, b], [y], work)),
    ]
    return (
        f"{(n, c, h, w, co, k, stride)!s:34s}| "
        + " | ".join(f"{t:6.1f}" for t in times)
        + f" | max err {max(errors):.1e}"
    )


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("bench_conv_layout: needs a CUDA GPU")
    torch.backends.cudnn.allow_tf32 = False
    print(
        "shape (n, c, h, w, co, k, stride)  | cudnn nchw | cudnn nhwc | triton nchw | triton nhwc"
    )
    for shape in SHAPES:
        print(row(*shape), flush=True)


if __name__ == "__main__":
    main()
