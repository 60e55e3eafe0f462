"""Memory planning properties: no live overlap, alignment, peak <= naive, in-place soundness.

Two levels: the greedy-by-size core on random interval sets, and the whole lowering path on
random DAG models, whose plans are then *executed* in a NumPy arena and compared with
onnxruntime (a value overwritten while still live would show up as wrong numbers).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from optimizer import ir
from optimizer.errors import InvariantError
from optimizer.lower import (
    Block,
    InPlace,
    assert_plan_valid,
    assign_offsets,
    partition,
    plan_memory,
    plan_problems,
    schedule,
)
from optimizer.lower.memory import align, live_peak
from tests.helpers import FLOAT, make_model, run_ort
from tests.lower.util import to_model

STRATEGIES = ["best_fit", "first_fit"]

# -- the core, on abstract blocks --------------------------------------------------------------


@st.composite
def block_sets(draw) -> list[Block]:
    n = draw(st.integers(0, 40))
    blocks = []
    for i in range(n):
        start = draw(st.integers(0, 30))
        end = start + draw(st.integers(0, 10))
        size = 64 * draw(st.integers(0, 50))
        blocks.append(Block(f"b{i}", size, start, end))
    return blocks


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=300, deadline=None)
@given(blocks=block_sets())
def test_greedy_by_size_never_overlaps_live_blocks(strategy: str, blocks: list[Block]) -> None:
    offsets, arena = assign_offsets(blocks, strategy)
    assert set(offsets) == {b.key for b in blocks}
    for b in blocks:
        assert offsets[b.key] % 64 == 0
        assert offsets[b.key] + b.size <= arena
    for i, a in enumerate(blocks):
        for b in blocks[i + 1 :]:
            if a.size and b.size and a.overlaps_in_time(b):
                oa, ob = offsets[a.key], offsets[b.key]
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b, oa, ob)
    assert live_peak(blocks) <= arena <= sum(b.size for b in blocks)
    if blocks:
        assert arena == max(offsets[b.key] + b.size for b in blocks)


def test_best_fit_takes_the_smallest_gap() -> None:
    # 0..3 is held by a (size 128) at 0 and c (size 64) at 320 -> gaps: [128, 320) and above
    blocks = [
        Block("a", 128, 0, 3),
        Block("big", 192, 0, 0),
        Block("c", 64, 0, 3),
        Block("d", 64, 2, 3),
    ]
    offsets, arena = assign_offsets(blocks, "best_fit")
    # big dies at 0, so at 2..3 the gap between a and c is free: d goes there, not on top
    assert offsets["big"] == 0 and offsets["a"] == 192 and offsets["c"] == 320
    assert offsets["d"] == 0 and arena == 384


# -- the whole path, on random DAG models ------------------------------------------------------

UNARY = ["Relu", "Sigmoid", "Neg", "Identity", "Exp"]
BINARY = ["Add", "Mul", "Sub"]


@st.composite
def dag_models(draw):
    """A random DAG over [k, 4] tensors: unary, same-shape binary and Concat(axis 0) nodes."""
    shapes: dict[str, list[int]] = {}
    inputs = []
    for i in range(draw(st.integers(1, 2))):
        name = f"in{i}"
        shapes[name] = [draw(st.integers(1, 3)), 4]
        inputs.append((name, FLOAT, shapes[name]))
    nodes = []
    produced: list[str] = []
    for i in range(draw(st.integers(1, 14))):
        pool = list(shapes)
        a = draw(st.sampled_from(pool))
        kind = draw(st.sampled_from(["unary", "binary", "concat"]))
        out = f"v{i}"
        if kind == "unary":
            op = draw(st.sampled_from(UNARY))
            nodes.append(helper.make_node(op, [a], [out], name=f"n{i}"))
            shapes[out] = shapes[a]
        elif kind == "binary":
            same = [v for v in pool if shapes[v] == shapes[a]]
            b = draw(st.sampled_from(same))
            op = draw(st.sampled_from(BINARY))
            nodes.append(helper.make_node(op, [a, b], [out], name=f"n{i}"))
            shapes[out] = shapes[a]
        else:
            b = draw(st.sampled_from(pool))
            if shapes[a][0] + shapes[b][0] > 12:
                b = a
            nodes.append(helper.make_node("Concat", [a, b], [out], name=f"n{i}", axis=0))
            shapes[out] = [shapes[a][0] + shapes[b][0], 4]
        produced.append(out)
    outs = {produced[-1], *draw(st.lists(st.sampled_from(produced), max_size=2))}
    outputs = [(o, FLOAT, shapes[o]) for o in produced if o in outs]
    return make_model(nodes, inputs, outputs)


NUMPY_OPS = {
    "Relu": lambda a: np.maximum(a, 0),
    "Sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "Neg": np.negative,
    "Identity": lambda a: a.copy(),
    "Exp": np.exp,
    "Add": np.add,
    "Mul": np.multiply,
    "Sub": np.subtract,
}


def execute_plan(plan, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs the schedule with every intermediate living at its planned arena offset."""
    arena = np.zeros(plan.arena_size + 64, np.uint8)
    outputs: dict[str, np.ndarray] = {}
    graph_outputs = {v.name for v in plan.schedule.model.graph.outputs}

    def view(value) -> np.ndarray:
        p = plan.placements[value.name]
        dtype = ir.numpy_dtype_of(value)
        raw = arena[p.offset : p.offset + p.nbytes]
        return raw.view(dtype).reshape(ir.static_shape(value))

    def read(value) -> np.ndarray:
        if value.name in feeds:
            return feeds[value.name]
        if value.name in outputs:
            return outputs[value.name]
        return view(value)

    for group in plan.schedule.steps:
        local: dict[str, np.ndarray] = {}
        for node in group.nodes:
            args = [local[v.name] if v.name in local else read(v) for v in node.inputs]
            if node.op == "Concat":
                result = np.concatenate(args, axis=0)
            else:
                result = NUMPY_OPS[node.op](*args)
            local[node.outputs[0].name] = np.array(result, dtype=np.float32)
        for value in group.values_written():
            result = local[value.name]
            if value.name in graph_outputs:
                outputs[value.name] = result
            else:
                view(value)[...] = result
    return outputs


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proto=dag_models(), seed=st.integers(0, 1000))
def test_random_dag_plans_are_sound_and_run_correctly(strategy: str, proto, seed: int) -> None:
    model = to_model(proto)
    plan = plan_memory(schedule(model, partition(model)), strategy=strategy)
    assert plan_problems(plan) == []
    assert plan.live_peak <= plan.arena_size <= plan.naive_size
    for p in plan.placements.values():
        assert p.offset % 64 == 0
    for reuse in plan.inplace:
        src, dst = plan.placements[reuse.input], plan.placements[reuse.output]
        assert src.last == reuse.step == dst.first
        assert (src.offset, src.nbytes) == (dst.offset, dst.nbytes)
    rng = np.random.default_rng(seed)
    feeds = {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for i in proto.graph.input
    }
    with np.errstate(over="ignore", invalid="ignore"):  # chained Exp may overflow, as in ORT
        got = execute_plan(plan, feeds)
    want = run_ort(proto, feeds)
    for out, expected in zip(proto.graph.output, want):
        np.testing.assert_allclose(got[out.name], expected, rtol=1e-5, atol=1e-6, err_msg=out.name)


# -- in place and the checker ------------------------------------------------------------------


def chain_model():
    """Steps: relu, pool, exp+neg, cat, sigmoid, tanh, pool2 (sigmoid may write over cat)."""
    return make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[1]),
            helper.make_node("Exp", ["p"], ["e"], name="exp"),
            helper.make_node("Neg", ["e"], ["n"], name="neg"),
            helper.make_node("Concat", ["n", "p"], ["c"], name="cat", axis=1),
            helper.make_node("Sigmoid", ["c"], ["s"], name="sig"),
            helper.make_node("Tanh", ["s"], ["y"], name="tanh"),
            helper.make_node("MaxPool", ["s"], ["y2"], name="pool2", kernel_shape=[1]),
        ],
        [("x", FLOAT, [1, 3, 16])],
        [("y", FLOAT, [1, 6, 16]), ("y2", FLOAT, [1, 6, 16])],
    )


def test_inplace_elementwise_takes_the_dying_input_block() -> None:
    model = to_model(chain_model())
    plan = plan_memory(schedule(model, partition(model)))
    assert_plan_valid(plan)
    # exp+neg reads p, which concat reads later: no in place. sigmoid reads c, dying there.
    assert [g.pattern for g in plan.schedule.steps][:5] == [
        "relu",
        "maxpool",
        "exp+neg",
        "concat",
        "sigmoid",
    ]
    assert plan.inplace == [InPlace(step=4, output="s", input="c")]
    assert plan.placements["s"].offset == plan.placements["c"].offset
    off = plan_memory(schedule(model, partition(model)), inplace=False)
    assert off.inplace == [] and plan_problems(off) == []
    assert plan.naive_size == off.naive_size == 3 * align(3 * 16 * 4) + 2 * align(6 * 16 * 4)
    assert plan.arena_size <= off.arena_size


def test_checker_catches_overlapping_live_values() -> None:
    model = to_model(chain_model())
    plan = plan_memory(schedule(model, partition(model)))
    p = plan.placements
    bad = dataclasses.replace(
        plan, placements={**p, "n": dataclasses.replace(p["n"], offset=p["p"].offset)}
    )
    problems = plan_problems(bad)
    assert any("'p'" in m and "'n'" in m and "overlap while both live" in m for m in problems), (
        problems
    )
    with pytest.raises(InvariantError, match="invalid memory plan"):
        assert_plan_valid(bad)


def test_checker_rejects_illegal_inplace_claims() -> None:
    model = to_model(chain_model())
    plan = plan_memory(schedule(model, partition(model)), inplace=False)
    p = plan.placements
    # claim exp+neg (step 2) wrote n over p in place: but p is read again by concat
    claim = InPlace(step=2, output="n", input="p")
    bad = dataclasses.replace(
        plan,
        placements={**p, "n": dataclasses.replace(p["n"], offset=p["p"].offset)},
        inplace=[claim],
    )
    assert any("still read after the step" in m for m in plan_problems(bad))


def test_checker_catches_misalignment_and_arena_overrun() -> None:
    model = to_model(chain_model())
    plan = plan_memory(schedule(model, partition(model)))
    p = plan.placements
    shifted = dataclasses.replace(
        plan, placements={**p, "r": dataclasses.replace(p["r"], offset=p["r"].offset + 4)}
    )
    assert any("not a multiple of 64" in m for m in plan_problems(shifted))
    small = dataclasses.replace(plan, arena_size=plan.arena_size - 64)
    assert any("exceeds arena_size" in m for m in plan_problems(small))
    missing = dataclasses.replace(
        plan, placements={k: v for k, v in p.items() if k != "e" and k != "n"}
    )
    assert any("'n' has no placement" in m for m in plan_problems(missing))


def test_view_ops_alias_their_input() -> None:
    proto = make_model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
            helper.make_node("MaxPool", ["f"], ["y"], name="pool", kernel_shape=[1]),
        ],
        [("x", FLOAT, [2, 3, 8])],
        [("y", FLOAT, [2, 1, 24])],
        {"shape": np.array([2, 1, 24], np.int64)},
    )
    model = to_model(proto)
    plan = plan_memory(schedule(model, partition(model)))
    assert_plan_valid(plan)
    assert plan.inplace == [InPlace(step=1, output="f", input="r")]
    assert plan.arena_size == align(2 * 3 * 8 * 4)


def test_unknown_strategy_and_bad_alignment_are_rejected() -> None:
    model = to_model(chain_model())
    sched = schedule(model, partition(model))
    with pytest.raises(ValueError, match="unknown strategy"):
        plan_memory(sched, strategy="worst_fit")
    with pytest.raises(ValueError, match="power of two"):
        plan_memory(sched, alignment=48)
