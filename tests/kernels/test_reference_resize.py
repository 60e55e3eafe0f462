"""Reference Resize and Upsample against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.ort_case import Case, case_ids, check_case, rand

_COORDS = [
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
]
_NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _scales(*scales: float, shape: tuple[int, ...] = (1, 2, 4, 5)):
    return lambda rng: [rand(rng, *shape), None, np.array(scales, np.float32)]


def _sizes(*sizes: int, shape: tuple[int, ...] = (1, 2, 4, 5)):
    return lambda rng: [rand(rng, *shape), None, None, np.array(sizes, np.int64)]


CASES: list[Case] = []
for _coord in _COORDS:
    _opset = 19 if _coord == "half_pixel_symmetric" else 13
    for _nearest in _NEAREST:
        # Down-scales avoid source coordinates landing exactly on an integer, where floor/ceil
        # depend on the last bit of float rounding (onnxruntime and NumPy disagree there).
        for _name, _inputs in (
            ("up", _scales(1, 1, 2, 3)),
            ("down", _scales(1, 1, 0.5, 0.7)),
            ("sizes", _sizes(1, 2, 7, 4)),
        ):
            CASES.append(
                Case(
                    "Resize",
                    _inputs,
                    opset=_opset,
                    id=f"nearest-{_coord}-{_nearest}-{_name}",
                    attrs={
                        "mode": "nearest",
                        "nearest_mode": _nearest,
                        "coordinate_transformation_mode": _coord,
                    },
                )
            )
    if _coord == "tf_half_pixel_for_nn":
        continue  # a nearest-only mode
    for _name, _inputs in (
        ("up", _scales(1, 1, 2, 1.5)),
        ("down", _scales(1, 1, 0.5, 0.8)),
        ("sizes", _sizes(1, 2, 9, 1)),
        ("3d", _scales(1, 1, 2, 2, 3, shape=(1, 1, 2, 3, 4))),
    ):
        CASES.append(
            Case(
                "Resize",
                _inputs,
                opset=_opset,
                id=f"linear-{_coord}-{_name}",
                attrs={"mode": "linear", "coordinate_transformation_mode": _coord},
            )
        )
CASES += [
    Case("Resize", _scales(1, 1, 2, 2), opset=13, id="defaults"),
    Case(
        "Resize",
        lambda rng: [
            rand(rng, 1, 2, 4, 5),
            np.zeros(0, np.float32),
            np.array([1, 1, 2, 2], np.float32),
        ],
        attrs={"mode": "linear"},
        opset=11,
        id="empty-roi",
    ),
    Case(
        "Resize",
        lambda rng: [rand(rng, 1, 2, 4, 5), None, np.array([2, 0.5], np.float32)],
        attrs={"axes": [3, 2], "mode": "linear"},
        opset=18,
        id="axes",
    ),
    Case(
        "Resize",
        lambda rng: [rand(rng, 1, 2, 4, 5), np.array([1, 1, 2, 3], np.float32)],
        attrs={"mode": "nearest"},
        opset=10,
        id="opset10-nearest",
    ),
    Case(
        "Resize",
        lambda rng: [rand(rng, 1, 2, 4, 5), np.array([1, 1, 0.5, 0.6], np.float32)],
        attrs={"mode": "nearest"},
        opset=10,
        id="opset10-nearest-down",
    ),
    Case(
        "Resize",
        lambda rng: [rand(rng, 1, 2, 4, 5), np.array([1, 1, 2, 3], np.float32)],
        attrs={"mode": "linear"},
        opset=10,
        id="opset10-linear",
    ),
    Case(
        "Resize",
        lambda rng: [rand(rng, 2, 6), None, np.array([1.5, 0.5], np.float32)],
        attrs={"mode": "linear"},
        opset=13,
        id="2d-tensor",
    ),
    Case(
        "Resize",
        lambda rng: [
            rand(rng, 1, 2, 4, 5, dtype=np.uint8, low=0, high=255),
            None,
            np.array([1, 1, 2, 2], np.float32),
        ],
        opset=13,
        id="uint8",
    ),
    Case(
        "Upsample",
        lambda rng: [rand(rng, 1, 2, 3, 4), np.array([1, 1, 2, 2], np.float32)],
        attrs={"mode": "nearest"},
        opset=9,
    ),
    Case(
        "Upsample",
        lambda rng: [rand(rng, 1, 2, 3, 4), np.array([1, 1, 2, 1.5], np.float32)],
        attrs={"mode": "linear"},
        opset=9,
        id="linear",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
def test_matches_onnxruntime(case: Case) -> None:
    check_case(case)
