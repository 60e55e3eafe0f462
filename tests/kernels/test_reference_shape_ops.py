"""Reference shape, layout and indexing kernels against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _x(*shape: int, dtype: type = np.float32):
    return lambda rng: [rand(rng, *shape, dtype=dtype, low=-9, high=9)]


CASES = [
    Case("Reshape", lambda rng: [rand(rng, 2, 3, 4), _i64(0, -1)]),
    Case("Reshape", lambda rng: [rand(rng, 2, 3, 4), _i64(4, 1, 6)], id="explicit"),
    Case(
        "Reshape",
        lambda rng: [rand(rng, 0, 3), _i64(3, 0)],
        attrs={"allowzero": 1},
        opset=14,
        id="allowzero",
    ),
    Case("Transpose", _x(2, 3, 4)),
    Case("Transpose", _x(2, 3, 4, 5), attrs={"perm": [0, 2, 3, 1]}, id="nhwc"),
    Case("Flatten", _x(2, 3, 4)),
    Case("Flatten", _x(2, 3, 4), attrs={"axis": 0}, id="axis0"),
    Case("Flatten", _x(2, 3, 4), attrs={"axis": -1}, id="axis-1"),
    Case("Squeeze", lambda rng: [rand(rng, 1, 3, 1, 4), _i64(0, -2)]),
    Case("Squeeze", _x(1, 3, 1, 4), id="all"),
    Case("Squeeze", _x(1, 3, 1, 4), attrs={"axes": [2]}, opset=11, id="attr"),
    Case("Unsqueeze", lambda rng: [rand(rng, 3, 4), _i64(0, -1)]),
    Case("Unsqueeze", lambda rng: [rand(rng, 3, 4), _i64(3, 1)], id="unsorted"),
    Case("Unsqueeze", _x(3, 4), attrs={"axes": [0]}, opset=11, id="attr"),
    Case("Expand", lambda rng: [rand(rng, 3, 1), _i64(2, 1, 4)]),
    Case("Expand", lambda rng: [rand(rng, 2, 3), _i64(1, 3)], id="smaller-shape"),
    Case("Shape", _x(2, 3, 4)),
    Case("Shape", _x(2, 3, 4), attrs={"start": 1}, opset=15, id="start"),
    Case("Shape", _x(2, 3, 4), attrs={"start": -2, "end": -1}, opset=15, id="negative"),
    Case("Shape", _x(2, 3, 4), attrs={"start": 0, "end": 10}, opset=15, id="clamped"),
    Case("Size", _x(2, 3, 4)),
    Case("ConstantOfShape", [_i64(2, 3)]),
    Case("ConstantOfShape", [_i64(2, 3)], attrs={"value": np.array([7], np.int64)}, id="int64"),
    Case("ConstantOfShape", [_i64(0)], attrs={"value": np.array([1.5], np.float32)}, id="empty"),
    Case("Range", [np.array(1, np.int64), np.array(10, np.int64), np.array(3, np.int64)]),
    Case("Range", [np.array(v, np.float32) for v in (1.0, -2.0, -0.5)], id="float-down"),
    Case(
        "Range", [np.array(5, np.int32), np.array(2, np.int32), np.array(1, np.int32)], id="empty"
    ),
    Case("Constant", [], attrs={"value": np.arange(6, dtype=np.float32).reshape(2, 3)}),
    Case("Constant", [], attrs={"value_ints": [1, 2, 3]}, id="ints"),
    Case("Constant", [], attrs={"value_float": 2.5}, id="float"),
    Case("NonZero", lambda rng: [rng.integers(0, 2, (3, 4)).astype(np.float32)]),
    Case("NonZero", lambda rng: [rng.random((2, 2, 3)) < 0.5], id="bool-3d"),
    Case("EyeLike", _x(3, 4)),
    Case("EyeLike", _x(4, 3), attrs={"k": 1, "dtype": 7}, id="k-dtype"),
    Case(
        "Concat", lambda rng: [rand(rng, 2, 3), rand(rng, 2, 1), rand(rng, 2, 0)], attrs={"axis": 1}
    ),
    Case(
        "Concat", lambda rng: [rand(rng, 2, 3), rand(rng, 1, 3)], attrs={"axis": -2}, id="negative"
    ),
    Case("Split", lambda rng: [rand(rng, 6, 4), _i64(2, 4)], n_outputs=2),
    Case("Split", _x(6, 4), attrs={"axis": 1}, n_outputs=2, id="equal"),
    Case("Split", _x(2, 7), attrs={"axis": 1, "split": [3, 4]}, opset=11, n_outputs=2, id="attr"),
    Case(
        "Split",
        _x(2, 7),
        attrs={"axis": -1, "num_outputs": 3},
        opset=18,
        n_outputs=3,
        id="num-outputs-uneven",
    ),
    Case("Slice", lambda rng: [rand(rng, 5, 6), _i64(1, 0), _i64(4, 5)]),
    Case(
        "Slice",
        lambda rng: [rand(rng, 5, 6), _i64(-1), _i64(-(10**18)), _i64(1), _i64(-2)],
        id="negative-step",
    ),
    Case(
        "Slice",
        lambda rng: [rand(rng, 5, 6, 3), _i64(1, -2), _i64(10**18, 100), _i64(0, 1), _i64(2, 1)],
        id="axes-steps-clamp",
    ),
    Case(
        "Slice",
        lambda rng: [rand(rng, 5, 6), _i64(4), _i64(0), _i64(0), _i64(-1)],
        id="reverse-exclusive",
    ),
    Case("Slice", _x(5, 6), attrs={"starts": [1], "ends": [3], "axes": [1]}, opset=9, id="opset9"),
    Case("Tile", lambda rng: [rand(rng, 2, 3), _i64(2, 1)]),
    Case("Tile", lambda rng: [rand(rng, 2, 1, 3), _i64(1, 3, 2)], id="3d"),
    Case("Pad", lambda rng: [rand(rng, 3, 4), _i64(1, 2, 0, 1)]),
    Case(
        "Pad",
        lambda rng: [rand(rng, 3, 4), _i64(1, 2, 0, 1), np.array(-1.5, np.float32)],
        id="value",
    ),
    Case(
        "Pad",
        lambda rng: [rand(rng, 3, 4), _i64(1, 2, 2, 1)],
        attrs={"mode": "reflect"},
        id="reflect",
    ),
    Case("Pad", lambda rng: [rand(rng, 3, 4), _i64(2, 0, 1, 3)], attrs={"mode": "edge"}, id="edge"),
    Case(
        "Pad",
        lambda rng: [rand(rng, 3, 4), _i64(1, 2, 2, 1)],
        attrs={"mode": "wrap"},
        opset=19,
        id="wrap",
    ),
    Case("Pad", lambda rng: [rand(rng, 3, 4), _i64(-1, 2, 1, -2)], id="negative"),
    Case("Pad", lambda rng: [rand(rng, 2, 3, 4), _i64(1, 2), None, _i64(-1)], opset=18, id="axes"),
    Case("Pad", _x(3, 4), attrs={"pads": [0, 1, 1, 0], "value": 2.0}, opset=2, id="opset2"),
    Case(
        "Pad",
        lambda rng: [
            rand(rng, 3, 4, dtype=np.int64, high=9),
            _i64(1, 1, 1, 1),
            np.array(-7, np.int64),
        ],
        id="int64",
    ),
    Case("Trilu", _x(4, 5), opset=14),
    Case(
        "Trilu",
        lambda rng: [rand(rng, 2, 4, 5), np.array(-1, np.int64)],
        attrs={"upper": 0},
        opset=14,
        id="lower-k",
    ),
    Case("DepthToSpace", _x(1, 8, 2, 3), attrs={"blocksize": 2}),
    Case("DepthToSpace", _x(2, 8, 2, 3), attrs={"blocksize": 2, "mode": "CRD"}, id="crd"),
    Case("SpaceToDepth", _x(2, 3, 4, 6), attrs={"blocksize": 2}),
    Case("Gather", lambda rng: [rand(rng, 5, 4), _i64(0, -1, 3)]),
    Case(
        "Gather",
        lambda rng: [rand(rng, 2, 5, 4), np.array([[1, 0], [4, -2]], np.int64)],
        attrs={"axis": 1},
        id="axis1-2d",
    ),
    Case("Gather", lambda rng: [rand(rng, 5, 4), np.array(2, np.int64)], id="scalar-index"),
    Case(
        "Gather",
        lambda rng: [rand(rng, 5, 4), np.array([3, 1], np.int32)],
        attrs={"axis": -1},
        id="int32",
    ),
    Case("GatherElements", lambda rng: [rand(rng, 3, 4), rng.integers(-3, 3, (2, 4))]),
    Case(
        "GatherElements",
        lambda rng: [rand(rng, 3, 4), rng.integers(0, 4, (3, 2))],
        attrs={"axis": 1},
        id="axis1",
    ),
    Case("GatherND", lambda rng: [rand(rng, 3, 4, 5), np.array([[0, 1], [2, -1]], np.int64)]),
    Case(
        "GatherND",
        lambda rng: [rand(rng, 2, 4, 5), np.array([[[1]], [[3]]], np.int64)],
        attrs={"batch_dims": 1},
        id="batch",
    ),
    Case(
        "ScatterND", lambda rng: [rand(rng, 4, 3), np.array([[1], [3]], np.int64), rand(rng, 2, 3)]
    ),
    Case(
        "ScatterND",
        lambda rng: [rand(rng, 4, 3), np.array([[1, 2], [1, 2]], np.int64), rand(rng, 2)],
        attrs={"reduction": "add"},
        opset=16,
        id="add-duplicates",
    ),
    Case(
        "ScatterND",
        lambda rng: [rand(rng, 4, 3), np.array([[0, 0], [3, 1]], np.int64), rand(rng, 2)],
        attrs={"reduction": "max"},
        opset=18,
        id="max",
    ),
    Case(
        "ScatterElements",
        lambda rng: [rand(rng, 3, 4), np.array([[1, 0, 2, -1]], np.int64), rand(rng, 1, 4)],
    ),
    Case(
        "ScatterElements",
        lambda rng: [rand(rng, 3, 4), np.array([[1, 1], [0, 3]], np.int64), rand(rng, 2, 2)],
        attrs={"axis": 1, "reduction": "add"},
        opset=16,
        id="add-axis1",
    ),
    Case("OneHot", [_i64(0, 2, -1, 1), np.array([3], np.int64), np.float32([0, 5])]),
    Case(
        "OneHot",
        [np.array([[0, 2], [1, 1]], np.int64), np.array(3, np.int64), _i64(-1, 1)],
        attrs={"axis": 0},
        id="axis0",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
