"""``cast``: element type conversion, for the precision boundary of CUDA modules.

A module compiled with ``--precision fp16`` or ``bf16`` stores float weights and activations
in that type while its inputs and outputs keep the model's types; the lowering inserts a
``cast`` step after each float input and before each float output. There is no native CPU
twin: the entry is the CUDA lowering's own.

Contract (as a params.md row): ``cast | X[...] (float32, float16 or bfloat16) | Y (X's element
count; float32, float16 or bfloat16) | - | - | 0 | no``. Conversion rounds to nearest even.
"""

from __future__ import annotations

from collections.abc import Sequence

import triton
import triton.language as tl
from optimizer.kernels.triton.launch import (
    FLOAT_DTYPES,
    I32,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
    register_plan,
)

ENTRY = "cast"
BLOCK = 1024


@triton.jit
def cast_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, x.to(y_ptr.dtype.element_ty), mask=mask)


def plan_cast(
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
    fparams: Sequence[float],
) -> TritonLaunch:
    """One program per ``BLOCK`` elements; X and Y have the same element count."""
    if len(inputs) != 1 or inputs[0] is None or len(outputs) != 1:
        raise Unsupported("cast takes one input and one output")
    if iparams or fparams:
        raise Unsupported("cast takes no parameters")
    x, y = inputs[0], outputs[0]
    for desc in (x, y):
        if desc.dtype not in FLOAT_DTYPES:
            raise Unsupported(f"cast: {desc.dtype} is not one of {', '.join(FLOAT_DTYPES)}")
    if x.numel != y.numel:
        raise Unsupported(f"cast: {x.numel} elements in, {y.numel} out")
    n = max(x.numel, 1)
    return TritonLaunch(
        name="triton.cast",
        kernel=cast_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "n": I32(x.numel)},
        constexprs={"BLOCK": BLOCK},
        grid=(triton.cdiv(n, BLOCK),),
        num_warps=4,
    )


register_plan(ENTRY, plan_cast)
