"""NumPy reference kernels: the test oracle and the fallback of every supported op.

Each family module registers its kernels (``reference.<op>``) when imported; importing this
package registers them all. Compute functions take ``(inputs, attrs, opset)`` and return the
list of outputs; attribute defaults follow the ONNX spec at the given opset.
"""

from __future__ import annotations

from optimizer.kernels.reference import (  # noqa: F401 - imported to register their kernels
    binary,
    conv,
    indexing,
    layout,
    linalg,
    normalization,
    pool,
    reduce,
    resize,
    rnn,
    shape_ops,
    unary,
)
