"""Reference binary/variadic elementwise kernels, Where, Clip and Cast against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand

# Shapes exercising equal shapes, size-1 dims on both sides, rank broadcasting and scalars.
_SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 1, 4), (3, 1)), ((4,), (2, 3, 4)), ((2, 3), ())]


def _pair(sa: tuple, sb: tuple, dtype: type = np.float32, low: float = -3, high: float = 3):
    return lambda rng: [
        rand(rng, *sa, dtype=dtype, low=low, high=high),
        rand(rng, *sb, dtype=dtype, low=low, high=high),
    ]


def _nonzero(sa: tuple, sb: tuple, dtype: type):
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        a = rand(rng, *sa, dtype=dtype, low=-9, high=9)
        b = rand(rng, *sb, dtype=dtype, low=1, high=5) * np.where(rng.random(sb) < 0.5, -1, 1)
        return [a, b.astype(dtype)]

    return make


CASES: list[Case] = []
for _op in (
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Max",
    "Min",
    "Sum",
    "Mean",
):
    for _sa, _sb in _SHAPES:
        CASES.append(Case(_op, _pair(_sa, _sb), id=f"{_sa}x{_sb}"))
for _op in ("Add", "Sub", "Mul", "Equal", "Less", "Greater", "Max", "Min"):
    CASES.append(Case(_op, _pair((2, 3), (3,), np.int64, -9, 9), id="int64"))
for _op in ("And", "Or", "Xor"):
    CASES.append(Case(_op, lambda rng: [rng.random((2, 3)) < 0.5, rng.random((3,)) < 0.5]))
for _op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
    CASES.append(Case(_op, _pair((2, 3), (2, 3), np.int32, 0, 100), opset=18))
CASES += [
    Case("Div", _nonzero((2, 3), (2, 3), np.int64), id="int64-trunc"),
    Case("Div", _nonzero((4,), (4,), np.int32), id="int32-trunc"),
    Case("Div", _pair((2, 3), (3,), np.float64), id="f64"),
    Case("Pow", _pair((2, 3), (2, 3), np.float32, 0.1, 3)),
    Case(
        "Pow", lambda rng: [rand(rng, 2, 3, low=-3, high=3), np.array(2.0, np.float32)], id="square"
    ),
    Case(
        "Pow",
        lambda rng: [rand(rng, 2, 3, low=0.1, high=3), np.array(3, np.int64)],
        id="int-exponent",
    ),
    Case(
        "Pow",
        lambda rng: [rand(rng, 2, 3, dtype=np.int64, low=-4, high=4), np.array(2, np.int64)],
        id="int-base",
    ),
    Case("Mod", _nonzero((2, 5), (2, 5), np.int64)),
    Case("Mod", _nonzero((2, 5), (5,), np.int32), id="int32-broadcast"),
    Case("Mod", _nonzero((2, 5), (2, 5), np.float32), attrs={"fmod": 1}, id="fmod"),
    Case("Mod", _nonzero((2, 5), (2, 5), np.int64), attrs={"fmod": 1}, id="fmod-int"),
    Case("PRelu", _pair((2, 3, 4, 4), (3, 1, 1))),
    Case("PRelu", _pair((2, 5), (5,)), id="vector"),
    Case("PRelu", _pair((2, 5), (1,)), id="shared"),
    Case("Max", lambda rng: [rand(rng, 2, 3), rand(rng, 3), rand(rng, 1, 1)], id="three"),
    Case("Sum", lambda rng: [rand(rng, 2, 3)], id="one"),
    Case("Mean", lambda rng: [rand(rng, 2, 3), rand(rng, 3), rand(rng, 2, 1)], id="three"),
    Case("Where", lambda rng: [rng.random((2, 1, 4)) < 0.5, rand(rng, 3, 4), rand(rng, 2, 3, 1)]),
    Case(
        "Where",
        lambda rng: [
            rng.random((4,)) < 0.5,
            rand(rng, 4, dtype=np.int64, high=9),
            np.array(-1, np.int64),
        ],
        id="int64",
    ),
    Case(
        "Clip", lambda rng: [rand(rng, 3, 4), np.array(-0.5, np.float32), np.array(0.7, np.float32)]
    ),
    Case("Clip", lambda rng: [rand(rng, 3, 4), None, np.array(0.7, np.float32)], id="max-only"),
    Case("Clip", lambda rng: [rand(rng, 3, 4), np.array(0.0, np.float32)], id="min-only"),
    Case("Clip", lambda rng: [rand(rng, 3, 4)], id="none"),
    Case(
        "Clip",
        lambda rng: [
            rand(rng, 3, 4, dtype=np.int64, low=-9, high=9),
            np.array(-2, np.int64),
            np.array(3, np.int64),
        ],
        id="int64",
    ),
    Case(
        "Clip", lambda rng: [rand(rng, 3, 4)], attrs={"min": -0.5, "max": 0.5}, opset=6, id="opset6"
    ),
    Case("Cast", lambda rng: [rand(rng, 3, 4, low=-9, high=9)], attrs={"to": 7}, id="f32-i64"),
    Case("Cast", lambda rng: [rand(rng, 3, 4, low=-9, high=9)], attrs={"to": 6}, id="f32-i32"),
    Case(
        "Cast", lambda rng: [rand(rng, 3, 4, dtype=np.int64, high=9)], attrs={"to": 1}, id="i64-f32"
    ),
    Case("Cast", lambda rng: [rand(rng, 3, 4)], attrs={"to": 11}, id="f32-f64"),
    Case("Cast", lambda rng: [rand(rng, 3, 4)], attrs={"to": 10}, id="f32-f16"),
    Case(
        "Cast",
        lambda rng: [rand(rng, 3, 4, dtype=np.int32, low=-2, high=2)],
        attrs={"to": 9},
        id="i32-bool",
    ),
    Case("Cast", lambda rng: [rng.random((3, 4)) < 0.5], attrs={"to": 1}, id="bool-f32"),
    Case("CastLike", lambda rng: [rand(rng, 3, 4, low=-9, high=9), np.zeros(1, np.int64)]),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
