"""Identical initializers stored once."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Hashable

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)


def array_key(array: np.ndarray) -> Hashable:
    """A hashable identity of an array's dtype, shape and bytes (a digest of the bytes)."""
    if array.dtype.hasobject:  # strings: compare the values themselves
        return ("strings", array.shape, tuple(array.reshape(-1).tolist()))
    data = np.ascontiguousarray(array)
    digest = hashlib.blake2b(data.reshape(-1).view(np.uint8), digest_size=16).digest()
    return ("array", array.dtype.str, array.shape, digest)


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so -0.0 != 0.0 and NaN payloads count, unlike ==)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.hasobject:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


class MergeDuplicateInitializers(Pass):
    """Makes every reader of an initializer read the first one with the same dtype, shape, bytes.

    Initializers are grouped by a digest of their bytes and compared in full before merging,
    so a digest collision never merges different tensors. Merging works across If/Loop/Scan
    bodies: a subgraph may read any initializer of an enclosing scope, and the exporter
    writes an initializer into every graph that reads it. Same bytes with a different dtype
    or shape never merge.

    Refuses: initializers that are graph inputs (overridable at run time) or graph outputs
    of any graph (their names are interface).
    """

    name = "merge_duplicate_initializers"
    summary = "store identical initializers once"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        stats: Counter[str] = Counter()
        interface: set[int] = set()
        for graph in ir.iter_graphs(model.graph):
            interface.update(id(v) for v in [*graph.inputs, *graph.outputs])
        groups: dict[Hashable, list[ir.Constant]] = {}
        handled: dict[int, ir.Value] = {}  # values kept alive so ids stay unique
        for _, node in ir.iter_nodes(model.graph):
            for value in node.inputs:
                if not ir.is_constant(value) or id(value) in handled or id(value) in interface:
                    continue
                handled[id(value)] = value
                array = ir.const_value(value)
                candidates = groups.setdefault(array_key(array), [])
                keep = next((c for c in candidates if same_array(ir.const_value(c), array)), None)
                if keep is None:
                    candidates.append(value)
                    continue
                log.debug("initializer %s merged into %s", value.name, keep.name)
                ir.replace_all_uses(model.graph, value, keep)
                stats["duplicate initializer merged"] += 1
        return result(model, stats)
