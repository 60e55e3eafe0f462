"""Reference kernels: elementwise binary and variadic ops, comparisons, Where, Clip and Cast."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
from optimizer.kernels.reference._common import NO_EXOTIC_DTYPES, ONNX_TO_NUMPY, opt, ref
from optimizer.kernels.registry import KernelFn, NodeInfo, Support, register


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        # ONNX integer division truncates toward zero (C semantics), NumPy's floors.
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return (q + fix).astype(a.dtype)
    return np.divide(a, b).astype(a.dtype)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # The result has the base's type whatever the exponent's type.
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a.astype(np.float64), b).astype(a.dtype)
    return np.power(a, b.astype(a.dtype) if np.issubdtype(b.dtype, np.integer) else b).astype(
        a.dtype
    )


def _mod(a: np.ndarray, b: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    if attrs.get("fmod", 0):
        return np.fmod(a, b)
    return np.mod(a, b)  # sign of the divisor, like Python


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return np.where(x < 0, x * slope, x).astype(x.dtype)


_BINARY: dict[str, tuple[Callable[..., np.ndarray], int]] = {
    # op -> (f(a, b), first opset)
    "Add": (lambda a, b: (a + b).astype(a.dtype), 1),
    "Sub": (lambda a, b: (a - b).astype(a.dtype), 1),
    "Mul": (lambda a, b: (a * b).astype(a.dtype), 1),
    "Div": (_div, 1),
    "Pow": (_pow, 1),
    "PRelu": (_prelu, 1),
    "Equal": (np.equal, 1),
    "Less": (np.less, 1),
    "Greater": (np.greater, 1),
    "LessOrEqual": (np.less_equal, 12),
    "GreaterOrEqual": (np.greater_equal, 12),
    "And": (np.logical_and, 1),
    "Or": (np.logical_or, 1),
    "Xor": (np.logical_xor, 1),
    "BitwiseAnd": (np.bitwise_and, 18),
    "BitwiseOr": (np.bitwise_or, 18),
    "BitwiseXor": (np.bitwise_xor, 18),
}

_VARIADIC: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    "Min": lambda xs: reduce(np.minimum, xs),
    "Max": lambda xs: reduce(np.maximum, xs),
    "Sum": lambda xs: reduce(np.add, xs).astype(xs[0].dtype),
    "Mean": lambda xs: (reduce(np.add, xs) / len(xs)).astype(xs[0].dtype),
}


def _binary(f: Callable[..., np.ndarray]) -> KernelFn:
    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return [np.asarray(f(np.asarray(inputs[0]), np.asarray(inputs[1])))]

    return kernel


def _variadic(f: Callable[[list[np.ndarray]], np.ndarray]) -> KernelFn:
    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return [np.asarray(f([np.asarray(x) for x in inputs if x is not None]))]

    return kernel


def mod(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Mod: Python-style remainder, or C fmod with ``fmod=1``."""
    return [_mod(np.asarray(inputs[0]), np.asarray(inputs[1]), attrs)]


def where(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Where(condition, x, y) with broadcasting."""
    return [np.where(inputs[0], inputs[1], inputs[2])]


def clip(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Clip: bounds as attributes before opset 11, as optional inputs from 11."""
    x = np.asarray(inputs[0])
    if opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = opt(inputs, 1), opt(inputs, 2)
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, dtype=x.dtype))
    return [x]


def cast(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Cast to the TensorProto type number ``to`` (float -> int truncates toward zero)."""
    return [np.asarray(inputs[0]).astype(ONNX_TO_NUMPY[int(attrs["to"])])]


def cast_like(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """CastLike: cast input 0 to the dtype of input 1."""
    return [np.asarray(inputs[0]).astype(np.asarray(inputs[1]).dtype)]


def _cast_check(node: NodeInfo, target: str) -> Support:
    to = int(node.attrs.get("to", 0))
    if to not in ONNX_TO_NUMPY:
        return Support.no(f"cast to TensorProto type {to} not implemented")
    return NO_EXOTIC_DTYPES(node, target)


for _op, (_f, _since) in _BINARY.items():
    register(ref(_op, _binary(_f), since=_since, check=NO_EXOTIC_DTYPES))
for _op, _f in _VARIADIC.items():
    register(ref(_op, _variadic(_f), check=NO_EXOTIC_DTYPES))
register(ref("Mod", mod, since=10, check=NO_EXOTIC_DTYPES))
register(ref("Where", where, since=9, check=NO_EXOTIC_DTYPES))
register(ref("Clip", clip, check=NO_EXOTIC_DTYPES))
register(ref("Cast", cast, check=_cast_check))
register(ref("CastLike", cast_like, since=15, check=NO_EXOTIC_DTYPES))
