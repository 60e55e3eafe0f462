"""NVRTC kernels (kernels/cuda) vs their Triton twins on a GPU: correctness and per-kernel time.

Two steps, so the GPU machine needs neither NVRTC nor this project installed, only NumPy and
CuPy:

    python tools/bench_nvrtc_kernels.py prepare DIR [--arch sm_90]   # here: no GPU needed
    python DIR/bench_nvrtc_kernels.py run DIR                         # on the GPU machine

``prepare`` plans every case with the NVRTC kernel (kernels/cuda/plans.py) and the zoo-shape
cases also with the Triton plan of the same native entry, compiles the cubins (NVRTC; Triton
ahead of time, kernels/triton/aot.py), writes them with the step arguments the module would record (``aot.step_args``), random inputs
and the NumPy reference outputs into DIR, and copies this script there. ``run`` loads each cubin
with ``cupy.RawModule(path=...)`` and launches it as the C++ runtime does (grid, ``num_warps *
32`` threads, dynamic shared bytes, hidden parameters NULL), compares both outputs to the
reference (nearest resize and gather exactly; bilinear within the dtype's tolerance) and to each
other, and times the zoo-shape cases with CUDA events around the replay of a CUDA graph of 200
launches (A B A B ..., median of the rounds; the kernels' GPU time as a module's graph replays
them: plain launches from Python would time CuPy's per-launch host cost).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

# -- prepare (here) ------------------------------------------------------------------------------

FLOATS = ("float32", "float16", "bfloat16")
# bilinear tolerance (absolute, inputs ~N(0,1)): the output's rounding in the stored dtype
TOL = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}


def _bits(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` (float32 values) stored as ``dtype``: the array of its raw elements."""
    if dtype == "bfloat16":
        import ml_dtypes

        return a.astype(ml_dtypes.bfloat16).view(np.uint16)
    return a.astype(dtype)


def _as_f32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def _resize_ref(x, oh, ow, sh, sw, coord, nearest):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.kernels.triton.test_resize import _ref

    return _ref(x, oh, ow, sh, sw, coord, nearest)


def _cases():
    """(name, entry, input arrays (float32 values or ints), dtypes, out shape, iparams, fparams,
    timed)."""
    rng = np.random.default_rng(0)
    cases = []
    sizes = [((2, 3, 5, 7), 10, 14, 0.0, 0.0), ((1, 2, 8, 9), 3, 4, 0.0, 0.0),
             ((1, 1, 4, 6), 12, 9, 3.0, 1.5), ((1, 2, 6, 6), 2, 2, 1 / 3, 1 / 3),
             ((1, 1, 5, 5), 1, 1, 0.0, 0.0), ((1, 1, 3, 300), 2, 1300, 0.0, 0.0)]  # fmt: skip
    for dt in FLOATS:
        for si, (shape, oh, ow, sh, sw) in enumerate(sizes):
            x = rng.standard_normal(shape).astype(np.float32)
            for coord in range(4):
                for mode in range(4) if dt == "float32" else (0, 2):
                    cases.append((f"nearest/{dt}/s{si}/c{coord}/m{mode}", "resize_nearest_f32",
                                  [x], [dt], (*shape[:2], oh, ow), [coord, mode], [sh, sw],
                                  False))  # fmt: skip
                cases.append((f"bilinear/{dt}/s{si}/c{coord}", "resize_bilinear_f32", [x], [dt],
                              (*shape[:2], oh, ow), [coord], [sh, sw], False))  # fmt: skip
    for dt in (*FLOATS, "int64", "uint8"):
        for it in ("int32", "int64"):
            for axis, shape in ((0, (7, 5, 3)), (1, (4, 6, 8)), (0, (1000, 64))):
                data = (rng.integers(0, 200, shape) if dt in ("int64", "uint8")
                        else rng.standard_normal(shape)).astype(np.float32)  # fmt: skip
                n = shape[axis]
                idx = np.array([[0, -1, n - 1], [2, -n, 1]], dtype=it)
                out = tuple(shape[:axis]) + idx.shape + tuple(shape[axis + 1 :])
                cases.append((f"gather/{dt}/{it}/a{axis}/{shape}", "gather", [data, idx],
                              [dt, it], out, [axis], [], False))  # fmt: skip
    for dt in FLOATS:
        for shape in ((2, 3, 5, 7), (1, 4, 1, 1), (2, 2, 40, 50), (1, 3, 2, 3, 4)):
            x = rng.standard_normal(shape).astype(np.float32)
            cases.append((f"global_avgpool/{dt}/{shape}", "global_avgpool_f32", [x], [dt],
                          shape[:2], [], [], False))  # fmt: skip
    data = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([1, 7, -9], np.int64)
    cases.append(("gather/out_of_range", "gather", [data, idx], ["float32", "int64"], (3, 4), [0],
                  [], False))  # fmt: skip
    # zoo shapes (timed): unet's Resize, bert's word embedding
    for dt in ("float16", "float32"):
        for b in (1, 16):
            x = rng.standard_normal((b, 64, 16, 16)).astype(np.float32)
            for entry, ip in (("resize_nearest_f32", [2, 2]), ("resize_bilinear_f32", [0])):
                kind = entry.split("_")[1]
                cases.append((f"zoo/unet_resize_{kind}/{dt}/b{b}", entry, [x], [dt],
                              (b, 64, 32, 32), ip, [2.0, 2.0], True))  # fmt: skip
            x = rng.standard_normal((b, 2048, 7, 7)).astype(np.float32)
            cases.append((f"zoo/resnet_gap/{dt}/b{b}", "global_avgpool_f32", [x], [dt],
                          (b, 2048), [], [], True))  # fmt: skip
            table = rng.standard_normal((1000, 64)).astype(np.float32)
            ids = rng.integers(0, 1000, (b, 16)).astype(np.int64)
            cases.append((f"zoo/bert_embedding/{dt}/b{b}", "gather", [table, ids], [dt, "int64"],
                          (b, 16, 64), [0], [], True))  # fmt: skip
    return cases


def prepare(out: Path, arch: str) -> None:
    import optimizer.kernels.triton.all  # noqa: F401  (registers the Triton plans)
    from optimizer.kernels.cuda import plans as nv
    from optimizer.kernels.triton import aot
    from optimizer.kernels.triton.launch import TensorDesc, plan_for

    out.mkdir(parents=True, exist_ok=True)
    (out / "cubins").mkdir(exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    records = []
    for i, (name, entry, ins, dts, oshape, ip, fp, timed) in enumerate(_cases()):
        descs = [TensorDesc(tuple(a.shape), d) for a, d in zip(ins, dts)]
        ydesc = TensorDesc(tuple(oshape), dts[0])
        raw = [_bits(a, d) if d in FLOATS else a.astype(d) for a, d in zip(ins, dts)]
        if entry == "gather":
            n = ins[0].shape[ip[0]]
            j = ins[1].astype(np.int64)
            ok = (j >= -n) & (j < n)
            want = np.take(raw[0], np.where(ok, j % n, 0), axis=ip[0])
            a = ip[0]
            mask = ok.reshape((1,) * a + ok.shape + (1,) * (len(ins[0].shape) - a - 1))
            want = np.where(mask, want, np.zeros_like(want))
        elif entry == "global_avgpool_f32":
            x32 = _as_f32(raw[0], dts[0]).astype(np.float64)
            want = x32.mean(axis=tuple(range(2, x32.ndim))).astype(np.float32)
        else:
            x32 = _as_f32(raw[0], dts[0])
            nearest = ip[1] if entry == "resize_nearest_f32" else None
            want = _resize_ref(x32, oshape[2], oshape[3], fp[0], fp[1], ip[0], nearest)
            want = want.astype(np.float32)
        backends = {}
        nl = nv.plan_for(entry)(descs, [ydesc], ip, fp)
        nc = nv.compile_launch(nl, arch)
        todo = [("nvrtc", nl, nc)]
        if timed:  # the Triton twin for the timed cases (the others check NVRTC vs NumPy)
            tl_ = plan_for(entry)(descs, [ydesc], ip, fp)
            todo.append(("triton", tl_, aot.compile_launch(tl_, descs, [ydesc], arch)))
        for backend, launch, cubin in todo:
            file = f"cubins/{cubin.key[:24]}.cubin"
            if not (out / file).exists():
                shutil.copyfile(cubin.path, out / file)
            backends[backend] = {"file": file, "entry": cubin.entry, "grid": list(launch.grid),
                                 "block": cubin.num_warps * 32, "shared": cubin.shared,
                                 "params": cubin.params, "args": aot.step_args(cubin, launch),
                                 "name": launch.name}  # fmt: skip
        for k, a in enumerate(raw):
            arrays[f"{i}_in{k}"] = np.ascontiguousarray(a)
        arrays[f"{i}_want"] = np.ascontiguousarray(want)
        records.append({"name": name, "entry": entry, "dtypes": dts, "out": list(oshape),
                        "out_dtype": "uint16" if dts[0] == "bfloat16" else dts[0],
                        "timed": timed, "backends": backends, "inputs": len(raw)})  # fmt: skip
    np.savez(out / "cases.npz", **arrays)
    (out / "cases.json").write_text(json.dumps(records))
    shutil.copyfile(__file__, out / Path(__file__).name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(records)} cases, {len(list((out / 'cubins').iterdir()))} cubins, "
          f"{size / 2**20:.1f} MiB in {out}")  # fmt: skip


# -- run (on the GPU machine: NumPy + CuPy only) ---------------------------------------------------


def _launcher(cp, root: Path, spec: dict, modules: dict, ins: list, y):
    mod = modules.get(spec["file"])
    if mod is None:
        mod = modules[spec["file"]] = cp.RawModule(path=str(root / spec["file"]))
    fn = mod.get_function(spec["entry"])
    if spec["shared"] > 48 * 1024:
        fn.max_dynamic_shared_size_bytes = spec["shared"]
    args = []
    for a in spec["args"]:
        ((kind, v),) = a.items()
        if kind == "in":
            args.append(ins[int(v)])
        elif kind == "out":
            args.append(y)
        elif kind == "i32":
            args.append(np.int32(v))
        elif kind == "i64":
            args.append(np.int64(v))
        elif kind == "f32":
            args.append(np.float32(v))
        else:  # null
            args.append(np.uint64(0))
    grid, block, shared = tuple(spec["grid"]), (spec["block"],), spec["shared"]
    return lambda: fn(grid, block, tuple(args), shared_mem=shared)


def _f32(a: np.ndarray, dtype: str) -> np.ndarray:
    return _as_f32(a, dtype) if dtype in FLOATS else a


def run(root: Path, rounds: int, reps: int, timed_only: bool = False) -> int:
    import cupy as cp

    records = json.loads((root / "cases.json").read_text())
    data = np.load(root / "cases.npz")
    modules: dict = {}
    failures = 0
    rows = []
    for i, rec in enumerate(records):
        if timed_only and not rec["timed"]:
            continue
        ins = [cp.asarray(data[f"{i}_in{k}"]) for k in range(rec["inputs"])]
        want = data[f"{i}_want"]
        dt = rec["dtypes"][0]
        outs = {}
        calls = {}
        for backend, spec in rec["backends"].items():
            y = cp.full(rec["out"], 0x55, dtype=rec["out_dtype"])  # garbage: every element written
            calls[backend] = _launcher(cp, root, spec, modules, ins, y)
            calls[backend]()
            cp.cuda.runtime.deviceSynchronize()
            outs[backend] = cp.asnumpy(y)
        msgs = []
        for backend, got in outs.items():
            g = _f32(got, dt)
            if rec["entry"] == "global_avgpool_f32":
                err = float(np.max(np.abs(g - want)))
                ok = err <= {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}[dt] * 2
                msgs.append(f"{backend} max|err| {err:.2e}")
            elif rec["entry"] == "resize_bilinear_f32":
                err = float(np.max(np.abs(g - want))) if g.size else 0.0
                ok = err <= TOL[dt] * max(1.0, float(np.max(np.abs(want), initial=0)))
                msgs.append(f"{backend} max|err| {err:.2e}")
            elif rec["entry"] == "resize_nearest_f32":
                ok = np.array_equal(g, want)
            else:
                ok = np.array_equal(got, want)
            if not ok:
                failures += 1
                msgs.append(f"{backend} WRONG")
        if not rec["timed"]:
            if any("WRONG" in m for m in msgs):
                print(f"FAIL {rec['name']}: {'; '.join(msgs)}")
            continue
        diff = float(np.max(np.abs(_f32(outs["nvrtc"], dt).astype(np.float64)
                                   - _f32(outs["triton"], dt)), initial=0))  # fmt: skip
        # GPU time per launch as a module replays it: `reps` launches captured in one CUDA
        # graph, replayed between events (plain back-to-back launches from Python measure
        # CuPy's per-launch host cost, which grows with the argument count)
        stream = cp.cuda.Stream(non_blocking=True)
        graphs = {}
        with stream:
            for b, call in calls.items():
                stream.begin_capture()
                for _ in range(reps):
                    call()
                graphs[b] = stream.end_capture()
                graphs[b].launch(stream)
        stream.synchronize()
        times = {b: [] for b in calls}
        for _ in range(rounds):
            for b, graph in graphs.items():
                start, stop = cp.cuda.Event(), cp.cuda.Event()
                start.record(stream)
                graph.launch(stream)
                stop.record(stream)
                stop.synchronize()
                times[b].append(cp.cuda.get_elapsed_time(start, stop) * 1e3 / reps)
        med = {b: float(np.median(t)) for b, t in times.items()}
        spread = {b: (min(t), max(t)) for b, t in times.items()}
        msgs.append("spread nvrtc {:.2f}-{:.2f} triton {:.2f}-{:.2f}".format(
            *spread["nvrtc"], *spread["triton"]))  # fmt: skip
        rows.append((rec["name"], med["nvrtc"], med["triton"], diff, "; ".join(msgs)))
    n_checked = sum(1 for r in records if r["timed"] or not timed_only)
    print(f"{n_checked} cases checked on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}"
          f": {failures} wrong outputs")  # fmt: skip
    print(f"{'case':44s} {'nvrtc us':>9s} {'triton us':>9s} {'ratio':>6s}  max|nvrtc-triton|")
    for name, a, b, diff, msg in rows:
        print(f"{name:44s} {a:9.2f} {b:9.2f} {a / b:6.2f}  {diff:.2e}  {msg}")
    return 1 if failures else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("dir", type=Path)
    pp.add_argument("--arch", default="sm_90")
    pr = sub.add_parser("run")
    pr.add_argument("dir", type=Path)
    pr.add_argument("--rounds", type=int, default=7)
    pr.add_argument("--reps", type=int, default=200)
    pr.add_argument("--timed-only", action="store_true", help="only the zoo-shape cases")
    a = p.parse_args()
    if a.cmd == "prepare":
        prepare(a.dir, a.arch)
        return 0
    return run(a.dir, a.rounds, a.reps, a.timed_only)


if __name__ == "__main__":
    sys.exit(main())
