"""A Triton kernel compiled ahead of time into a cubin (no GPU needed to compile), with the
launch metadata a cuda module's manifest needs: the entry symbol, num_warps, dynamic shared
memory and the parameter list read from the PTX entry, Triton's hidden trailing pointers
(global / profile scratch) included."""

from __future__ import annotations

import re
from dataclasses import dataclass

import triton
import triton.language as tl


@triton.jit
def axpb_kernel(x_ptr, b_ptr, y_ptr, n, alpha, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    x = tl.load(x_ptr + i, mask=mask)
    b = tl.load(b_ptr + i, mask=mask)
    tl.store(y_ptr + i, alpha * x + b, mask=mask)


@dataclass(frozen=True)
class Cubin:
    data: bytes
    entry: str
    params: list[str]
    num_warps: int
    shared: int


_PTX_TYPES = {".u32": "i32", ".s32": "i32", ".u64": "i64", ".s64": "i64", ".f32": "f32"}


def ptx_params(ptx: str, entry: str) -> list[str]:
    """The launch param types of ``entry`` from its PTX ``.entry`` declaration."""
    match = re.search(rf"\.entry\s+{re.escape(entry)}\s*\((.*?)\)", ptx, re.S)
    if match is None:
        raise ValueError(f"no .entry {entry} in the PTX")
    params = []
    for line in match.group(1).split(","):
        words = line.split()
        if not words:
            continue
        if ".ptr" in words:
            params.append("ptr")
        else:
            params.append(_PTX_TYPES[words[1]])
    return params


def axpb_cubin(block: int = 128, num_warps: int = 4, arch: int = 90) -> Cubin:
    """``y = alpha * x + b`` over ``n`` float32 elements, one program per ``block``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(
        fn=axpb_kernel,
        signature={
            "x_ptr": "*fp32",
            "b_ptr": "*fp32",
            "y_ptr": "*fp32",
            "n": "i32",
            "alpha": "fp32",
            "BLOCK": "constexpr",
        },
        constexprs={"BLOCK": block},
    )
    compiled = triton.compile(
        source, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps}
    )
    md = compiled.metadata
    return Cubin(
        data=compiled.asm["cubin"],
        entry=md.name,
        params=ptx_params(compiled.asm["ptx"], md.name),
        num_warps=md.num_warps,
        shared=md.shared,
    )
