"""Triton pooling (maxpool2d_f32, avgpool2d_f32, global_avgpool_f32) against the NumPy
reference kernels: ceil_mode, count_include_pad, dilation, asymmetric pads, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.reference.pool import average_pool, global_average_pool, max_pool
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for
from optimizer.kernels.triton.pool import (
    plan_avgpool2d,
    plan_global_avgpool,
    plan_maxpool2d,
    pool_out_len,
)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def run(device, plan, x, y_shape, ip, dtype="float32"):
    xt = torch.from_numpy(x).to(TORCH_DTYPES[dtype])
    lau = plan([TensorDesc(x.shape, dtype)], [TensorDesc(tuple(y_shape), dtype)], ip, [])
    y = torch.full(tuple(y_shape), float("nan"), dtype=xt.dtype, device=device)
    launch_torch(lau, [xt.to(device)], [y])
    return y.cpu().to(torch.float64).numpy(), xt.to(torch.float64).numpy()


POOL_CASES = [
    # kernel_h, kernel_w, stride_h, stride_w, pads t l b r, dil_h, dil_w, ceil_mode
    (3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0),  # ResNet stem max pool
    (3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1),  # ceil_mode (GoogLeNet / SqueezeNet)
    (2, 3, 2, 1, 1, 0, 0, 2, 1, 1, 1),  # asymmetric pads, ceil_mode, rectangular
    (3, 2, 1, 2, 2, 0, 1, 1, 2, 3, 0),  # dilation
    (2, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1),  # ceil_mode with a dropped last window
]


def attrs_of(case):
    kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil = case
    return {
        "kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [pt, pl, pb, pr],
        "dilations": [dh, dw], "ceil_mode": ceil,
    }  # fmt: skip


def y_shape_of(x_shape, case):
    kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, ceil = case
    oh = pool_out_len(x_shape[2], pt, pb, kh, sh, dh, ceil)
    ow = pool_out_len(x_shape[3], pl, pr, kw, sw, dw, ceil)
    return (x_shape[0], x_shape[1], oh, ow)


@pytest.mark.parametrize("case", POOL_CASES, ids=[f"p{i}" for i in range(len(POOL_CASES))])
def test_maxpool(device: str, case) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 11, 10)).astype(np.float32)
    y_shape = y_shape_of(x.shape, case)
    y, x64 = run(device, plan_maxpool2d, x, y_shape, list(case))
    (expect,) = max_pool([x64], attrs_of(case), 12)
    assert expect.shape == y_shape
    np.testing.assert_array_equal(y, expect)


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES, ids=[f"p{i}" for i in range(len(POOL_CASES))])
def test_avgpool(device: str, case, include_pad: int) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 11, 10)).astype(np.float32)
    y_shape = y_shape_of(x.shape, case)
    y, x64 = run(device, plan_avgpool2d, x, y_shape, [*case, include_pad])
    (expect,) = average_pool([x64], {**attrs_of(case), "count_include_pad": include_pad}, 19)
    np.testing.assert_allclose(y, expect, rtol=1e-6, atol=1e-6)


def test_ceil_mode_drops_a_window_starting_in_the_end_padding() -> None:
    # H=5, k=2, s=3, pads 1/1: ceil gives 3 windows, the third would start at padded index 6
    # >= H + pad_t = 6, so it is dropped.
    assert pool_out_len(5, 1, 1, 2, 3, 1, 1) == 2
    assert pool_out_len(5, 1, 1, 2, 3, 1, 0) == 2
    assert pool_out_len(6, 0, 0, 3, 2, 1, 1) == 3 and pool_out_len(6, 0, 0, 3, 2, 1, 0) == 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtypes(device: str, dtype: str) -> None:
    case = POOL_CASES[0]
    x = np.random.default_rng(2).standard_normal((1, 4, 9, 9)).astype(np.float32)
    y_shape = y_shape_of(x.shape, case)
    y, x16 = run(device, plan_maxpool2d, x, y_shape, list(case), dtype)
    np.testing.assert_array_equal(y, max_pool([x16], attrs_of(case), 12)[0])
    y, x16 = run(device, plan_avgpool2d, x, y_shape, [*case, 1], dtype)
    (expect,) = average_pool([x16], {**attrs_of(case), "count_include_pad": 1}, 19)
    tol = 1e-2 if dtype == "bfloat16" else 1e-3  # the mean rounded to 8 / 11 bits
    np.testing.assert_allclose(y, expect, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "x_shape,y_shape",
    [((2, 5, 7, 7), (2, 5, 1, 1)), ((2, 3, 40, 33), (2, 3)), ((1, 70, 3), (1, 70, 1))],
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_global_avgpool(device: str, x_shape, y_shape, dtype: str) -> None:
    x = np.random.default_rng(3).standard_normal(x_shape).astype(np.float32)
    y, x64 = run(device, plan_global_avgpool, x, y_shape, [], dtype)
    (expect,) = global_average_pool([x64], {}, 1)
    tol = 1e-6 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(y, expect.reshape(y_shape), rtol=tol, atol=tol)


def test_registered() -> None:
    assert plan_for("maxpool2d_f32") is plan_maxpool2d
    assert plan_for("avgpool2d_f32") is plan_avgpool2d
    assert plan_for("global_avgpool_f32") is plan_global_avgpool


@pytest.mark.parametrize(
    "plan,x,y,ip,match",
    [
        (plan_maxpool2d, (1, 2, 5, 5), (1, 2, 3, 3), [3, 3, 2, 2, 3, 0, 0, 0, 1, 1, 0], "pads must"),
        (plan_maxpool2d, (1, 2, 5, 5), (1, 2, 4, 4), [3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 0], "expected"),
        (plan_maxpool2d, (1, 2, 5, 5), (1, 2, 2, 2), [3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 2], "ceil_mode"),
        (plan_avgpool2d, (1, 2, 5, 5), (1, 2, 2, 2), [3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 0], "12 iparams"),
        (plan_global_avgpool, (1, 2, 5, 5), (1, 2, 1), [], "does not fit"),
    ],
)  # fmt: skip
def test_bad_steps_are_refused(plan, x, y, ip, match) -> None:
    with pytest.raises(Unsupported, match=match):
        plan([TensorDesc(x, "float32")], [TensorDesc(y, "float32")], ip, [])
