"""Reference kernels: elementwise unary ops (activations and math functions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from optimizer.kernels.reference._common import attr_in, ref
from optimizer.kernels.registry import KernelFn, NodeInfo, Support, register

_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise erf, exact to double precision (NumPy has none; math.erf is the oracle)."""
    return _erf64(x).astype(x.dtype)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


def _gelu(x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    if attrs.get("approximate", "none") in ("tanh", b"tanh"):
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return (0.5 * x * (1 + np.tanh(inner))).astype(x.dtype)
    return (0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(x.dtype)


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(alpha * x + beta, 0, 1).astype(x.dtype)


def _shrink(x: np.ndarray, lambd: float, bias: float) -> np.ndarray:
    """Shrink: ``x + bias`` below ``-lambd``, ``x - bias`` above ``lambd``, else 0."""
    xw = x.astype(np.float64)
    return np.where(xw < -lambd, xw + bias, np.where(xw > lambd, xw - bias, 0)).astype(x.dtype)


_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875

# op -> f(x, attrs); attribute defaults follow the ONNX spec.
_UNARY: dict[str, Callable[[np.ndarray, dict[str, Any]], np.ndarray]] = {
    "Relu": lambda x, a: np.maximum(x, 0).astype(x.dtype),
    "LeakyRelu": lambda x, a: np.where(x >= 0, x, x * a.get("alpha", 0.01)).astype(x.dtype),
    "ThresholdedRelu": lambda x, a: np.where(x > a.get("alpha", 1.0), x, 0).astype(x.dtype),
    "Elu": lambda x, a: np.where(x >= 0, x, a.get("alpha", 1.0) * np.expm1(x)).astype(x.dtype),
    "Celu": lambda x, a: (
        np.maximum(x, 0) + np.minimum(0, a.get("alpha", 1.0) * np.expm1(x / a.get("alpha", 1.0)))
    ).astype(x.dtype),
    "Selu": lambda x, a: (
        a.get("gamma", _SELU_GAMMA)
        * np.where(x > 0, x, a.get("alpha", _SELU_ALPHA) * np.expm1(np.minimum(x, 0)))
    ).astype(x.dtype),
    "Sigmoid": lambda x, a: _sigmoid(x),
    "HardSigmoid": lambda x, a: _hard_sigmoid(x, a.get("alpha", 0.2), a.get("beta", 0.5)),
    "HardSwish": lambda x, a: (x * _hard_sigmoid(x, 1 / 6, 0.5)).astype(x.dtype),
    "Tanh": lambda x, a: np.tanh(x),
    "Softplus": lambda x, a: _softplus(x),
    "Softsign": lambda x, a: (x / (1 + np.abs(x))).astype(x.dtype),
    "Mish": lambda x, a: (x * np.tanh(_softplus(x))).astype(x.dtype),
    "Gelu": _gelu,
    "Erf": lambda x, a: erf(x),
    "Exp": lambda x, a: np.exp(x),
    "Log": lambda x, a: np.log(x),
    "Sqrt": lambda x, a: np.sqrt(x),
    "Reciprocal": lambda x, a: (1 / x).astype(x.dtype),
    "Abs": lambda x, a: np.abs(x),
    "Neg": lambda x, a: np.negative(x),
    "Sign": lambda x, a: np.sign(x),
    "Floor": lambda x, a: np.floor(x),
    "Ceil": lambda x, a: np.ceil(x),
    "Round": lambda x, a: np.round(x),  # half to even, as ONNX specifies
    "Sin": lambda x, a: np.sin(x),
    "Cos": lambda x, a: np.cos(x),
    "Tan": lambda x, a: np.tan(x),
    "Asin": lambda x, a: np.arcsin(x),
    "Acos": lambda x, a: np.arccos(x),
    "Atan": lambda x, a: np.arctan(x),
    "Sinh": lambda x, a: np.sinh(x),
    "Cosh": lambda x, a: np.cosh(x),
    "Asinh": lambda x, a: np.arcsinh(x),
    "Acosh": lambda x, a: np.arccosh(x),
    "Atanh": lambda x, a: np.arctanh(x),
    "Not": lambda x, a: np.logical_not(x),
    "IsNaN": lambda x, a: np.isnan(x),
    "IsInf": lambda x, a: (
        (np.isposinf(x) if a.get("detect_positive", 1) else np.zeros(x.shape, bool))
        | (np.isneginf(x) if a.get("detect_negative", 1) else np.zeros(x.shape, bool))
    ),
    "Identity": lambda x, a: x,
    "Swish": lambda x, a: (x * _sigmoid(a.get("alpha", 1.0) * x)).astype(x.dtype),
    "Shrink": lambda x, a: _shrink(x, a.get("lambd", 0.5), a.get("bias", 0.0)),
}

# First opset of each op that is younger than opset 1.
_SINCE = {
    "Swish": 24,
    "Shrink": 9,
    "Gelu": 20,
    "Mish": 18,
    "HardSwish": 14,
    "Celu": 12,
    "Erf": 9,
    "Sign": 9,
    "Round": 11,
    "IsNaN": 9,
    "IsInf": 10,
    "ThresholdedRelu": 10,
    "Asinh": 9,
    "Acosh": 9,
    "Atanh": 9,
    "Sinh": 9,
    "Cosh": 9,
    "Sin": 7,
    "Cos": 7,
    "Tan": 7,
    "Asin": 7,
    "Acos": 7,
    "Atan": 7,
}


def _kernel(f: Callable[[np.ndarray, dict[str, Any]], np.ndarray]) -> KernelFn:
    def kernel(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return [np.asarray(f(np.asarray(inputs[0]), attrs))]

    return kernel


def dropout(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Dropout at inference: the identity, and an all-true mask as the optional second output."""
    x = np.asarray(inputs[0])
    return [x, np.ones(x.shape, dtype=np.bool_)]


def _dropout_check(node: NodeInfo, target: str) -> Support:
    training = node.constant_inputs.get(2)
    if training is not None and bool(np.asarray(training)):
        return Support.no("training_mode=true not implemented (inference only)")
    if 2 < len(node.input_dtypes) and node.input_dtypes[2] is not None and training is None:
        return Support.no("training_mode input must be a constant false")
    return Support.yes()


for _op, _f in _UNARY.items():
    register(
        ref(
            _op,
            _kernel(_f),
            since=_SINCE.get(_op, 1),
            check=attr_in("approximate", ("none", "tanh"), "none") if _op == "Gelu" else None,
        )
    )
register(ref("Dropout", dropout, check=_dropout_check))
