"""Host overhead of the C++ runtime's CUDA path: a plan of many tiny dependent launches, run by
graph replay vs. plain launches.

Builds chain modules (tests/runtime/cuda_modules.py: ``steps`` launches of a 256-element axpb,
cubin from nvcc) and reports, per module, the median wall time of one inference (H2D copy of the
input, the plan, D2H copy of the output, stream synchronize) from odc-run (C++ loop, no Python)
and from Python's ``CompiledModule.run``, plus the device time of the steps (CUDA events, plain
launches). Needs an NVIDIA GPU and nvcc.

    python tools/bench_cuda_runtime.py [--steps 1 50] [--iterations 5000]

Measured on an H100 80GB HBM3 (driver 580.159.04), 5000 runs each, microseconds:

    steps  odc-run graph  odc-run plain  python graph  python plain  python dlpack  device
        1           11.0           14.0          19.8          21.9           63.9     6.4
       10           22.0           46.0          35.4          54.1           57.7    48.8
       50           60.0          187.0          69.5         195.4          118.1   245.0
      200          216.0          628.0         231.0         774.8          327.4   941.9

("device" sums event-timed steps launched one by one, so it includes launch gaps; "python
dlpack" allocates fresh device outputs with cuMemAlloc on every run.)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer import runtime
from tests.runtime.cuda_modules import compile_cubin, cuda_chain_module


def runner_median_us(directory: Path, iterations: int, graphs: bool) -> float:
    args = [runtime.runner_path(), str(directory), "--iterations", str(iterations)]
    args += ["--warmup", "100"] + ([] if graphs else ["--no-cuda-graphs"])
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    match = re.search(r"latency: median ([0-9.]+) ms", proc.stdout)
    assert match, proc.stdout
    return float(match.group(1)) * 1e3


def python_median_us(
    module: runtime.CompiledModule, x, iterations: int, device_outputs: bool = False
) -> float:
    for _ in range(100):
        module.run({"x": x}, device_outputs=device_outputs)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        module.run({"x": x}, device_outputs=device_outputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def python_stream_us(module: runtime.CompiledModule, xt, iterations: int) -> float:
    """Per inference, enqueued on torch's current stream (torch input, a torch output buffer,
    ``stream=``: no waiting per run): wall time of back-to-back runs / count, synchronized at
    the end; the median of 5 batches."""
    import torch

    out = {"y": torch.empty_like(xt)}
    stream = torch.cuda.current_stream().cuda_stream
    for _ in range(100):
        module.run({"x": xt}, out=out, stream=stream)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations // 5):
            module.run({"x": xt}, out=out, stream=stream)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / (iterations // 5))
    return statistics.median(times) * 1e6


def torch_input(x: np.ndarray):
    """``x`` as a torch.cuda tensor, or None without torch / CUDA."""
    try:
        import torch
    except ImportError:
        return None
    return torch.from_numpy(x).cuda() if torch.cuda.is_available() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_cuda_runtime_"))
    cubin = compile_cubin(work / "cubin")
    if cubin is None:
        sys.exit("bench_cuda_runtime: needs nvcc")
    x = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    xt = torch_input(x)
    rows = []
    for steps in args.steps:
        directory = cuda_chain_module(work / f"chain{steps}", cubin, steps=steps)
        graph = runtime.load(directory)
        plain = runtime.load(directory, cuda_graphs=False)
        device_us = sum(t.seconds for t in plain.profile({"x": x}, iterations=50)) * 1e6
        rows.append(
            (
                steps,
                runner_median_us(directory, args.iterations, True),
                runner_median_us(directory, args.iterations, False),
                python_median_us(graph, x, args.iterations),
                python_median_us(plain, x, args.iterations),
                python_median_us(graph, xt, args.iterations, True) if xt is not None else 0.0,
                python_stream_us(graph, xt, args.iterations) if xt is not None else 0.0,
                device_us,
            )
        )
    print(
        f"median per inference over {args.iterations} runs (us); python dlpack: torch.cuda "
        "input, device_outputs=True, graph; python stream: torch input and output buffer, "
        "stream=torch's current stream, back-to-back (no wait per run); device: sum of "
        "event-timed steps, plain launches"
    )
    print(
        "steps  odc-run graph  odc-run plain  python graph  python plain  python dlpack  "
        "python stream  device"
    )
    for steps, rg, rp, pg, pp, pd, ps, dev in rows:
        print(
            f"{steps:5d}  {rg:13.1f}  {rp:13.1f}  {pg:12.1f}  {pp:12.1f}  {pd:13.1f}  "
            f"{ps:13.1f}  {dev:6.1f}"
        )


if __name__ == "__main__":
    main()
