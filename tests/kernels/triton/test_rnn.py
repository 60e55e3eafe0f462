"""lstm_f32 / gru_f32 Triton twins against the fp64 NumPy reference (kernels/reference/rnn.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optimizer.kernels.reference.rnn import _recurrent
from optimizer.kernels.triton import rnn
from optimizer.kernels.triton.launch import TensorDesc, Unsupported, launch_torch, plan_for

TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# fp32: accumulation order; fp16 / bf16: rounded inputs and outputs (values of order 1) carried
# through a few steps of the recurrence
TOL = {"float32": 2e-5, "float16": 4e-3, "bfloat16": 3e-2}
DIRS = {0: "forward", 1: "reverse", 2: "bidirectional"}


def _case(
    device: str, cell: str, S: int, B: int, N_IN: int, H: int, direction: int, layout: int, *, bias: bool = True,
    lens: str | None = None, h0: bool = False, c0: bool = False, peep: bool = False,
    clip: float = 0.0, flag: int = 0, n_out: int = 3, dtype: str = "float32", seed: int = 0,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    G = 4 if cell == "lstm" else 3
    D = 2 if direction == 2 else 1
    n_out = min(n_out, 3 if cell == "lstm" else 2)

    def rnd(*shape: int, scale: float = 1.0) -> np.ndarray:
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        # what the kernel sees: the tensor rounded to the storage dtype
        return torch.from_numpy(a).to(TORCH[dtype]).float().numpy()

    x = rnd(B, S, N_IN) if layout else rnd(S, B, N_IN)
    w, r = rnd(D, G * H, N_IN, scale=0.5), rnd(D, G * H, H, scale=0.5)
    state = (B, D, H) if layout else (D, B, H)
    ins: list[np.ndarray | None] = [
        x, w, r,
        rnd(D, 2 * G * H, scale=0.5) if bias else None,
        rng.integers(0, S + 1, B).astype(lens) if lens else None,
        rnd(*state) if h0 else None,
    ]  # fmt: skip
    if cell == "lstm":
        ins += [rnd(*state) if c0 else None, rnd(D, 3 * H, scale=0.5) if peep else None]
    attrs: dict = {"direction": DIRS[direction], "layout": layout}
    if clip > 0:
        attrs["clip"] = clip
    if cell == "gru":
        attrs["linear_before_reset"] = flag
    want = _recurrent("LSTM" if cell == "lstm" else "GRU")(ins, attrs, 14)

    kins = list(ins)
    kins[1], kins[2] = w.transpose(0, 2, 1).copy(), r.transpose(0, 2, 1).copy()
    while kins[-1] is None:
        kins.pop()
    descs = [
        None if a is None else TensorDesc(a.shape, dtype if i != 4 else str(a.dtype))
        for i, a in enumerate(kins)
    ]
    outs = [TensorDesc(o.shape, dtype) for o in want[:n_out]]
    launch = plan_for(f"{cell}_f32")(descs, outs, [direction, layout, flag], [clip])
    tins = [
        None
        if a is None
        else torch.from_numpy(a).to(device=device, dtype=TORCH[dtype] if i != 4 else None)
        for i, a in enumerate(kins)
    ]
    touts = [torch.full(o.shape, 7.0, dtype=TORCH[dtype], device=device) for o in outs]
    ws = torch.empty(launch.workspace, dtype=torch.uint8, device=device)
    launch_torch(launch, tins, touts, ws)
    for k, (got, ref) in enumerate(zip(touts, want)):
        np.testing.assert_allclose(
            got.float().cpu().numpy(), ref, rtol=TOL[dtype], atol=TOL[dtype], err_msg=f"output {k}"
        )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("direction", [0, 1, 2])
def test_directions(device: str, cell: str, direction: int) -> None:
    _case(device, cell, 4, 2, 5, 6, direction, 0, h0=True, c0=True)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("lens", ["int32", "int64"])
def test_layout1_sequence_lens(device: str, cell: str, lens: str) -> None:
    _case(device, cell, 5, 3, 7, 5, 2, 1, lens=lens, h0=True, c0=True, seed=1)
    _case(device, cell, 5, 3, 4, 8, 1, 0, lens=lens, bias=False, seed=2)


def test_lstm_peepholes_clip(device: str) -> None:
    _case(device, "lstm", 4, 2, 6, 7, 2, 0, peep=True, c0=True, clip=0.7, seed=3)
    _case(device, "lstm", 3, 2, 16, 16, 0, 1, peep=True, h0=True, seed=4)


@pytest.mark.parametrize("flag", [0, 1])
def test_gru_linear_before_reset_clip(device: str, flag: int) -> None:
    _case(device, "gru", 4, 2, 6, 9, 2, 0, flag=flag, h0=True, seed=5)
    _case(device, "gru", 3, 3, 3, 16, 0, 1, flag=flag, clip=0.5, lens="int32", seed=6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fewer_outputs(device: str, cell: str) -> None:
    _case(device, cell, 3, 2, 4, 5, 0, 0, n_out=1, seed=7)
    _case(device, cell, 3, 2, 4, 5, 2, 1, n_out=2, lens="int64", seed=8)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_half(device: str, cell: str, dtype: str) -> None:
    flag = int(cell == "gru")  # linear_before_reset for GRU (LSTM's flag is input_forget)
    _case(device, cell, 4, 2, 8, 12, 2, 0, h0=True, c0=True, peep=True, dtype=dtype, flag=flag, seed=9)


def test_lstm_input_forget(device: str) -> None:
    # the reference has no input_forget: f = 1 - i is checked against a tiny NumPy loop
    rng = np.random.default_rng(10)
    S, B, N_IN, H = 3, 2, 4, 5
    x = rng.standard_normal((S, B, N_IN)).astype(np.float32)
    wt = (rng.standard_normal((1, N_IN, 4 * H)) * 0.5).astype(np.float32)
    rt = (rng.standard_normal((1, H, 4 * H)) * 0.5).astype(np.float32)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, c = np.zeros((B, H)), np.zeros((B, H))
    y = np.zeros((S, 1, B, H))
    for t in range(S):
        g = x[t] @ wt[0] + h @ rt[0]
        i = sig(g[:, :H])
        c = (1 - i) * c + i * np.tanh(g[:, 3 * H :])
        h = sig(g[:, H : 2 * H]) * np.tanh(c)
        y[t, 0] = h
    descs = [TensorDesc(a.shape, "float32") for a in (x, wt, rt)]
    outs = [TensorDesc(y.shape, "float32"), TensorDesc((1, B, H), "float32")] * 1
    outs.append(TensorDesc((1, B, H), "float32"))
    launch = plan_for("lstm_f32")(descs, outs, [0, 0, 1], [0.0])
    touts = [torch.zeros(o.shape, device=device) for o in outs]
    launch_torch(
        launch, [torch.from_numpy(a).to(device) for a in (x, wt, rt)], touts,
        torch.empty(launch.workspace, dtype=torch.uint8, device=device),
    )  # fmt: skip
    np.testing.assert_allclose(touts[0].cpu().numpy(), y, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(touts[1].cpu().numpy()[0], h, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(touts[2].cpu().numpy()[0], c, rtol=2e-5, atol=2e-5)


def test_unsupported() -> None:
    f32 = "float32"
    big = rnn.MAX_H + 1
    with pytest.raises(Unsupported, match="hidden size"):
        rnn.plan_lstm(
            [TensorDesc((2, 1, 3), f32), TensorDesc((1, 3, 4 * big), f32),
             TensorDesc((1, big, 4 * big), f32)],
            [TensorDesc((2, 1, 1, big), f32)], [0, 0, 0], [0.0],
        )  # fmt: skip
    with pytest.raises(Unsupported, match="do not fit"):
        rnn.plan_gru(
            [TensorDesc((2, 1, 3), f32), TensorDesc((1, 3, 12), f32),
             TensorDesc((1, 4, 9), f32)],
            [TensorDesc((2, 1, 1, 4), f32)], [0, 0, 0], [0.0],
        )  # fmt: skip
    with pytest.raises(Unsupported, match="mixed"):
        rnn.plan_gru(
            [TensorDesc((2, 1, 3), f32), TensorDesc((1, 3, 12), "float16"),
             TensorDesc((1, 4, 12), f32)],
            [TensorDesc((2, 1, 1, 4), f32)], [0, 0, 0], [0.0],
        )  # fmt: skip


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("fp16", 3e-3)])
def test_model_compiles_for_cuda_and_its_plan_runs(tmp_path, precision: str, tol: float) -> None:
    """An ONNX LSTM (bidirectional, sequence_lens, peepholes) and GRU (reverse, Y omitted)
    compiled for cuda; the module's plan runs on the interpreter and matches onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    import os

    import onnx
    from onnx import TensorProto, helper

    from optimizer import ir
    from optimizer.lower.compile import CompileOptions, compile_model
    from optimizer.optimize import OptimizeOptions
    from tests.helpers import FLOAT, make_model
    from tests.lower.test_target_cuda import emulate_module

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("runs the plan on the CPU interpreter")
    rng = np.random.default_rng(11)
    S, B, N_IN, H = 4, 3, 5, 6

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    nodes = [
        helper.make_node("LSTM", ["x", "lw", "lr", "lb", "lens", "", "", "lp"], ["y", "yh"],
                         name="lstm", hidden_size=H, direction="bidirectional"),
        helper.make_node("GRU", ["x", "gw", "gr", "gb"], ["", "gh"], name="gru", hidden_size=H,
                         direction="reverse", linear_before_reset=1),
    ]  # fmt: skip
    inits = {
        "lw": w(2, 4 * H, N_IN), "lr": w(2, 4 * H, H), "lb": w(2, 8 * H), "lp": w(2, 3 * H),
        "gw": w(1, 3 * H, N_IN), "gr": w(1, 3 * H, H), "gb": w(1, 6 * H),
    }  # fmt: skip
    proto = make_model(
        nodes, [("x", FLOAT, [S, B, N_IN]), ("lens", TensorProto.INT32, [B])],
        [("y", FLOAT, [S, 2, B, H]), ("yh", FLOAT, [2, B, H]), ("gh", FLOAT, [1, B, H])],
        inits, opset=14,
    )  # fmt: skip
    x = rng.standard_normal((S, B, N_IN)).astype(np.float32)
    lens = np.array([4, 2, 0], np.int32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip(["y", "yh", "gh"], sess.run(None, {"x": x, "lens": lens})))
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False), target="cuda", precision=precision)
    report = compile_model(model, tmp_path / "m", options)
    assert {"triton.lstm_seq", "triton.gru_seq"} <= set(report.cuda.kernels)
    got = emulate_module(tmp_path / "m", report.cuda.launches, {"x": x, "lens": lens})
    for k, v in want.items():
        np.testing.assert_allclose(got[k].reshape(v.shape), v, rtol=tol, atol=tol, err_msg=k)
