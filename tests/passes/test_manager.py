"""Pass manager: fixed-point cap, disable, verification instrument, pass contract."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from onnx import helper

from optimizer import ir
from optimizer.errors import InvariantError
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult
from optimizer.passes.eliminate_dead_code import EliminateDeadCode
from optimizer.passes.manager import FixedPoint, PassManager
from tests.helpers import FLOAT, make_model


def _model() -> Model:
    proto = make_model(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["unused"])],
        [("x", FLOAT, [2])],
        [("y", FLOAT, [2])],
    )
    return Model.from_proto(proto)


class _AlwaysChanges(Pass):
    name = "always_changes"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        return PassResult(model, True, Counter({"pretend": 1}))


class _LiesAboutChanges(Pass):
    name = "lies"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        return PassResult(model, True, Counter())


class _BreaksGraph(Pass):
    name = "breaks_graph"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        relu = model.graph.nodes[0]
        relu.inputs[0] = ir.Variable("nowhere", dtype=np.float32, shape=[2])
        return PassResult(model, True, Counter({"broke": 1}))


def test_fixed_point_is_capped() -> None:
    run = PassManager([FixedPoint(_AlwaysChanges(), max_iterations=3)]).run(_model(), PassContext())
    assert [r.name for r in run.records] == ["always_changes"] * 3


def test_fixed_point_stops_when_nothing_changes() -> None:
    run = PassManager([FixedPoint(EliminateDeadCode())]).run(_model(), PassContext())
    assert [(r.name, r.modified) for r in run.records] == [
        ("eliminate_dead_code", True),
        ("eliminate_dead_code", False),
    ]
    assert run.rule_counts == Counter({"dead node removed": 1})


def test_disable_and_limit() -> None:
    pipeline = [EliminateDeadCode(), _AlwaysChanges(), _AlwaysChanges()]
    run = PassManager(pipeline, disabled={"eliminate_dead_code"}).run(_model(), PassContext())
    assert [r.name for r in run.records] == ["always_changes", "always_changes"]
    run = PassManager(pipeline).run(_model(), PassContext(), limit=2)
    assert len(run.records) == 2


def test_contract_violation_is_an_invariant_error() -> None:
    with pytest.raises(InvariantError, match="modified=True"):
        PassManager([_LiesAboutChanges()]).run(_model(), PassContext())


def test_instrument_catches_broken_graph_with_history() -> None:
    with pytest.raises(InvariantError, match="broken by pass breaks_graph") as info:
        PassManager([EliminateDeadCode(), _BreaksGraph()]).run(_model(), PassContext(verify=True))
    assert info.value.history == ["eliminate_dead_code", "breaks_graph"]
