"""Models over 2 GB: build one with external weights, optimize it, report time and memory.

The model (2.4 GB of weights in ``big.onnx.data``) is two 300000x1000 float32 embedding tables
with identical contents, read by two Gathers, an Identity and an Add: the optimizer must load
the external weights, merge the duplicate table, remove the Identity, check the result in
onnxruntime and write it back with the weights still external (1.2 GB).

Command line::

    python tools/time_external_data.py [--dir DIR] [--keep]

Needs about 6 GB of free disk and 10 GB of memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROWS, COLS = 300_000, 1000


def build(path: Path) -> None:
    table = np.random.default_rng(0).standard_normal((ROWS, COLS), dtype=np.float32)
    nodes = [
        helper.make_node("Gather", ["emb1", "ids"], ["a"]),
        helper.make_node("Gather", ["emb2", "ids"], ["b"]),
        helper.make_node("Identity", ["a"], ["a2"]),
        helper.make_node("Add", ["a2", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "external_data",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", COLS])],
        [numpy_helper.from_array(table, "emb1"), numpy_helper.from_array(table, "emb2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, path, save_as_external_data=True, location=path.name + ".data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="optimizer-ext-"))
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / "big.onnx", work / "out" / "big.opt.onnx"
    try:
        if not src.exists():
            print(f"building {src} ...", file=sys.stderr)
            build(src)
        exe = shutil.which("optimize") or str(Path(sys.executable).with_name("optimize"))
        start = time.perf_counter()
        proc = subprocess.run(
            [exe, str(src), "-o", str(dst), "--json"], capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr.strip(), file=sys.stderr)
            return 1
        report = json.loads(proc.stdout)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        data = dst.with_name(dst.name + ".data")
        print(
            f"source: {src.stat().st_size} B + {(work / 'big.onnx.data').stat().st_size / 1e9:.2f} GB external"
        )
        print(
            f"output: {dst.stat().st_size} B + {data.stat().st_size / 1e9:.2f} GB external ({data.name})"
        )
        print(
            f"nodes {report['nodes']['before']} -> {report['nodes']['after']}, rules {report['rules']}"
        )
        print(
            f"check ok: {report['check']['ok']}, max abs error {report['check']['max_abs_error']}"
        )
        print(f"wall {wall:.1f} s, peak RSS of optimize {peak:.1f} GiB")
        return 0
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
