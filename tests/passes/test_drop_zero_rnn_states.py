from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer import ir
from optimizer.passes.base import PassContext
from optimizer.passes.drop_zero_rnn_states import DropZeroRnnStates
from optimizer.passes.eliminate_dead_code import EliminateDeadCode
from tests.helpers import (
    FLOAT,
    assert_equivalent,
    assert_unchanged,
    make_model,
    op_list,
    random_feeds,
    run_pass,
)

HIDDEN = 3
INPUT = 4
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
X = ("x", FLOAT, ["S", "B", INPUT])
OUTS = [("y", FLOAT, ["S", 1, "B", HIDDEN]), ("y_h", FLOAT, [1, "B", HIDDEN])]
STATIC_OUTS = [("y", FLOAT, [2, 1, 2, HIDDEN]), ("y_h", FLOAT, [1, 2, HIDDEN])]


def _weights(op: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = GATES[op]
    return {
        "W": rng.standard_normal((1, g * HIDDEN, INPUT)).astype(np.float32) * 0.5,
        "R": rng.standard_normal((1, g * HIDDEN, HIDDEN)).astype(np.float32) * 0.5,
        "Bias": rng.standard_normal((1, 2 * g * HIDDEN)).astype(np.float32) * 0.1,
    }


def _zeros_like_torch(out: str, value: float | None = 0.0) -> list:
    """``torch.zeros(1, batch, hidden)`` as the legacy exporter writes it."""
    attrs = {}
    if value is not None:
        attrs["value"] = numpy_helper.from_array(np.array([value], np.float32))
    return [
        helper.make_node("Shape", ["x"], [f"{out}_shape"]),
        helper.make_node("Gather", [f"{out}_shape", "one"], [f"{out}_b"], axis=0),
        helper.make_node("Unsqueeze", [f"{out}_b", "axes0"], [f"{out}_b1"]),
        helper.make_node("Concat", ["layers", f"{out}_b1", "hidden"], [f"{out}_dims"], axis=0),
        helper.make_node("ConstantOfShape", [f"{out}_dims"], [out], **attrs),
    ]


def _shape_inits() -> dict[str, np.ndarray]:
    return {
        "one": np.array(1, np.int64),
        "axes0": np.array([0], np.int64),
        "layers": np.array([1], np.int64),
        "hidden": np.array([HIDDEN], np.int64),
    }


def _rnn_model(op: str, state_nodes: list, states: list[str], extra_inputs=(), **attrs):
    inputs = ["x", "W", "R", "Bias", "", *states]
    rnn = helper.make_node(op, inputs, ["y", "y_h"], hidden_size=HIDDEN, **attrs)
    return make_model(
        [*state_nodes, rnn],
        [X, *extra_inputs],
        OUTS,
        {**_weights(op), **_shape_inits()},
    )


def _check_numerics(proto, model) -> None:
    for batch in (1, 5):
        assert_equivalent(proto, model, random_feeds(proto, dims={"S": 2, "B": batch}))


def _rnn_node(model: ir.Model) -> ir.Node:
    return next(n for n in model.graph.nodes if n.op in GATES)


def test_lstm_torch_zero_states_dropped():
    nodes = _zeros_like_torch("h0") + _zeros_like_torch("c0")
    proto = _rnn_model("LSTM", nodes, ["h0", "c0"])
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.stats == Counter({"LSTM initial state dropped": 2})
    assert len(_rnn_node(model).inputs) == 4  # trailing empty inputs trimmed
    dce = EliminateDeadCode()(model, PassContext(verify=True))
    model = dce.model
    assert dce.modified
    assert op_list(model) == ["LSTM"]
    assert not ir.graph_problems(model.graph)
    _check_numerics(proto, model)


@pytest.mark.parametrize("op", ["GRU", "RNN"])
def test_gru_rnn_default_fill_dropped(op):
    proto = _rnn_model(op, _zeros_like_torch("h0", value=None), ["h0"])
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.stats == Counter({f"{op} initial state dropped": 1})
    model = EliminateDeadCode()(model, PassContext(verify=True)).model
    assert op_list(model) == [op]
    _check_numerics(proto, model)


def test_zero_through_cast_and_expand_with_other_consumer():
    # h0 = Expand(Cast(int zeros), dims); h0 is also a graph output, which keeps it alive.
    nodes = [
        *_zeros_like_torch("h0src")[:-1],
        helper.make_node("Cast", ["izero"], ["fzero"], to=TensorProto.FLOAT),
        helper.make_node("Expand", ["fzero", "h0src_dims"], ["h0"]),
    ]
    rnn = helper.make_node(
        "GRU", ["x", "W", "R", "Bias", "", "h0"], ["y", "y_h"], hidden_size=HIDDEN
    )
    proto = make_model(
        [*nodes, rnn],
        [X],
        [*OUTS, ("h0", FLOAT, [1, "B", HIDDEN])],
        {**_weights("GRU"), **_shape_inits(), "izero": np.zeros((1, 1, 1), np.int64)},
    )
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.stats == Counter({"GRU initial state dropped": 1})
    model = EliminateDeadCode()(model, PassContext(verify=True)).model
    assert op_list(model) == ["Shape", "Gather", "Unsqueeze", "Concat", "Cast", "Expand", "GRU"]
    _check_numerics(proto, model)


def test_lstm_with_peepholes_keeps_empty_slot():
    # initial_h is zero, initial_c is a graph input: only slot 5 becomes empty, P stays at 7.
    rng = np.random.default_rng(1)
    inits = {**_weights("LSTM"), "h0": np.zeros((1, 2, HIDDEN), np.float32)}
    inits["P"] = rng.standard_normal((1, 3 * HIDDEN)).astype(np.float32)
    lstm = helper.make_node(
        "LSTM", ["x", "W", "R", "Bias", "", "h0", "c0", "P"], ["y", "y_h"], hidden_size=HIDDEN
    )
    proto = make_model(
        [lstm],
        [("x", FLOAT, [2, 2, INPUT]), ("c0", FLOAT, [1, 2, HIDDEN])],
        STATIC_OUTS,
        inits,
    )
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.stats == Counter({"LSTM initial state dropped": 1})
    names = [v.name for v in _rnn_node(model).inputs]
    assert names == ["x", "W", "R", "Bias", "", "", "c0", "P"]
    assert_equivalent(proto, model)


def test_nonzero_fill_untouched():
    proto = _rnn_model("LSTM", _zeros_like_torch("h0", value=0.5), ["h0"])
    model = assert_unchanged(DropZeroRnnStates(), proto)
    assert len(_rnn_node(model).inputs) == 6


def test_nonzero_constant_untouched():
    inits = {**_weights("RNN"), "h0": np.full((1, 2, HIDDEN), 1e-3, np.float32)}
    rnn = helper.make_node(
        "RNN", ["x", "W", "R", "Bias", "", "h0"], ["y", "y_h"], hidden_size=HIDDEN
    )
    proto = make_model([rnn], [("x", FLOAT, [2, 2, INPUT])], STATIC_OUTS, inits)
    assert_unchanged(DropZeroRnnStates(), proto)


def test_graph_input_state_untouched():
    proto = _rnn_model("GRU", [], ["h0"], extra_inputs=[("h0", FLOAT, [1, "B", HIDDEN])])
    model = assert_unchanged(DropZeroRnnStates(), proto)
    assert len(_rnn_node(model).inputs) == 6


def test_zero_state_inside_if_branch():
    # The zero state is a Constant node in the outer graph, read from inside the branch.
    branch_inits = _weights("LSTM")
    lstm = helper.make_node(
        "LSTM", ["x", "W", "R", "Bias", "", "h0", "h0"], ["y", "y_h"], hidden_size=HIDDEN
    )
    out = [helper.make_tensor_value_info("y_h", FLOAT, [1, 2, HIDDEN])]
    then = helper.make_graph(
        [lstm], "then", [], out, [numpy_helper.from_array(v, k) for k, v in branch_inits.items()]
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["h0"], ["z"])],
        "else",
        [],
        [helper.make_tensor_value_info("z", FLOAT, [1, 2, HIDDEN])],
    )
    zero = numpy_helper.from_array(np.zeros((1, 2, HIDDEN), np.float32))
    proto = make_model(
        [
            helper.make_node("Constant", [], ["h0"], value=zero),
            helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other),
        ],
        [("x", FLOAT, [2, 2, INPUT]), ("cond", TensorProto.BOOL, [])],
        [("out", FLOAT, [1, 2, HIDDEN])],
    )
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.stats == Counter({"LSTM initial state dropped": 2})
    feeds = random_feeds(proto)
    for cond in (True, False):
        assert_equivalent(proto, model, {**feeds, "cond": np.array(cond)})


def test_idempotent():
    nodes = _zeros_like_torch("h0") + _zeros_like_torch("c0")
    proto = _rnn_model("LSTM", nodes, ["h0", "c0"])
    model, res = run_pass(DropZeroRnnStates(), proto)
    assert res.modified
    again = DropZeroRnnStates()(model, PassContext(verify=True))
    assert again.modified is False
