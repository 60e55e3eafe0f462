"""Data-movement Triton twins (copy, transpose, slice, concat, split, gather, pad) vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import movement
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
         "float64": torch.float64, "int8": torch.int8, "int16": torch.int16,
         "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool}  # fmt: skip
DTYPES = ["float32", "float16", "bfloat16", "int64", "bool", "uint8", "int8"]


def _data(shape, dtype: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == "bool":
        return torch.rand(shape, generator=g) > 0.5
    if dtype in ("int64", "int32", "int16", "int8", "uint8"):
        lo = 0 if dtype == "uint8" else -100
        return torch.randint(lo, 100, shape, generator=g, dtype=TORCH[dtype])
    return torch.randn(shape, generator=g).to(TORCH[dtype])


def _view(t: torch.Tensor) -> np.ndarray:
    """Exact NumPy image of a tensor (bfloat16 by its bits)."""
    if t.dtype == torch.bfloat16:
        return t.cpu().view(torch.int16).numpy()
    return t.cpu().numpy()


def _run(entry, xs, out_shapes, iparams, device, dtypes=None):
    xs = [x.to(device) for x in xs]
    dtypes = dtypes or [str(x.dtype).removeprefix("torch.") for x in xs]
    odt = dtypes[0]
    launch = plan_for(entry)(
        [TensorDesc(tuple(x.shape), dt) for x, dt in zip(xs, dtypes, strict=True)],
        [TensorDesc(tuple(s), odt) for s in out_shapes], iparams, [])  # fmt: skip
    ys = [torch.zeros(s, dtype=TORCH[odt], device=device) for s in out_shapes]
    launch_torch(launch, xs, ys)
    return ys


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_and_transpose(device: str, dtype: str) -> None:
    x = _data((2, 3, 4, 5), dtype)
    (y,) = _run("copy", [x], [(6, 20)], [], device)
    np.testing.assert_array_equal(_view(y), _view(x).reshape(6, 20))
    for perm in ((0, 2, 3, 1), (3, 2, 1, 0), (1, 0, 2, 3), (0, 1, 2, 3)):
        (y,) = _run("transpose", [x], [tuple(x.shape[p] for p in perm)], list(perm), device)
        np.testing.assert_array_equal(_view(y), _view(x).transpose(perm))


def test_transpose_high_rank_merges(device: str) -> None:
    x = _data((2, 1, 3, 2, 2, 3, 2, 1), "float32")
    perm = (4, 5, 0, 1, 2, 3, 6, 7)  # merges to [2*3][2*1*3*2][2]: 3 dims
    (y,) = _run("transpose", [x], [tuple(x.shape[p] for p in perm)], list(perm), device)
    np.testing.assert_array_equal(_view(y), _view(x).transpose(perm))


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
@pytest.mark.parametrize(
    "slices",
    [[(0, 4, 1), (1, 5, 2), (0, 6, 1)],  # strided middle axis
     [(3, -1, -1), (4, -1, -2), (5, 0, -3)],  # negative steps down to index 0
     [(1, 3, 1), (0, 5, 1), (2, 2, 1)],  # empty
     [(2, 3, 1), (0, 5, 1), (0, 6, 1)]],  # one row: contiguous
)  # fmt: skip
def test_slice(device: str, dtype: str, slices) -> None:
    x = _data((4, 5, 6), dtype)
    xn = _view(x)
    starts, ends, steps = zip(*slices, strict=True)
    idx = tuple(slice(s, None if e < 0 else e, k) for s, e, k in slices)
    want = xn[idx]
    (y,) = _run("slice", [x], [want.shape], [*starts, *ends, *steps], device)
    np.testing.assert_array_equal(_view(y), want)


@pytest.mark.parametrize("dtype", ["float16", "int64", "bool"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat_and_split(device: str, dtype: str, axis: int) -> None:
    sizes = [2, 0, 3, 1]
    parts = []
    for k, n in enumerate(sizes):
        shape = [3, 4, 5]
        shape[axis] = n
        parts.append(_data(tuple(shape), dtype, seed=k))
    want = np.concatenate([_view(p) for p in parts], axis=axis)
    (y,) = _run("concat", parts, [want.shape], [axis], device)
    np.testing.assert_array_equal(_view(y), want)
    outs = _run("split", [y.cpu()], [tuple(p.shape) for p in parts], [axis], device)
    for got, p in zip(outs, parts, strict=True):
        np.testing.assert_array_equal(_view(got), _view(p))


@pytest.mark.parametrize("idx_dtype", ["int32", "int64"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_negative_indices(device: str, idx_dtype: str, axis: int) -> None:
    x = _data((4, 5, 6), "float32")
    n = x.shape[axis]
    idx = torch.tensor([[0, -1], [n - 1, -n], [1, 2]], dtype=TORCH[idx_dtype])
    want = np.take(_view(x), idx.numpy() % n, axis=axis)
    (y,) = _run("gather", [x, idx], [want.shape], [axis], device, ["float32", idx_dtype])
    np.testing.assert_array_equal(_view(y), want)


def test_gather_scalar_index_and_other_dtypes(device: str) -> None:
    for dtype in ("int64", "bool", "bfloat16"):
        x = _data((3, 4), dtype)
        idx = torch.tensor(-2, dtype=torch.int64)
        (y,) = _run("gather", [x, idx], [(3,)], [1], device, [dtype, "int64"])
        np.testing.assert_array_equal(_view(y), _view(x)[:, 2])


def test_gather_out_of_range_rows_are_zero(device: str) -> None:
    x = _data((3, 4), "float32")
    idx = torch.tensor([1, 7, -9], dtype=torch.int64)
    (y,) = _run("gather", [x, idx], [(3, 4)], [0], device, ["float32", "int64"])
    want = np.zeros((3, 4), np.float32)
    want[0] = _view(x)[1]
    np.testing.assert_array_equal(_view(y), want)


NP_MODES = {0: "constant", 1: "reflect", 2: "edge", 3: "wrap"}


def _pad_ref(x: np.ndarray, mode: int, pb, pe, value) -> np.ndarray:
    # crop negative pads first (onnxruntime), then numpy pad
    crop = tuple(slice(max(0, -b), x.shape[d] - max(0, -e)) for d, (b, e) in
                 enumerate(zip(pb, pe, strict=True)))  # fmt: skip
    x = x[crop]
    widths = [(max(0, b), max(0, e)) for b, e in zip(pb, pe, strict=True)]
    if mode == 0:
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode=NP_MODES[mode])


@pytest.mark.parametrize("mode", range(4))
@pytest.mark.parametrize(
    ("pb", "pe"),
    [((1, 2, 0), (0, 3, 1)), ((0, 5, 0), (2, 7, 0)), ((-1, 1, 2), (1, -2, 0)), ((0, 0, 0), (0, 0, 0))],
)  # fmt: skip
def test_pad_modes(device: str, mode: int, pb, pe) -> None:
    x = _data((3, 3, 4), "float32")
    bits = int(np.float32(2.5).view(np.int32))
    want = _pad_ref(_view(x), mode, pb, pe, np.float32(2.5))
    (y,) = _run("pad", [x], [want.shape], [mode, *pb, *pe, bits], device)
    np.testing.assert_array_equal(_view(y), want)


@pytest.mark.parametrize(
    ("dtype", "value", "bits"),
    [("float16", -1.5, int(np.float16(-1.5).view(np.uint16))), ("int64", -7, -7),
     ("int8", -3, 0xFD), ("bool", True, 1), ("uint8", 200, 200),
     ("bfloat16", -1.0, 0xBF80), ("float64", 0.25, int(np.float64(0.25).view(np.int64)))],
)  # fmt: skip
def test_pad_constant_values_by_bits(device: str, dtype: str, value, bits: int) -> None:
    x = _data((2, 3), dtype)
    (y,) = _run("pad", [x], [(3, 6)], [0, 1, 2, 0, 1, bits], device)
    got = y.cpu().float().numpy() if dtype == "bfloat16" else _view(y)
    xn = x.float().numpy() if dtype == "bfloat16" else _view(x)
    want = np.pad(xn, [(1, 0), (2, 1)], constant_values=value)
    np.testing.assert_array_equal(got, want)


def test_bad_movements_are_unsupported() -> None:
    f = TensorDesc
    with pytest.raises(Unsupported, match="permutation"):
        movement.plan_transpose([f((2, 3), "float32")], [f((3, 2), "float32")], [0, 0], [])
    with pytest.raises(Unsupported, match="outside"):
        movement.plan_slice([f((4,), "float32")], [f((3,), "float32")], [2, 8, 2], [])
    with pytest.raises(Unsupported, match="do not sum"):
        movement.plan_concat([f((2, 3), "float32")] * 2, [f((5, 3), "float32")], [0], [])
    with pytest.raises(Unsupported, match="share one dtype"):
        movement.plan_copy([f((2,), "float32")], [f((2,), "int32")], [], [])
    with pytest.raises(Unsupported, match="indices"):
        movement.plan_gather(
            [f((2,), "float32"), f((1,), "float32")], [f((1,), "float32")], [0], []
        )
    with pytest.raises(Unsupported, match="empty axis"):
        movement.plan_pad([f((2, 0), "float32")], [f((2, 2), "float32")], [1, 0, 1, 0, 1, 0], [])


def test_signatures_follow_each_tensor_dtype() -> None:
    f = TensorDesc
    ins = [f((4, 3), "bfloat16"), f((2,), "int32")]
    outs = [f((2, 3), "bfloat16")]
    sig = movement.plan_gather(ins, outs, [0], []).signature(ins, outs)
    assert sig == {"data_ptr": "*bf16", "idx_ptr": "*i32", "y_ptr": "*bf16", "n": "i32"}
    parts = [f((1, 3), "bool"), f((2, 3), "bool")]
    whole = [f((3, 3), "bool")]
    sig = movement.plan_concat(parts, whole, [0], []).signature(parts, whole)
    assert sig == {"x0_ptr": "*i1", "x1_ptr": "*i1", "y_ptr": "*i1"}
