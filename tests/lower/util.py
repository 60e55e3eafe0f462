"""Small builders shared by the lowering tests."""

from __future__ import annotations

import onnx

from optimizer import ir


def to_model(proto: onnx.ModelProto) -> ir.Model:
    """An IR model with inferred shapes, as the optimizer hands it to lowering."""
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    ir.infer_shapes(model)
    return model
