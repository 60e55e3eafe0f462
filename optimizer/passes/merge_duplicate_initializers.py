"""Identical initializers stored once."""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections import Counter
from collections.abc import Hashable

import numpy as np

from optimizer import ir
from optimizer.ir import Model
from optimizer.passes.base import Pass, PassContext, PassResult, result

log = logging.getLogger(__name__)


# Digests of large arrays, by array identity: pipelines run this pass (and CSE, which uses the
# same keys) every fixed-point round, and re-hashing gigabytes of weights each time dominated
# the run on big models. A stale entry could only cost a missed merge: merging always compares
# the bytes in full first (``same_array``).
_DIGESTS: dict[int, tuple[weakref.ref, Hashable]] = {}
_CACHE_FROM_BYTES = 1 << 16


def array_key(array: np.ndarray) -> Hashable:
    """A hashable identity of an array's dtype, shape and bytes (a digest of the bytes)."""
    if array.dtype.hasobject:  # strings: compare the values themselves
        return ("strings", array.shape, tuple(array.reshape(-1).tolist()))
    cached = _DIGESTS.get(id(array)) if array.nbytes >= _CACHE_FROM_BYTES else None
    if cached is not None and cached[0]() is array:
        return cached[1]
    digest = hashlib.blake2b(_bytes_view(array), digest_size=16).digest()
    key = ("array", array.dtype.str, array.shape, digest)
    if array.nbytes >= _CACHE_FROM_BYTES:
        ident = id(array)
        _DIGESTS[ident] = (weakref.ref(array, lambda _, k=ident: _DIGESTS.pop(k, None)), key)
    return key


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so -0.0 != 0.0 and NaN payloads count, unlike ==)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.hasobject:
        return a.tolist() == b.tolist()
    return a is b or np.array_equal(_bytes_view(a), _bytes_view(b))


def _kind(array: np.ndarray) -> tuple[str, tuple[int, ...]]:
    return array.dtype.str, array.shape


def _bytes_view(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


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
        ordered: list[ir.Constant] = []
        seen: set[int] = set()
        for _, node in ir.iter_nodes(model.graph):
            for value in node.inputs:
                if ir.is_constant(value) and id(value) not in seen and id(value) not in interface:
                    seen.add(id(value))
                    ordered.append(value)
        # Only constants sharing dtype and shape with another can be duplicates: hash just those
        # (most big weights have a shape of their own and are never read here).
        by_kind = Counter(_kind(ir.const_value(v)) for v in ordered)
        groups: dict[Hashable, list[ir.Constant]] = {}
        for value in ordered:
            array = ir.const_value(value)
            if by_kind[_kind(array)] < 2:
                continue
            candidates = groups.setdefault(array_key(array), [])
            keep = next((c for c in candidates if same_array(ir.const_value(c), array)), None)
            if keep is None:
                candidates.append(value)
                continue
            log.debug("initializer %s merged into %s", value.name, keep.name)
            ir.replace_all_uses(model.graph, value, keep)
            stats["duplicate initializer merged"] += 1
        return result(model, stats)
