"""Reference unary kernels (activations, math functions, Dropout) against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand


def _x(
    low: float = -3.0,
    high: float = 3.0,
    shape: tuple[int, ...] = (2, 3, 5),
    dtype: type = np.float32,
):
    return lambda rng: [rand(rng, *shape, dtype=dtype, low=low, high=high)]


_PLAIN = [
    "Relu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "Softplus",
    "Softsign",
    "Erf",
    "Exp",
    "Abs",
    "Neg",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Sin",
    "Cos",
    "Tan",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Reciprocal",
    "Identity",
]

CASES = [Case(op, _x()) for op in _PLAIN] + [
    Case("Mish", _x(), opset=18),
    Case("Swish", _x(), opset=24),
    Case("Swish", _x(), attrs={"alpha": 0.5}, opset=24, id="alpha"),
    Case("Shrink", _x(-2, 2)),
    Case("Shrink", _x(-2, 2), attrs={"lambd": 1.0, "bias": 0.3}, id="soft"),
    Case("Shrink", _x(-5, 5, dtype=np.int32), attrs={"lambd": 1.5, "bias": 1.0}, id="int32"),
    Case("Log", _x(0.01, 5)),
    Case("Sqrt", _x(0.0, 5)),
    Case("Asin", _x(-0.99, 0.99)),
    Case("Acos", _x(-0.99, 0.99)),
    Case("Atanh", _x(-0.99, 0.99)),
    Case("Acosh", _x(1.0, 5.0)),
    Case("Sigmoid", _x(-60, 60), id="large"),
    Case("Relu", _x(dtype=np.float64), id="f64"),
    Case("Relu", _x(-5, 5, dtype=np.int32), id="int32"),
    Case("Abs", _x(-5, 5, dtype=np.int64), id="int64"),
    Case("Exp", _x(dtype=np.float64), id="f64"),
    Case("Tanh", _x(shape=(1,)), id="size1"),
    Case("Identity", _x(-5, 5, dtype=np.int64), id="int64"),
    Case("Not", lambda rng: [rng.random((3, 4)) < 0.5]),
    Case("LeakyRelu", _x()),
    Case("LeakyRelu", _x(), attrs={"alpha": 0.1}, id="alpha"),
    Case("ThresholdedRelu", _x(), attrs={"alpha": 0.5}),
    Case("Elu", _x()),
    Case("Elu", _x(), attrs={"alpha": 0.3}, id="alpha"),
    Case("Celu", _x(), attrs={"alpha": 2.0}),
    Case("Selu", _x()),
    Case("Selu", _x(), attrs={"alpha": 1.5, "gamma": 2.0}, id="attrs"),
    Case("HardSigmoid", _x()),
    Case("HardSigmoid", _x(), attrs={"alpha": 1 / 6, "beta": 0.5}, id="torch"),
    Case("Gelu", _x(), opset=20),
    Case("Gelu", _x(), attrs={"approximate": "tanh"}, opset=20, id="tanh"),
    Case("IsNaN", [np.array([1.0, np.nan, np.inf, -np.inf], np.float32)]),
    Case("IsInf", [np.array([1.0, np.nan, np.inf, -np.inf], np.float32)]),
    Case(
        "IsInf",
        [np.array([1.0, np.nan, np.inf, -np.inf], np.float32)],
        attrs={"detect_negative": 0},
        id="positive",
    ),
    Case("Round", [np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6], np.float32)], id="halves"),
    Case("Dropout", _x(), opset=13),
    Case("Dropout", _x(), opset=13, n_outputs=2, id="mask"),
    Case("Dropout", _x(), attrs={"ratio": 0.5}, opset=11, id="opset11"),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
