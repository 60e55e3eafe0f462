"""Reference RNN, GRU and LSTM against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_SEQ, _BATCH, _IN, _HID = 5, 3, 4, 6


def _rnn(
    op: str,
    dirs: int = 1,
    bias: bool = True,
    lens: bool = False,
    init: bool = False,
    peep: bool = False,
    layout: int = 0,
):
    g = _GATES[op]

    def make(rng: np.random.Generator) -> list[np.ndarray | None]:
        x = rand(rng, _SEQ, _BATCH, _IN, low=-1, high=1)
        if layout:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        state = (_BATCH, dirs, _HID) if layout else (dirs, _BATCH, _HID)
        inputs = [
            x,
            rand(rng, dirs, g * _HID, _IN, low=-0.5, high=0.5),
            rand(rng, dirs, g * _HID, _HID, low=-0.5, high=0.5),
            rand(rng, dirs, 2 * g * _HID, low=-0.5, high=0.5) if bias else None,
            np.array([5, 2, 4], np.int32) if lens else None,
            rand(rng, *state, low=-1, high=1) if init else None,
        ]
        if op == "LSTM":
            inputs += [
                rand(rng, *state, low=-1, high=1) if init else None,
                rand(rng, dirs, 3 * _HID, low=-0.5, high=0.5) if peep else None,
            ]
        while inputs[-1] is None:
            inputs.pop()
        return inputs

    return make


CASES: list[Case] = []
for _op in ("RNN", "GRU", "LSTM"):
    _n = 3 if _op == "LSTM" else 2
    _base = {"hidden_size": _HID}
    CASES += [
        Case(_op, _rnn(_op), attrs=_base, n_outputs=_n, opset=14),
        Case(_op, _rnn(_op, bias=False), attrs=_base, n_outputs=1, id="no-bias-y-only"),
        Case(
            _op,
            _rnn(_op, init=True),
            attrs={**_base, "direction": "reverse"},
            n_outputs=_n,
            id="reverse-init",
        ),
        Case(
            _op,
            _rnn(_op, dirs=2, lens=True, init=True, peep=True),
            attrs={**_base, "direction": "bidirectional"},
            n_outputs=_n,
            id="bidirectional-lens",
        ),
        Case(
            _op,
            _rnn(_op, lens=True),
            attrs={**_base, "direction": "reverse"},
            n_outputs=_n,
            id="reverse-lens",
        ),
        Case(_op, _rnn(_op, init=True), attrs={**_base, "clip": 0.5}, n_outputs=_n, id="clip"),
    ]
CASES += [
    Case(
        "GRU",
        _rnn("GRU", init=True),
        attrs={"hidden_size": _HID, "linear_before_reset": 1},
        n_outputs=2,
        id="linear-before-reset",
    ),
    Case(
        "GRU",
        _rnn("GRU", dirs=2, lens=True),
        n_outputs=2,
        id="lbr-bidirectional",
        attrs={"hidden_size": _HID, "linear_before_reset": 1, "direction": "bidirectional"},
    ),
    Case(
        "LSTM",
        _rnn("LSTM"),
        n_outputs=3,
        id="activations",
        attrs={
            "hidden_size": _HID,
            "activations": ["HardSigmoid", "Relu", "Tanh"],
            "activation_alpha": [0.3],
            "activation_beta": [0.4],
        },
    ),
    Case(
        "RNN",
        _rnn("RNN"),
        attrs={"hidden_size": _HID, "activations": ["Relu"]},
        n_outputs=2,
        id="relu",
    ),
    Case(
        "GRU",
        _rnn("GRU"),
        n_outputs=2,
        id="activations",
        attrs={
            "hidden_size": _HID,
            "activations": ["Sigmoid", "LeakyRelu"],
            "activation_alpha": [0.2],
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_batch_first_layout_matches_sequence_first(op: str) -> None:
    # onnxruntime's CPU provider rejects layout=1, so check it against our layout=0 instead.
    from optimizer.kernels import registry

    rng = np.random.default_rng(0)
    inputs = _rnn(op, dirs=2, init=True, lens=True)(rng)
    attrs = {"hidden_size": _HID, "direction": "bidirectional"}
    kernel = registry.get(f"reference.{op}")
    expected = kernel(inputs, attrs, 14)
    batch_first = [inputs[0].transpose(1, 0, 2), *inputs[1:5]]
    batch_first += [None if x is None else x.transpose(1, 0, 2) for x in inputs[5:7]]
    batch_first += inputs[7:]
    got = kernel(batch_first, {**attrs, "layout": 1}, 14)
    np.testing.assert_allclose(got[0], expected[0].transpose(2, 0, 1, 3), rtol=1e-6)
    for g, e in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(g, e.transpose(1, 0, 2), rtol=1e-6)
