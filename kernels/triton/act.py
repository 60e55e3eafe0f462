"""Activation epilogues by ``act`` code (``kernels/native/params.md``), shared by Triton kernels.

``apply_act(x, ACT, alpha, beta)`` maps an fp32 tensor through activation ``ACT`` (a
``tl.constexpr``, so each kernel compiles only the branch it uses): 0 none, 1 relu, 2 clip(alpha,
beta), 3 sigmoid, 4 silu, 5 hardswish, 6 gelu (erf), 7 gelu (tanh), 8 leaky_relu(alpha), 9 tanh,
10 hardsigmoid(alpha, beta), 11 exp, 12 abs, 13 neg, 14 sqrt, 15 reciprocal, 16 erf,
17 elu(alpha). Only ``tl`` built-ins are used (no libdevice), so the CPU interpreter runs them.
"""

from __future__ import annotations

import triton
import triton.language as tl

#: The highest act code.
MAX_ACT = 17


@triton.jit
def tanh_f32(x):
    """tanh through exp(-2|x|): accurate near 0 and saturating without overflow."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def apply_act(x, ACT: tl.constexpr, alpha, beta):
    """``x`` (fp32) through activation code ``ACT``."""
    if ACT == 1:
        x = tl.maximum(x, 0.0)
    elif ACT == 2:
        x = tl.minimum(tl.maximum(x, alpha), beta)
    elif ACT == 3:
        x = tl.sigmoid(x)
    elif ACT == 4:
        x = x * tl.sigmoid(x)
    elif ACT == 5:
        x = x * tl.minimum(tl.maximum(x / 6.0 + 0.5, 0.0), 1.0)
    elif ACT == 6:
        x = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
    elif ACT == 7:
        x = 0.5 * x * (1.0 + tanh_f32(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif ACT == 8:
        x = tl.where(x < 0, x * alpha, x)
    elif ACT == 9:
        x = tanh_f32(x)
    elif ACT == 10:
        x = tl.minimum(tl.maximum(x * alpha + beta, 0.0), 1.0)
    elif ACT == 11:
        x = tl.exp(x)
    elif ACT == 12:
        x = tl.abs(x)
    elif ACT == 13:
        x = -x
    elif ACT == 14:
        x = tl.sqrt(x)
    elif ACT == 15:
        x = 1.0 / x
    elif ACT == 16:
        x = tl.erf(x)
    elif ACT == 17:
        x = tl.where(x < 0, alpha * (tl.exp(x) - 1.0), x)
    return x
