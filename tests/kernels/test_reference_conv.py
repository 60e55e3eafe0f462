"""Reference Conv/ConvTranspose, Gemm/MatMul/Einsum and pooling against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand


def _conv(
    n: int,
    c: int,
    spatial: tuple[int, ...],
    m: int,
    kernel: tuple[int, ...],
    group: int = 1,
    bias: bool = True,
    transpose: bool = False,
):
    def make(rng: np.random.Generator) -> list[np.ndarray | None]:
        x = rand(rng, n, c, *spatial)
        w_shape = (c, m // group, *kernel) if transpose else (m, c // group, *kernel)
        return [x, rand(rng, *w_shape), rand(rng, m) if bias else None]

    return make


CASES = [
    Case("Conv", _conv(1, 3, (8, 8), 4, (3, 3))),
    Case(
        "Conv",
        _conv(2, 4, (9, 7), 6, (3, 3), bias=False),
        attrs={"pads": [1, 1, 1, 1], "strides": [2, 2]},
        id="pads-stride",
    ),
    Case(
        "Conv",
        _conv(1, 4, (9, 9), 8, (3, 3), group=2),
        attrs={"group": 2, "dilations": [2, 2], "pads": [0, 1, 2, 1]},
        id="groups-dilation",
    ),
    Case(
        "Conv",
        _conv(1, 6, (10, 10), 6, (5, 5), group=6),
        attrs={"group": 6, "pads": [2, 2, 2, 2]},
        id="depthwise",
    ),
    Case(
        "Conv",
        _conv(1, 3, (7, 8), 5, (3, 3)),
        attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        id="same-upper",
    ),
    Case(
        "Conv",
        _conv(1, 3, (7, 8), 5, (4, 4)),
        attrs={"auto_pad": "SAME_LOWER", "strides": [2, 3]},
        id="same-lower",
    ),
    Case("Conv", _conv(1, 3, (7, 8), 5, (3, 2)), attrs={"auto_pad": "VALID"}, id="valid"),
    Case("Conv", _conv(2, 3, (11,), 4, (3,)), attrs={"strides": [2], "pads": [1, 0]}, id="1d"),
    Case("Conv", _conv(1, 2, (4, 5, 6), 3, (2, 3, 2)), attrs={"pads": [1, 0, 1, 0, 1, 1]}, id="3d"),
    Case("Conv", _conv(1, 8, (1, 1), 4, (1, 1)), id="1x1"),
    Case(
        "ConvTranspose", _conv(1, 4, (5, 5), 3, (2, 2), transpose=True), attrs={"strides": [2, 2]}
    ),
    Case(
        "ConvTranspose",
        _conv(1, 4, (5, 4), 6, (3, 3), group=2, bias=False, transpose=True),
        attrs={"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 0], "group": 2},
        id="pads-outpad-groups",
    ),
    Case(
        "ConvTranspose",
        _conv(1, 2, (4, 4), 2, (3, 3), transpose=True),
        attrs={"dilations": [2, 2], "strides": [1, 2]},
        id="dilation",
    ),
    Case(
        "ConvTranspose",
        _conv(1, 2, (4, 4), 3, (3, 3), transpose=True),
        attrs={"strides": [2, 2], "output_shape": [9, 8]},
        id="output-shape",
    ),
    Case(
        "ConvTranspose",
        _conv(1, 2, (4, 5), 3, (3, 3), transpose=True),
        attrs={"strides": [2, 2], "auto_pad": "SAME_UPPER"},
        id="same-upper",
    ),
    Case(
        "ConvTranspose",
        _conv(2, 3, (6,), 2, (4,), transpose=True),
        attrs={"strides": [3], "pads": [1, 2]},
        id="1d",
    ),
    Case("Gemm", lambda rng: [rand(rng, 3, 5), rand(rng, 5, 4), rand(rng, 4)]),
    Case(
        "Gemm",
        lambda rng: [rand(rng, 5, 3), rand(rng, 4, 5), rand(rng, 3, 1)],
        attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
        id="trans-alpha-beta",
    ),
    Case("Gemm", lambda rng: [rand(rng, 3, 5), rand(rng, 4, 5)], attrs={"transB": 1}, id="no-bias"),
    Case(
        "Gemm",
        lambda rng: [rand(rng, 3, 5), rand(rng, 5, 4), np.array(1.5, np.float32)],
        id="scalar-bias",
    ),
    Case(
        "Gemm",
        lambda rng: [rand(rng, 3, 5, dtype=np.float64), rand(rng, 5, 4, dtype=np.float64)],
        id="f64",
    ),
    Case("MatMul", lambda rng: [rand(rng, 3, 5), rand(rng, 5, 4)]),
    Case("MatMul", lambda rng: [rand(rng, 2, 1, 3, 5), rand(rng, 4, 5, 2)], id="batch-broadcast"),
    Case("MatMul", lambda rng: [rand(rng, 5), rand(rng, 2, 5, 4)], id="vector-lhs"),
    Case("MatMul", lambda rng: [rand(rng, 2, 3, 5), rand(rng, 5)], id="vector-rhs"),
    Case(
        "MatMul",
        lambda rng: [
            rand(rng, 3, 5, dtype=np.int64, high=5),
            rand(rng, 5, 2, dtype=np.int64, high=5),
        ],
        id="int64",
    ),
    Case(
        "Einsum",
        lambda rng: [rand(rng, 2, 3, 4), rand(rng, 2, 4, 5)],
        attrs={"equation": "bij,bjk->bik"},
        opset=12,
    ),
    Case(
        "Einsum",
        lambda rng: [rand(rng, 2, 3, 4, 5), rand(rng, 2, 3, 6, 5)],
        attrs={"equation": "bhqd,bhkd->bhqk"},
        id="attention",
    ),
    Case("Einsum", lambda rng: [rand(rng, 3, 4)], attrs={"equation": "ij->ji"}, id="transpose"),
    Case("Einsum", lambda rng: [rand(rng, 3, 3)], attrs={"equation": "ii->i"}, id="diagonal"),
    Case(
        "Einsum",
        lambda rng: [rand(rng, 3, 4), rand(rng, 4)],
        attrs={"equation": "ij,j"},
        id="implicit",
    ),
    Case(
        "Einsum",
        lambda rng: [rand(rng, 2, 3, 4)],
        attrs={"equation": "...ij->...j"},
        id="ellipsis-sum",
    ),
]
for _k, _extra in [
    ((3, 3), {}),
    ((2, 2), {"strides": [2, 2]}),
    ((3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((3, 3), {"strides": [2, 2], "ceil_mode": 1}),
    ((3, 2), {"strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1}),
    ((3, 3), {"dilations": [2, 2], "pads": [1, 1, 1, 1]}),
    ((3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ((5, 5), {"pads": [2, 2, 2, 2]}),
]:
    _id = "-".join(f"{k}{v}" for k, v in _extra.items()).replace(" ", "") or "plain"
    _attrs = {"kernel_shape": list(_k), **_extra}
    CASES.append(
        Case("MaxPool", lambda rng: [rand(rng, 2, 3, 9, 10)], attrs=_attrs, id=_id, opset=12)
    )
    for _cip in (0, 1):
        CASES.append(
            Case(
                "AveragePool",
                lambda rng: [rand(rng, 2, 3, 9, 10)],
                attrs={**_attrs, "count_include_pad": _cip},
                id=f"{_id}-cip{_cip}",
                opset=19,
            )
        )
CASES += [
    Case(
        "MaxPool",
        lambda rng: [rand(rng, 1, 2, 11)],
        attrs={"kernel_shape": [3], "strides": [2]},
        id="1d",
    ),
    Case(
        "MaxPool",
        lambda rng: [rand(rng, 1, 2, 6, 6, dtype=np.int8, low=-100, high=100)],
        attrs={"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]},
        id="int8",
    ),
    Case(
        "AveragePool",
        lambda rng: [rand(rng, 1, 2, 5, 6, 7)],
        attrs={"kernel_shape": [2, 3, 2], "pads": [1, 1, 0, 0, 1, 1]},
        id="3d",
    ),
    Case(
        "LpPool",
        lambda rng: [rand(rng, 1, 2, 6, 6)],
        attrs={"kernel_shape": [2, 2], "strides": [2, 2]},
        opset=18,
    ),
    Case(
        "LpPool",
        lambda rng: [rand(rng, 1, 2, 6, 6)],
        attrs={"kernel_shape": [3, 3], "p": 1, "pads": [1, 1, 1, 1]},
        id="p1",
    ),
    Case("GlobalAveragePool", lambda rng: [rand(rng, 2, 3, 5, 4)]),
    Case("GlobalAveragePool", lambda rng: [rand(rng, 2, 3, 7)], id="1d"),
    Case("GlobalMaxPool", lambda rng: [rand(rng, 2, 3, 5, 4)]),
    Case("GlobalLpPool", lambda rng: [rand(rng, 2, 3, 5, 4)]),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
