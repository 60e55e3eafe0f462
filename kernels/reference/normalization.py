"""Reference kernels: normalizations and the softmax family."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import NO_EXOTIC_DTYPES, all_of, ints, norm_axis, ref
from optimizer.kernels.registry import NodeInfo, Support, register


def _channel(v: Any, ndim: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast against (N, C, *spatial)."""
    return np.asarray(v, dtype=np.float64).reshape(-1, *([1] * (ndim - 2)))


def batch_normalization(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """BatchNormalization in inference mode (running statistics)."""
    x, scale, bias, mean, var = (np.asarray(v) for v in inputs[:5])
    eps = attrs.get("epsilon", 1e-5)
    nd = x.ndim if x.ndim > 1 else 2
    xw = x.astype(np.float64).reshape(x.shape[0], -1, *x.shape[2:]) if x.ndim > 1 else x
    y = (xw - _channel(mean, nd)) / np.sqrt(_channel(var, nd) + eps) * _channel(scale, nd)
    y = y + _channel(bias, nd)
    return [y.reshape(x.shape).astype(x.dtype)]


def _bn_check(node: NodeInfo, target: str) -> Support:
    if node.attrs.get("training_mode", 0):
        return Support.no("training_mode=1 not implemented (inference only)")
    if sum(d is not None for d in node.output_dtypes[1:]) > 0:
        return Support.no("running mean/var outputs (training) not implemented")
    if node.opset < 7 and not node.attrs.get("spatial", 1):
        return Support.no("spatial=0 not implemented")
    return Support.yes()


def instance_normalization(
    inputs: list[Any], attrs: dict[str, Any], opset: int
) -> list[np.ndarray]:
    """InstanceNormalization: normalize each (n, c) plane over its spatial axes."""
    x, scale, bias = (np.asarray(v) for v in inputs[:3])
    axes = tuple(range(2, x.ndim))
    xw = x.astype(np.float64)
    mean = xw.mean(axis=axes, keepdims=True)
    var = xw.var(axis=axes, keepdims=True)
    y = (xw - mean) / np.sqrt(var + attrs.get("epsilon", 1e-5))
    y = y * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return [y.astype(x.dtype)]


def layer_normalization(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """LayerNormalization over axes ``axis..rank-1``; also Mean and InvStdDev (keepdims shape)."""
    x, scale = np.asarray(inputs[0]), np.asarray(inputs[1])
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    axis = norm_axis(int(attrs.get("axis", -1)), x.ndim)
    axes = tuple(range(axis, x.ndim))
    xw = x.astype(np.float64)
    mean = xw.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(
        ((xw - mean) ** 2).mean(axis=axes, keepdims=True) + attrs.get("epsilon", 1e-5)
    )
    y = (xw - mean) * inv_std * scale
    if bias is not None:
        y = y + bias
    stash = np.float32 if int(attrs.get("stash_type", 1)) == 1 else x.dtype
    return [y.astype(x.dtype), mean.astype(stash), inv_std.astype(stash)]


def rms_normalization(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """RMSNormalization over axes ``axis..rank-1``: ``x / sqrt(mean(x^2) + epsilon) * scale``."""
    x, scale = np.asarray(inputs[0]), np.asarray(inputs[1])
    axes = tuple(range(norm_axis(int(attrs.get("axis", -1)), x.ndim), x.ndim))
    xw = x.astype(np.float64)
    rms = np.sqrt((xw * xw).mean(axis=axes, keepdims=True) + attrs.get("epsilon", 1e-5))
    return [(xw / rms * scale.astype(np.float64)).astype(x.dtype)]


def group_normalization(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """GroupNormalization: normalize each group of ``C / num_groups`` channels of a sample;
    scale and bias are per channel (opset 21) or per group (opset 18)."""
    x, scale, bias = (np.asarray(v) for v in inputs[:3])
    groups = int(attrs["num_groups"])
    n, c = x.shape[:2]
    xw = x.astype(np.float64).reshape(n, groups, -1)
    mean = xw.mean(axis=2, keepdims=True)
    var = xw.var(axis=2, keepdims=True)
    y = ((xw - mean) / np.sqrt(var + attrs.get("epsilon", 1e-5))).reshape(x.shape)
    if opset < 21:
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    y = y * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return [y.astype(x.dtype)]


def _group_norm_check(node: NodeInfo, target: str) -> Support:
    groups = node.attrs.get("num_groups")
    shape = node.input_shapes[0] if node.input_shapes else None
    channels = shape[1] if shape is not None and len(shape) > 1 else None
    if groups is None or int(groups) <= 0:
        return Support.no("num_groups missing or not positive")
    if isinstance(channels, int) and channels % int(groups):
        return Support.no(f"{channels} channels do not split into {groups} groups")
    return NO_EXOTIC_DTYPES(node, target)


def lp_normalization(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """LpNormalization (p = 1 or 2) along ``axis``."""
    x = np.asarray(inputs[0])
    p = int(attrs.get("p", 2))
    axis = int(attrs.get("axis", -1))
    xw = x.astype(np.float64)
    norm = (
        np.abs(xw).sum(axis=axis, keepdims=True)
        if p == 1
        else np.sqrt((xw * xw).sum(axis=axis, keepdims=True))
    )
    return [np.where(norm == 0, 0, xw / np.where(norm == 0, 1, norm)).astype(x.dtype)]


def mean_variance_normalization(
    inputs: list[Any], attrs: dict[str, Any], opset: int
) -> list[np.ndarray]:
    """MeanVarianceNormalization over ``axes`` (default N, H, W); epsilon 1e-9 as ORT uses."""
    x = np.asarray(inputs[0])
    axes = tuple(ints(attrs.get("axes", [0, 2, 3])))
    xw = x.astype(np.float64)
    mean = xw.mean(axis=axes, keepdims=True)
    std = np.sqrt(((xw - mean) ** 2).mean(axis=axes, keepdims=True))
    return [((xw - mean) / (std + 1e-9)).astype(x.dtype)]


def _softmax_like(kind: str):
    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        x = np.asarray(inputs[0])
        if opset < 13:
            # Before opset 13 the input is coerced to 2-D at `axis` (default 1).
            axis = norm_axis(int(attrs.get("axis", 1)), x.ndim)
            shape = (int(np.prod(x.shape[:axis])), -1)
            return [_softmax_last(kind, x.reshape(shape)).reshape(x.shape)]
        axis = norm_axis(int(attrs.get("axis", -1)), x.ndim)
        return [np.moveaxis(_softmax_last(kind, np.moveaxis(x, axis, -1)), -1, axis)]

    kernel.__doc__ = f"{kind}: along ``axis`` (opset >= 13) or over the 2-D coercion (older)."
    return kernel


def _softmax_last(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "Hardmax":
        y = np.zeros_like(x)
        np.put_along_axis(y, np.argmax(x, axis=-1)[..., None], 1, axis=-1)
        return y
    xw = x.astype(np.float64)
    shifted = xw - xw.max(axis=-1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    y = shifted - log_sum if kind == "LogSoftmax" else np.exp(shifted - log_sum)
    return y.astype(x.dtype)


def lrn(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """LRN across channels: ``x / (bias + alpha / size * sum(x^2 over the window)) ** beta``."""
    x = np.asarray(inputs[0])
    size = int(attrs["size"])
    alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    sq = np.pad(
        x.astype(np.float64) ** 2,
        [(0, 0), ((size - 1) // 2, size - 1 - (size - 1) // 2)] + [(0, 0)] * (x.ndim - 2),
    )
    total = sum(sq[:, i : i + x.shape[1]] for i in range(size))
    return [(x / (bias + alpha / size * total) ** beta).astype(x.dtype)]


register(ref("BatchNormalization", batch_normalization, check=all_of(_bn_check, NO_EXOTIC_DTYPES)))
register(ref("InstanceNormalization", instance_normalization, check=NO_EXOTIC_DTYPES))
register(ref("LayerNormalization", layer_normalization, since=17, check=NO_EXOTIC_DTYPES))
register(ref("RMSNormalization", rms_normalization, since=23, check=NO_EXOTIC_DTYPES))
register(ref("GroupNormalization", group_normalization, since=18, check=_group_norm_check))
register(ref("LpNormalization", lp_normalization, check=NO_EXOTIC_DTYPES))
register(
    ref("MeanVarianceNormalization", mean_variance_normalization, since=9, check=NO_EXOTIC_DTYPES)
)
register(ref("LRN", lrn, check=NO_EXOTIC_DTYPES))
for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    register(ref(_op, _softmax_like(_op), check=NO_EXOTIC_DTYPES))
