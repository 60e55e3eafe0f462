"""Named pipelines (``-O0``, ``-O1``, ``-O2``): readable lists, each entry saying why it is there.

Fixed points only through :class:`FixedPoint`, always capped. ``infer_shapes`` is an
annotation (never counts as a change), re-run where later passes need fresh shapes.
"""

from __future__ import annotations

from optimizer.passes.base import Pass
from optimizer.passes.collapse_reshape_chains import CollapseReshapeChains
from optimizer.passes.drop_zero_rnn_states import DropZeroRnnStates
from optimizer.passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from optimizer.passes.eliminate_dead_code import EliminateDeadCode
from optimizer.passes.eliminate_noops import EliminateNoops
from optimizer.passes.fold_affine_into_conv import FoldAffineIntoConv
from optimizer.passes.fold_batchnorm import FoldBatchnorm
from optimizer.passes.fold_constants import FoldConstants
from optimizer.passes.fold_pad_into_conv import FoldPadIntoConv
from optimizer.passes.fold_reshape_into_reduce import FoldReshapeIntoReduce
from optimizer.passes.fuse_matmul_add_into_gemm import FuseMatmulAddIntoGemm
from optimizer.passes.infer_shapes import InferShapes
from optimizer.passes.inline_constant_if import InlineConstantIf
from optimizer.passes.lift_constant_nodes import LiftConstantNodes
from optimizer.passes.manager import FixedPoint, PipelineEntry
from optimizer.passes.merge_duplicate_initializers import MergeDuplicateInitializers
from optimizer.passes.optimize_transposes import OptimizeTransposes
from optimizer.passes.recognize_activations import RecognizeActivations
from optimizer.passes.recognize_layer_norm import RecognizeLayerNorm
from optimizer.passes.reshape_copy_dims import ReshapeCopyDims


def o0() -> list[PipelineEntry]:
    """No rewriting: load, check, save (useful to validate and re-serialize a model)."""
    return [InferShapes()]


def _cleanup_round() -> list[Pass]:
    return [
        InferShapes(),  # fresh shapes: folding and no-op checks read them
        FoldConstants(),  # after shape inference: Shape of a static tensor becomes constant
        ReshapeCopyDims(),  # after folding: what stays dynamic in a Reshape target may be a 0
        DropZeroRnnStates(),  # before dead code: zero LSTM/GRU states built from Shape ops
        EliminateNoops(),  # folding exposes x*1, Reshape-to-same-shape, ...
        CollapseReshapeChains(),  # after no-ops: chains are shorter and constant
        EliminateDeadCode(),  # drop what folding and bypassing orphaned
    ]


def o1() -> list[PipelineEntry]:
    """Cleanup: folding, dead code, no-ops, duplicates. Never changes which ops compute what."""
    return [
        LiftConstantNodes(),  # first: every later pass sees weights as plain constants
        MergeDuplicateInitializers(),  # before CSE: equal weights make equal nodes detectable
        FixedPoint(InlineConstantIf(), *_cleanup_round(), EliminateCommonSubexpressions()),
    ]


def o2() -> list[PipelineEntry]:
    """Cleanup, then fusions that fold work into fewer, standard ops."""
    return [
        *o1(),
        FixedPoint(
            InferShapes(),  # the fusions below check ranks, shapes and dtypes
            FoldBatchnorm(),  # Conv/ConvTranspose/Gemm + BatchNormalization
            FoldPadIntoConv(),  # before affine folding: a Pad sits between Conv and pad
            FoldAffineIntoConv(),  # after BN folding: constant Mul/Add left after it
            FuseMatmulAddIntoGemm(),  # 2-D MatMul + bias
            FoldReshapeIntoReduce(),  # mean(keepdim=True).view(n, -1) -> keepdims=0
            RecognizeActivations(),  # HardSigmoid/HardSwish/Gelu where the opset has them
            RecognizeLayerNorm(),  # decomposed LayerNorm at opset >= 17
            OptimizeTransposes(),  # cancel/merge transposes, sinking through elementwise ops
            *_cleanup_round(),  # fusions leave constants to fold and nodes to drop
            EliminateCommonSubexpressions(),
            MergeDuplicateInitializers(),
        ),
    ]


PIPELINES = {"O0": o0, "O1": o1, "O2": o2}


def build(level: str) -> list[PipelineEntry]:
    """The pipeline for a level name (``O0``, ``O1``, ``O2``)."""
    return PIPELINES[level]()


def all_passes() -> list[Pass]:
    """Every pass of the richest pipeline, once each, in first-use order."""
    seen: dict[str, Pass] = {}
    for entry in o2():
        group = entry.passes if isinstance(entry, FixedPoint) else (entry,)
        for p in group:
            seen.setdefault(p.name, p)
    return list(seen.values())
