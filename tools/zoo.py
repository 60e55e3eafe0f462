"""Deterministic model zoo for testing and benchmarking the ONNX graph optimizer.

The zoo holds small but architecturally faithful models exported the way real models come out
of the usual tools, so that the optimizer (and onnxsim / onnxslim, for comparison) see
realistic graphs:

=====================  =============  =====  ==================================================
name                   exporter       opset  what it exercises
=====================  =============  =====  ==================================================
resnet                 torch-legacy   13     Conv(+folded BN)/Relu/MaxPool/residual Add/Gemm;
                                             ``x.view(x.size(0), -1)`` flatten ->
                                             Shape/Gather/Unsqueeze/Concat/Reshape
resnet_dynamo          torch-dynamo   18     same network through torch.export
mobilenetv3            torch-legacy   13     depthwise Conv, HardSwish decomposed, classic SE
                                             blocks (``view(b, c)`` -> Linear -> hand-written
                                             h_sigmoid Add/Clip/Div -> ``view(b, c, 1, 1)``:
                                             Shape/Gather/Unsqueeze/Concat/Reshape chains),
                                             ``x.view(x.size(0), -1)`` + Dropout classifier
mobilenetv3_op14       torch-legacy   14     same with the HardSwish op
yolo                   torch-legacy   12     SiLU, C2f Split/Concat, SPPF, nearest Resize,
                                             runtime anchor grids (Shape/Gather/Range/Expand)
bert                   torch-legacy   13     LayerNorm + erf-GELU decomposed, MHA by hand
bert_dynamo            torch-dynamo   18     same network through torch.export
vit                    torch-dynamo   18     patch-embedding Conv, SDPA, LayerNormalization
lstm                   torch-legacy   13     ONNX LSTM + GRU ops
unet                   torch-legacy   11     ConvTranspose, bilinear Resize, skip Concat
paddle_cnn             paddle-style   11     Constant-node weights, Conv + BN, explicit Pad
paddle_det             paddle-style   11     Shape->Slice->Concat->Reshape, Transpose pairs
resnet50_big (--big)   torch-legacy   13     full-size ResNet-50 (~100 MB), fixed 1x3x224x224,
                                             same ``x.view(x.size(0), -1)`` flatten
=====================  =============  =====  ==================================================

Command line::

    python tools/zoo.py --out DIR [--only NAME ...] [--big] [--list]

writes ``DIR/<name>.onnx`` and ``DIR/zoo.json`` (one entry per model with its exporter, opset,
inputs with symbolic dims and integer value bounds, and outputs). Every model is validated
before it is written: ``onnx.checker`` (full check) plus an onnxruntime-vs-reference
comparison (torch eager for torch models, ``onnx.reference`` for paddle-style graphs) on the
export-time input and on inputs with other batch / sequence / image sizes.

From Python: ``MODELS``, :func:`build`, :func:`build_all`, :func:`sample_inputs` and
:func:`zoo_dir` (a cached, lock-protected build used by the test-suite). torch is only imported
when a torch model is built; ``sample_inputs`` needs just numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/zoo.py`
    sys.path.insert(0, str(REPO_ROOT))

from tools import zoo_paddle  # noqa: E402  (numpy + onnx only)

MODELS: tuple[str, ...] = (
    "resnet",
    "resnet_dynamo",
    "mobilenetv3",
    "mobilenetv3_op14",
    "yolo",
    "bert",
    "bert_dynamo",
    "vit",
    "lstm",
    "unet",
    "paddle_cnn",
    "paddle_det",
)
BIG_MODELS: tuple[str, ...] = ("resnet50_big",)

#: sizes used for symbolic dims unless an entry's ``sample_dims`` or the caller say otherwise
DEFAULT_DIMS: dict[str, int] = {"batch": 2, "seq": 16, "height": 128, "width": 128}
ATOL, RTOL = 1e-4, 1e-3
TORCH_THREADS = 2
ZOO_SOURCES = ("zoo.py", "zoo_models.py", "zoo_paddle.py")


class ZooBuildError(RuntimeError):
    """A zoo model failed to export or failed validation."""


def _log(msg: str) -> None:
    print(f"[zoo] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ sample inputs


def sample_inputs(
    entry: Mapping[str, Any],
    rng: np.random.Generator | int | None = None,
    dims: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Random, valid feeds for a zoo.json entry.

    Symbolic dims are resolved from ``dims``, then the entry's ``sample_dims``, then
    :data:`DEFAULT_DIMS`, else 1. Float inputs are standard normal; integer inputs are uniform
    in ``[low, high)`` from the entry (token ids stay inside the vocabulary); bools are fair coins.
    """
    rng = np.random.default_rng(rng)
    sizes = {**DEFAULT_DIMS, **entry.get("sample_dims", {}), **(dims or {})}
    feeds: dict[str, np.ndarray] = {}
    for spec in entry["inputs"]:
        shape = tuple(d if isinstance(d, int) else int(sizes.get(d, 1)) for d in spec["shape"])
        dtype = np.dtype(spec["dtype"])
        if dtype == np.bool_:
            feeds[spec["name"]] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            low, high = int(spec.get("low", 0)), int(spec.get("high", 2))
            feeds[spec["name"]] = rng.integers(low, high, size=shape, dtype=dtype)
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
    return feeds


# ------------------------------------------------------------------------------ model registry


@dataclass
class TorchCase:
    """A torch module plus everything needed to export and validate it."""

    module: Any  # torch.nn.Module, in eval mode
    example: tuple[Any, ...]  # export-time example tensors, positional
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[int, str]]  # input/output name -> {axis: symbol}
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # int inputs: [low, high)
    dim_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # symbol -> (min, max)
    check_dims: list[dict[str, int]] = field(default_factory=lambda: [{}, {"batch": 1}])


@dataclass
class PaddleCase:
    model: onnx.ModelProto
    check_dims: list[dict[str, int]]


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    exporter: str  # "torch-legacy" | "torch-dynamo" | "paddle-style"
    opset: int
    make: Callable[[], TorchCase | PaddleCase]
    sample_dims: dict[str, int] = field(default_factory=dict)


def _torch() -> Any:
    import torch

    torch.set_num_threads(TORCH_THREADS)
    return torch


def _zm() -> Any:
    from tools import zoo_models

    return zoo_models


def _image_case(
    net: Any,
    seed: int,
    size: int,
    batch: int,
    calib_batch: int = 8,
    dynamic_hw: bool = False,
    output: str = "logits",
    out_dynamic: dict[int, str] | None = None,
) -> TorchCase:
    """Seeded construction, non-trivial norms, calibrated BN stats, an example image batch."""
    torch, zm = _torch(), _zm()
    zm.seeded(seed)
    model = zm.randomize_norms(net())
    zm.calibrate_batchnorm(model, torch.randn(calib_batch, 3, size, size))
    example = (torch.randn(batch, 3, size, size),)
    in_dyn = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    return TorchCase(
        model,
        example,
        ["images" if dynamic_hw else "input"],
        [output],
        {"images" if dynamic_hw else "input": in_dyn, output: out_dynamic or {0: "batch"}},
    )


def _resnet(batch: int) -> TorchCase:
    return _image_case(lambda: _zm().resnet_small(), seed=0, size=64, batch=batch)


def _resnet50_big() -> TorchCase:
    case = _image_case(lambda: _zm().resnet50(), seed=50, size=224, batch=1, calib_batch=2)
    case.dynamic, case.check_dims = {}, []
    return case


def _mobilenet() -> TorchCase:
    return _image_case(lambda: _zm().MobileNetV3(), seed=1, size=64, batch=1)


def _unet() -> TorchCase:
    return _image_case(lambda: _zm().UNet(), seed=4, size=64, batch=1, calib_batch=4)


def _yolo() -> TorchCase:
    case = _image_case(
        lambda: _zm().YoloV8(),
        seed=2,
        size=128,
        batch=1,
        calib_batch=4,
        dynamic_hw=True,
        output="detections",
        out_dynamic={0: "batch", 2: "anchors"},
    )
    case.check_dims = [{}, {"batch": 1, "height": 96, "width": 160}]
    return case


def _vit(batch: int) -> TorchCase:
    torch, zm = _torch(), _zm()
    zm.seeded(5)
    model = zm.randomize_norms(zm.VisionTransformer()).eval()
    return TorchCase(
        model,
        (torch.randn(batch, 3, 32, 32),),
        ["pixel_values"],
        ["logits"],
        {"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
    )


def _bert(batch: int) -> TorchCase:
    torch, zm = _torch(), _zm()
    zm.seeded(3)
    model = zm.randomize_norms(zm.Bert()).eval()
    seq = 16
    gen = torch.Generator().manual_seed(33)
    ids = torch.randint(1, 1000, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, -4:] = 0  # some padding, as in a real batch
    ids[0, -4:] = 0
    bs = {0: "batch", 1: "seq"}
    return TorchCase(
        model,
        (ids, mask),
        ["input_ids", "attention_mask"],
        ["last_hidden_state", "pooler_output"],
        {
            "input_ids": bs,
            "attention_mask": bs,
            "last_hidden_state": bs,
            "pooler_output": {0: "batch"},
        },
        bounds={"input_ids": (0, 1000), "attention_mask": (0, 2)},
        dim_ranges={"seq": (1, 128)},
        check_dims=[{}, {"batch": 1, "seq": 7}, {"batch": 3, "seq": 128}],
    )


def _lstm() -> TorchCase:
    torch, zm = _torch(), _zm()
    zm.seeded(6)
    model = zm.RnnTagger().eval()
    tokens = torch.randint(0, 1000, (1, 12), generator=torch.Generator().manual_seed(66))
    bs = {0: "batch", 1: "seq"}
    return TorchCase(
        model,
        (tokens,),
        ["tokens"],
        ["tag_logits", "final_hidden"],
        {"tokens": bs, "tag_logits": bs, "final_hidden": {0: "batch"}},
        bounds={"tokens": (0, 1000)},
        check_dims=[{}, {"batch": 1, "seq": 5}],
    )


def _paddle_cnn() -> PaddleCase:
    return PaddleCase(zoo_paddle.paddle_cnn(), [{}, {"N": 1}])


def _paddle_det() -> PaddleCase:
    return PaddleCase(zoo_paddle.paddle_det(), [{}, {"N": 1, "H": 96, "W": 64}])


_SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "resnet",
            "ResNet-18 layout at 1/4 width (BasicBlocks with 1x1 downsample, BN folded "
            "by the exporter), 100 classes, input 1x3x64x64; the classifier flattens with "
            "x.view(x.size(0), -1) (Shape/Gather/Unsqueeze/Concat/Reshape under dynamic batch)",
            "torch-legacy",
            13,
            lambda: _resnet(1),
        ),
        Spec(
            "resnet_dynamo",
            "same network as `resnet` via torch.export (BN folded by the exporter's optimizer)",
            "torch-dynamo",
            18,
            lambda: _resnet(2),
        ),
        Spec(
            "mobilenetv3",
            "MobileNetV3-Small blocks: depthwise convs, HardSwish (decomposed at opset 13), "
            "classic SE blocks (avg_pool -> view(b, c) -> Linear/ReLU/Linear -> hand-written "
            "h_sigmoid relu6(x + 3) / 6 -> view(b, c, 1, 1) -> Mul, i.e. Shape/Gather/"
            "Unsqueeze/Concat/Reshape chains under dynamic batch), x.view(x.size(0), -1) + "
            "Dropout classifier head, input 1x3x64x64",
            "torch-legacy",
            13,
            _mobilenet,
        ),
        Spec(
            "mobilenetv3_op14",
            "same as `mobilenetv3` at opset 14 (HardSwish op)",
            "torch-legacy",
            14,
            _mobilenet,
        ),
        Spec(
            "yolo",
            "YOLOv8-style detector: Conv-BN-SiLU, C2f (Split/Concat), SPPF, PAN-FPN with "
            "nearest Resize, DFL head with runtime anchor grids; dynamic batch/H/W (multiples of "
            "32); output [batch, 4+10, anchors]",
            "torch-legacy",
            12,
            _yolo,
            {"height": 128, "width": 128},
        ),
        Spec(
            "bert",
            "BERT encoder, 2 layers, hidden 64, 4 heads, vocab 1000, max 128 positions; "
            "hand-written MHA with additive mask, LayerNorm and erf-GELU decomposed",
            "torch-legacy",
            13,
            lambda: _bert(1),
        ),
        Spec(
            "bert_dynamo",
            "same network as `bert` via torch.export",
            "torch-dynamo",
            18,
            lambda: _bert(2),
        ),
        Spec(
            "vit",
            "ViT (32x32 image, 4x4 patches, dim 64, 2 blocks, 4 heads, fused qkv + "
            "scaled_dot_product_attention), 100 classes",
            "torch-dynamo",
            18,
            lambda: _vit(2),
        ),
        Spec(
            "lstm",
            "token tagger: Embedding(1000, 32) -> LSTM(64) -> GRU(64) -> Linear(10); "
            "outputs per-step logits and the final GRU state",
            "torch-legacy",
            13,
            _lstm,
        ),
        Spec(
            "unet",
            "UNet with 3 levels: maxpool encoder, ConvTranspose and bilinear "
            "(align_corners) Resize decoder paths, skip Concats, input 1x3x64x64",
            "torch-legacy",
            11,
            _unet,
        ),
        Spec(
            "paddle_cnn",
            "paddle2onnx-style classifier: Constant-node weights, Pad+Conv+"
            "BatchNormalization, Mul/Add scale ops, Clip relu6, Dropout/Identity/Cast no-ops, "
            "Reshape+ReduceMean+Flatten, MatMul+Add, Softmax; input [N,3,32,32]",
            "paddle-style",
            11,
            _paddle_cnn,
            {"N": 2},
        ),
        Spec(
            "paddle_det",
            "paddle2onnx-style dense detection head: Constant-node weights, "
            "Shape->Slice->Concat->Reshape chains, Transpose pairs, sigmoid/exp box decode; "
            "input [N,3,H,W] with H, W multiples of 8",
            "paddle-style",
            11,
            _paddle_det,
            {"N": 2, "H": 64, "W": 64},
        ),
        Spec(
            "resnet50_big",
            "full-size ResNet-50 (~25.6M params), fixed input 1x3x224x224, "
            "x.view(x.size(0), -1) flatten; not part of the default zoo",
            "torch-legacy",
            13,
            _resnet50_big,
        ),
    )
}
assert set(_SPECS) == set(MODELS) | set(BIG_MODELS)


# ------------------------------------------------------------------------------ export


@contextlib.contextmanager
def _quiet_export(name: str) -> Iterator[None]:
    """Swallow exporter chatter (warnings, logging, prints); replay it if the export fails."""
    out, err = io.StringIO(), io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    yield
            except BaseException:
                noise = [f"{w.category.__name__}: {w.message}" for w in caught]
                noise += [s for s in (out.getvalue(), err.getvalue()) if s.strip()]
                if noise:
                    _log(f"{name}: export failed; exporter output follows")
                    print("\n".join(noise), file=sys.stderr)
                raise
    finally:
        logger.setLevel(level)


def _export_legacy(case: TorchCase, opset: int) -> onnx.ModelProto:
    torch = _torch()
    buf = io.BytesIO()
    torch.onnx.export(
        case.module,
        case.example,
        buf,
        dynamo=False,
        opset_version=opset,
        input_names=case.input_names,
        output_names=case.output_names,
        dynamic_axes=case.dynamic or None,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buf.getvalue())


def _export_dynamo(case: TorchCase, opset: int) -> onnx.ModelProto:
    torch = _torch()
    dims: dict[str, Any] = {}
    shapes = []
    for name in case.input_names:
        axes = {}
        for axis, sym in case.dynamic.get(name, {}).items():
            if sym not in dims:
                lo, hi = case.dim_ranges.get(sym, (1, None))
                dims[sym] = torch.export.Dim(sym, min=lo, **({"max": hi} if hi else {}))
            axes[axis] = dims[sym]
        shapes.append(axes or None)
    program = torch.onnx.export(
        case.module,
        case.example,
        dynamo=True,
        opset_version=opset,
        verbose=False,
        input_names=case.input_names,
        output_names=case.output_names,
        dynamic_shapes=tuple(shapes),
    )
    return program.model_proto


# ------------------------------------------------------------------------------ validation


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = TORCH_THREADS
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _torch_reference(case: TorchCase) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    torch = _torch()

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = case.module(*(torch.from_numpy(feeds[n]) for n in case.input_names))
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]

    return run


def _onnx_reference(model: onnx.ModelProto) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun
    from onnx.reference.ops.op_batch_normalization import _batchnorm_test_mode

    class BatchNormalization(OpRun):
        # onnx.reference treats BatchNormalization-9 with a `momentum` attribute as training
        # mode; paddle2onnx always sets momentum, and the spec says BN-9 is inference.
        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=1e-5, momentum=None, training_mode=None):  # type: ignore[no-untyped-def]
            return (_batchnorm_test_mode(x, scale, bias, mean, var, epsilon=epsilon),)

    evaluator = ReferenceEvaluator(model, new_ops=[BatchNormalization])
    return lambda feeds: list(evaluator.run(None, feeds))


def _verify(
    name: str,
    model: onnx.ModelProto,
    reference: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    feeds_list: Sequence[dict[str, np.ndarray]],
) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ZooBuildError(
            f"{name}: onnx.checker.check_model(full_check=True) failed: {exc}"
        ) from exc
    sess = _session(model)
    out_names = [o.name for o in sess.get_outputs()]
    for feeds in feeds_list:
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        got = sess.run(None, feeds)
        want = reference(feeds)
        if len(got) != len(want):
            raise ZooBuildError(
                f"{name}: onnxruntime gave {len(got)} outputs, reference {len(want)}"
            )
        for out, g, w in zip(out_names, got, want, strict=True):
            if g.shape != w.shape:
                raise ZooBuildError(
                    f"{name}: output {out} shape {g.shape} != reference {w.shape} "
                    f"for inputs {shapes}"
                )
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL):
                diff = float(np.max(np.abs(g.astype(np.float64) - w)))
                raise ZooBuildError(
                    f"{name}: output {out} differs from reference (max abs diff "
                    f"{diff:.3g}, atol={ATOL}, rtol={RTOL}) for inputs {shapes}"
                )


# ------------------------------------------------------------------------------ building


def _describe(
    values: Sequence[onnx.ValueInfoProto], bounds: Mapping[str, tuple[int, int]]
) -> list[dict]:
    described = []
    for vi in values:
        tt = vi.type.tensor_type
        shape: list[int | str] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim
        ]
        item: dict[str, Any] = {
            "name": vi.name,
            "shape": shape,
            "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name,
        }
        if vi.name in bounds:
            item["low"], item["high"] = bounds[vi.name]
        described.append(item)
    return described


def _count_params(model: onnx.ModelProto) -> int:
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    n += int(np.prod(a.t.dims))
    return n


def _make_entry(
    spec: Spec,
    model: onnx.ModelProto,
    exporter: str,
    description: str,
    bounds: Mapping[str, tuple[int, int]],
) -> dict[str, Any]:
    init_names = {t.name for t in model.graph.initializer}
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "name": spec.name,
        "file": f"{spec.name}.onnx",
        "description": description,
        "exporter": exporter,
        "opset": opset,
        "inputs": _describe([i for i in model.graph.input if i.name not in init_names], bounds),
        "outputs": _describe(model.graph.output, {}),
        "sample_dims": dict(spec.sample_dims),
        "nodes": len(model.graph.node),
        "params": _count_params(model),
    }


def _export_torch(spec: Spec, case: TorchCase) -> tuple[onnx.ModelProto, str, str, int]:
    """Export per the spec; ViT falls back to the legacy exporter if dynamo fails."""
    if spec.exporter == "torch-legacy":
        with _quiet_export(spec.name):
            return _export_legacy(case, spec.opset), spec.exporter, spec.description, spec.opset
    try:
        with _quiet_export(spec.name):
            return _export_dynamo(case, spec.opset), spec.exporter, spec.description, spec.opset
    except Exception as exc:
        if spec.name != "vit":
            raise ZooBuildError(f"{spec.name}: dynamo export failed: {exc}") from exc
        _log(
            f"{spec.name}: dynamo export failed ({type(exc).__name__}: {exc}); "
            "falling back to the legacy exporter at opset 17"
        )
        with _quiet_export(spec.name):
            model = _export_legacy(case, 17)
        desc = (
            spec.description
            + " [dynamo export failed; exported with the legacy exporter at opset 17]"
        )
        return model, "torch-legacy", desc, 17


def _build_entry(name: str, out_dir: Path) -> dict[str, Any]:
    if name not in _SPECS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS + BIG_MODELS)}")
    spec = _SPECS[name]
    t0 = time.perf_counter()
    case = spec.make()
    if isinstance(case, PaddleCase):
        model, exporter, description = case.model, spec.exporter, spec.description
        entry = _make_entry(spec, model, exporter, description, {})
        reference = _onnx_reference(model)
        feeds_list = []
    else:
        model, exporter, description, _ = _export_torch(spec, case)
        entry = _make_entry(spec, model, exporter, description, case.bounds)
        reference = _torch_reference(case)
        feeds_list = [{n: t.numpy() for n, t in zip(case.input_names, case.example, strict=True)}]
    t_export = time.perf_counter() - t0
    rng = np.random.default_rng(1234)
    feeds_list += [sample_inputs(entry, rng, dims) for dims in case.check_dims]
    _verify(name, model, reference, feeds_list)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / entry["file"]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    onnx.save_model(model, tmp)
    os.replace(tmp, path)
    entry["bytes"] = path.stat().st_size
    _log(
        f"{name}: {exporter} opset {entry['opset']}, {entry['nodes']} nodes, "
        f"{entry['params'] / 1e6:.2f}M params, {entry['bytes'] / 1e6:.2f} MB; "
        f"export {t_export:.1f}s, total {time.perf_counter() - t0:.1f}s"
    )
    return entry


def _write_index(out_dir: Path, entries: Sequence[dict[str, Any]]) -> None:
    """Merge ``entries`` into DIR/zoo.json (keeping other models whose files still exist)."""
    index = out_dir / "zoo.json"
    merged: dict[str, dict[str, Any]] = {}
    if index.exists():
        for e in json.loads(index.read_text()):
            if (out_dir / e.get("file", f"{e['name']}.onnx")).exists():
                merged[e["name"]] = e
    merged.update({e["name"]: e for e in entries})
    order = [n for n in MODELS + BIG_MODELS if n in merged] + sorted(set(merged) - set(_SPECS))
    tmp = index.with_name(f".zoo.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([merged[n] for n in order], indent=1) + "\n")
    os.replace(tmp, index)


def build(name: str, out_dir: str | os.PathLike[str]) -> Path:
    """Build one model into ``out_dir`` (updating its zoo.json) and return the .onnx path."""
    out_dir = Path(out_dir)
    entry = _build_entry(name, out_dir)
    _write_index(out_dir, [entry])
    return out_dir / entry["file"]


def build_all(
    out_dir: str | os.PathLike[str], names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Build ``names`` (default: :data:`MODELS`) into ``out_dir``; returns their zoo.json entries."""
    out_dir = Path(out_dir)
    entries = [_build_entry(n, out_dir) for n in (MODELS if names is None else names)]
    _write_index(out_dir, entries)
    return entries


def load_index(zoo: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of ``zoo/zoo.json``."""
    return json.loads((Path(zoo) / "zoo.json").read_text())


# ------------------------------------------------------------------------------ cached zoo


def source_hash() -> str:
    """Hash of the zoo sources and of the package versions that shape the exports."""
    h = hashlib.sha256()
    for fname in ZOO_SOURCES:
        h.update((Path(__file__).with_name(fname)).read_bytes())
    for pkg in ("torch", "onnx", "onnxscript", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            h.update(f"{pkg}={metadata.version(pkg)};".encode())
    return h.hexdigest()[:16]


def zoo_dir(names: Sequence[str] | None = None) -> Path:
    """Directory holding a complete default zoo, building it on first use.

    Uses ``$OPTIMIZER_ZOO_DIR`` if set, else ``<repo>/.zoo_cache/<source_hash()>``. A directory
    counts as built once its zoo.json lists every requested model; concurrent callers serialise
    on a lock file and build into a private temp dir whose files are moved in (zoo.json last).
    """
    wanted = list(MODELS if names is None else names)
    env = os.environ.get("OPTIMIZER_ZOO_DIR")
    target = Path(env) if env else REPO_ROOT / ".zoo_cache" / source_hash()

    def complete() -> bool:
        index = target / "zoo.json"
        if not index.exists():
            return False
        have = {e["name"] for e in load_index(target) if (target / e["file"]).exists()}
        return set(wanted) <= have

    if complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # non-POSIX: rely on the atomic moves below
            pass
        if complete():
            return target
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.build-", dir=target.parent) as tmp:
            build_all(tmp, wanted)
            target.mkdir(parents=True, exist_ok=True)
            files = sorted(p for p in Path(tmp).iterdir() if p.name != "zoo.json")
            for p in files:
                os.replace(p, target / p.name)
            entries = load_index(tmp)
            _write_index(target, entries)
    if not env:
        _prune_stale_caches(target)
    return target


def _prune_stale_caches(current: Path) -> None:
    """Remove cache dirs (and their lock files) built from other zoo sources / versions."""
    hexdigits = set("0123456789abcdef")
    for p in current.parent.iterdir():
        stem = p.name.removesuffix(".lock")
        if stem == current.name or len(stem) != 16 or not set(stem) <= hexdigits:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    parser.add_argument(
        "--big",
        action="store_true",
        help=f"build {', '.join(BIG_MODELS)} instead of the default zoo",
    )
    parser.add_argument("--list", action="store_true", help="print the model names and exit")
    args = parser.parse_args(argv)
    default = BIG_MODELS if args.big else MODELS
    if args.list:
        print("\n".join(default))
        return 0
    if args.out is None:
        parser.error("--out is required")
    names = args.only or list(default)
    unknown = [n for n in names if n not in _SPECS]
    if unknown:
        parser.error(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS + BIG_MODELS)}"
        )
    t0 = time.perf_counter()
    build_all(args.out, names)
    _log(f"built {len(names)} model(s) into {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
