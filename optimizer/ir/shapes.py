"""Shape and type inference, shape pinning, opset conversion and single-node evaluation.

Inference runs ONNX's own shape inference with data propagation (so Shape -> Gather ->
Concat chains yield known shapes), on a copy of the model in which large initializers are
replaced by typed graph inputs: the weights never get serialized, and models over 2 GiB work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import shape_inference

from optimizer.errors import UnsupportedModelError, UsageError
from optimizer.ir.graph import iter_graphs
from optimizer.ir.model import Model, iter_graph_protos

log = logging.getLogger(__name__)

# Initializers above this many elements are stripped before inference (their values are
# never needed to infer shapes; small ones are kept for data propagation).
_KEEP_FOR_INFERENCE = 1024


def infer_shapes(model: Model, reset: bool = True) -> int:
    """Infers dtypes and (symbolic) shapes of every value, in place.

    Args:
        model: The model; its graph's values get ``dtype`` and ``shape`` set.
        reset: Forget previously recorded shapes of intermediate values first (they may be
            stale after rewrites).

    Returns:
        Number of intermediate values whose shape is fully known afterwards.
    """
    graphs = list(iter_graphs(model.graph))
    if reset:
        for g in graphs:
            interface = {id(v) for v in g.inputs} | {id(v) for v in g.outputs}
            for node in g.nodes:
                for out in node.outputs:
                    if id(out) not in interface and isinstance(out, gs.Variable):
                        out.shape = None
                        out.dtype = None
    proto = _inference_proto(model)
    known = _onnx_inference(proto)
    # Symbolic inference is slow (sympy), so its results are kept per value name: rewrites
    # preserve semantics, so a value's shape never changes while the pipeline runs. It runs
    # again only when a value it has not seen is still not fully known.
    cache = model.symbolic_shapes
    _merge(known, cache)
    unknown = [
        out.name
        for g in graphs
        for node in g.nodes
        for out in node.outputs
        if out.name
        and out.name not in cache
        and _score(known.get(out.name, (0, None))[1]) < _full(known.get(out.name, (0, None))[1])
    ]
    if not cache or unknown:
        fresh = _symbolic_inference(proto)
        cache.update(fresh)
        _merge(known, fresh)
        log.debug("symbolic shape inference ran (%d values new or unknown)", len(unknown))
    resolved = 0
    for g in graphs:
        for node in g.nodes:
            for out in node.outputs:
                info = known.get(out.name)
                if info is None or not isinstance(out, gs.Variable):
                    continue
                elem, shape = info
                if elem and out.dtype is None:
                    out.dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
                if shape is not None:
                    out.shape = shape
                    if all(isinstance(d, int) for d in shape):
                        resolved += 1
    return resolved


_Inferred = dict[str, tuple[int, list[int | str | None] | None]]


def _onnx_inference(proto: onnx.ModelProto) -> _Inferred:
    """ONNX's shape inference with data propagation: exact, but gives up on some chains."""
    try:
        inferred = shape_inference.infer_shapes(
            proto, check_type=False, strict_mode=False, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as exc:
        log.debug("ONNX shape inference failed: %s", exc)
        return {}
    return _collect(inferred)


def _symbolic_inference(proto: onnx.ModelProto) -> _Inferred:
    """onnxruntime's symbolic shape inference (sympy): carries dims through Reshape/Concat/
    Slice arithmetic where ONNX's inference stops. Best effort: any failure means no extra
    information, never an error."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:  # pragma: no cover - onnxruntime always ships it
        return {}
    try:
        inferred = SymbolicShapeInference.infer_shapes(
            proto, auto_merge=True, guess_output_rank=False
        )
    except Exception as exc:  # it raises anything from AssertionError to sympy errors
        log.debug(
            "symbolic shape inference failed: %s", str(exc).splitlines()[0] if str(exc) else exc
        )
        return {}
    if inferred is None:
        return {}
    found = _collect(inferred)
    _forget_guessed_splits(proto, found)
    return found


def _forget_guessed_splits(proto: onnx.ModelProto, found: _Inferred) -> None:
    """Drops the shapes symbolic inference guessed for a Split whose sizes it could not read.

    With a ``split`` input computed at run time, onnxruntime's symbolic inference assumes
    equal parts (``[8, 0]`` becomes ``[4, 4]``); a fold of ``Shape`` would then bake the wrong
    size into the graph. The dtype is kept; the shape is left to ONNX's own inference.
    """
    for graph in iter_graph_protos(proto.graph):
        constant = {t.name for t in graph.initializer}
        constant.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
        for node in graph.node:
            if node.op_type != "Split" or node.domain not in ("", "ai.onnx"):
                continue
            if len(node.input) > 1 and node.input[1] and node.input[1] not in constant:
                for out in node.output:
                    if out in found:
                        found[out] = (found[out][0], None)


def _collect(inferred: onnx.ModelProto) -> _Inferred:
    out: _Inferred = {}
    for g in iter_graph_protos(inferred.graph):
        for vi in [*g.value_info, *g.output]:
            tt = vi.type.tensor_type
            shape = None
            if tt.HasField("shape"):
                shape = [
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tt.shape.dim
                ]
            out[vi.name] = (tt.elem_type, shape)
    return out


def _merge(known: _Inferred, extra: _Inferred) -> None:
    for name, (elem, shape) in extra.items():
        have = known.get(name)
        if have is None or (_score(shape) > _score(have[1]) and _agrees(shape, have[1])):
            known[name] = (elem or (have[0] if have else 0), shape)


def _agrees(shape: list[int | str | None] | None, exact: list[int | str | None] | None) -> bool:
    """Whether ``shape`` can refine ``exact`` (ONNX's): same rank, same static dims. Symbolic
    inference gets some ops wrong (GatherND's batch_dims ignored: one dim too many)."""
    if exact is None or shape is None:
        return True
    if len(shape) != len(exact):
        return False
    return all(not isinstance(e, int) or d == e for d, e in zip(shape, exact, strict=True))


def _full(shape: list[int | str | None] | None) -> float:
    """The score of a fully static shape of the same rank (0 when even the rank is unknown)."""
    return float(len(shape)) if shape is not None else 0.0


def _score(shape: list[int | str | None] | None) -> float:
    """How much a shape says: static dims count 1, named symbols 0.5 (ONNX's unk__ don't)."""
    if shape is None:
        return -1.0
    return sum(
        1.0
        if isinstance(d, int)
        else 0.5
        if isinstance(d, str) and not d.startswith("unk__")
        else 0.0
        for d in shape
    )


def pin_input_shapes(model: Model, shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Fixes graph input shapes (``--input-shape``), propagating named dimensions.

    A symbolic dimension pinned on one input (say ``batch``) takes the same value on every
    input that shares the name.

    Returns:
        The resolved symbol -> size mapping.

    Raises:
        UsageError: an unknown input, a rank mismatch, or a conflict with a fixed dimension.
    """
    inputs = {v.name: v for v in model.graph.inputs}
    symbols: dict[str, int] = {}
    for name, dims in shapes.items():
        if name not in inputs:
            raise UsageError(
                f"--input-shape: model has no input '{name}' (inputs: {', '.join(inputs) or 'none'})"
            )
        value = inputs[name]
        old = value.shape
        if old is not None and len(old) != len(dims):
            raise UsageError(
                f"--input-shape {name}: rank {len(dims)} given, but the model declares rank "
                f"{len(old)} ({_fmt_shape(old)})"
            )
        for i, (have, want) in enumerate(zip(old or [None] * len(dims), dims)):
            if want <= 0:
                raise UsageError(
                    f"--input-shape {name}: dimension {i} must be positive, got {want}"
                )
            if isinstance(have, int) and have > 0 and have != want:
                raise UsageError(
                    f"--input-shape {name}: dimension {i} is fixed to {have} in the model, got {want}"
                )
            if isinstance(have, str) and have:
                if symbols.get(have, want) != want:
                    raise UsageError(
                        f"--input-shape {name}: dimension '{have}' pinned to both {symbols[have]} and {want}"
                    )
                symbols[have] = want
        value.shape = list(dims)
    for value in model.graph.inputs:
        if value.shape is not None and value.name not in shapes:
            value.shape = [symbols.get(d, d) if isinstance(d, str) else d for d in value.shape]
    # Outputs declared with the same symbols are pinned too, so the interface stays consistent.
    for value in model.graph.outputs:
        if value.shape is not None:
            value.shape = [symbols.get(d, d) if isinstance(d, str) else d for d in value.shape]
    return symbols


def parse_shape_spec(spec: str) -> tuple[str, list[int]]:
    """Parses ``NAME:1x3x224x224`` (the name may itself contain colons)."""
    name, sep, dims = spec.rpartition(":")
    if not sep or not name:
        raise UsageError(f"--input-shape '{spec}': expected NAME:DIMS, e.g. images:1x3x640x640")
    try:
        values = [int(d) for d in dims.lower().split("x")] if dims else []
    except ValueError:
        raise UsageError(
            f"--input-shape '{spec}': dimensions must be integers joined by 'x', e.g. 1x3x640x640"
        ) from None
    return name, values


def convert_opset(model: Model, target: int) -> Model:
    """Upgrades the default-domain opset with ONNX's version converter."""
    if target == model.opset:
        return model
    if target < model.opset:
        raise UsageError(f"--target-opset {target} is older than the model's opset {model.opset}")
    latest = onnx.defs.onnx_opset_version()
    if target > latest:
        raise UsageError(f"--target-opset {target}: this onnx supports opsets up to {latest}")
    proto = model.to_proto()
    try:
        converted = onnx.version_converter.convert_version(proto, target)
    except Exception as exc:  # the converter raises bare RuntimeErrors and more
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(
            f"cannot convert the model from opset {model.opset} to {target}: {msg}"
        ) from None
    out = Model.from_proto(converted, model.source_path)
    out.external_data = model.external_data
    out.provenance = model.provenance
    return out


def evaluate_node(
    node: gs.Node, inputs: Sequence[np.ndarray | None], opset: int
) -> list[np.ndarray]:
    """Computes a node's outputs from constant inputs with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    in_names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
    out_names = [f"o{k}" for k in range(len(node.outputs))]
    attrs = {k: v for k, v in node.attrs.items() if not isinstance(v, gs.Graph)}
    proto_node = onnx.helper.make_node(
        node.op, in_names, out_names, domain=node.domain or "", **_attr_kwargs(attrs)
    )
    graph = onnx.helper.make_graph(
        [proto_node],
        "fold",
        [
            onnx.helper.make_tensor_value_info(
                n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape
            )
            for n, v in zip(in_names, inputs)
            if v is not None
        ],
        [onnx.helper.make_empty_tensor_value_info(n) for n in out_names],
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    if node.domain and node.domain not in ("", "ai.onnx"):
        opsets.append(onnx.helper.make_opsetid(node.domain, 1))
    ref = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opsets))
    feeds = {n: v for n, v in zip(in_names, inputs) if v is not None}
    return [np.asarray(r) for r in ref.run(None, feeds)]


def _attr_kwargs(attrs: dict) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, np.ndarray):
            out[key] = onnx.numpy_helper.from_array(value)
        elif isinstance(value, gs.Constant):
            out[key] = onnx.numpy_helper.from_array(value.values)
        elif isinstance(value, np.dtype) or (
            isinstance(value, type) and issubclass(value, np.generic)
        ):
            out[key] = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(value))
        else:
            out[key] = value
    return out


def _inference_proto(model: Model) -> onnx.ModelProto:
    """The model as a proto, large initializers replaced by graph inputs (no weight copies)."""
    graph = model.graph
    swapped: list[tuple[gs.Constant, gs.Variable]] = []
    big: list[gs.Constant] = [
        t
        for t in graph.tensors().values()
        if isinstance(t, gs.Constant) and t.values.size > _KEEP_FOR_INFERENCE
    ]
    saved_inputs = list(graph.inputs)
    for const in big:
        stand_in = gs.Variable(const.name, dtype=const.values.dtype, shape=list(const.values.shape))
        swapped.append((const, stand_in))
        _swap_uses(const, stand_in)
    graph.inputs = saved_inputs + [s for _, s in swapped]
    try:
        return model.to_proto()
    finally:
        graph.inputs = saved_inputs
        for const, stand_in in swapped:
            _swap_uses(stand_in, const)


def _swap_uses(old: gs.Tensor, new: gs.Tensor) -> None:
    for node in list(old.outputs):
        for i, value in enumerate(node.inputs):
            if value is old:
                node.inputs[i] = new


def _fmt_shape(shape: Sequence) -> str:
    return "x".join(str(d) if d is not None else "?" for d in shape)
