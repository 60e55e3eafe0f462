"""Reference kernels: Conv and ConvTranspose, N-d, with groups, dilations, pads and auto_pad."""

from __future__ import annotations

from typing import Any

import numpy as np
from optimizer.kernels.reference._common import (
    NO_EXOTIC_DTYPES,
    all_of,
    attr_in,
    ints,
    opt,
    ref,
    s_attr,
    spatial_pads,
    windows,
)
from optimizer.kernels.registry import register

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def conv(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """Conv: im2col over every kernel offset, then one grouped contraction.

    Accumulates in float64 so the reference is at least as accurate as any kernel under test.
    """
    x, w, b = np.asarray(inputs[0]), np.asarray(inputs[1]), opt(inputs, 2)
    nsp = x.ndim - 2
    kernel = ints(attrs.get("kernel_shape", w.shape[2:]))
    strides = ints(attrs.get("strides", [1] * nsp))
    dilations = ints(attrs.get("dilations", [1] * nsp))
    group = int(attrs.get("group", 1))
    pads = spatial_pads(x.shape[2:], kernel, strides, dilations, attrs)
    xp = np.pad(x, [(0, 0), (0, 0), *((pads[i], pads[i + nsp]) for i in range(nsp))])
    out = [
        (xp.shape[2 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1 for i in range(nsp)
    ]
    cols = windows(xp, kernel, strides, dilations, out)  # (N, C, K, *out)
    n, c = x.shape[:2]
    m = w.shape[0]
    cols = cols.reshape(n, group, c // group, -1, int(np.prod(out)))
    wg = w.reshape(group, m // group, c // group, -1)
    y = np.einsum("ngckp,gmck->ngmp", cols.astype(np.float64), wg.astype(np.float64))
    y = y.reshape(n, m, *out)
    if b is not None:
        y = y + np.asarray(b).reshape(m, *([1] * nsp))
    return [y.astype(x.dtype)]


def conv_transpose(inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
    """ConvTranspose: scatter-add every kernel offset, then crop pads (col2im).

    ``output_shape`` (when given) overrides ``pads``: the total padding is split per ``auto_pad``
    as the ONNX spec says (SAME_UPPER puts the larger half at the end).
    """
    x, w, b = np.asarray(inputs[0]), np.asarray(inputs[1]), opt(inputs, 2)
    nsp = x.ndim - 2
    n, c = x.shape[:2]
    in_sp = x.shape[2:]
    group = int(attrs.get("group", 1))
    m = w.shape[1] * group
    kernel = ints(attrs.get("kernel_shape", w.shape[2:]))
    strides = ints(attrs.get("strides", [1] * nsp))
    dilations = ints(attrs.get("dilations", [1] * nsp))
    out_pad = ints(attrs.get("output_padding", [0] * nsp))
    full = [
        strides[i] * (in_sp[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
        for i in range(nsp)
    ]
    auto_pad = s_attr(attrs, "auto_pad", "NOTSET")
    if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in attrs:
            target = ints(attrs["output_shape"])[-nsp:]
        else:
            target = [in_sp[i] * strides[i] for i in range(nsp)]
        total = [full[i] - target[i] for i in range(nsp)]
        # An output_shape larger than the full result: the spec's implicit output_padding
        # (zeros appended at the end), as onnxruntime and onnx's reference do.
        full = [full[i] - min(total[i], 0) for i in range(nsp)]
        total = [max(t, 0) for t in total]
        if auto_pad == "SAME_UPPER":
            pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        else:
            pads = [t - t // 2 for t in total] + [t // 2 for t in total]
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    else:
        pads = ints(attrs.get("pads", [0] * (2 * nsp)))

    xg = x.reshape(n, group, c // group, -1).astype(np.float64)
    wg = w.reshape(group, c // group, m // group, -1).astype(np.float64)
    contrib = np.einsum("ngcp,gcmk->ngmkp", xg, wg).reshape(n, m, -1, *in_sp)
    y = np.zeros((n, m, *full), dtype=np.float64)
    for k, offset in enumerate(np.ndindex(*kernel)):
        index = tuple(
            slice(o * d, o * d + s * (size - 1) + 1, s)
            for o, d, s, size in zip(offset, dilations, strides, in_sp)
        )
        y[(slice(None), slice(None), *index)] += contrib[:, :, k]
    crop = tuple(slice(pads[i], full[i] - pads[i + nsp]) for i in range(nsp))
    y = y[(slice(None), slice(None), *crop)]
    if b is not None:
        y = y + np.asarray(b).reshape(m, *([1] * nsp))
    return [y.astype(x.dtype)]


_CHECK = all_of(attr_in("auto_pad", _AUTO_PADS, "NOTSET"), NO_EXOTIC_DTYPES)
register(ref("Conv", conv, check=_CHECK))
register(ref("ConvTranspose", conv_transpose, check=_CHECK))
