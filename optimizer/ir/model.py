"""Loading, validating and saving ONNX models.

``Model`` pairs an onnx-graphsurgeon graph with the model-level fields graphsurgeon does not
carry (metadata, model version, node doc strings and metadata), so a load -> save round trip
keeps everything a user put in the file. Weights stored externally stay external on save.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from google.protobuf.message import DecodeError
from onnx_graphsurgeon.ir.tensor import LazyValues

from optimizer.errors import InvalidModelError, ModelLoadError, UnsupportedModelError
from optimizer.ir.graph import iter_graphs, share_name_scope

log = logging.getLogger(__name__)

# Protobuf cannot serialize a message over 2 GiB: above this, weights must go external.
_PROTO_LIMIT = 2**31 - 1
# Domains onnxruntime (the reference every result is checked against) can run.
KNOWN_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}
)


@dataclass
class Model:
    """An ONNX model being optimized.

    Attributes:
        graph: The main graph (onnx-graphsurgeon), subgraphs reachable through node attributes.
        opset: Version of the default ONNX domain.
        source_path: Where it was loaded from, if anywhere.
        external_data: Whether the source stored weights externally (kept external on save).
    """

    graph: gs.Graph
    opset: int
    ir_version: int = 8
    metadata_props: dict[str, str] = field(default_factory=dict)
    model_version: int = 0
    domain: str = ""
    doc_string: str = ""
    node_info: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    source_path: Path | None = None
    external_data: bool = False
    # Initializers in the file that no node reads: the importer already dropped them, the
    # dead-code pass reports them.
    unused_initializers: int = 0
    # Initializers also listed as graph inputs (old exporters' "overridable" weights): they
    # become plain constants, which is what lets them fold; the dead-code pass reports them.
    initializer_inputs: int = 0
    # Declared non-tensor types (optional, sequence, map) by value name: graphsurgeon cannot
    # write them back, so ``to_proto`` restores them (see ``_non_tensor_types``).
    value_types: dict[str, onnx.TypeProto] = field(default_factory=dict)
    # Symbolic shape inference results by value name (see ``shapes.infer_shapes``).
    symbolic_shapes: dict[str, tuple[int, list[int | str | None] | None]] = field(
        default_factory=dict
    )

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_proto(cls, proto: onnx.ModelProto, source_path: Path | None = None) -> Model:
        """Wraps a ModelProto. The proto must already have its external data loaded."""
        check_domains(proto, source_path)
        _check_attribute_kinds(proto, source_path)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
        node_info = {}
        for node in _iter_node_protos(proto.graph):
            if node.name and (node.doc_string or len(node.metadata_props)):
                node_info[node.name] = (
                    node.doc_string,
                    {p.key: p.value for p in node.metadata_props},
                )
        used = {i for n in _iter_node_protos(proto.graph) for i in n.input}
        used.update(o.name for o in proto.graph.output)
        unused = sum(1 for t in proto.graph.initializer if t.name not in used)
        init_names = {t.name for t in proto.graph.initializer}
        _rename_shadowing_initializers(proto.graph, set())
        value_types = _non_tensor_types(proto.graph)
        graph = gs.import_onnx(proto)
        share_name_scope(graph)
        return cls(
            value_types=value_types,
            unused_initializers=unused,
            initializer_inputs=sum(1 for i in proto.graph.input if i.name in init_names),
            graph=graph,
            opset=int(opset),
            ir_version=proto.ir_version,
            metadata_props={p.key: p.value for p in proto.metadata_props},
            model_version=proto.model_version,
            domain=proto.domain,
            doc_string=proto.doc_string,
            node_info=node_info,
            source_path=source_path,
        )

    def copy(self) -> Model:
        """A deep copy (graph included): passes may then mutate it freely."""
        clone = Model.from_proto(self.to_proto(), self.source_path)
        clone.external_data = self.external_data
        clone.provenance = {k: dict(v) for k, v in self.provenance.items()}
        return clone

    # -- export -------------------------------------------------------------------------------

    def to_proto(self) -> onnx.ModelProto:
        """Exports to a ModelProto, restoring model-level fields and node metadata."""
        self.graph.opset = self.opset
        # graphsurgeon fails on an optional type: those values go out untyped, then get
        # their declared type back by name.
        hidden = [
            (v, v.dtype)
            for g in iter_graphs(self.graph)
            for v in g.tensors().values()
            if v.name in self.value_types and isinstance(v, gs.Variable)
        ]
        for value, _ in hidden:
            value.dtype = None
        _string_constants_as_protos(self.graph)
        try:
            proto = gs.export_onnx(self.graph, do_type_check=False)
        finally:
            for value, dtype in hidden:
                value.dtype = dtype
        if self.value_types:
            for g in iter_graph_protos(proto.graph):
                for info in [*g.input, *g.output, *g.value_info]:
                    if info.name in self.value_types:
                        info.type.CopyFrom(self.value_types[info.name])
        proto.ir_version = max(self.ir_version, _min_ir_version(self.opset))
        proto.model_version = self.model_version
        proto.domain = self.domain
        proto.doc_string = self.doc_string
        del proto.metadata_props[:]
        for key, value in self.metadata_props.items():
            proto.metadata_props.add(key=key, value=value)
        for node in _iter_node_protos(proto.graph):
            if node.name in self.node_info:
                doc, props = self.node_info[node.name]
                node.doc_string = doc
                _set_node_props(node, props)
            if node.name in self.provenance:
                _set_node_props(node, self.provenance[node.name])
        return proto

    def save(self, path: str | os.PathLike[str], external_data: bool | None = None) -> None:
        """Writes the model atomically: a temporary directory beside ``path``, then renames.

        Weights go to ``<name>.data`` when the source had external data, when asked, or when
        the model would not fit in one protobuf (2 GiB).
        """
        path = Path(path)
        proto = self.to_proto()
        if external_data is None:
            external_data = self.external_data or _approx_size(proto) > _PROTO_LIMIT // 2
        path.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            tmp_model = tmpdir / path.name
            data_name = path.name + ".data"
            if external_data:
                onnx.save_model(
                    proto,
                    tmp_model,
                    save_as_external_data=True,
                    all_tensors_to_one_file=True,
                    location=data_name,
                    size_threshold=1024,
                )
            else:
                onnx.save_model(proto, tmp_model)
            if (tmpdir / data_name).exists():
                os.replace(tmpdir / data_name, path.parent / data_name)
            os.replace(tmp_model, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def serialized_size(self) -> int:
        """Approximate bytes of the model when saved: its constants plus the graph structure.

        Computed from the in-memory constants, without exporting (which would copy them).
        """
        weights = 0
        nodes = 0
        for g in iter_graphs(self.graph):
            nodes += len(g.nodes)
            weights += sum(
                t.values.nbytes for t in g.tensors().values() if isinstance(t, gs.Constant)
            )
            for node in g.nodes:
                value = node.attrs.get("value")
                if isinstance(value, gs.Constant):
                    weights += value.values.nbytes
        return weights + 4096 + 64 * nodes


def load(path: str | os.PathLike[str], check: bool = True) -> Model:
    """Loads and validates an ONNX model file.

    Raises:
        ModelLoadError: missing, unreadable, not ONNX, truncated or corrupt.
        InvalidModelError: ONNX, but the checker rejects the graph.
        UnsupportedModelError: an unknown domain or a too-new opset.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, expected an .onnx file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        raise ModelLoadError(
            f"{path}: not a valid ONNX protobuf (truncated or corrupt file: {exc})"
        ) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: cannot read model: {_first_line(exc)}") from None
    if not proto.HasField("graph") or proto.ir_version <= 0 or not proto.opset_import:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph, IR version or opset import)")
    _check_strings(proto, path)
    _check_structure(proto, path)
    external = _uses_external_data(proto)
    if external:
        _check_external_locations(proto, path)
        try:
            onnx.load_external_data_for_model(proto, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelLoadError(
                f"{path}: cannot load external weights: {_first_line(exc)}"
            ) from None
    _check_tensor_sizes(proto, path)
    if check:
        if external or _approx_size(proto) > _PROTO_LIMIT // 2:
            # Check the file itself: checking a big proto in memory would need a copy.
            check_domains(proto, path)
            _run_checker(str(path), path)
        else:
            check_model(proto, path)
    try:
        model = Model.from_proto(proto, source_path=path)
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: corrupt file: a name or string is not valid UTF-8") from None
    model.external_data = external
    return model


def _check_strings(proto: onnx.ModelProto, path: Path) -> None:
    """Names and op types must be valid UTF-8 (a flipped byte can make them undecodable,
    which the checker does not notice but writing the model back would)."""
    for prop in proto.metadata_props:
        _utf8(prop.key, f"{path}: metadata_props key", path)
        _utf8(prop.value, f"{path}: metadata_props value", path)
    for text in (proto.producer_name, proto.producer_version, proto.domain, proto.doc_string):
        _utf8(text, f"{path}: model header", path)
    for g in iter_graph_protos(proto.graph):
        _utf8(g.name, f"{path}: graph name", path)
        for kind, items in (
            ("value", [*g.input, *g.output, *g.value_info]),
            ("initializer", g.initializer),
        ):
            for item in items:
                _utf8(item.name, f"{path}: {kind} name", path)
        for i, node in enumerate(g.node):
            for text in (node.name, node.op_type, node.domain, *node.input, *node.output):
                _utf8(text, f"{path}: node {i} ({node.op_type!r})", path)
            for attr in node.attribute:
                _utf8(attr.name, f"{path}: node {i} attribute name", path)


def _check_structure(proto: onnx.ModelProto, path: Path) -> None:
    """What the ONNX checker lets through but no runtime can use: a main graph without
    outputs, a graph input or output listed twice, a negative dimension in a declared shape."""
    graph = proto.graph
    if not graph.output:
        raise InvalidModelError(f"{path}: invalid graph: the graph has no outputs")
    for kind, items in (("input", graph.input), ("output", graph.output)):
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise InvalidModelError(
                    f"{path}: invalid graph: graph {kind} '{item.name}' is listed twice"
                )
            seen.add(item.name)
            tensor_type = item.type.tensor_type
            if item.type.HasField("tensor_type") and tensor_type.HasField("elem_type"):
                elem = tensor_type.elem_type
                if elem == 0 or elem not in onnx.TensorProto.DataType.values():
                    raise InvalidModelError(
                        f"{path}: invalid graph: graph {kind} '{item.name}' has "
                        f"{'an undefined' if elem == 0 else f'an unknown ({elem})'} element type"
                    )
    for g in iter_graph_protos(graph):
        for item in (*g.input, *g.output, *g.value_info):
            if not item.type.HasField("tensor_type"):
                continue
            for axis, dim in enumerate(item.type.tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value < 0:
                    raise InvalidModelError(
                        f"{path}: invalid graph: '{item.name}' has dimension {dim.dim_value} "
                        f"at axis {axis} (dimensions must be >= 0)"
                    )


def _check_external_locations(proto: onnx.ModelProto, path: Path) -> None:
    """External weights must name a file inside the model's directory."""
    for tensor in _iter_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        where = f"{path}: tensor '{tensor.name}': external data location {location!r}"
        if not location or "\0" in location:
            raise ModelLoadError(f"{where} is empty or not a file name")
        parts = Path(location).parts
        if Path(location).is_absolute() or ".." in parts:
            raise ModelLoadError(f"{where} points outside the model's directory")


# Bytes per element of the fixed-size ONNX element types; 4-bit types pack two per byte.
_PACKED_4BIT = {"INT4", "UINT4", "FLOAT4E2M1"}


def _check_tensor_sizes(proto: onnx.ModelProto, path: Path) -> None:
    """Every stored tensor (initializers, Constant values) must hold exactly the elements its
    dims and data type say: a short or long raw_data, a typed field with the wrong count, a
    negative dimension or an unknown data type would otherwise surface deep in a pass."""
    for tensor in _iter_tensors(proto.graph):
        where = f"{path}: invalid graph: tensor '{tensor.name}'"
        if any(d < 0 for d in tensor.dims):
            raise InvalidModelError(f"{where} has a negative dimension {list(tensor.dims)}")
        numel = 1
        for d in tensor.dims:
            numel *= d
        try:
            type_name = onnx.TensorProto.DataType.Name(tensor.data_type)
        except ValueError:
            raise InvalidModelError(f"{where}: unknown data type {tensor.data_type}") from None
        if type_name == "UNDEFINED":
            raise InvalidModelError(f"{where}: data type is UNDEFINED")
        if tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.HasField("raw_data"):
            continue  # checked from the file (large models are checked on disk)
        if tensor.HasField("raw_data"):
            if type_name == "STRING":
                raise InvalidModelError(f"{where}: a STRING tensor cannot use raw_data")
            if type_name in _PACKED_4BIT:
                want = (numel + 1) // 2
            else:
                want = numel * numpy_dtype(tensor.data_type).itemsize
            if len(tensor.raw_data) != want:
                raise InvalidModelError(
                    f"{where}: raw_data has {len(tensor.raw_data)} bytes, dims {list(tensor.dims)} "
                    f"of {type_name} need {want}"
                )
            continue
        field_name = _TYPED_FIELD.get(type_name)
        if field_name is None:
            continue
        have = len(getattr(tensor, field_name))
        want = numel * (2 if type_name.startswith("COMPLEX") else 1)
        if have != want:
            raise InvalidModelError(
                f"{where}: {field_name} has {have} values, dims {list(tensor.dims)} need {want}"
            )


_TYPED_FIELD = {
    "FLOAT": "float_data",
    "COMPLEX64": "float_data",
    "DOUBLE": "double_data",
    "COMPLEX128": "double_data",
    "INT64": "int64_data",
    "UINT32": "uint64_data",
    "UINT64": "uint64_data",
    "STRING": "string_data",
    **{
        t: "int32_data"
        for t in ("INT32", "INT16", "INT8", "UINT16", "UINT8", "BOOL", "FLOAT16", "BFLOAT16")
    },
}


def _utf8(text: str | bytes, where: str, path: Path) -> None:
    # protobuf hands back bytes (or a str with surrogates) for a string field it cannot decode
    ok = isinstance(text, str)
    if ok:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            ok = False
    if not ok:
        raise ModelLoadError(f"{where}: corrupt file: a name is not valid UTF-8")


def check_model(proto: onnx.ModelProto, where: Path | str = "model") -> None:
    """Runs onnx.checker (full check, with strict shape inference) and the domain check.

    A model over 1 GiB is checked through a temporary file; saving it moves the proto's
    weights out to that file, so pass a throwaway proto (``Model.to_proto()``) in that case.
    """
    check_domains(proto, where)
    if _approx_size(proto) > _PROTO_LIMIT // 2:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp) / "m.onnx"
            onnx.save_model(proto, tmp_path, save_as_external_data=True, location="m.data")
            _run_checker(str(tmp_path), where)
    else:
        _run_checker(proto, where)


def _run_checker(model: onnx.ModelProto | str, where: Path | str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except UnicodeDecodeError:
        raise ModelLoadError(
            f"{where}: corrupt file: a name or string is not valid UTF-8"
        ) from None
    except (
        onnx.checker.ValidationError,
        onnx.shape_inference.InferenceError,
        ValueError,  # e.g. "Invalid tensor data type 65." from the C++ checker
    ) as exc:
        raise InvalidModelError(f"{where}: invalid graph: {_first_line(exc)}") from None


def check_domains(proto: onnx.ModelProto, where: Path | str | None = "model") -> None:
    """Rejects opset imports this tool (and onnxruntime) cannot handle, naming them."""
    latest = onnx.defs.onnx_opset_version()
    for imp in proto.opset_import:
        if imp.domain not in KNOWN_DOMAINS:
            ops = sorted(
                {n.op_type for n in _iter_node_protos(proto.graph) if n.domain == imp.domain}
            )
            local = {(f.domain, f.name) for f in proto.functions}
            if ops and all((imp.domain, op) in local for op in ops):
                continue  # every op of the domain is a model-local function: fine
            if not ops and not any(f.domain == imp.domain for f in proto.functions):
                continue  # an unused import: harmless
            raise UnsupportedModelError(
                f"{where}: unknown operator domain '{imp.domain}' (ops: {', '.join(ops) or '-'}); "
                "supported: " + ", ".join(repr(d) for d in sorted(KNOWN_DOMAINS))
            )
        if imp.domain in ("", "ai.onnx") and not 1 <= imp.version <= latest:
            raise UnsupportedModelError(
                f"{where}: opset {imp.version} of the default domain is not supported "
                f"(this onnx knows opsets 1..{latest})"
            )


def subgraph_protos(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs held in a node's attributes (If branches, Loop and Scan bodies)."""
    found: list[onnx.GraphProto] = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            found.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            found.extend(attr.graphs)
    return found


def iter_graph_protos(graph: onnx.GraphProto):
    """The graph and, recursively, every subgraph under it."""
    yield graph
    for node in graph.node:
        for sub in subgraph_protos(node):
            yield from iter_graph_protos(sub)


# Attribute kinds onnx-graphsurgeon imports; it drops any other (a type_proto, a list of
# graphs or tensors) with a warning, which would change the model.
_ATTRIBUTE_KINDS = frozenset(
    {
        onnx.AttributeProto.FLOAT,
        onnx.AttributeProto.INT,
        onnx.AttributeProto.STRING,
        onnx.AttributeProto.TENSOR,
        onnx.AttributeProto.GRAPH,
        onnx.AttributeProto.FLOATS,
        onnx.AttributeProto.INTS,
        onnx.AttributeProto.STRINGS,
    }
)


def _check_attribute_kinds(proto: onnx.ModelProto, where: Path | None) -> None:
    for node in _iter_node_protos(proto.graph):
        for attr in node.attribute:
            if attr.type not in _ATTRIBUTE_KINDS and not attr.ref_attr_name:
                kind = onnx.AttributeProto.AttributeType.Name(attr.type)
                raise UnsupportedModelError(
                    f"{where or 'model'}: node '{node.name}' ({node.op_type}): attribute "
                    f"'{attr.name}' of kind {kind} is not supported by this tool"
                )


def _string_constants_as_protos(graph: gs.Graph) -> None:
    """Gives string constants whose values were read (a NumPy object array now) their
    TensorProto back: graphsurgeon writes NumPy arrays as raw bytes, which strings cannot be."""

    def fix(const: gs.Constant) -> None:
        values = const._values  # not .values: that would load it
        if isinstance(values, np.ndarray) and values.dtype.kind in "OUS":
            tensor = onnx.numpy_helper.from_array(values, const.name)
            const._values = LazyValues(tensor)

    for g in iter_graphs(graph):
        for value in g.tensors().values():
            if isinstance(value, gs.Constant):
                fix(value)
        for node in g.nodes:
            for attr in node.attrs.values():
                if isinstance(attr, gs.Constant):
                    fix(attr)


def _non_tensor_types(graph: onnx.GraphProto) -> dict[str, onnx.TypeProto]:
    """Declared types other than plain tensors, by value name, in every graph."""
    types: dict[str, onnx.TypeProto] = {}
    for g in iter_graph_protos(graph):
        for info in [*g.input, *g.output, *g.value_info]:
            if info.type.WhichOneof("value") not in (None, "tensor_type"):
                types[info.name] = onnx.TypeProto()
                types[info.name].CopyFrom(info.type)
    return types


def _iter_node_protos(graph: onnx.GraphProto):
    for g in iter_graph_protos(graph):
        yield from g.node


def _rename_shadowing_initializers(graph: onnx.GraphProto, outer: set[str]) -> None:
    """Renames subgraph initializers that reuse an outer-scope name, in place.

    The graph importer would resolve such a name to the outer tensor and silently change
    the subgraph's numbers; a fresh name keeps the inner one.
    """
    local = {t.name for t in graph.initializer}
    for tensor in graph.initializer:
        if tensor.name in outer:
            old, new = tensor.name, f"{tensor.name}__inner_{id(graph) % 100000}"
            tensor.name = new
            for node in graph.node:  # nested graphs see the renamed value through attributes
                node.input[:] = [new if i == old else i for i in node.input]
                for sub in subgraph_protos(node):
                    _rename_refs(sub, old, new)
            local.discard(old)
            local.add(new)
    scope = outer | local | {i.name for i in graph.input}
    scope.update(o for n in graph.node for o in n.output)
    for node in graph.node:
        for sub in subgraph_protos(node):
            _rename_shadowing_initializers(sub, scope)


def _rename_refs(graph: onnx.GraphProto, old: str, new: str) -> None:
    if any(t.name == old for t in graph.initializer) or any(i.name == old for i in graph.input):
        return  # shadowed again further in: that scope keeps its own meaning
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for sub in subgraph_protos(node):
            _rename_refs(sub, old, new)


def _set_node_props(node: onnx.NodeProto, props: dict[str, str]) -> None:
    existing = {p.key: p for p in node.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            node.metadata_props.add(key=key, value=value)


def _uses_external_data(proto: onnx.ModelProto) -> bool:
    for tensor in _iter_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            return True
    return False


def _iter_tensors(graph: onnx.GraphProto):
    for g in iter_graph_protos(graph):
        yield from g.initializer
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t


def _approx_size(proto: onnx.ModelProto) -> int:
    """Serialized size without serializing (which fails above 2 GiB): sum of tensor bytes."""
    total = 0
    for tensor in _iter_tensors(proto.graph):
        total += len(tensor.raw_data) or tensor.ByteSize()
    return total + 4096 + 64 * len(proto.graph.node)


def _min_ir_version(opset: int) -> int:
    # IR versions from onnx/helper.py VERSION_TABLE; the checker rejects an older IR for an opset.
    table = [(21, 10), (19, 9), (15, 8), (13, 7), (11, 6), (10, 5), (9, 4), (1, 3)]
    return next(ir for ops, ir in table if opset >= ops)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def numpy_dtype(elem_type: int) -> np.dtype:
    """The NumPy dtype of an ONNX TensorProto element type."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
