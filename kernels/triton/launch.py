"""How a Triton kernel is launched for one plan step: the contract between kernels and lowering.

Every Triton kernel in this package is the GPU twin of a native CPU kernel: it implements the
same plan-step contract (inputs, outputs, ``iparams``, ``fparams``) documented in
``kernels/native/params.md`` under the native entry's name (``conv2d_packed_f32``,
``softmax_f32``, ...), for float32, float16 and bfloat16 tensors (fp32 accumulation). A kernel
file registers a *plan function* for each entry it implements::

    register_plan("softmax_f32", plan_softmax)

A plan function is pure: from the step's tensor descriptions and parameters it returns a
:class:`TritonLaunch` (the ``@triton.jit`` function, its runtime arguments as references to the
step's tensors or scalar values, its compile-time constants, the grid and the launch options),
or raises :class:`Unsupported` with a reason. The same launch is what tests run (through
:func:`launch_torch`, on a GPU or on the CPU under ``TRITON_INTERPRET=1``) and what the
ahead-of-time compiler turns into a cubin with launch metadata, so what is tested is what ships.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Argument kinds: a step tensor's data pointer (``in`` / ``out`` with its index in the step's
#: inputs / outputs), a scalar (``i32`` / ``i64`` / ``f32``), a pointer the kernel never
#: dereferences (``null``: an omitted optional input behind a constexpr flag; the runtime passes
#: NULL, :func:`launch_torch` passes the first output) or the step's workspace (``workspace``).
ARG_KINDS = ("in", "out", "i32", "i64", "f32", "null", "workspace")

#: NumPy dtype name -> Triton pointer element type.
TRITON_TYPES = {
    "float32": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
    "float64": "fp64",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "bool": "i1",
}

FLOAT_DTYPES = ("float32", "float16", "bfloat16")


class Unsupported(Exception):
    """A plan function cannot run this step; the message says why, in a few words."""


@dataclass(frozen=True)
class TensorDesc:
    """A step tensor as plan functions see it: static shape and NumPy dtype name."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Arg:
    """One runtime argument of a kernel (see :data:`ARG_KINDS`)."""

    kind: str
    value: int | float = 0

    def __post_init__(self) -> None:
        if self.kind not in ARG_KINDS:
            raise ValueError(f"unknown argument kind {self.kind!r}")


def In(index: int) -> Arg:
    """The data pointer of the step's input ``index``."""
    return Arg("in", index)


def Out(index: int) -> Arg:
    """The data pointer of the step's output ``index``."""
    return Arg("out", index)


def I32(value: int) -> Arg:
    """A 32-bit integer scalar."""
    if not -(2**31) <= int(value) < 2**31:
        raise Unsupported(f"scalar {value} does not fit int32")
    return Arg("i32", int(value))


def I64(value: int) -> Arg:
    """A 64-bit integer scalar."""
    return Arg("i64", int(value))


def F32(value: float) -> Arg:
    """A 32-bit float scalar."""
    return Arg("f32", float(value))


NULL = Arg("null")
WORKSPACE = Arg("workspace")


@dataclass
class TritonLaunch:
    """One kernel launch of one plan step.

    Attributes:
        name: Registry-style kernel name, ``triton.<op>_<variant>`` (e.g. ``triton.conv2d_igemm``).
        kernel: The ``@triton.jit`` function.
        args: The kernel's runtime (non-constexpr) parameters, by parameter name, in the order
            of the function's signature.
        constexprs: Every ``tl.constexpr`` parameter's value, by name.
        grid: Program counts along x, y, z (each >= 1).
        num_warps: Warps per program.
        num_stages: Software-pipelining stages (GPU only).
        workspace: Device scratch bytes the step needs (``WORKSPACE`` points at it).
        zeroed_base: For kernels that need their workspace zero when they start and leave it
            zero when they end (split-K partial sums and tile counters): the name of the
            ``I64`` argument that receives the byte offset of the step's region inside the
            module's workspace. The CUDA lowering places such regions after every scratch
            region (which other steps may leave dirty) and sets the argument; the runtime zeroes
            the workspace once at load. Empty for ordinary scratch (offset 0).
        tactic: Short name of the launch configuration (``m64n128k32g8w4s3``) for tactic
            tables and logs; empty for kernels without alternatives.
    """

    name: str
    kernel: Any
    args: dict[str, Arg]
    constexprs: dict[str, Any] = field(default_factory=dict)
    grid: tuple[int, int, int] = (1, 1, 1)
    num_warps: int = 4
    num_stages: int = 2
    workspace: int = 0
    zeroed_base: str = ""
    tactic: str = ""

    def __post_init__(self) -> None:
        grid = tuple(int(g) for g in self.grid) + (1,) * (3 - len(self.grid))
        if len(grid) != 3 or any(g < 1 for g in grid):
            raise ValueError(f"{self.name}: grid {self.grid} must be 1 to 3 positive counts")
        if grid[0] >= 2**31 or grid[1] >= 2**16 or grid[2] >= 2**16:
            raise Unsupported(f"{self.name}: grid {grid} exceeds CUDA's limits")
        self.grid = grid

    def signature(
        self, inputs: Sequence[TensorDesc | None], outputs: Sequence[TensorDesc]
    ) -> dict[str, str]:
        """Triton signature of the runtime parameters (``*fp32``, ``i32``, ...), in order."""
        sig: dict[str, str] = {}
        for name, arg in self.args.items():
            if arg.kind in ("in", "out"):
                desc = (inputs if arg.kind == "in" else outputs)[int(arg.value)]
                if desc is None:
                    raise ValueError(f"{self.name}: {name} refers to an omitted input")
                sig[name] = "*" + TRITON_TYPES[desc.dtype]
            elif arg.kind == "null":
                sig[name] = "*" + TRITON_TYPES[outputs[0].dtype]
            elif arg.kind == "workspace":
                sig[name] = "*u8"
            else:
                sig[name] = {"i32": "i32", "i64": "i64", "f32": "fp32"}[arg.kind]
        return sig


#: ``(inputs, outputs, iparams, fparams) -> TritonLaunch``; inputs are ``None`` where omitted.
PlanFn = Callable[
    [Sequence[TensorDesc | None], Sequence[TensorDesc], Sequence[int], Sequence[float]],
    TritonLaunch,
]

_PLANS: dict[str, PlanFn] = {}
_ALTERNATIVES: dict[str, PlanFn] = {}  # returning list[TritonLaunch]


def register_plan(entry: str, fn: PlanFn) -> PlanFn:
    """Registers ``fn`` as the Triton implementation of the native entry ``entry``."""
    if entry in _PLANS and _PLANS[entry] is not fn:
        raise ValueError(f"a Triton plan for {entry!r} is already registered")
    _PLANS[entry] = fn
    return fn


def plan_for(entry: str) -> PlanFn | None:
    """The registered plan function for a native entry name, or None."""
    return _PLANS.get(entry)


def register_alternatives(entry: str, fn: Callable[..., list[TritonLaunch]]) -> Callable:
    """Registers ``fn`` as the tactic candidates of ``entry``'s plan: same signature as the plan
    function, returning the *other* launches worth timing on a GPU (other tilings, warps,
    stages; same inputs, outputs and results), possibly none. ``optimize --target cuda --tune``
    compiles them next to the default launch; the runtime times them at load
    (``load(..., tune=True)``) and keeps the fastest (docs/module-format.md, "tactics")."""
    if entry in _ALTERNATIVES and _ALTERNATIVES[entry] is not fn:
        raise ValueError(f"Triton alternatives for {entry!r} are already registered")
    _ALTERNATIVES[entry] = fn
    return fn


def alternatives_for(entry: str) -> Callable[..., list[TritonLaunch]] | None:
    """The registered alternatives function of a native entry, or None (not tunable)."""
    return _ALTERNATIVES.get(entry)


def registered_entries() -> list[str]:
    """Native entry names that have a Triton implementation."""
    return sorted(_PLANS)


def launch_torch(
    launch: TritonLaunch,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    workspace: Any = None,
) -> None:
    """Runs ``launch`` on torch tensors through Triton's own launcher.

    On a GPU the tensors are CUDA tensors; on the CPU set ``TRITON_INTERPRET=1`` before importing
    triton and pass CPU tensors (how CI tests every kernel).
    """
    values = []
    for name, arg in launch.args.items():
        if arg.kind == "in":
            t = inputs[int(arg.value)]
            if t is None:
                raise ValueError(f"{launch.name}: {name} refers to an omitted input")
            values.append(t)
        elif arg.kind == "out":
            values.append(outputs[int(arg.value)])
        elif arg.kind == "null":
            values.append(outputs[0])
        elif arg.kind == "workspace":
            if workspace is None:
                raise ValueError(f"{launch.name}: needs a workspace of {launch.workspace} bytes")
            values.append(workspace)
        else:
            values.append(arg.value)
    launch.kernel[launch.grid](
        *values, **launch.constexprs, num_warps=launch.num_warps, num_stages=launch.num_stages
    )
