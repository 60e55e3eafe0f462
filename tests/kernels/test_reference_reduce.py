"""Reference reductions, ArgMax/ArgMin, TopK, CumSum and CumProd against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand

_REDUCE = [
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSum",
    "ReduceLogSumExp",
]


def _x(*shape: int):
    return lambda rng: [rand(rng, *shape, low=0.5, high=1.5)]


def _x_axes(axes: list[int], *shape: int):
    return lambda rng: [rand(rng, *shape, low=0.5, high=1.5), np.array(axes, np.int64)]


CASES: list[Case] = []
for _op in _REDUCE:
    _sign = np.float32([1, 1, 1] if _op == "ReduceLogSum" else [1, -1, 1])
    # Axes moved from attribute to input at opset 18 (ReduceSum: 13).
    CASES += [
        Case(_op, _x(2, 3, 4), attrs={"axes": [1]}, opset=11, id="attr"),
        Case(_op, _x(2, 3, 4), attrs={"axes": [0, -1], "keepdims": 0}, opset=11, id="attr-nokeep"),
        Case(_op, _x_axes([-1], 2, 3, 4), opset=18, id="input"),
        Case(_op, _x_axes([0, 2], 2, 3, 4), attrs={"keepdims": 0}, opset=18, id="input-nokeep"),
        Case(_op, _x(2, 3, 4), opset=18, id="all"),
        Case(
            _op,
            lambda rng, s=_sign: [rand(rng, 2, 3, low=0.5, high=1.5) * s, np.zeros(0, np.int64)],
            attrs={"noop_with_empty_axes": 1},
            opset=18,
            id="noop",
        ),
    ]
CASES += [
    Case("ReduceSum", _x_axes([1], 2, 3, 4), opset=13, id="input13"),
    Case(
        "ReduceMax",
        lambda rng: [rand(rng, 2, 3, dtype=np.int64, low=-9, high=9)],
        attrs={"axes": [1]},
        opset=13,
        id="int64",
    ),
    Case(
        "ReduceMean", lambda rng: [rand(rng, 2, 3, 4)], attrs={"axes": [-1]}, opset=13, id="signed"
    ),
    Case("ArgMax", _x(3, 4, 5)),
    Case("ArgMax", _x(3, 4, 5), attrs={"axis": -1, "keepdims": 0}, id="last-nokeep"),
    Case(
        "ArgMax",
        [np.array([[1, 3, 3, 0], [2, 2, 1, 2]], np.float32)],
        attrs={"axis": 1, "select_last_index": 1},
        id="ties-last",
    ),
    Case(
        "ArgMax",
        [np.array([[1, 3, 3, 0], [2, 2, 1, 2]], np.float32)],
        attrs={"axis": 1},
        id="ties-first",
    ),
    Case("ArgMin", _x(3, 4, 5), attrs={"axis": 1}),
    Case(
        "ArgMin",
        [np.array([[1, 0, 0, 5]], np.int64)],
        attrs={"axis": 1, "select_last_index": 1},
        id="ties-last",
    ),
    Case("TopK", lambda rng: [rand(rng, 3, 6), np.array([2], np.int64)], n_outputs=2),
    Case(
        "TopK",
        lambda rng: [rand(rng, 3, 6, 2), np.array([3], np.int64)],
        attrs={"axis": 1, "largest": 0},
        n_outputs=2,
        id="smallest-axis1",
    ),
    Case("TopK", lambda rng: [rand(rng, 4, 5)], attrs={"k": 2}, opset=9, n_outputs=2, id="opset9"),
    Case(
        "TopK",
        lambda rng: [rand(rng, 2, 5, dtype=np.int64, low=0, high=1000), np.array([5], np.int64)],
        n_outputs=2,
        id="int64-all",
    ),
    Case("CumSum", lambda rng: [rand(rng, 3, 4), np.array(1, np.int64)]),
    Case(
        "CumSum",
        lambda rng: [rand(rng, 3, 4), np.array(-2, np.int32)],
        attrs={"exclusive": 1, "reverse": 1},
        id="exclusive-reverse",
    ),
    Case(
        "CumSum",
        lambda rng: [rand(rng, 3, 4, dtype=np.int64, high=9), np.array(0, np.int64)],
        attrs={"exclusive": 1},
        id="int64-exclusive",
    ),
    Case(
        "CumSum",
        lambda rng: [rand(rng, 5), np.array(0, np.int64)],
        attrs={"reverse": 1},
        id="reverse",
    ),
    Case("CumProd", lambda rng: [rand(rng, 3, 4), np.array(1, np.int64)], opset=26),
    Case(
        "CumProd",
        lambda rng: [rand(rng, 3, 4), np.array(-2, np.int32)],
        attrs={"exclusive": 1, "reverse": 1},
        opset=26,
        id="exclusive-reverse",
    ),
    Case(
        "CumProd",
        lambda rng: [rand(rng, 3, 4, dtype=np.int64, low=-3, high=4), np.array(0, np.int64)],
        attrs={"exclusive": 1},
        opset=26,
        id="int64-exclusive",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
