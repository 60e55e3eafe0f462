"""Proto-level export for compiled modules: graph.onnx whose weights point into weights.bin.

A module stores each constant once, in weights.bin (raw little-endian bytes, C order: the
layout of an ONNX tensor's ``raw_data``). graph.onnx refers to those bytes as ONNX external
data (location, offset, length) instead of holding a second copy, so ``onnx.load`` and
onnxruntime read it as an ordinary model with external data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import onnx

from optimizer.ir.model import Model


def save_with_external_weights(
    model: Model,
    path: str | os.PathLike[str],
    location: str,
    ranges: Mapping[str, tuple[int, int]],
    min_external_bytes: int = 1024,
) -> None:
    """Writes the model to ``path`` with some top-level initializers stored externally.

    Args:
        model: The model (not modified).
        path: The .onnx file to write (its directory must exist; written directly, the
            caller provides atomicity).
        location: The external file, relative to ``path``'s directory (``weights.bin``).
        ranges: Initializer name -> (offset, length) of its raw bytes in ``location``.
            Initializers not listed stay inside the file.
        min_external_bytes: Smaller initializers stay inside too: shape inference (ONNX's,
            onnxruntime's) needs the values of shape-like tensors in the file itself.
    """
    proto = model.to_proto()
    for i, tensor in enumerate(proto.graph.initializer):
        if tensor.name not in ranges:
            continue
        offset, length = ranges[tensor.name]
        if length < min_external_bytes:
            continue
        stub = onnx.TensorProto()
        stub.name = tensor.name
        stub.data_type = tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            entry = stub.external_data.add()
            entry.key = key
            entry.value = str(value)
        proto.graph.initializer[i].CopyFrom(stub)
    Path(path).write_bytes(proto.SerializeToString())
