"""Reference kernels: Resize (nearest and N-linear) and the deprecated Upsample.

Coordinates are computed in float32 in the same order as onnxruntime, so the nearest pixel picked
at exact .5 boundaries agrees with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import all_of, attr_in, ints, opt, ref, s_attr
from optimizer.kernels.registry import NodeInfo, Support, register

_COORD_MODES = (
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
)
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_F = np.float32


def _source_coords(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Where each output index lands in the input, per coordinate_transformation_mode."""
    o = np.arange(out_len, dtype=_F)
    s = _F(scale)
    if mode == "asymmetric":
        return o / s
    if mode == "align_corners":
        if out_len == 1:
            return np.zeros(1, _F)
        return o * _F(in_len - 1) / _F(out_len - 1)
    if mode == "tf_half_pixel_for_nn":
        return (o + _F(0.5)) / s
    if mode == "pytorch_half_pixel" and out_len == 1:
        return np.zeros(1, _F)
    if mode == "half_pixel_symmetric":
        adjustment = _F(out_len) / (s * _F(in_len))
        offset = _F(in_len / 2) * (_F(1) - adjustment)
        return offset + (o + _F(0.5)) / s - _F(0.5)
    return (o + _F(0.5)) / s - _F(0.5)  # half_pixel, pytorch_half_pixel


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + _F(0.5))


def _nearest_index(coords: np.ndarray, mode: str, downsample: bool) -> np.ndarray:
    if mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    elif mode == "round_prefer_ceil":
        idx = _round_half_away(coords)
    elif mode == "simple":  # opset < 11 (and Upsample): truncate, or ceil when downsampling
        idx = np.ceil(coords) if downsample else np.trunc(coords)
    else:  # round_prefer_floor
        idx = np.where(
            coords == np.trunc(coords) + _F(0.5), np.floor(coords), _round_half_away(coords)
        )
    return idx.astype(np.int64)


def _resize_axis(
    x: np.ndarray,
    axis: int,
    out_len: int,
    scale: float,
    mode: str,
    coord_mode: str,
    nearest_mode: str,
) -> np.ndarray:
    in_len = x.shape[axis]
    coords = _source_coords(out_len, in_len, scale, coord_mode)
    if mode == "nearest":
        idx = np.clip(_nearest_index(coords, nearest_mode, scale < 1), 0, in_len - 1)
        return np.take(x, idx, axis=axis)
    coords = np.clip(coords, 0, in_len - 1)
    lo = np.minimum(coords.astype(np.int64), in_len - 1)
    hi = np.minimum(lo + 1, in_len - 1)
    w = (coords - lo).astype(np.float64)
    shape = [1] * x.ndim
    shape[axis] = out_len
    w = w.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def _resize(
    x: np.ndarray,
    scales: list[float] | None,
    sizes: list[int] | None,
    mode: str,
    coord_mode: str,
    nearest_mode: str,
) -> np.ndarray:
    if sizes is not None:
        scales = [float(_F(o) / _F(i)) for o, i in zip(sizes, x.shape)]
    else:
        assert scales is not None
        sizes = [int(_F(s) * _F(i)) for s, i in zip(scales, x.shape)]
    y = x.astype(np.float64) if mode != "nearest" else x
    for axis, (out_len, scale) in enumerate(zip(sizes, scales)):
        if out_len != x.shape[axis] or scale != 1:
            y = _resize_axis(y, axis, out_len, scale, mode, coord_mode, nearest_mode)
    return y.astype(x.dtype)


def resize(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Resize with scales or sizes (optionally on ``axes``, opset 18)."""
    x = np.asarray(inputs[0])
    mode = s_attr(attrs, "mode", "nearest")
    if opset < 11:
        scales = [float(s) for s in np.asarray(inputs[1]).reshape(-1)]
        return [_resize(x, scales, None, mode, "asymmetric", "simple")]
    scales_in, sizes_in = opt(inputs, 2), opt(inputs, 3)
    scales = (
        None
        if scales_in is None or np.size(scales_in) == 0
        else [float(s) for s in np.asarray(scales_in).reshape(-1)]
    )
    sizes = None if sizes_in is None or np.size(sizes_in) == 0 else ints(sizes_in)
    if "axes" in attrs:
        axes = [a % x.ndim for a in ints(attrs["axes"])]
        full_scales, full_sizes = [1.0] * x.ndim, list(x.shape)
        for i, a in enumerate(axes):
            if scales is not None:
                full_scales[a] = scales[i]
            if sizes is not None:
                full_sizes[a] = sizes[i]
        scales = full_scales if scales is not None else None
        sizes = full_sizes if sizes is not None else None
    coord_mode = s_attr(attrs, "coordinate_transformation_mode", "half_pixel")
    nearest_mode = s_attr(attrs, "nearest_mode", "round_prefer_floor")
    return [_resize(x, scales, sizes, mode, coord_mode, nearest_mode)]


def upsample(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Upsample (opsets 7-9): scales as an attribute (7-8) or input (9); asymmetric."""
    x = np.asarray(inputs[0])
    scales = [
        float(s)
        for s in np.asarray(
            opt(inputs, 1) if opt(inputs, 1) is not None else attrs["scales"]
        ).reshape(-1)
    ]
    return [_resize(x, scales, None, s_attr(attrs, "mode", "nearest"), "asymmetric", "simple")]


def _resize_check(node: NodeInfo, target: str) -> Support:
    if node.attrs.get("antialias", 0):
        return Support.no("antialias=1 not implemented")
    policy = s_attr(node.attrs, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        return Support.no(f"keep_aspect_ratio_policy={policy!r} not implemented")
    return Support.yes()


_MODE = attr_in("mode", ("nearest", "linear", "bilinear"), "nearest")
register(
    ref(
        "Resize",
        resize,
        since=10,
        check=all_of(
            _MODE,
            attr_in("coordinate_transformation_mode", _COORD_MODES, "half_pixel"),
            attr_in("nearest_mode", _NEAREST_MODES, "round_prefer_floor"),
            _resize_check,
        ),
    )
)
register(ref("Upsample", upsample, since=7, until=10, check=_MODE))
