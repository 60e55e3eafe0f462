"""Reference normalization and softmax-family kernels against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand


def _bn(shape: tuple[int, ...], dtype: type = np.float32):
    c = shape[1]
    return lambda rng: [
        rand(rng, *shape, dtype=dtype),
        rand(rng, c, dtype=dtype),
        rand(rng, c, dtype=dtype),
        rand(rng, c, dtype=dtype),
        rand(rng, c, dtype=dtype, low=0.1, high=2),
    ]


def _ln(shape: tuple[int, ...], norm: tuple[int, ...], bias: bool = True):
    return lambda rng: [rand(rng, *shape), rand(rng, *norm)] + ([rand(rng, *norm)] if bias else [])


CASES = [
    Case("BatchNormalization", _bn((2, 3, 4, 5))),
    Case("BatchNormalization", _bn((2, 3)), attrs={"epsilon": 1e-3}, id="2d"),
    Case("BatchNormalization", _bn((2, 3, 7)), opset=9, id="opset9-1d"),
    Case("BatchNormalization", _bn((2, 3, 4, 5), np.float64), id="f64"),
    Case("InstanceNormalization", lambda rng: [rand(rng, 2, 3, 4, 5), rand(rng, 3), rand(rng, 3)]),
    Case(
        "InstanceNormalization",
        lambda rng: [rand(rng, 2, 3, 6), rand(rng, 3), rand(rng, 3)],
        attrs={"epsilon": 1e-2},
        id="1d",
    ),
    Case("LayerNormalization", _ln((2, 5, 8), (8,))),
    Case(
        "LayerNormalization",
        _ln((2, 5, 8), (5, 8), bias=False),
        attrs={"axis": 1},
        id="axis1-nobias",
    ),
    Case(
        "LayerNormalization",
        _ln((2, 5, 8), (8,)),
        attrs={"epsilon": 1e-12},
        n_outputs=3,
        id="mean-invstd",
    ),
    Case("LayerNormalization", _ln((2, 5, 8), (1,)), id="broadcast-scale"),
    Case("LpNormalization", lambda rng: [rand(rng, 3, 4, 5)]),
    Case("LpNormalization", lambda rng: [rand(rng, 3, 4, 5)], attrs={"p": 1, "axis": 1}, id="p1"),
    # Default axes left out: ONNX's shape inference fails on MVN's function body without them.
    Case(
        "MeanVarianceNormalization",
        lambda rng: [rand(rng, 2, 3, 4, 5)],
        attrs={"axes": [0, 2, 3]},
        opset=13,
    ),
    Case(
        "MeanVarianceNormalization",
        lambda rng: [rand(rng, 2, 3, 4, 5)],
        attrs={"axes": [1, 2, 3]},
        opset=13,
        id="axes",
    ),
    Case("RMSNormalization", lambda rng: [rand(rng, 2, 5, 8), rand(rng, 8)], opset=23),
    Case(
        "RMSNormalization",
        lambda rng: [rand(rng, 2, 5, 8), rand(rng, 5, 8)],
        attrs={"axis": 1, "epsilon": 1e-2},
        opset=23,
        id="axis1",
    ),
    Case(
        "GroupNormalization",
        lambda rng: [rand(rng, 2, 6, 4, 3), rand(rng, 6), rand(rng, 6)],
        attrs={"num_groups": 3},
        opset=21,
    ),
    Case(
        "GroupNormalization",
        lambda rng: [rand(rng, 2, 4, 5), rand(rng, 4), rand(rng, 4)],
        attrs={"num_groups": 4, "epsilon": 1e-2},
        opset=21,
        id="groups-eq-channels",
    ),
    Case(
        "GroupNormalization",
        lambda rng: [rand(rng, 2, 6, 4, 3), rand(rng, 2), rand(rng, 2)],
        attrs={"num_groups": 2},
        opset=18,
        id="opset18-per-group",
    ),
    Case("LRN", lambda rng: [rand(rng, 2, 7, 4, 4)], attrs={"size": 3}),
    Case(
        "LRN",
        lambda rng: [rand(rng, 2, 7, 4, 4)],
        attrs={"size": 5, "alpha": 0.01, "beta": 0.5, "bias": 2.0},
        id="attrs",
    ),
]
for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    CASES += [
        Case(_op, lambda rng: [rand(rng, 2, 3, 5, low=-20, high=20)]),
        Case(_op, lambda rng: [rand(rng, 2, 3, 5)], attrs={"axis": 1}, id="axis1"),
        Case(_op, lambda rng: [rand(rng, 2, 3, 5)], attrs={"axis": 1}, opset=11, id="opset11"),
        Case(_op, lambda rng: [rand(rng, 2, 3, 5)], opset=11, id="opset11-default"),
        Case(_op, lambda rng: [rand(rng, 2, 3, 1)], id="size1"),
    ]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
