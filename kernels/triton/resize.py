"""ONNX Resize on H, W of NCHW: GPU twins of ``resize_nearest_f32`` and ``resize_bilinear_f32``.

iparams ``[coordinate_mode, nearest_mode]`` (nearest) or ``[coordinate_mode]`` (bilinear),
fparams ``[scale_h, scale_w]`` (<= 0: ``OH/H``, ``OW/W``); modes as in
``kernels/native/params.md``. A program writes ``BLOCK`` pixels of ``RB`` output rows (grid: row
groups x row blocks; about 1024 outputs a program). Source
coordinates are computed as the native kernel does, in float64 from the double scales (passed as
their bit patterns, so a scale like 1/3 is not rounded to float32): nearest indices and bilinear
taps match the native kernel exactly, the interpolation itself runs in fp32 (horizontal lerp of
the two source rows, then vertical, like the native kernel).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    FLOAT_DTYPES,
    I64,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

COORDINATE_MODES = ("half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@triton.jit
def _to_input(o, IN: tl.constexpr, OUT: tl.constexpr, scale, COORD: tl.constexpr):
    """Output coordinate(s) ``o`` -> input coordinate in float64 (ONNX transformation modes)."""
    of = o.to(tl.float64)
    if COORD == 0:
        x = (of + 0.5) / scale - 0.5
    elif COORD == 3:
        if OUT > 1:
            x = (of + 0.5) / scale - 0.5
        else:
            x = of * 0.0
    elif COORD == 1:
        if OUT == 1:
            x = of * 0.0
        else:
            x = of * (IN - 1) / (OUT - 1)
    else:
        x = of / scale
    return x


@triton.jit
def _nearest(x, IN: tl.constexpr, MODE: tl.constexpr):
    f = tl.floor(x)
    if MODE == 0:
        r = tl.where(x - f == 0.5, f, tl.floor(x + 0.5))
    elif MODE == 1:
        r = tl.where(x - f == 0.5, f + 1.0, tl.floor(x + 0.5))
    elif MODE == 2:
        r = f
    else:
        r = tl.ceil(x)
    r = tl.minimum(tl.maximum(r, 0.0), IN - 1.0)
    return r.to(tl.int32)


@triton.jit
def _resize_nearest_kernel(
    x_ptr, y_ptr, sh_bits, sw_bits,
    H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    COORD: tl.constexpr, NEAREST: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr,
    RB: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0) * RB + tl.arange(0, RB)[:, None]  # RB rows of N*C*OH
    q = row // OH
    oy = row % OH
    ox = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    mask = (ox < OW) & (row < ROWS)
    sh = sh_bits.to(tl.float64, bitcast=True)
    sw = sw_bits.to(tl.float64, bitcast=True)
    iy = _nearest(_to_input(oy, H, OH, sh, COORD), H, NEAREST)
    ix = _nearest(_to_input(ox, W, OW, sw, COORD), W, NEAREST)
    src = x_ptr + (q.to(tl.int64) * H + iy) * W
    v = tl.load(src + ix, mask=mask)
    tl.store(y_ptr + row.to(tl.int64) * OW + ox, v, mask=mask)


@triton.jit
def _taps(o, IN: tl.constexpr, OUT: tl.constexpr, scale, COORD: tl.constexpr):
    x = _to_input(o, IN, OUT, scale, COORD)
    x = tl.minimum(tl.maximum(x, 0.0), IN - 1.0)
    f = tl.floor(x)
    i0 = f.to(tl.int32)
    i1 = tl.minimum(i0 + 1, IN - 1)
    return i0, i1, (x - f).to(tl.float32)


@triton.jit
def _resize_bilinear_kernel(
    x_ptr, y_ptr, sh_bits, sw_bits,
    H: tl.constexpr, W: tl.constexpr, OH: tl.constexpr, OW: tl.constexpr,
    COORD: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr, RB: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0) * RB + tl.arange(0, RB)[:, None]  # RB rows of N*C*OH
    q = row // OH
    oy = row % OH
    ox = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)[None, :]
    mask = (ox < OW) & (row < ROWS)
    sh = sh_bits.to(tl.float64, bitcast=True)
    sw = sw_bits.to(tl.float64, bitcast=True)
    y0, y1, wy = _taps(oy, H, OH, sh, COORD)
    x0, x1, wx = _taps(ox, W, OW, sw, COORD)
    plane = x_ptr + q.to(tl.int64) * H * W
    r0 = plane + y0 * W
    r1 = plane + y1 * W
    a0 = tl.load(r0 + x0, mask=mask).to(tl.float32)
    a1 = tl.load(r0 + x1, mask=mask).to(tl.float32)
    b0 = tl.load(r1 + x0, mask=mask).to(tl.float32)
    b1 = tl.load(r1 + x1, mask=mask).to(tl.float32)
    h0 = a0 + (a1 - a0) * wx
    h1 = b0 + (b1 - b0) * wx
    v = h0 + (h1 - h0) * wy
    tl.store(y_ptr + row.to(tl.int64) * OW + ox, v.to(y_ptr.dtype.element_ty), mask=mask)


def scale_bits(v: float) -> int:
    """A double scale's bit pattern as an int64 argument (so 1/3 is not rounded to float32)."""
    return struct.unpack("<q", struct.pack("<d", float(v)))[0]


def resize_geometry(
    entry: str, inputs, outputs, iparams, fparams, n_ip: int
) -> tuple[int, int, int, int, int, int, int, float, float]:
    """The checked step of a resize entry: ``(n, c, h, w, oh, ow, coordinate_mode, scale_h,
    scale_w)``; shared with the NVRTC twins (``kernels/cuda/plans.py``)."""
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported(f"{entry}: expects 1 input and 1 output")
    if len(iparams) != n_ip or len(fparams) != 2:
        raise Unsupported(f"{entry}: expects {n_ip} iparams and fparams [scale_h, scale_w]")
    x, y = inputs[0], outputs[0]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[:2] != y.shape[:2]:
        raise Unsupported(f"{entry}: X [N,C,H,W] and Y [N,C,OH,OW] must share N and C")
    if x.dtype not in FLOAT_DTYPES or y.dtype != x.dtype:
        raise Unsupported(f"{entry}: X and Y must share one of {FLOAT_DTYPES}")
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    if y.numel and (h == 0 or w == 0):
        raise Unsupported(f"{entry}: cannot resize an empty input to a non-empty output")
    coord = int(iparams[0])
    if not 0 <= coord <= 3:
        raise Unsupported(f"{entry}: coordinate mode {coord} not in 0..3")
    sh = fparams[0] if fparams[0] > 0 else oh / max(1, h)
    sw = fparams[1] if fparams[1] > 0 else ow / max(1, w)
    return n, c, h, w, oh, ow, coord, sh, sw


def _plan(entry: str, inputs, outputs, iparams, fparams, n_ip: int) -> TritonLaunch:
    n, c, h, w, oh, ow, coord, sh, sw = resize_geometry(
        entry, inputs, outputs, iparams, fparams, n_ip
    )
    block = min(triton.next_power_of_2(max(ow, 1)), 1024)
    rows = n * c * oh
    # Several rows per program when rows are short (unet's 32-pixel rows at batch 16 made 32768
    # one-warp programs: 24 us on the H100 for 2 MB), about 1024 outputs each.
    rb = min(max(1, 1024 // block), triton.next_power_of_2(max(rows, 1)))
    return TritonLaunch(
        name="",
        kernel=None,
        args={"x_ptr": In(0), "y_ptr": Out(0), "sh_bits": I64(scale_bits(sh)),
              "sw_bits": I64(scale_bits(sw))},
        # an empty Y launches one program that stores nothing (ROWS = 0; OH >= 1 keeps row // OH)
        constexprs={"H": h, "W": w, "OH": max(oh, 1), "OW": ow, "COORD": coord, "BLOCK": block,
                    "ROWS": rows, "RB": rb},
        grid=(triton.cdiv(max(rows, 1), rb), triton.cdiv(max(ow, 1), block)),
        num_warps=max(1, min(4, block * rb // 128)),
    )  # fmt: skip


def plan_resize_nearest(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """resize_nearest_f32: iparams [coordinate_mode, nearest_mode]; fparams [scale_h, scale_w]."""
    launch = _plan("resize_nearest_f32", inputs, outputs, iparams, fparams, 2)
    mode = int(iparams[1])
    if not 0 <= mode <= 3:
        raise Unsupported(f"resize_nearest_f32: nearest mode {mode} not in 0..3")
    launch.name, launch.kernel = "triton.resize_nearest", _resize_nearest_kernel
    launch.constexprs["NEAREST"] = mode
    return launch


def plan_resize_bilinear(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """resize_bilinear_f32: iparams [coordinate_mode]; fparams [scale_h, scale_w]."""
    launch = _plan("resize_bilinear_f32", inputs, outputs, iparams, fparams, 1)
    launch.name, launch.kernel = "triton.resize_bilinear", _resize_bilinear_kernel
    return launch


register_plan("resize_nearest_f32", plan_resize_nearest)
register_plan("resize_bilinear_f32", plan_resize_bilinear)
