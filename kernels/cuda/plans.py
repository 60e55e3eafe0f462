"""Launches of the NVRTC kernels for plan steps, and which backend a step uses by default.

A plan function here has the Triton plan functions' signature (``(inputs, outputs, iparams,
fparams)``, see ``kernels/triton/launch.py``) and implements the same native entry's contract,
but returns an :class:`NvrtcLaunch`: a kernel of one of this package's ``.cu`` sources by its
``extern "C"`` name, its arguments (the same :class:`~optimizer.kernels.triton.launch.Arg` kinds:
step tensors ``in`` / ``out``, scalars ``i32`` / ``i64`` / ``f32``), the grid and the block
(``num_warps * 32`` threads: the runtime's block size). :func:`compile_launch` compiles the
source with NVRTC and returns the ``aot.Cubin`` the CUDA lowering records exactly like a Triton
kernel's (no hidden parameters, no dynamic shared memory), so modules and the C++ runtime treat
both backends alike (the manifest's kernel ``backend`` says ``nvrtc``).

Entries: ``gather`` (any dtype: moved in 1 to 16-byte units; int32 / int64 indices),
``resize_nearest_f32``, ``resize_bilinear_f32`` and ``global_avgpool_f32`` (one warp a plane)
(float32 / float16 / bfloat16).

Which kernel a step gets:

- :func:`nvrtc_alternatives` compiles the NVRTC launches of a step: alternatives for load-time
  tactic timing (the runtime times them against the Triton launch on the GPU).
- :func:`prefer_nvrtc` is the default without timing: True where the NVRTC kernel measured
  faster than the Triton twin. On an H100 (CUDA graph of 200 launches, GPU time per launch,
  2026-11-24, tools/bench_nvrtc_kernels.py) only ``global_avgpool_f32`` over few planes is:
  resnet's [1,2048,7,7] 1.54 us vs 2.01 (fp16; fp32 1.60 vs 2.05), while at [16,2048,7,7] the
  Triton twin wins (4.01 us vs 5.33 fp16). The Triton twins won everywhere else: bert's embedding
  gather (table [1000,64], ids [16,16]) 1.17 us vs 1.38 (fp16; 1.12 vs 1.27 at ids [1,16]) and
  unet's Resize [16,64,16,16] -> [16,64,32,32] fp16 3.72 us vs 5.49 (nearest), 4.30 vs 5.82
  (bilinear), so they stay the default there (whole fp16 modules: bert and unet with NVRTC
  gathers / resize within -4% .. +2% of the Triton-only modules).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    I32,
    I64,
    Arg,
    In,
    Out,
    TensorDesc,
    Unsupported,
)
from optimizer.kernels.triton.resize import resize_geometry, scale_bits

#: The tactic name the NVRTC launch of a step carries.
TACTIC = "nvrtc"
#: dtype -> the kernels' name suffix.
SUFFIX = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
_SIZES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "int16": 2,
          "int32": 4, "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8,
          "bool": 1}  # fmt: skip
_PARAM = {"in": "ptr", "out": "ptr", "null": "ptr", "workspace": "ptr", "i32": "i32",
          "i64": "i64", "f32": "f32"}  # fmt: skip


@dataclass
class NvrtcLaunch:
    """One launch of an NVRTC kernel for one plan step.

    Attributes:
        name: Registry-style kernel name, ``nvrtc.<op>_<variant>`` (``nvrtc.resize_bilinear``).
        source: The ``.cu`` file of this package.
        entry: The ``extern "C"`` kernel's name.
        args: The kernel's parameters, by name, in order.
        grid: Blocks along x, y, z.
        num_warps: Warps per block.
        workspace: Device scratch bytes (none of these kernels needs any).
        zeroed_base: Unused (the lowering's field for split-K kernels).
        tactic: The tactic name (``nvrtc``).
    """

    name: str
    source: str
    entry: str
    args: dict[str, Arg]
    grid: tuple[int, int, int] = (1, 1, 1)
    num_warps: int = 8
    workspace: int = 0
    zeroed_base: str = ""
    tactic: str = TACTIC

    def __post_init__(self) -> None:
        grid = tuple(int(g) for g in self.grid) + (1,) * (3 - len(self.grid))
        if any(g < 1 for g in grid):
            raise ValueError(f"{self.name}: grid {self.grid} must be positive counts")
        if grid[0] >= 2**31 or grid[1] >= 2**16 or grid[2] >= 2**16:
            raise Unsupported(f"{self.name}: grid {grid} exceeds CUDA's limits")
        self.grid = grid

    @property
    def params(self) -> list[str]:
        """The module's parameter types of the arguments, in order."""
        return [_PARAM[a.kind] for a in self.args.values()]


PlanFn = Callable[
    [Sequence[TensorDesc | None], Sequence[TensorDesc], Sequence[int], Sequence[float]],
    NvrtcLaunch,
]

#: The rows per block of the resize kernels' tiles are capped by their shared arrays (MAX_RB).
_MAX_RB, _MAX_BW, _TILE = 256, 1024, 1024


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _resize(
    entry: str, inputs, outputs, iparams, fparams, n_ip: int
) -> tuple[NvrtcLaunch, dict[str, Arg]]:
    """The launch (common arguments) and the tiling arguments that end the kernel's list."""
    n, c, h, w, oh, ow, coord, sh, sw = resize_geometry(
        entry, inputs, outputs, iparams, fparams, n_ip
    )
    rows = n * c * oh
    if rows >= 2**31 or max(h, w, oh, ow) >= 2**31:
        raise Unsupported(f"{entry}: {rows} output rows (the kernel indexes rows in int32)")
    bw = min(_pow2(max(ow, 1)), _MAX_BW)
    rb = max(1, min(_MAX_RB, _TILE // bw, rows))
    tile = rb * bw
    num_warps = max(1, min(8, tile // 32 // 4))  # about 4 outputs a thread
    args = {"x": In(0), "y": Out(0), "sh_bits": I64(scale_bits(sh)), "sw_bits": I64(scale_bits(sw)),
            "H": I32(h), "W": I32(w), "OH": I32(max(oh, 1)), "OW": I32(ow),
            "coord": I32(coord)}  # fmt: skip
    launch = NvrtcLaunch(
        name="", source="resize.cu", entry="", args=args,
        grid=(_cdiv(max(rows, 1), rb), _cdiv(max(ow, 1), bw)), num_warps=num_warps,
    )  # fmt: skip
    return launch, {"rows": I32(rows), "log_bw": I32(bw.bit_length() - 1), "rb": I32(rb)}


def plan_resize_nearest(inputs, outputs, iparams, fparams) -> NvrtcLaunch:
    """resize_nearest_f32: iparams [coordinate_mode, nearest_mode]; fparams [scale_h, scale_w]."""
    launch, tiling = _resize("resize_nearest_f32", inputs, outputs, iparams, fparams, 2)
    mode = int(iparams[1])
    if not 0 <= mode <= 3:
        raise Unsupported(f"resize_nearest_f32: nearest mode {mode} not in 0..3")
    launch.name = "nvrtc.resize_nearest"
    launch.entry = f"resize_nearest_{SUFFIX[outputs[0].dtype]}"
    launch.args["mode"] = I32(mode)
    launch.args.update(tiling)
    return launch


def plan_resize_bilinear(inputs, outputs, iparams, fparams) -> NvrtcLaunch:
    """resize_bilinear_f32: iparams [coordinate_mode]; fparams [scale_h, scale_w]."""
    launch, tiling = _resize("resize_bilinear_f32", inputs, outputs, iparams, fparams, 1)
    launch.name = "nvrtc.resize_bilinear"
    launch.entry = f"resize_bilinear_{SUFFIX[outputs[0].dtype]}"
    launch.args.update(tiling)
    return launch


def plan_gather(inputs, outputs, iparams, fparams) -> NvrtcLaunch:
    """gather: Data, Indices (int32 / int64) -> Y; iparams [axis]."""
    if len(inputs) != 2 or None in inputs or len(outputs) != 1 or len(iparams) != 1 or fparams:
        raise Unsupported("gather: expects Data, Indices, 1 output, iparams [axis]")
    data, idx = inputs
    y = outputs[0]
    assert data is not None and idx is not None
    if data.dtype != y.dtype or data.dtype not in _SIZES:
        raise Unsupported(f"gather: Data and Y must share a fixed-size dtype, got {data.dtype}, "
                          f"{y.dtype}")  # fmt: skip
    if idx.dtype not in ("int32", "int64"):
        raise Unsupported(f"gather: indices must be int32 or int64, got {idx.dtype}")
    r = len(data.shape)
    axis = int(iparams[0])
    if r < 1 or not -r <= axis < r:
        raise Unsupported(f"gather: axis {axis} out of range for rank {r}")
    axis %= r
    want = tuple(data.shape[:axis]) + tuple(idx.shape) + tuple(data.shape[axis + 1 :])
    if tuple(y.shape) != want:
        raise Unsupported(f"gather: Y {y.shape} should be {want}")
    if y.numel and data.shape[axis] == 0:
        raise Unsupported("gather: gathering from an empty axis")
    inner = 1
    for d in data.shape[axis + 1 :]:
        inner *= d
    row_bytes = inner * _SIZES[data.dtype]
    unit = next(u for u in (16, 8, 4, 2, 1) if row_bytes % u == 0)
    units = row_bytes // unit
    n = y.numel * _SIZES[data.dtype] // unit
    wide = int(max(n, data.numel * _SIZES[data.dtype] // unit) >= 2**31 - 1024)
    threads = 256
    return NvrtcLaunch(
        name="nvrtc.gather", source="gather.cu",
        entry=f"gather_u{unit * 8}_{'i32' if idx.dtype == 'int32' else 'i64'}",
        args={"data": In(0), "idx": In(1), "y": Out(0), "n": I64(n), "K": I64(max(1, idx.numel)),
              "A": I64(data.shape[axis]), "inner": I64(max(1, units)), "wide": I32(wide)},
        grid=(max(1, _cdiv(n, threads)),), num_warps=threads // 32,
    )  # fmt: skip


def plan_global_avgpool(inputs, outputs, iparams, fparams) -> NvrtcLaunch:
    """global_avgpool_f32: X [N, C, spatial...] -> Y [N, C, 1, ...] or [N, C]; one warp a plane."""
    entry = "global_avgpool_f32"
    if iparams or fparams or len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported(f"{entry}: one input X, one output Y, no parameters")
    xd, yd = inputs[0], outputs[0]
    if xd.dtype not in FLOAT_DTYPES or yd.dtype != xd.dtype:
        raise Unsupported(f"{entry}: X and Y must share one of {FLOAT_DTYPES}")
    x, y = xd.shape, yd.shape
    fits = len(x) >= 3 and y[:2] == x[:2] and len(y) in (2, len(x)) and all(d == 1 for d in y[2:])
    if not fits:
        raise Unsupported(f"{entry}: output Y {y} does not fit X {x}")
    planes = x[0] * x[1]
    s = xd.numel // planes if planes else 0
    if planes == 0 or s == 0:
        raise Unsupported(f"{entry}: empty X {x}")
    threads = 256
    return NvrtcLaunch(
        name="nvrtc.global_avgpool", source="pool.cu",
        entry=f"global_avgpool_{SUFFIX[xd.dtype]}",
        args={"x": In(0), "y": Out(0), "planes": I64(planes), "S": I64(s),
              "inv_s": F32(float(struct.unpack("<f", struct.pack("<f", 1.0 / s))[0]))},
        grid=(_cdiv(planes * 32, threads),), num_warps=threads // 32,
    )  # fmt: skip


_PLANS: dict[str, PlanFn] = {
    "global_avgpool_f32": plan_global_avgpool,
    "gather": plan_gather,
    "resize_nearest_f32": plan_resize_nearest,
    "resize_bilinear_f32": plan_resize_bilinear,
}


def plan_for(entry: str) -> PlanFn | None:
    """The NVRTC plan function of a native entry, or None."""
    return _PLANS.get(entry)


def registered_entries() -> list[str]:
    """Native entries with an NVRTC kernel."""
    return sorted(_PLANS)


def compile_launch(
    launch: NvrtcLaunch,
    arch: str = "sm_90",
    *,
    use_cache: bool = True,
    directory: Path | None = None,
) -> Any:
    """Compiles ``launch``'s source with NVRTC (cached) and returns the ``aot.Cubin`` the CUDA
    lowering records (``launch_metadata()``, ``aot.step_args(cubin, launch)``).

    Raises:
        NvrtcError: NVRTC is missing, or the source does not compile or lacks the kernel.
    """
    from optimizer.kernels.cuda.nvrtc import compile_source
    from optimizer.kernels.triton.aot import Cubin

    compiled = compile_source(launch.source, arch, use_cache=use_cache, directory=directory)
    params = launch.params
    compiled.check_params(launch.entry, params)
    return Cubin(name=launch.name, path=compiled.path, entry=launch.entry,
                 num_warps=int(launch.num_warps), shared=0, params=params, hidden=0, arch=arch,
                 key=compiled.key, cached=compiled.cached)  # fmt: skip


@dataclass(frozen=True)
class CompiledLaunch:
    """An NVRTC launch with its cubin (what the lowering records for a step or a tactic)."""

    launch: NvrtcLaunch
    cubin: Any  # optimizer.kernels.triton.aot.Cubin


def nvrtc_alternatives(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    arch: str = "sm_90",
    *,
    use_cache: bool = True,
) -> list[CompiledLaunch]:
    """The compiled NVRTC launches of a step: [] when the entry has no NVRTC kernel, the plan
    refuses the step, or NVRTC is not installed (the Triton launch then runs alone).

    Raises:
        NvrtcError: NVRTC is installed but failed to compile a source of this package (a bug).
    """
    from optimizer.kernels.cuda.nvrtc import available

    plan = plan_for(entry)
    if plan is None or available() is not None:
        return []
    try:
        launch = plan(inputs, outputs, list(iparams), list(fparams))
    except Unsupported:
        return []
    return [CompiledLaunch(launch, compile_launch(launch, arch, use_cache=use_cache))]


def prefer_nvrtc(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> bool:
    """Whether the step's default kernel (without load-time timing) is the NVRTC one; see the
    module docstring for the measurements behind it."""
    if entry != "global_avgpool_f32" or len(inputs) != 1 or inputs[0] is None:
        return False
    shape = inputs[0].shape
    planes = shape[0] * shape[1] if len(shape) >= 3 else 0
    return 0 < planes <= _FEW_PLANES


#: Global average pools over at most this many planes run the NVRTC kernel by default (measured
#: faster at 2048 planes of 49, slower at 32768).
_FEW_PLANES = 4096
