"""binary_f32 / unary_f32 / eltwise_program_f32 Triton twins against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from optimizer.kernels.triton import eltwise
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
         "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool,
         "float64": torch.float64}  # fmt: skip
_erf = np.vectorize(math.erf)


def _act_ref(x: np.ndarray, act: int, a: float, b: float) -> np.ndarray:
    sig = 1 / (1 + np.exp(-x))
    with np.errstate(all="ignore"):
        return [
            x, np.maximum(x, 0), np.clip(x, a, b), sig, x * sig, x * np.clip(x / 6 + 0.5, 0, 1),
            0.5 * x * (1 + _erf(x / np.sqrt(2))),
            0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
            np.where(x < 0, a * x, x), np.tanh(x), np.clip(a * x + b, 0, 1), np.exp(x), np.abs(x),
            -x, np.sqrt(x), 1 / x, _erf(x), np.where(x < 0, a * (np.exp(x) - 1), x),
        ][act]  # fmt: skip


def _t(a: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(device=device, dtype=TORCH[dtype])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.double().cpu().numpy()


BINARY_SHAPES = [((4, 5), (4, 5)), ((2, 3, 4), (4,)), ((3, 1, 5), (1, 4, 1)), ((1,), (2, 3)),
                 ((2, 1, 3, 1, 2), (2, 4, 3, 5, 1)), ((), (3, 2)), ((6, 1), (6, 7))]  # fmt: skip


@pytest.mark.parametrize("op", range(6))
@pytest.mark.parametrize(("sa", "sb"), BINARY_SHAPES)
def test_binary_broadcast(device: str, op: int, sa, sb) -> None:
    rng = np.random.default_rng(op)
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) + 3).astype(np.float32)
    want = [np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum][op](a, b)
    y = torch.empty(want.shape, device=device)
    launch = plan_for("binary_f32")(
        [TensorDesc(sa, "float32"), TensorDesc(sb, "float32")],
        [TensorDesc(want.shape, "float32")], [op, 0], [0.0, 0.0])  # fmt: skip
    launch_torch(launch, [_t(a, "float32", device), _t(b, "float32", device)], [y])
    np.testing.assert_allclose(_np(y), want, rtol=1e-6, atol=1e-6)


ACT_PARAMS = {2: (-0.5, 0.7), 8: (0.1, 0.0), 10: (0.2, 0.5), 17: (1.3, 0.0)}


@pytest.mark.parametrize("act", range(18))
def test_unary_and_binary_acts(device: str, act: int) -> None:
    rng = np.random.default_rng(act)
    x = (rng.standard_normal((3, 70)) * 3).astype(np.float32)
    if act in (14, 15):  # sqrt / reciprocal of positives
        x = np.abs(x) + 0.1
    alpha, beta = ACT_PARAMS.get(act, (0.0, 0.0))
    want = _act_ref(x.astype(np.float64), act, alpha, beta)
    y = torch.empty(x.shape, device=device)
    d = TensorDesc(x.shape, "float32")
    launch_torch(
        plan_for("unary_f32")([d], [d], [act], [alpha, beta]), [_t(x, "float32", device)], [y]
    )
    np.testing.assert_allclose(_np(y), want, rtol=2e-6, atol=2e-6)
    # the same act as binary_f32's epilogue: act(x + 0)
    z = np.zeros((70,), np.float32)
    launch = plan_for("binary_f32")([d, TensorDesc((70,), "float32")], [d], [0, act], [alpha, beta])
    launch_torch(launch, [_t(x, "float32", device), _t(z, "float32", device)], [y])
    np.testing.assert_allclose(_np(y), want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_binary_half_in_place(device: str, dtype: str) -> None:
    rng = np.random.default_rng(9)
    a = rng.standard_normal((4, 33)).astype(np.float32)
    b = rng.standard_normal((33,)).astype(np.float32)
    at, bt = _t(a, dtype, device), _t(b, dtype, device)
    want = _act_ref(_np(at) * _np(bt), 4, 0, 0)
    launch = plan_for("binary_f32")(
        [TensorDesc(a.shape, dtype), TensorDesc(b.shape, dtype)], [TensorDesc(a.shape, dtype)],
        [2, 4], [0.0, 0.0])  # fmt: skip
    launch_torch(launch, [at, bt], [at])  # Y = A
    tol = 2e-3 if dtype == "float16" else 1.6e-2  # one rounding of the fp32 result
    np.testing.assert_allclose(_np(at), want, rtol=tol, atol=tol)


def _operand(kind: int, idx: int) -> int:
    return kind << 24 | idx


R, X, F = 0, 1, 2


def _program(instrs, num_regs, result) -> list[int]:
    flat = [num_regs, len(instrs), result]
    for ins in instrs:
        flat += list(ins)
    return flat


def _run_program(device, xs, dtypes, out_shape, iparams, fparams, ydtype="float32"):
    ts = [_t(x, dt, device) for x, dt in zip(xs, dtypes, strict=True)]
    launch = plan_for("eltwise_program_f32")(
        [TensorDesc(x.shape, dt) for x, dt in zip(xs, dtypes, strict=True)],
        [TensorDesc(out_shape, ydtype)], iparams, fparams)  # fmt: skip
    y = torch.empty(out_shape, device=device, dtype=TORCH[ydtype])
    launch_torch(launch, ts, [y])
    return _np(y), [_np(t) for t in ts]


def test_program_erf_gelu_with_broadcast(device: str) -> None:
    # y = (x + b) * 0.5 * (1 + erf((x + b) / sqrt2)), b broadcast along rows
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    b = rng.standard_normal((16,)).astype(np.float32)
    ip = _program([
        (0, 0, _operand(X, 0), _operand(X, 1)),  # r0 = x + b
        (3, 1, _operand(R, 0), _operand(F, 0)),  # r1 = r0 / sqrt2
        (14, 1, _operand(R, 1), 0),  # r1 = erf(r1)
        (0, 1, _operand(R, 1), _operand(F, 1)),  # r1 += 1
        (2, 1, _operand(R, 0), _operand(R, 1)),  # r1 = r0 * r1
        (2, 1, _operand(R, 1), _operand(F, 2)),  # r1 *= 0.5
    ], 2, 1)  # fmt: skip
    got, (xr, br) = _run_program(
        device, [x, b], ["float32"] * 2, x.shape, ip, [math.sqrt(2), 1, 0.5]
    )
    h = xr + br
    np.testing.assert_allclose(got, 0.5 * h * (1 + _erf(h / np.sqrt(2))), rtol=1e-6, atol=1e-6)


def test_program_every_op_and_odd_broadcasts(device: str) -> None:
    rng = np.random.default_rng(4)
    a = (np.abs(rng.standard_normal((3, 1, 5))) + 0.5).astype(np.float32)
    b = rng.standard_normal((4, 1)).astype(np.float32)
    c = rng.standard_normal((3, 4, 5)).astype(np.float32)
    want = {}
    A, B, C = (v.astype(np.float64) for v in (a, b, c))
    with np.errstate(all="ignore"):
        ref = {0: A + B, 1: A - C, 2: B * C, 3: C / A, 4: np.maximum(B, C), 5: np.minimum(A, C),
               6: A ** B, 7: C + 0 * A, 8: -C + 0 * A, 9: np.abs(C), 10: np.exp(B) + 0 * C,
               11: np.log(A) + 0 * C, 12: np.sqrt(A) + 0 * C, 13: 1 / A + 0 * C,
               14: _erf(C), 15: np.tanh(C), 16: 1 / (1 + np.exp(-C)), 17: np.maximum(C, 0),
               18: np.clip(C, -0.3, 0.4)}  # fmt: skip
    operands = {0: (X, 0, X, 1), 1: (X, 0, X, 2), 2: (X, 1, X, 2), 3: (X, 2, X, 0),
                4: (X, 1, X, 2), 5: (X, 0, X, 2), 6: (X, 0, X, 1)}  # fmt: skip
    for op, w in ref.items():
        if op in operands:
            ka, ia, kb, ib = operands[op]
            instrs = [(op, 0, _operand(ka, ia), _operand(kb, ib))]
        else:
            src = {10: 1, 11: 0, 12: 0, 13: 0}.get(op, 2)
            b_arg = _operand(F, 0) if op == 18 else 0
            instrs = [(op, 0, _operand(X, src), b_arg)]
        # mix c in with a no-op so every program writes Y's full shape: r0 = r0 + 0 * c
        instrs += [(2, 1, _operand(X, 2), _operand(F, 2)), (0, 0, _operand(R, 0), _operand(R, 1))]
        got, _ = _run_program(device, [a, b, c], ["float32"] * 3, c.shape,
                              _program(instrs, 2, 0), [-0.3, 0.4, 0.0])  # fmt: skip
        want[op] = np.broadcast_to(w, c.shape)
        np.testing.assert_allclose(got, want[op], rtol=3e-6, atol=3e-6, err_msg=f"op {op}")


def test_program_pow_signs_and_zeros(device: str) -> None:
    a = np.array([-2, -2, -2, 0, 0, 0, 3, 1, np.nan, -0.5], np.float32)
    b = np.array([3, 2, 0.5, 2, 0, -1, 2.5, np.nan, 0, -3], np.float32)
    got, _ = _run_program(device, [a, b], ["float32"] * 2, a.shape,
                          _program([(6, 0, _operand(X, 0), _operand(X, 1))], 1, 0), [])  # fmt: skip
    with np.errstate(all="ignore"):
        want = np.power(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_program_casts_other_dtypes_on_load(device: str) -> None:
    m = np.array([[True, False, True]])
    i = np.array([[3], [-(2**40)]], np.int64)
    u = np.array([250, 1, 7], np.uint8)
    ip = _program([(2, 0, _operand(X, 0), _operand(X, 1)), (0, 0, _operand(R, 0), _operand(X, 2))],
                  1, 0)  # fmt: skip
    got, _ = _run_program(device, [m, i, u], ["bool", "int64", "uint8"], (2, 3), ip, [])
    np.testing.assert_array_equal(got, (m * i.astype(np.float32) + u).astype(np.float32))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_program_half(device: str, dtype: str) -> None:
    x = np.random.default_rng(5).standard_normal((5, 40)).astype(np.float32)
    ip = _program([(16, 0, _operand(X, 0), 0), (2, 0, _operand(R, 0), _operand(X, 0))], 1, 0)
    got, (xr,) = _run_program(device, [x], [dtype], x.shape, ip, [], ydtype=dtype)
    tol = 2e-3 if dtype == "float16" else 1.6e-2
    np.testing.assert_allclose(got, xr / (1 + np.exp(-xr)), rtol=tol, atol=tol)


def test_program_immediate_only_and_rank0(device: str) -> None:
    # r0 = 1e-10 * 1e39 (clamped to FLT_MAX as the native kernel does: not inf), r0 *= x
    x = np.array(2.0, np.float32)
    ip = _program(
        [(2, 0, _operand(F, 0), _operand(F, 1)), (2, 0, _operand(R, 0), _operand(X, 0))], 1, 0
    )
    got, _ = _run_program(device, [x], ["float32"], (), ip, [1e-10, 1e39])
    want = np.float32(1e-10) * np.float32(3.4028234663852886e38) * np.float32(2)
    assert got.shape == () and np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_program_source_is_cached_by_hash(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ODC_TRITON_CACHE_DIR", str(tmp_path))
    d = TensorDesc((7, 3), "float32")
    ip = _program([(10, 0, _operand(X, 0), 0)], 1, 0)
    l1 = eltwise.plan_eltwise_program([d], [d], ip, [])
    l2 = eltwise.plan_eltwise_program([d], [d], ip, [])
    assert l1.kernel is l2.kernel
    files = list(tmp_path.glob("odc_triton_gen_*.py"))
    assert len(files) == 1 and "tl.exp(x0)" in files[0].read_text()


@pytest.mark.parametrize(
    ("iparams", "match"),
    [([1, 1, 0, 99, 0, _operand(X, 0), 0], "op 99"),
     ([1, 1, 0, 0, 0, _operand(R, 0), _operand(X, 0)], "operand"),
     ([1, 1, 0, 0, 0, _operand(X, 5), _operand(X, 0)], "operand"),
     ([1, 1, 0, 18, 0, _operand(X, 0), _operand(F, 0)], "clip"),
     ([2, 1, 1, 10, 0, _operand(X, 0), 0], "never written"),
     ([1, 2, 0, 10, 0, _operand(X, 0), 0], "iparams")],
)  # fmt: skip
def test_bad_programs_are_unsupported(iparams, match) -> None:
    d = TensorDesc((4,), "float32")
    with pytest.raises(Unsupported, match=match):
        eltwise.plan_eltwise_program([d], [d], iparams, [1.0])


def test_bad_binaries_are_unsupported() -> None:
    f = TensorDesc
    with pytest.raises(Unsupported, match="broadcast"):
        eltwise.plan_binary([f((3,), "float32"), f((4,), "float32")], [f((4,), "float32")],
                            [0, 0], [0, 0])  # fmt: skip
    with pytest.raises(Unsupported, match="op 6"):
        eltwise.plan_binary([f((4,), "float32")] * 2, [f((4,), "float32")], [6, 0], [0, 0])
    with pytest.raises(Unsupported, match="activation code 18"):
        eltwise.plan_unary([f((4,), "float32")], [f((4,), "float32")], [18], [0, 0])
    with pytest.raises(Unsupported, match="dims after merging"):
        shape = (2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1)
        other = tuple(3 - s for s in shape)
        out = tuple(max(s, o) for s, o in zip(shape, other, strict=True))
        eltwise.plan_binary([f(shape, "float32"), f(other, "float32")], [f(out, "float32")],
                            [0, 0], [0, 0])  # fmt: skip
