"""GEMM (Gemm and batched MatMul): the GPU twin of the native ``gemm_f32`` entry.

``Y = act(alpha * A' @ B' + beta * C [+ R]) [+ R]`` exactly as ``kernels/native/params.md``
documents it: ``A'`` is ``A`` or its transpose (``trans_a``), ``B'`` likewise, ``C`` an optional
bias broadcastable to ``[M, N]`` (``[]``, ``[1]``, ``[N]``, ``[1, N]``, ``[M, 1]``, ``[M, N]``),
``R`` an optional residual of Y's shape added before or after the activation
(``residual_after_act``), batch dims of A and B broadcast as in NumPy's matmul.

One tiled kernel: a program computes a ``BLOCK_M x BLOCK_N`` tile of one batch entry with
``tl.dot`` over ``BLOCK_K`` slices, accumulating in fp32 whatever the storage dtype, then runs
the fused epilogue and stores in Y's dtype. Tiles are visited in groups of ``GROUP_M`` rows so
neighbouring programs share B panels in L2. fp32 inputs use IEEE fp32 products
(``input_precision="ieee"``) unless the plan is asked to allow TF32.

Batch handling: broadcast batch dims are merged into at most three runs of dims with the same
broadcast pattern (A's and B's batch strides are compile-time constants, 0 where broadcast);
a shared 2-D B with a stacked row-major A and no per-row bias is folded into one GEMM of
``batch * M`` rows (BERT's projections), as the native kernel does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import triton
import triton.language as tl
from optimizer.kernels.triton.epilogue import check_act, fused_epilogue
from optimizer.kernels.triton.known_tactics import known_config
from optimizer.kernels.triton.launch import (
    F32,
    FLOAT_DTYPES,
    NULL,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_alternatives,
    register_plan,
)

INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class TileConfig:
    """One tiling of a GEMM-shaped kernel (GEMM, implicit-GEMM convolution)."""

    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3

    def key(self) -> str:
        """Short stable name, for timing caches and logs."""
        return (
            f"m{self.block_m}n{self.block_n}k{self.block_k}g{self.group_m}"
            f"w{self.num_warps}s{self.num_stages}"
        )

    @classmethod
    def from_key(cls, key: str) -> TileConfig | None:
        """The config named by :meth:`key`, or None when ``key`` is not a sane one (blocks powers
        of two in 16..256, group 1..64, warps 1..16, stages 1..8)."""
        m = _KEY.fullmatch(key)
        if m is None:
            return None
        bm, bn, bk, g, w, s = (int(v) for v in m.groups())
        pow2 = all(16 <= b <= 256 and b & (b - 1) == 0 for b in (bm, bn, bk))
        if not (pow2 and 1 <= g <= 64 and w in (1, 2, 4, 8, 16) and 1 <= s <= 8):
            return None
        return cls(bm, bn, bk, g, w, s)


_KEY = re.compile(r"m(\d+)n(\d+)k(\d+)g(\d+)w(\d+)s(\d+)")


# Candidate tables per (precision class, shape class). Tensor-core classes (fp16/bf16, and
# fp32 with TF32) favour deep K slices; IEEE fp32 runs on FMA units, where a K slice of 16-32
# keeps the register footprint of the operand tiles small. The first entry of each list is what
# the shape rule picks without timing; the rest are what a tactic step may time.
_TC_LARGE = [
    TileConfig(128, 128, 64, 8, 4, 4),
    TileConfig(128, 256, 64, 8, 8, 3),
    TileConfig(256, 128, 64, 8, 8, 3),
    TileConfig(128, 128, 32, 8, 4, 4),
    TileConfig(128, 64, 64, 8, 4, 4),
    TileConfig(64, 128, 64, 8, 4, 4),
]
_TC_MEDIUM = [
    TileConfig(64, 128, 64, 8, 4, 4),
    TileConfig(64, 64, 64, 8, 4, 4),
    TileConfig(128, 64, 64, 8, 4, 4),
    TileConfig(64, 256, 64, 8, 8, 3),
    TileConfig(64, 64, 128, 8, 4, 3),
    TileConfig(32, 64, 64, 8, 4, 4),
    TileConfig(32, 32, 128, 8, 4, 3),
]
_TC_SMALL_M = [
    TileConfig(16, 64, 128, 1, 4, 4),
    TileConfig(16, 128, 64, 1, 4, 4),
    TileConfig(32, 64, 64, 1, 4, 4),
    TileConfig(16, 32, 256, 1, 4, 3),
]
_FMA_LARGE = [
    TileConfig(128, 128, 16, 8, 8, 3),
    TileConfig(64, 128, 32, 8, 4, 3),
    TileConfig(128, 64, 32, 8, 4, 3),
    TileConfig(64, 64, 32, 8, 4, 3),
]
_FMA_MEDIUM = [
    TileConfig(64, 64, 32, 8, 4, 3),
    TileConfig(32, 64, 32, 8, 4, 3),
    TileConfig(64, 128, 16, 8, 4, 3),
    TileConfig(32, 32, 32, 8, 4, 3),
]
_FMA_SMALL_M = [
    TileConfig(16, 64, 64, 1, 4, 3),
    TileConfig(16, 128, 32, 1, 4, 3),
    TileConfig(32, 32, 64, 1, 4, 3),
]


#: Streaming multiprocessors of the default target (H100 SXM: 132); the fill rule's goal.
NUM_SMS = 132


def order_by_fill(
    table: Sequence[TileConfig], m: int, n: int, batch: int = 1, sms: int = NUM_SMS
) -> list[TileConfig]:
    """``table`` with the rule's pick first: the first tiling (in table order, i.e. preference)
    whose programs fill at least 90% of a wave on ``sms`` SMs, else the one giving the most
    programs (small problems are latency-bound: more, smaller tiles beat idle SMs).

    90%, not a full wave: on the H100 sweep (tools/bench_triton_kernels.py --sweep, batch 16
    fp16) 128 programs of 64x128 beat 256 of 64x64 by 1.5x (ResNet-50 layer-3 1x1).
    """

    def programs(c: TileConfig) -> int:
        return triton.cdiv(m, c.block_m) * triton.cdiv(n, c.block_n) * batch

    pick = next((c for c in table if 10 * programs(c) >= 9 * sms), None)
    if pick is None:
        pick = max(table, key=programs)  # max() keeps the first of equals
    return [pick, *(c for c in table if c is not pick)]


def tile_candidates(
    m: int, n: int, k: int, dtype: str, allow_tf32: bool = False, batch: int = 1
) -> list[TileConfig]:
    """Candidate tilings for ``batch`` ``m x n`` outputs with reduction ``k``; the first is the
    shape rule's pick (see :func:`order_by_fill`).

    Shape classes: ``m <= 16`` (GEMV-like: few rows, wide N tiles, deep K), ``m * n`` below
    ~128 tiles' worth of 128x128 (medium: 64-row tiles keep more programs in flight on 132
    SMs), else large.
    """
    tensor_cores = dtype != "float32" or allow_tf32
    if m <= 16:
        table = _TC_SMALL_M if tensor_cores else _FMA_SMALL_M
    elif m * n < 132 * 128 * 128:
        table = _TC_MEDIUM if tensor_cores else _FMA_MEDIUM
    else:
        table = _TC_LARGE if tensor_cores else _FMA_LARGE
    return order_by_fill(table, m, n, batch)


def dot_precision(dtype: str, allow_tf32: bool) -> str:
    """``tl.dot`` input precision: IEEE fp32 unless TF32 is allowed (ignored for fp16/bf16)."""
    return "tf32" if allow_tf32 or dtype != "float32" else "ieee"


def interpreter_upcast(dtype: str) -> bool:
    """Whether ``tl.dot`` operands must be widened to fp32 first: bf16 under the interpreter.

    Triton's CPU interpreter (3.9) multiplies bf16 blocks as their raw 16-bit patterns
    (``np.matmul`` on the integer views), so CI runs bf16 products in fp32 instead; bf16 x bf16
    products are exact in fp32, so only the summation order differs. Compiled kernels (GPU,
    cubins: the interpreter is off) keep native bf16 ``tl.dot``.
    """
    return dtype == "bfloat16" and os.environ.get("TRITON_INTERPRET") == "1"


def step_dtype(
    inputs: Sequence[TensorDesc | None], outputs: Sequence[TensorDesc], where: str
) -> str:
    """The one float dtype all of a step's tensors share, or :class:`Unsupported`."""
    dtypes = {t.dtype for t in (*inputs, *outputs) if t is not None}
    if len(dtypes) != 1 or next(iter(dtypes)) not in FLOAT_DTYPES:
        raise Unsupported(f"{where}: tensors must share one dtype of {FLOAT_DTYPES}, got {dtypes}")
    for t in (*inputs, *outputs):
        if t is not None and t.numel > INT32_LIMIT:
            raise Unsupported(f"{where}: tensor {t.shape} exceeds 2^31 elements")
    return next(iter(dtypes))


def check_params(
    iparams: Sequence[int], fparams: Sequence[float], ni: int, nf: int, where: str
) -> None:
    """Exact parameter counts, as the native kernels check them."""
    if len(iparams) != ni or len(fparams) != nf:
        raise Unsupported(
            f"{where}: expected {ni} iparams and {nf} fparams, got {len(iparams)} and {len(fparams)}"
        )


@triton.jit
def gemm_kernel(
    a_ptr, b_ptr, c_ptr, r_ptr, y_ptr,
    alpha, beta, act_alpha, act_beta,
    M: tl.constexpr, N: tl.constexpr, K: tl.constexpr,
    SAM: tl.constexpr, SAK: tl.constexpr, SBK: tl.constexpr, SBN: tl.constexpr,
    SCM: tl.constexpr, SCN: tl.constexpr,
    BS1: tl.constexpr, BS2: tl.constexpr,
    SA0: tl.constexpr, SA1: tl.constexpr, SA2: tl.constexpr,
    SB0: tl.constexpr, SB1: tl.constexpr, SB2: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, RESIDUAL_AFTER_ACT: tl.constexpr,
    ACT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):  # fmt: skip
    """One ``BLOCK_M x BLOCK_N`` tile of batch entry ``program_id(1)``."""
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_in_group = GROUP_M * num_pid_n
    first_m = (pid // num_in_group) * GROUP_M
    group_rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % num_in_group) % group_rows
    pid_n = (pid % num_in_group) // group_rows

    # Batch entry -> offsets of A and B (strides are 0 along broadcast dims).
    pid_b = tl.program_id(1).to(tl.int64)
    i2 = pid_b % BS2
    i1 = (pid_b // BS2) % BS1
    i0 = pid_b // (BS2 * BS1)
    a_ptr += i0 * SA0 + i1 * SA1 + i2 * SA2
    b_ptr += i0 * SB0 + i1 * SB1 + i2 * SB2

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    # Rows / columns past the edge wrap onto valid ones (their results are never stored), so
    # only the K edge needs a load mask. No contiguity hints: the wrap breaks contiguity, and
    # with M, N constexpr the compiler derives what holds (gcd with their power-of-2 factors).
    ra = rm % M
    rb = rn % N
    a_ptrs = a_ptr + ra[:, None] * SAM + rk[None, :] * SAK
    b_ptrs = b_ptr + rk[:, None] * SBK + rb[None, :] * SBN
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if K % BLOCK_K == 0:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            a = tl.load(a_ptrs, mask=rk[None, :] < K - k0, other=0.0)
            b = tl.load(b_ptrs, mask=rk[:, None] < K - k0, other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        a_ptrs += BLOCK_K * SAK
        b_ptrs += BLOCK_K * SBK

    acc = acc * alpha
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(c_ptr + rm[:, None] * SCM + rn[None, :] * SCN, mask=mask, other=0.0)
        bias = bias.to(tl.float32) * beta
    y_off = pid_b * (M * N) + rm[:, None] * N + rn[None, :]
    res = 0.0
    if HAS_RES:
        res = tl.load(r_ptr + y_off, mask=mask, other=0.0).to(tl.float32)
    acc = fused_epilogue(
        acc, bias, res, HAS_BIAS, HAS_RES, RESIDUAL_AFTER_ACT, ACT, act_alpha, act_beta
    )
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=mask)


def _merge_batch(
    ya: Sequence[int], yb: Sequence[int], y: Sequence[int], mk: int, kn: int
) -> tuple[list[int], list[int], list[int]]:
    """Batch dims -> merged (sizes, A strides, B strides), dims of size 1 dropped.

    ``ya``/``yb`` are A's/B's batch dims left-padded with 1 to Y's batch rank; consecutive dims
    with the same broadcast pattern merge into one (their strides are contiguous).
    """
    sizes: list[int] = []
    kinds: list[tuple[bool, bool]] = []
    for a, b, d in zip(ya, yb, y, strict=True):
        if d == 1:
            continue
        kind = (a != 1, b != 1)
        if kinds and kinds[-1] == kind:
            sizes[-1] *= d
        else:
            sizes.append(d)
            kinds.append(kind)
    # Element strides: the batch of A (B) is a contiguous stack over its non-broadcast dims.
    sa, sb = [0] * len(sizes), [0] * len(sizes)
    acc_a, acc_b = mk, kn
    for i in range(len(sizes) - 1, -1, -1):
        if kinds[i][0]:
            sa[i] = acc_a
            acc_a *= sizes[i]
        if kinds[i][1]:
            sb[i] = acc_b
            acc_b *= sizes[i]
    return sizes, sa, sb


def plan_gemm(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    config: TileConfig | None = None,
    allow_tf32: bool = False,
) -> TritonLaunch:
    """Plan of ``gemm_f32`` (see the module docstring); ``config`` overrides the shape rule."""
    where = "gemm_f32"
    check_params(iparams, fparams, 4, 4, where)
    if len(inputs) < 2 or len(inputs) > 4 or inputs[0] is None or inputs[1] is None:
        raise Unsupported(f"{where}: needs A and B, and at most C and R")
    if len(outputs) != 1:
        raise Unsupported(f"{where}: one output Y")
    dtype = step_dtype(inputs, outputs, where)
    ta, tb, act, rafter = (int(v) for v in iparams)
    if ta not in (0, 1) or tb not in (0, 1) or rafter not in (0, 1):
        raise Unsupported(f"{where}: trans_a, trans_b and residual_after_act must be 0 or 1")
    act = check_act(act, where)
    a, b, y = inputs[0].shape, inputs[1].shape, outputs[0].shape
    c = inputs[2] if len(inputs) > 2 else None
    r = inputs[3] if len(inputs) > 3 else None
    if len(a) < 2 or len(b) < 2 or len(y) < 2:
        raise Unsupported(f"{where}: A, B and Y need rank >= 2")
    m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if tb else (b[-2], b[-1])
    if k != kb:
        raise Unsupported(
            f"{where}: inner dimensions differ: A {a} (trans_a={ta}), B {b} (trans_b={tb})"
        )
    nb = len(y) - 2
    if y[-2:] != (m, n) or len(a) - 2 > nb or len(b) - 2 > nb:
        raise Unsupported(f"{where}: output Y {y} does not match A {a} @ B {b}")
    ya = (1,) * (nb - len(a) + 2) + tuple(a[:-2])
    yb = (1,) * (nb - len(b) + 2) + tuple(b[:-2])
    for da, db, d in zip(ya, yb, y[:-2], strict=True):
        if da not in (1, d) or db not in (1, d):
            raise Unsupported(f"{where}: batch dimensions do not broadcast: A {a}, B {b} -> Y {y}")
    if outputs[0].numel == 0:
        raise Unsupported(f"{where}: empty output {y}")
    scm = scn = 0
    if c is not None:
        if len(c.shape) > 2 or c.numel == 0:
            raise Unsupported(f"{where}: bias C {c.shape} is not broadcastable to [{m}, {n}]")
        c0 = c.shape[0] if len(c.shape) == 2 else 1
        c1 = c.shape[-1] if len(c.shape) >= 1 else 1
        if c0 not in (1, m) or c1 not in (1, n):
            raise Unsupported(f"{where}: bias C {c.shape} is not broadcastable to [{m}, {n}]")
        scm = 0 if c0 == 1 else c1
        scn = 0 if c1 == 1 else 1
    if r is not None and r.shape != y:
        raise Unsupported(f"{where}: residual R {r.shape} must have Y's shape {y}")

    sizes, sa, sb = _merge_batch(ya, yb, y[:-2], m * k, k * n)
    if len(sizes) > 3:
        raise Unsupported(f"{where}: more than 3 alternating broadcast batch dims: A {a}, B {b}")
    batch = 1
    for s in sizes:
        batch *= s
    rows = m
    b_shared = all(s == 0 for s in sb)
    a_full = all(s != 0 for s in sa)
    if batch > 1 and b_shared and a_full and not ta and scm == 0:
        rows, batch, sizes, sa, sb = m * batch, 1, [], [], []
    sizes = [1] * (3 - len(sizes)) + sizes
    sa = [0] * (3 - len(sa)) + sa
    sb = [0] * (3 - len(sb)) + sb
    if batch >= 2**16:
        raise Unsupported(f"{where}: {batch} batch entries exceed the grid's 65535")

    cfg = (
        config
        or known_tile(where, inputs, outputs, iparams)
        or tile_candidates(rows, n, k, dtype, allow_tf32, batch)[0]
    )
    grid_m, grid_n = triton.cdiv(rows, cfg.block_m), triton.cdiv(n, cfg.block_n)
    return TritonLaunch(
        name="triton.gemm_bias_act",
        kernel=gemm_kernel,
        args={
            "a_ptr": In(0),
            "b_ptr": In(1),
            "c_ptr": In(2) if c is not None else NULL,
            "r_ptr": In(3) if r is not None else NULL,
            "y_ptr": Out(0),
            "alpha": F32(fparams[0]),
            "beta": F32(fparams[1]),
            "act_alpha": F32(fparams[2]),
            "act_beta": F32(fparams[3]),
        },
        constexprs={
            "M": rows,
            "N": n,
            "K": k,
            "SAM": 1 if ta else k,
            "SAK": m if ta else 1,
            "SBK": 1 if tb else n,
            "SBN": k if tb else 1,
            "SCM": scm,
            "SCN": scn,
            "BS1": sizes[1],
            "BS2": sizes[2],
            "SA0": sa[0],
            "SA1": sa[1],
            "SA2": sa[2],
            "SB0": sb[0],
            "SB1": sb[1],
            "SB2": sb[2],
            "HAS_BIAS": c is not None,
            "HAS_RES": r is not None,
            "RESIDUAL_AFTER_ACT": bool(rafter),
            "ACT": act,
            "DOT_PRECISION": dot_precision(dtype, allow_tf32),
            "UPCAST": interpreter_upcast(dtype),
            "BLOCK_M": cfg.block_m,
            "BLOCK_N": cfg.block_n,
            "BLOCK_K": cfg.block_k,
            "GROUP_M": cfg.group_m,
        },
        grid=(grid_m * grid_n, batch, 1),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        tactic=cfg.key(),
    )


def gemm_candidates(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    allow_tf32: bool = False,
) -> list[TileConfig]:
    """The tilings a tactic step may time for this step (first = the shape rule's pick)."""
    launch = plan_gemm(inputs, outputs, iparams, fparams, allow_tf32=allow_tf32)
    c = launch.constexprs
    return tile_candidates(c["M"], c["N"], c["K"], outputs[0].dtype, allow_tf32, launch.grid[1])


def known_tile(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
) -> TileConfig | None:
    """The known-tactics table's tiling for this step (``known_tactics.py``), or None."""
    name = known_config(entry, inputs, outputs, iparams)
    return None if name is None else TileConfig.from_key(name)


#: Alternatives a tuning module carries per step at most (besides the default launch).
MAX_ALTERNATIVES = 4


def alternative_tiles(default: TileConfig, candidates: Sequence[TileConfig]) -> list[TileConfig]:
    """What to time against ``default``: the next three candidates of the shape class (the rule's
    pick first, if the default came from the known table) and the default with one more
    software-pipelining stage (one fewer from 4 up)."""
    picks = [c for c in candidates if c != default][: MAX_ALTERNATIVES - 1]
    stages = default.num_stages + 1 if default.num_stages < 4 else default.num_stages - 1
    deeper = replace(default, num_stages=stages)
    if deeper not in picks:
        picks.append(deeper)
    return picks


def launch_tile(launch: TritonLaunch, m: str = "BLOCK_M", n: str = "BLOCK_N",
                group: str = "GROUP_M") -> TileConfig:  # fmt: skip
    """The tiling a GEMM-shaped launch was planned with."""
    c = launch.constexprs
    return TileConfig(c[m], c[n], c["BLOCK_K"], c[group], launch.num_warps, launch.num_stages)


def plan_gemm_alternatives(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
    *,
    allow_tf32: bool = False,
) -> list[TritonLaunch]:
    """Tactic candidates of ``gemm_f32`` besides :func:`plan_gemm`'s default launch."""
    default = plan_gemm(inputs, outputs, iparams, fparams, allow_tf32=allow_tf32)
    c = default.constexprs
    candidates = tile_candidates(
        c["M"], c["N"], c["K"], outputs[0].dtype, allow_tf32, default.grid[1]
    )
    return [
        plan_gemm(inputs, outputs, iparams, fparams, config=cfg, allow_tf32=allow_tf32)
        for cfg in alternative_tiles(launch_tile(default), candidates)
    ]


register_plan("gemm_f32", plan_gemm)
register_alternatives("gemm_f32", plan_gemm_alternatives)
