"""Benchmark the native CPU kernels (kernels/native) against NumPy (OpenBLAS).

Builds the shared library `odc_native_kernels_shared` with CMake if it is not found (or takes
--lib), calls gemm_f32 / conv2d_packed_f32 (weights packed as the compiler packs them) /
depthwise_conv2d_f32 through ctypes on zoo-typical shapes,
and times them interleaved with the NumPy equivalent (A B A B ..., medians). NumPy's conv is
im2col (sliding_window_view + copy) followed by one OpenBLAS sgemm, i.e. the classic lowering.

    python tools/bench_native_kernels.py                 # 1 and 2 threads
    python tools/bench_native_kernels.py --threads 1 --reps 30 --only gemm

Each thread count runs in its own subprocess, because OpenBLAS reads OPENBLAS_NUM_THREADS once.
OpenBLAS worker threads busy-wait for a long time after each call; interleaved in one process
they would steal the second core from the native kernels' pool (and the other way round), so the
script sets OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's minimum spin) unless it is already set.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUILD = REPO / "build" / "native_kernels_bench"

# (name, M, N, K, transB) -- transformer / classifier-head GEMMs
GEMMS = [
    ("square 512", 512, 512, 512, 0),
    ("square 1024", 1024, 1024, 1024, 0),
    ("bert qkv 128x768x768", 128, 768, 768, 1),
    ("bert ffn1 128x3072x768", 128, 3072, 768, 1),
    ("bert ffn2 128x768x3072", 128, 768, 3072, 1),
    ("fc head 1x1000x2048", 1, 1000, 2048, 1),
]
# (name, C, H, W, Co, K, stride, pad, group)
CONVS = [
    ("resnet50 conv1 7x7/2", 3, 224, 224, 64, 7, 2, 3, 1),
    ("resnet 3x3 64 @56", 64, 56, 56, 64, 3, 1, 1, 1),
    ("resnet 1x1 256->64 @56", 256, 56, 56, 64, 1, 1, 0, 1),
    ("resnet 1x1 64->256 @56", 64, 56, 56, 256, 1, 1, 0, 1),
    ("resnet 3x3 128/2 @56", 128, 56, 56, 128, 3, 2, 1, 1),
    ("resnet 3x3 256 @14", 256, 14, 14, 256, 3, 1, 1, 1),
    ("resnet 1x1 1024->256 @14", 1024, 14, 14, 256, 1, 1, 0, 1),
    ("resnet 3x3 512 @7", 512, 7, 7, 512, 3, 1, 1, 1),
    ("mbv2 1x1 96->24 @56", 96, 56, 56, 24, 1, 1, 0, 1),
    ("mbv2 dw3x3 32 @112", 32, 112, 112, 32, 3, 1, 1, 32),
    ("mbv2 dw3x3/2 144 @56", 144, 56, 56, 144, 3, 2, 1, 144),
    ("mbv2 dw3x3 576 @14", 576, 14, 14, 576, 3, 1, 1, 576),
]


def machine() -> str:
    cpu = platform.machine()
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                f = set(line.split(":", 1)[1].split())
                flags = " ".join(x for x in ("avx2", "fma", "avx512f") if x in f)
    except OSError:
        pass
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; flags {flags}; {platform.platform()}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def find_or_build_lib(lib: str | None, build_dir: Path) -> Path:
    if lib:
        return Path(lib)
    cand = build_dir / "kernels" / "native" / "libodc_native_kernels.so"
    if not cand.exists():
        print(f"building {cand} ...", flush=True)
        subprocess.run(
            [
                "cmake",
                "-S",
                str(REPO),
                "-B",
                str(build_dir),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DSKBUILD_PROJECT_NAME=onnx_deploy",
                "-DSKBUILD_PROJECT_VERSION=0.1.0",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    # always (re)build the target: cheap when up to date
    subprocess.run(
        [
            "cmake",
            "--build",
            str(build_dir),
            "--target",
            "odc_native_kernels_shared",
            "-j",
            str(os.cpu_count() or 2),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return cand


def run_one(args: argparse.Namespace, threads: int) -> None:
    from optimizer.lower.bind import pack_conv_weights

    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    import numpy as np  # after the thread setting

    lib = ctypes.CDLL(str(find_or_build_lib(args.lib, Path(args.build_dir))))

    class Tensor(ctypes.Structure):
        _fields_ = [
            ("data", ctypes.c_void_p),
            ("dtype", ctypes.c_int32),
            ("ndim", ctypes.c_int32),
            ("shape", ctypes.POINTER(ctypes.c_int64)),
            ("strides", ctypes.POINTER(ctypes.c_int64)),
            ("device_type", ctypes.c_int32),
            ("device_id", ctypes.c_int32),
        ]

    class Args(ctypes.Structure):
        _fields_ = [
            ("inputs", ctypes.POINTER(Tensor)),
            ("num_inputs", ctypes.c_int32),
            ("outputs", ctypes.POINTER(Tensor)),
            ("num_outputs", ctypes.c_int32),
            ("iparams", ctypes.POINTER(ctypes.c_int64)),
            ("num_iparams", ctypes.c_int32),
            ("fparams", ctypes.POINTER(ctypes.c_double)),
            ("num_fparams", ctypes.c_int32),
            ("workspace", ctypes.c_void_p),
            ("workspace_size", ctypes.c_int64),
            ("stream", ctypes.c_void_p),
            ("num_threads", ctypes.c_int32),
        ]

    lib.odc_native_isa.restype = ctypes.c_char_p
    fn_type = ctypes.CFUNCTYPE(
        ctypes.c_int32, ctypes.POINTER(Args), ctypes.c_char_p, ctypes.c_int64
    )
    lib.odc_native_kernels.restype = ctypes.c_void_p
    kernels = {}

    class Builtin(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("fn", ctypes.c_void_p)]

    count = ctypes.c_int32()
    table = ctypes.cast(lib.odc_native_kernels(ctypes.byref(count)), ctypes.POINTER(Builtin))
    for i in range(count.value):
        kernels[table[i].name.decode()] = fn_type(table[i].fn)

    keep = []

    def tensor(arr):
        if arr is None:
            return Tensor()
        shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
        keep.append(shape)
        return Tensor(arr.ctypes.data, 1, arr.ndim, shape, None, 0, 0)

    def make_call(name, ins, outs, ip, fp):
        i_arr = (Tensor * len(ins))(*[tensor(a) for a in ins])
        o_arr = (Tensor * len(outs))(*[tensor(a) for a in outs])
        ipa = (ctypes.c_int64 * max(len(ip), 1))(*ip)
        fpa = (ctypes.c_double * max(len(fp), 1))(*fp)
        a = Args(
            i_arr, len(ins), o_arr, len(outs), ipa, len(ip), fpa, len(fp), None, 0, None, threads
        )
        keep.extend([i_arr, o_arr, ipa, fpa, a])
        err = ctypes.create_string_buffer(512)
        fn = kernels[name]

        def call():
            rc = fn(ctypes.byref(a), err, 512)
            if rc:
                raise RuntimeError(err.value.decode())

        return call

    def bench(f_ours, f_np, flops):
        f_ours(), f_np()  # warm up
        # calibrate repetitions per sample to ~20 ms
        t0 = time.perf_counter()
        f_ours()
        one = max(time.perf_counter() - t0, 1e-6)
        inner = max(1, int(0.02 / one))
        to, tn = [], []
        for _ in range(args.reps):  # interleaved: A B A B ...
            t0 = time.perf_counter()
            for _ in range(inner):
                f_ours()
            to.append((time.perf_counter() - t0) / inner)
            t0 = time.perf_counter()
            for _ in range(inner):
                f_np()
            tn.append((time.perf_counter() - t0) / inner)
        mo, mn = statistics.median(to), statistics.median(tn)
        return mo, mn, flops / mo / 1e9, flops / mn / 1e9

    rng = np.random.default_rng(0)
    print(
        f"\n== {threads} thread(s); native ISA {lib.odc_native_isa().decode()}; "
        f"numpy {np.__version__} (OpenBLAS, OPENBLAS_NUM_THREADS={threads}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']})"
    )
    hdr = f"{'case':34s} {'native ms':>10s} {'numpy ms':>10s} {'native GF/s':>12s} {'numpy GF/s':>11s} {'ratio':>6s}"
    gemms = GEMMS
    if args.gemm:
        gemms = []
        for spec in args.gemm:
            M, N, K, tb = (int(v) for v in spec.split(","))
            gemms.append((f"{M}x{N}x{K} tb={tb}", M, N, K, tb))
    if args.only in (None, "gemm"):
        print(hdr)
        for name, M, N, K, tb in gemms:
            A = rng.standard_normal((M, K), dtype=np.float32)
            B = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
            Y = np.empty((M, N), np.float32)
            Yn = np.empty((M, N), np.float32)
            ours = make_call("gemm_f32", [A, B], [Y], [0, tb, 0, 0], [1.0, 1.0, 0.0, 0.0])
            Bn = B.T if tb else B
            numpy_f = lambda A=A, Bn=Bn, Yn=Yn: np.matmul(A, Bn, out=Yn)  # noqa: E731
            ours()
            numpy_f()
            err = float(np.max(np.abs(Y - Yn)) / (np.max(np.abs(Yn)) + 1e-30))
            mo, mn, go, gn = bench(ours, numpy_f, 2.0 * M * N * K)
            print(
                f"{'gemm ' + name:34s} {mo * 1e3:10.3f} {mn * 1e3:10.3f} {go:12.1f} {gn:11.1f} {mn / mo:6.2f}"
                f"   (rel err {err:.1e})"
            )
    if args.only in (None, "conv"):
        print(hdr)
        for name, C, H, W, Co, k, s, p, g in CONVS:
            X = rng.standard_normal((1, C, H, W), dtype=np.float32)
            Wt = rng.standard_normal((Co, C // g, k, k), dtype=np.float32) * 0.1
            Bs = rng.standard_normal((Co,), dtype=np.float32)
            OH = (H + 2 * p - k) // s + 1
            OW = (W + 2 * p - k) // s + 1
            Y = np.empty((1, Co, OH, OW), np.float32)
            params = [s, s, p, p, p, p, 1, 1, g, 1, 0]
            if g == C and g > 1:
                ours = make_call("depthwise_conv2d_f32", [X, Wt, Bs], [Y], params, [0.0, 0.0])
            else:  # what compiled modules run: weights packed once, at compile time
                Wp = pack_conv_weights(Wt, g)
                ours = make_call("conv2d_packed_f32", [X, Wp, Bs], [Y], [*params, Co, k, k],
                                 [0.0, 0.0])  # fmt: skip
            Xp = np.pad(X[0], ((0, 0), (p, p), (p, p)))
            if g == 1:
                W2 = Wt.reshape(Co, -1)

                def numpy_f(Xp=Xp, W2=W2, k=k, s=s, OH=OH, OW=OW, Bs=Bs):
                    if k == 1 and s == 1:
                        cols = Xp.reshape(Xp.shape[0], -1)
                    else:
                        win = np.lib.stride_tricks.sliding_window_view(Xp, (k, k), axis=(1, 2))
                        win = win[:, ::s, ::s][:, :OH, :OW]  # C, OH, OW, k, k
                        cols = np.ascontiguousarray(win.transpose(0, 3, 4, 1, 2)).reshape(
                            -1, OH * OW
                        )
                    y = W2 @ cols
                    y += Bs[:, None]
                    return np.maximum(y, 0, out=y)
            else:  # depthwise: numpy has no BLAS path; sum of k*k shifted multiply-adds

                def numpy_f(Xp=Xp, Wt=Wt, k=k, s=s, OH=OH, OW=OW, Bs=Bs):
                    y = np.zeros((Xp.shape[0], OH, OW), np.float32)
                    for ky in range(k):
                        for kx in range(k):
                            y += (
                                Wt[:, 0, ky, kx][:, None, None]
                                * Xp[:, ky : ky + s * OH : s, kx : kx + s * OW : s]
                            )
                    y += Bs[:, None, None]
                    return np.maximum(y, 0, out=y)

            ours()
            ref = numpy_f().reshape(Y.shape)
            err = float(np.max(np.abs(Y - ref)) / (np.max(np.abs(ref)) + 1e-30))
            flops = 2.0 * Co * OH * OW * (C // g) * k * k
            mo, mn, go, gn = bench(ours, numpy_f, flops)
            print(
                f"{'conv ' + name:34s} {mo * 1e3:10.3f} {mn * 1e3:10.3f} {go:12.1f} {gn:11.1f} {mn / mo:6.2f}"
                f"   (rel err {err:.1e})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--reps", type=int, default=15, help="interleaved samples per case")
    ap.add_argument("--only", choices=["gemm", "conv"], default=None)
    ap.add_argument(
        "--gemm",
        action="append",
        default=None,
        metavar="M,N,K,TRANS_B",
        help="benchmark this GEMM shape instead of the built-in list (repeatable)",
    )
    ap.add_argument("--lib", default=None, help="path to libodc_native_kernels.so")
    ap.add_argument("--build-dir", default=str(DEFAULT_BUILD))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        run_one(args, args.child)
        return
    print("Machine:", machine())
    find_or_build_lib(args.lib, Path(args.build_dir))  # build once, before the children
    for t in [int(x) for x in args.threads.split(",")]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(t),
            "--reps",
            str(args.reps),
            "--build-dir",
            args.build_dir,
        ]
        if args.lib:
            cmd += ["--lib", args.lib]
        if args.only:
            cmd += ["--only", args.only]
        for g in args.gemm or []:
            cmd += ["--gemm", g]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
