"""Facts about ONNX ops that several passes need."""

from __future__ import annotations

# Ops whose two calls give different results: never folded, never merged.
RANDOM_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)
