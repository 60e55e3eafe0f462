"""Shape and type inference with symbolic dimensions."""

from __future__ import annotations

from collections import Counter

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult


class InferShapes(Pass):
    """Annotates every value with its dtype and (symbolic) shape.

    Uses ONNX shape inference with data propagation, so shapes computed by Shape -> Gather ->
    Concat subgraphs become known and later passes (folding, no-op removal) can use them.
    Annotation is not a graph change: the result always reports ``modified=False``.
    """

    name = "infer_shapes"
    summary = "infer dtypes and symbolic shapes of every value (annotation only)"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        ir.infer_shapes(model)
        return PassResult(model, False, Counter())
