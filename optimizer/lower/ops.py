"""Op tables the lowering stage decides by: what anchors a fusion, what is elementwise,
which activations an epilogue can apply, and which ops may write over their input.

They are data on purpose: the kernel registry can narrow them (``PartitionOptions``) to what
its kernels implement, and adding an op is one line here.
"""

from __future__ import annotations

# Ops whose output an epilogue (bias, residual add, activation) can be fused onto, by the
# lower-case name used in pattern names.
ANCHOR_OPS: dict[str, str] = {"Conv": "conv", "Gemm": "gemm", "MatMul": "matmul"}
# Inputs of each anchor op, optional ones included (an epilogue group lists them all).
ANCHOR_ARITY: dict[str, int] = {"Conv": 3, "Gemm": 3, "MatMul": 2}

# Activations an epilogue applies, by pattern name. Clip fuses only with constant bounds (the
# kernel reads them at build time); SiLU is the two-node x * Sigmoid(x) and has no op.
EPILOGUE_ACTIVATIONS: dict[str, str] = {
    "Relu": "relu",
    "Clip": "clip",
    "Sigmoid": "sigmoid",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "Gelu": "gelu",
    "LeakyRelu": "leakyrelu",
    "Tanh": "tanh",
}
SILU = "silu"

# Ops computing out[i] from the inputs' (broadcast) elements at i alone: safe to fuse into one
# loop over the output, and to run in place over an input of the output's shape.
ELEMENTWISE_OPS: frozenset[str] = frozenset(
    {
        # unary
        "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu",
        "Clip", "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
        "HardSwish", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not",
        "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
        "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
        # binary and variadic, with broadcasting
        "Add", "And", "BitShift", "Div", "Equal", "Greater", "GreaterOrEqual", "Less",
        "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "PRelu", "Sub", "Sum",
        "Where", "Xor",
    }
)  # fmt: skip

# Ops that only reinterpret their input's bytes: the output may share the input's block (the
# kernel then copies a buffer onto itself, which it must recognise and skip).
VIEW_OPS: frozenset[str] = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def is_elementwise(op: str) -> bool:
    return op in ELEMENTWISE_OPS
