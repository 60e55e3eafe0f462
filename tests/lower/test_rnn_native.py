"""LSTM and GRU compiled to the native lstm_f32 / gru_f32 kernels, checked against onnxruntime.

Single-node models over directions, layouts, biases, initial states, peepholes, sequence_lens,
clip, input_forget, linear_before_reset and omitted outputs; each must compile with no fallback
step and match onnxruntime (1e-4 abs / 1e-3 rel). onnxruntime's CPU provider rejects
``layout = 1``, so batch-first cases are checked against the sequence-first twin model with
transposed inputs and outputs. Plus the binder's rejections (the group falls back, with the
reason in the compile report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, CompileReport, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

ATOL, RTOL = 1e-4, 1e-3
_GATES = {"LSTM": 4, "GRU": 3}


@dataclass
class RnnCase:
    op: str
    direction: str = "forward"
    layout: int = 0
    bias: bool = True
    init: bool = False
    peep: bool = False
    lens: str | None = None  # None, "input" (random runtime lengths) or "full" (constant = S)
    attrs: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("Y", "Y_h", "Y_c")  # "" omits an output
    seq: int = 5
    batch: int = 3
    inp: int = 4
    hidden: int = 6
    threads: int = 1
    id: str = ""

    def __str__(self) -> str:
        return f"{self.op}-{self.id}"


def _build(case: RnnCase, layout: int, rng_seed: int = 0) -> tuple[onnx.ModelProto, dict]:
    """The model (in ``layout``) and its feeds (sequence-first arrays, transposed if needed)."""
    rng = np.random.default_rng(rng_seed)
    dirs = 2 if case.direction == "bidirectional" else 1
    g, hid, seq, batch = _GATES[case.op], case.hidden, case.seq, case.batch

    def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
        return rng.uniform(-scale, scale, shape).astype(np.float32)

    x = rand(seq, batch, case.inp)
    weights = {"W": rand(dirs, g * hid, case.inp, scale=0.5),
               "R": rand(dirs, g * hid, hid, scale=0.5)}  # fmt: skip
    feeds: dict[str, np.ndarray] = {}
    inputs = ["x", "W", "R", "", "", ""]
    graph_inputs: list[tuple[str, int, list[int]]] = []
    if case.bias:
        weights["B"] = rand(dirs, 2 * g * hid, scale=0.5)
        inputs[3] = "B"
    lens = np.array([seq, *rng.integers(0, seq + 1, batch - 1)], np.int32)
    if case.lens == "input":
        inputs[4] = "lens"
        graph_inputs.append(("lens", TensorProto.INT32, [batch]))
        feeds["lens"] = lens
    elif case.lens == "full":
        weights["lens"] = np.full(batch, seq, np.int32)
        inputs[4] = "lens"
    state = (batch, dirs, hid) if layout else (dirs, batch, hid)
    h0, c0 = rand(dirs, batch, hid), rand(dirs, batch, hid)
    if case.init:
        inputs[5] = "h0"
        graph_inputs.append(("h0", FLOAT, list(state)))
        feeds["h0"] = h0.transpose(1, 0, 2).copy() if layout else h0
        if case.op == "LSTM":
            inputs.append("c0")
            graph_inputs.append(("c0", FLOAT, list(state)))
            feeds["c0"] = c0.transpose(1, 0, 2).copy() if layout else c0
    if case.peep:
        while len(inputs) < 7:
            inputs.append("")
        weights["P"] = rand(dirs, 3 * hid, scale=0.5)
        inputs.append("P")
    while inputs[-1] == "":
        inputs.pop()
    outs = list(case.outputs[: 3 if case.op == "LSTM" else 2])
    while outs and outs[-1] == "":
        outs.pop()
    attrs = {"hidden_size": hid, "direction": case.direction, **case.attrs}
    if layout:
        attrs["layout"] = 1
    node = helper.make_node(case.op, inputs, outs, name="rnn", **attrs)
    feeds["x"] = x.transpose(1, 0, 2).copy() if layout else x
    xs = [batch, seq, case.inp] if layout else [seq, batch, case.inp]
    y_shape = [batch, seq, dirs, hid] if layout else [seq, dirs, batch, hid]
    model = make_model(
        [node],
        [("x", FLOAT, xs), *graph_inputs],
        [(o, FLOAT, y_shape if o == "Y" else list(state)) for o in outs if o],
        weights,
        opset=14,
    )
    return model, feeds


def _compile(proto: onnx.ModelProto, out: Path, feeds: dict) -> CompileReport:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    return compile_model(
        model, out, CompileOptions(OptimizeOptions(input_shapes=shapes, check=False))
    )


def _ort(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _expected(case: RnnCase) -> list[np.ndarray]:
    """onnxruntime's outputs, in the case's layout."""
    model, feeds = _build(case, 0)
    want = _ort(model, feeds)
    if not case.layout:
        return want
    names = [o for o in case.outputs[: 3 if case.op == "LSTM" else 2] if o]
    out = []
    for name, w in zip(names, want):
        out.append(w.transpose(2, 0, 1, 3) if name == "Y" else w.transpose(1, 0, 2))
    return out


def _check(case: RnnCase, tmp_path: Path) -> CompileReport:
    model, feeds = _build(case, case.layout)
    report = _compile(model, tmp_path / "m", feeds)
    module = optimizer.load(tmp_path / "m")
    module.set_num_threads(case.threads)
    got = list(module.run(feeds).values())
    want = _expected(case)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, i
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL, err_msg=f"output {i}")
    return report


CASES: list[RnnCase] = []
for _op in ("LSTM", "GRU"):
    for _dir in ("forward", "reverse", "bidirectional"):
        for _layout in (0, 1):
            CASES.append(RnnCase(_op, _dir, _layout, init=True, id=f"{_dir}-layout{_layout}"))
CASES += [
    RnnCase("LSTM", bias=False, outputs=("Y",), id="no-bias-y-only"),
    RnnCase("LSTM", "bidirectional", peep=True, init=True, id="peepholes"),
    RnnCase("LSTM", "reverse", 1, peep=True, attrs={"clip": 0.4}, id="peepholes-clip"),
    RnnCase("LSTM", attrs={"input_forget": 1}, init=True, id="input-forget"),
    RnnCase("LSTM", "bidirectional", lens="input", init=True, peep=True, id="lens"),
    RnnCase("LSTM", "reverse", 1, lens="input", id="lens-layout1"),
    RnnCase("LSTM", lens="full", id="lens-constant-full"),
    RnnCase("LSTM", outputs=("", "Y_h"), init=True, id="y_h-only"),
    RnnCase("LSTM", "bidirectional", outputs=("", "", "Y_c"), id="y_c-only"),
    RnnCase("LSTM", outputs=("Y", "", "Y_c"), id="no-y_h"),
    RnnCase("LSTM", attrs={"activations": ["Sigmoid", "Tanh", "Tanh"]}, id="default-acts"),
    RnnCase("LSTM", "bidirectional", seq=16, batch=8, inp=40, hidden=96, lens="input",
            threads=2, id="threaded"),
    RnnCase("GRU", attrs={"linear_before_reset": 1}, init=True, id="lbr"),
    RnnCase("GRU", "bidirectional", 1, attrs={"linear_before_reset": 1}, lens="input",
            id="lbr-lens-layout1"),
    RnnCase("GRU", bias=False, attrs={"clip": 0.3}, init=True, id="no-bias-clip"),
    RnnCase("GRU", "reverse", attrs={"clip": 0.5, "linear_before_reset": 1}, id="lbr-clip"),
    RnnCase("GRU", "bidirectional", lens="input", init=True, id="lens"),
    RnnCase("GRU", outputs=("", "Y_h"), id="y_h-only"),
    RnnCase("GRU", "bidirectional", seq=16, batch=8, inp=40, hidden=96, threads=2,
            attrs={"linear_before_reset": 1}, id="threaded"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_native_rnn_matches_onnxruntime(case: RnnCase, tmp_path: Path) -> None:
    report = _check(case, tmp_path)
    assert not report.fallbacks, report.fallbacks
    entry = "native.lstm_f32" if case.op == "LSTM" else "native.gru_f32"
    assert entry in {row.kernel for row in report.steps}


@pytest.mark.parametrize(
    ("op", "attrs", "weights_as_input", "reason"),
    [
        ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Tanh"]}, False, "only the defaults"),
        ("GRU", {"activations": ["Sigmoid", "Relu"]}, False, "only the defaults"),
        ("GRU", {}, True, "W and R must be constant"),
    ],
)
def test_binder_rejects_with_reason(
    op: str, attrs: dict, weights_as_input: bool, reason: str, tmp_path: Path
) -> None:
    case = RnnCase(op, attrs=attrs, init=True)
    model, feeds = _build(case, 0)
    if weights_as_input:  # W becomes a graph input: not a constant
        w = next(t for t in model.graph.initializer if t.name == "W")
        feeds["W"] = onnx.numpy_helper.to_array(w)
        model.graph.initializer.remove(w)
        model.graph.input.append(helper.make_tensor_value_info("W", FLOAT, list(feeds["W"].shape)))
    report = _compile(model, tmp_path / "m", feeds)
    assert [f["op"] for f in report.fallbacks] == [op]
    assert reason in report.fallbacks[0]["reason"]
    got = list(optimizer.load(tmp_path / "m").run(feeds).values())
    for g, w in zip(got, _ort(model, feeds)):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def test_zoo_lstm_is_fully_native(tmp_path: Path) -> None:
    """The zoo's token tagger (Embedding -> LSTM -> GRU -> Linear): no fallback step."""
    pytest.importorskip("torch")
    from tools import plan_report, zoo

    root = zoo.zoo_dir()
    entry = next(e for e in zoo.load_index(root) if e["name"] == "lstm")
    shapes = plan_report.sample_shapes(entry)
    dims = {d: size for i in entry["inputs"] for d, size in zip(i["shape"], shapes[i["name"]])
            if isinstance(d, str)}  # fmt: skip
    report = compile_model(
        ir.load(root / entry["file"]),
        tmp_path / "lstm",
        CompileOptions(OptimizeOptions(input_shapes=shapes, check=False)),
    )
    assert not report.fallbacks, report.fallbacks
    kernels = {row.kernel for row in report.steps}
    assert {"native.lstm_f32", "native.gru_f32"} <= kernels
    feeds = zoo.sample_inputs(entry, 0, dims)
    want = _ort(onnx.load(str(root / entry["file"])), feeds)
    got = list(optimizer.load(tmp_path / "lstm").run(feeds).values())
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)
