"""NVRTC kernels on a GPU through CuPy (marked ``gpu``; skipped without CuPy or a device): each
kernel against the NumPy reference in fp32 / fp16 / bf16 (the cases the Triton twins are tested
on), launched as the C++ runtime launches a module step (grid, ``num_warps * 32`` threads, the
step's arguments). The cubin comes from :mod:`optimizer.kernels.cuda.nvrtc` where NVRTC is
installed, else CuPy compiles the same source (``cupy.RawModule(code=...)``)."""

from __future__ import annotations

import numpy as np
import pytest
from optimizer.kernels.cuda import nvrtc, plans
from optimizer.kernels.triton import aot
from optimizer.kernels.triton.launch import TensorDesc

pytestmark = pytest.mark.gpu
cp = pytest.importorskip("cupy")
try:
    _DEVICES = cp.cuda.runtime.getDeviceCount()
except Exception:  # no driver
    _DEVICES = 0
if not _DEVICES:
    pytest.skip("no CUDA device", allow_module_level=True)

FLOATS = ("float32", "float16", "bfloat16")
TOL = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}  # bilinear: the output's rounding
_MODULES: dict[str, object] = {}


def _module(source: str):
    if source not in _MODULES:
        if nvrtc.available() is None:
            path = nvrtc.compile_source(source, _arch()).path
            _MODULES[source] = cp.RawModule(path=str(path))
        else:
            code = (nvrtc.SOURCE_DIR / source).read_text()
            for h in nvrtc.HEADERS:
                code = code.replace(f'#include "{h}"', (nvrtc.SOURCE_DIR / h).read_text())
            _MODULES[source] = cp.RawModule(code=code, options=("--std=c++17",))
    return _MODULES[source]


def _arch() -> str:
    return f"sm_{cp.cuda.Device().compute_capability}"  # "90" on an H100


def _launch(launch, ins, y) -> None:
    fn = _module(launch.source).get_function(launch.entry)
    args = []
    for a in aot.step_args(aot.Cubin(launch.name, None, launch.entry, launch.num_warps, 0,
                                     launch.params), launch):  # fmt: skip
        ((kind, v),) = a.items()
        args.append({"in": lambda v: ins[int(v)], "out": lambda v: y, "i32": np.int32,
                     "i64": np.int64, "f32": np.float32}[kind](v))  # fmt: skip
    fn(launch.grid, (launch.num_warps * 32,), tuple(args))
    cp.cuda.runtime.deviceSynchronize()


def _store(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        import ml_dtypes

        return a.astype(ml_dtypes.bfloat16).view(np.uint16)
    return a.astype(dtype)


def _load(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


SIZES = [((2, 3, 5, 7), 10, 14, 0.0, 0.0), ((1, 2, 8, 9), 3, 4, 0.0, 0.0),
         ((1, 1, 4, 6), 12, 9, 3.0, 1.5), ((1, 2, 6, 6), 2, 2, 1 / 3, 1 / 3),
         ((1, 1, 5, 5), 1, 1, 0.0, 0.0), ((1, 1, 3, 300), 2, 1300, 0.0, 0.0),
         ((16, 64, 16, 16), 32, 32, 2.0, 2.0)]  # fmt: skip


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
def test_resize(dtype: str, size) -> None:
    pytest.importorskip("torch")
    from tests.kernels.triton.test_resize import _ref

    shape, oh, ow, sh, sw = size
    raw = _store(np.random.default_rng(0).standard_normal(shape).astype(np.float32), dtype)
    x32 = _load(raw, dtype)
    xd = TensorDesc(shape, dtype)
    yd = TensorDesc((*shape[:2], oh, ow), dtype)
    for coord in range(4):
        for nearest in (*range(4), None):
            if nearest is None:
                launch = plans.plan_resize_bilinear([xd], [yd], [coord], [sh, sw])
            else:
                launch = plans.plan_resize_nearest([xd], [yd], [coord, nearest], [sh, sw])
            y = cp.full(yd.shape, 0x55, dtype=raw.dtype)
            _launch(launch, [cp.asarray(raw)], y)
            got = _load(cp.asnumpy(y), dtype)
            want = _ref(x32, oh, ow, sh, sw, coord, nearest)
            if nearest is None:
                np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * 4, err_msg=(
                    f"coord {coord}"))  # fmt: skip
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"coord {coord} mode {nearest}")


@pytest.mark.parametrize("dtype", (*FLOATS, "int64", "uint8"))
@pytest.mark.parametrize("idx_dtype", ("int32", "int64"))
@pytest.mark.parametrize("axis,shape", [(0, (7, 5, 3)), (1, (4, 6, 8)), (0, (1000, 64))])
def test_gather(dtype: str, idx_dtype: str, axis: int, shape) -> None:
    rng = np.random.default_rng(1)
    vals = rng.integers(0, 100, shape) if dtype in ("int64", "uint8") else rng.standard_normal(
        shape)  # fmt: skip
    raw = _store(vals.astype(np.float32), dtype) if dtype in FLOATS else vals.astype(dtype)
    n = shape[axis]
    idx = np.array([[0, -1, n - 1], [2, -n, 1], [n, -n - 1, 0]], dtype=idx_dtype)  # row 2: 2 bad
    ok = (idx >= -n) & (idx < n)
    want = np.take(raw, np.where(ok, idx % n, 0), axis=axis)
    mask = ok.reshape((1,) * axis + ok.shape + (1,) * (len(shape) - axis - 1))
    want = np.where(mask, want, np.zeros_like(want))
    launch = plans.plan_gather(
        [TensorDesc(shape, dtype), TensorDesc(idx.shape, idx_dtype)],
        [TensorDesc(want.shape, dtype)], [axis], [],
    )  # fmt: skip
    y = cp.full(want.shape, 0x55, dtype=raw.dtype)
    _launch(launch, [cp.asarray(raw), cp.asarray(idx)], y)
    np.testing.assert_array_equal(cp.asnumpy(y), want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "shape", [(2, 3, 5, 7), (1, 4, 1, 1), (2, 2, 40, 50), (16, 2048, 7, 7), (1, 3, 2, 3, 4)]
)
def test_global_avgpool(dtype: str, shape) -> None:
    raw = _store(np.random.default_rng(2).standard_normal(shape).astype(np.float32), dtype)
    want = _load(raw, dtype).astype(np.float64).mean(axis=tuple(range(2, len(shape))))
    launch = plans.plan_global_avgpool([TensorDesc(shape, dtype)],
                                       [TensorDesc(shape[:2], dtype)], [], [])  # fmt: skip
    y = cp.full(shape[:2], 0x55, dtype=raw.dtype)
    _launch(launch, [cp.asarray(raw)], y)
    # fp32 sums (order differs from NumPy's) then the output's rounding
    tol = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}[dtype]
    np.testing.assert_allclose(_load(cp.asnumpy(y), dtype), want, rtol=tol, atol=tol)
