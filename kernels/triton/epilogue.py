"""Shared activation and fused-epilogue helpers for the Triton kernels.

The activation codes are the native library's (``kernels/native/params.md``, "act codes"):
0 none, 1 relu, 2 clip(act_alpha, act_beta), 3 sigmoid, 4 silu, 5 hardswish, 6 gelu (erf),
7 gelu (tanh), 8 leaky_relu(act_alpha), 9 tanh, 10 hardsigmoid(act_alpha, act_beta), 11 exp,
12 abs, 13 neg, 14 sqrt, 15 reciprocal, 16 erf, 17 elu(act_alpha).

:func:`apply_act` is a ``@triton.jit`` function any kernel can call on an fp32 block with the
code as a ``tl.constexpr`` (so each kernel specializes to one activation and pays nothing for
the others); :func:`fused_epilogue` applies the GEMM/convolution epilogue in the documented
order (``act(acc + bias + R)`` or ``act(acc + bias) + R``). :func:`act_reference` is the same
table in NumPy (float64), the oracle the tests compare against.

Only ``tl.math`` primitives are used (no libdevice: the CPU interpreter that CI tests on has no
libdevice). ``tanh`` and ``expm1`` use a short Taylor series near zero, where the exp-based
formulas would lose relative accuracy, and the exp form elsewhere; both stay within ~2e-7
relative of the exact value in fp32.
"""

from __future__ import annotations

import math

import numpy as np
import triton
import triton.language as tl
from optimizer.kernels.triton.launch import Unsupported

#: Activation code -> name, as params.md lists them.
ACT_NAMES = (
    "none", "relu", "clip", "sigmoid", "silu", "hardswish", "gelu_erf", "gelu_tanh",
    "leaky_relu", "tanh", "hardsigmoid", "exp", "abs", "neg", "sqrt", "reciprocal", "erf", "elu",
)  # fmt: skip
ACT_COUNT = len(ACT_NAMES)

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def check_act(act: int, where: str) -> int:
    """Returns ``act`` as an int, or raises :class:`Unsupported` when it is not a known code."""
    if not 0 <= int(act) < ACT_COUNT:
        raise Unsupported(f"{where}: activation code {act} not in 0..{ACT_COUNT - 1}")
    return int(act)


@triton.jit
def tanh_f32(x):
    """tanh in fp32: odd Taylor series for |x| < 0.3, ``(1 - e^-2|x|) / (1 + e^-2|x|)`` above."""
    ax = tl.abs(x)
    x2 = x * x
    # x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835; the next term is < 2e-8 at |x| = 0.3.
    poly = x * (
        1.0 + x2 * (-0.3333333333 + x2 * (0.1333333333 + x2 * (-0.0539682540 + x2 * 0.0218694885)))
    )
    t = tl.exp(-2.0 * ax)
    big = (1.0 - t) / (1.0 + t)
    big = tl.where(x < 0, -big, big)
    return tl.where(ax < 0.3, poly, big)


@triton.jit
def expm1_f32(x):
    """exp(x) - 1 in fp32, with a Taylor series for |x| < 0.3 (no cancellation near 0)."""
    poly = x * (
        1.0
        + x
        * (0.5 + x * (0.1666666667 + x * (0.0416666667 + x * (0.0083333333 + x * 0.0013888889))))
    )
    return tl.where(tl.abs(x) < 0.3, poly, tl.exp(x) - 1.0)


@triton.jit
def apply_act(x, ACT: tl.constexpr, alpha, beta):
    """Activation ``ACT`` (params.md code) of an fp32 block ``x``; alpha/beta are act_alpha/beta."""
    if ACT == 1:
        x = tl.maximum(x, 0.0)
    elif ACT == 2:
        x = tl.minimum(tl.maximum(x, alpha), beta)
    elif ACT == 3:
        x = tl.sigmoid(x)
    elif ACT == 4:
        x = x * tl.sigmoid(x)
    elif ACT == 5:
        x = x * tl.minimum(tl.maximum(x * (1.0 / 6.0) + 0.5, 0.0), 1.0)
    elif ACT == 6:
        x = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif ACT == 7:
        # 0.5 * (1 + tanh(u)) == sigmoid(2u): no cancellation where tanh(u) is near -1.
        inner = 1.5957691216057308 * (x + 0.044715 * x * x * x)
        x = x * tl.sigmoid(inner)
    elif ACT == 8:
        x = tl.where(x >= 0, x, x * alpha)
    elif ACT == 9:
        x = tanh_f32(x)
    elif ACT == 10:
        x = tl.minimum(tl.maximum(alpha * x + beta, 0.0), 1.0)
    elif ACT == 11:
        x = tl.exp(x)
    elif ACT == 12:
        x = tl.abs(x)
    elif ACT == 13:
        x = -x
    elif ACT == 14:
        x = tl.sqrt_rn(x)
    elif ACT == 15:
        x = 1.0 / x
    elif ACT == 16:
        x = tl.math.erf(x)
    elif ACT == 17:
        x = tl.where(x >= 0, x, alpha * expm1_f32(x))
    return x


@triton.jit
def fused_epilogue(
    acc,
    bias,
    res,
    HAS_BIAS: tl.constexpr,
    HAS_RES: tl.constexpr,
    RESIDUAL_AFTER_ACT: tl.constexpr,
    ACT: tl.constexpr,
    alpha,
    beta,
):
    """``act(acc + bias + res)`` or, with RESIDUAL_AFTER_ACT, ``act(acc + bias) + res`` (fp32).

    ``bias`` and ``res`` are blocks broadcastable to ``acc`` (already loaded, fp32); they are
    ignored when their HAS_ flag is off (pass 0.0).
    """
    if HAS_BIAS:
        acc = acc + bias
    if HAS_RES and not RESIDUAL_AFTER_ACT:
        acc = acc + res
    acc = apply_act(acc, ACT, alpha, beta)
    if HAS_RES and RESIDUAL_AFTER_ACT:
        acc = acc + res
    return acc


def act_reference(x: np.ndarray, act: int, alpha: float = 0.0, beta: float = 0.0) -> np.ndarray:
    """NumPy (float64) oracle of :func:`apply_act`; returns float64."""
    x = np.asarray(x, dtype=np.float64)
    if act == 0:
        return x
    if act == 1:
        return np.maximum(x, 0)
    if act == 2:
        return np.minimum(np.maximum(x, alpha), beta)
    if act == 3:
        return 1 / (1 + np.exp(-x))
    if act == 4:
        return x / (1 + np.exp(-x))
    if act == 5:
        return x * np.clip(x / 6 + 0.5, 0, 1)
    if act == 6:
        return 0.5 * x * (1 + _erf(x * _INV_SQRT2))
    if act == 7:
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    if act == 8:
        return np.where(x >= 0, x, x * alpha)
    if act == 9:
        return np.tanh(x)
    if act == 10:
        return np.clip(alpha * x + beta, 0, 1)
    if act == 11:
        return np.exp(x)
    if act == 12:
        return np.abs(x)
    if act == 13:
        return -x
    if act == 14:
        return np.sqrt(x)
    if act == 15:
        return 1 / x
    if act == 16:
        return _erf(x)
    if act == 17:
        return np.where(x >= 0, x, alpha * np.expm1(x))
    raise ValueError(f"activation code {act} not in 0..{ACT_COUNT - 1}")


_erf_vec = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_vec(x)
