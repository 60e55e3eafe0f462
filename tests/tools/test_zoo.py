"""Tests for tools/zoo.py: the zoo builds, every model is valid, runnable and as declared."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tools import zoo  # noqa: E402  (conftest puts the repo root on sys.path)

EXPECTED: dict[str, tuple[str, int]] = {
    "resnet": ("torch-legacy", 13),
    "resnet_dynamo": ("torch-dynamo", 18),
    "mobilenetv3": ("torch-legacy", 13),
    "mobilenetv3_op14": ("torch-legacy", 14),
    "yolo": ("torch-legacy", 12),
    "bert": ("torch-legacy", 13),
    "bert_dynamo": ("torch-dynamo", 18),
    "vit": ("torch-dynamo", 18),
    "lstm": ("torch-legacy", 13),
    "unet": ("torch-legacy", 11),
    "paddle_cnn": ("paddle-style", 11),
    "paddle_det": ("paddle-style", 11),
}

# op types each model must contain (the patterns it is in the zoo for)
REQUIRED_OPS: dict[str, set[str]] = {
    "resnet": {"Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Gemm", "Shape", "Reshape"},
    "resnet_dynamo": {"Conv", "Relu", "Add", "MaxPool", "Gemm", "Reshape"},
    "mobilenetv3": {
        "Conv",
        "HardSigmoid",
        "Mul",
        "GlobalAveragePool",
        "Gemm",
        "Clip",
        "Div",
        "Shape",
        "Reshape",
    },
    "mobilenetv3_op14": {"Conv", "HardSwish", "Mul", "Gemm", "Clip", "Div", "Shape", "Reshape"},
    "yolo": {
        "Conv",
        "Sigmoid",
        "Mul",
        "Split",
        "Concat",
        "MaxPool",
        "Resize",
        "Shape",
        "Gather",
        "Range",
        "Expand",
        "Softmax",
    },
    "bert": {"Gather", "MatMul", "Softmax", "ReduceMean", "Sqrt", "Erf", "Shape", "Tanh"},
    "bert_dynamo": {"Gather", "MatMul", "Softmax", "LayerNormalization", "Erf"},
    "vit": {"Conv", "MatMul", "Softmax", "Erf", "Concat"},
    "lstm": {"LSTM", "GRU", "Gather", "MatMul"},
    "unet": {"Conv", "MaxPool", "ConvTranspose", "Resize", "Concat"},
    "paddle_cnn": {
        "Constant",
        "Pad",
        "Conv",
        "BatchNormalization",
        "Dropout",
        "Identity",
        "Reshape",
        "Flatten",
        "MatMul",
        "Softmax",
    },
    "paddle_det": {"Constant", "Shape", "Slice", "Concat", "Reshape", "Transpose"},
}


def _load(zoo_path: Path, entry: dict[str, Any]) -> Any:
    return onnx.load(str(zoo_path / entry["file"]))


def _session(path: Path) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_index_lists_every_model(zoo_path: Path, zoo_index: dict[str, dict]) -> None:
    assert list(zoo.MODELS) == list(EXPECTED)
    assert set(zoo.MODELS) <= set(zoo_index)
    for name in zoo.MODELS:
        entry = zoo_index[name]
        assert (zoo_path / entry["file"]).is_file()
        assert entry["description"]
        assert entry["inputs"] and entry["outputs"]


@pytest.mark.parametrize("name", zoo.MODELS)
def test_model_is_valid(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    model = _load(zoo_path, zoo_index[name])
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("name", zoo.MODELS)
def test_exporter_and_opset(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    entry = zoo_index[name]
    model = _load(zoo_path, entry)
    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}["ai.onnx"]
    assert opset == entry["opset"]
    expected = EXPECTED[name]
    if name == "vit" and entry["exporter"] == "torch-legacy":  # documented fallback
        expected = ("torch-legacy", 17)
        assert "dynamo export failed" in entry["description"]
    assert (entry["exporter"], entry["opset"]) == expected
    producer = {
        "torch-legacy": "pytorch",
        "torch-dynamo": "pytorch",
        "paddle-style": "PaddlePaddle",
    }
    assert model.producer_name == producer[entry["exporter"]]


@pytest.mark.parametrize("name", zoo.MODELS)
def test_contains_expected_ops(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    ops = {n.op_type for n in _load(zoo_path, zoo_index[name]).graph.node}
    required = REQUIRED_OPS[name]
    if name == "vit" and zoo_index[name]["exporter"] == "torch-dynamo":
        required = required | {"LayerNormalization"}
    assert required <= ops, f"missing {sorted(required - ops)}"


@pytest.mark.parametrize("name", zoo.MODELS)
def test_runs_in_onnxruntime(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    entry = zoo_index[name]
    sess = _session(zoo_path / entry["file"])
    feeds = zoo.sample_inputs(entry, np.random.default_rng(0))
    assert sorted(feeds) == sorted(i.name for i in sess.get_inputs())
    outputs = sess.run(None, feeds)
    assert len(outputs) == len(entry["outputs"])
    for out, spec in zip(outputs, entry["outputs"], strict=True):
        assert np.all(np.isfinite(out)), spec["name"]
        assert out.ndim == len(spec["shape"])
        for got, want in zip(out.shape, spec["shape"], strict=True):
            if isinstance(want, int):
                assert got == want, (spec["name"], out.shape, spec["shape"])


@pytest.mark.parametrize("name", ["bert", "bert_dynamo"])
def test_bert_dynamic_axes(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    model = _load(zoo_path, zoo_index[name])
    inputs = {i.name: i for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for vi in inputs.values():
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = vi.type.tensor_type.shape.dim
        assert len(dims) == 2
        assert all(d.dim_param and not d.HasField("dim_value") for d in dims), dims
    ids = next(i for i in zoo_index[name]["inputs"] if i["name"] == "input_ids")
    assert (ids["low"], ids["high"]) == (0, 1000)
    # other batch / sequence sizes run
    sess = _session(zoo_path / zoo_index[name]["file"])
    feeds = zoo.sample_inputs(zoo_index[name], 1, {"batch": 3, "seq": 37})
    hidden, pooled = sess.run(None, feeds)
    assert hidden.shape == (3, 37, 64) and pooled.shape == (3, 64)


@pytest.mark.parametrize(("a", "b"), [("resnet", "resnet_dynamo"), ("bert", "bert_dynamo")])
def test_legacy_and_dynamo_exports_agree(
    zoo_path: Path, zoo_index: dict[str, dict], a: str, b: str
) -> None:
    feeds = zoo.sample_inputs(zoo_index[a], 7)
    out_a = _session(zoo_path / zoo_index[a]["file"]).run(None, feeds)
    out_b = _session(zoo_path / zoo_index[b]["file"]).run(None, feeds)
    for x, y in zip(out_a, out_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)


def _shape_fed_reshapes(model: Any) -> list[Any]:
    """Reshape nodes whose target shape is computed at runtime from a Shape op (the
    ``x.view(x.size(0), ...)`` idiom under a dynamic batch)."""
    producers = {o: n for n in model.graph.node for o in n.output}

    def from_shape(name: str, depth: int = 0) -> bool:
        node = producers.get(name)
        if node is None or depth > 6:
            return False
        return node.op_type == "Shape" or any(from_shape(i, depth + 1) for i in node.input)

    return [n for n in model.graph.node if n.op_type == "Reshape" and from_shape(n.input[1])]


def test_resnet_view_flatten(zoo_path: Path, zoo_index: dict[str, dict]) -> None:
    model = _load(zoo_path, zoo_index["resnet"])
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Shape"] >= 1 and ops["Reshape"] >= 1 and "Flatten" not in ops
    assert len(_shape_fed_reshapes(model)) == 1  # x.view(x.size(0), -1) before the fc
    # and the dynamic batch still works
    entry = zoo_index["resnet"]
    (out,) = _session(zoo_path / entry["file"]).run(None, zoo.sample_inputs(entry, 0, {"batch": 3}))
    assert out.shape == (3, 100)


@pytest.mark.parametrize("name", ["mobilenetv3", "mobilenetv3_op14"])
def test_mobilenet_classic_se_blocks(zoo_path: Path, zoo_index: dict[str, dict], name: str) -> None:
    model = _load(zoo_path, zoo_index[name])
    ops = Counter(n.op_type for n in model.graph.node)
    n_se = sum(cfg[4] for cfg in zoo._zm().MobileNetV3.CONFIG)
    # two views per SE block (view(b, c), view(b, c, 1, 1)) plus the classifier flatten
    assert len(_shape_fed_reshapes(model)) == 2 * n_se + 1
    assert ops["Gemm"] >= 2 * n_se + 2  # SE fc layers are Linear, plus the 2-layer head
    assert ops["Clip"] >= n_se and ops["Div"] >= n_se  # hand-written h_sigmoid
    assert "Flatten" not in ops
    entry = zoo_index[name]
    (out,) = _session(zoo_path / entry["file"]).run(None, zoo.sample_inputs(entry, 0, {"batch": 3}))
    assert out.shape == (3, 100)


def test_paddle_cnn_structure(zoo_path: Path, zoo_index: dict[str, dict]) -> None:
    model = _load(zoo_path, zoo_index["paddle_cnn"])
    assert len(model.graph.initializer) == 0
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Constant"] > 0 and ops["BatchNormalization"] > 0 and ops["Pad"] > 0
    # BN is separate from the Conv it follows; the Reshape shape comes from a Constant node
    producers = {o: n for n in model.graph.node for o in n.output}
    bn_inputs = [
        producers[n.input[0]].op_type for n in model.graph.node if n.op_type == "BatchNormalization"
    ]
    assert set(bn_inputs) == {"Conv"}
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    assert producers[reshape.input[1]].op_type == "Constant"
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param


def test_paddle_det_structure(zoo_path: Path, zoo_index: dict[str, dict]) -> None:
    entry = zoo_index["paddle_det"]
    model = _load(zoo_path, entry)
    assert len(model.graph.initializer) == 0
    producers = {o: n for n in model.graph.node for o in n.output}
    transposes = [n for n in model.graph.node if n.op_type == "Transpose"]
    assert any(
        producers.get(n.input[0]) is not None and producers[n.input[0]].op_type == "Transpose"
        for n in transposes
    )
    boxes, scores = _session(zoo_path / entry["file"]).run(
        None, zoo.sample_inputs(entry, 0, {"N": 1, "H": 96, "W": 64})
    )
    assert boxes.shape == (1, 3 * 12 * 8, 4) and scores.shape == (1, 4, 3 * 12 * 8)


def test_yolo_dynamic_image_size(zoo_path: Path, zoo_index: dict[str, dict]) -> None:
    entry = zoo_index["yolo"]
    assert entry["inputs"][0]["shape"] == ["batch", 3, "height", "width"]
    sess = _session(zoo_path / entry["file"])
    (out,) = sess.run(None, zoo.sample_inputs(entry, 0, {"batch": 1, "height": 96, "width": 160}))
    anchors = sum((96 // s) * (160 // s) for s in (8, 16, 32))
    assert out.shape == (1, 14, anchors)


def test_sample_inputs_respects_bounds_and_dims(zoo_index: dict[str, dict]) -> None:
    entry = zoo_index["bert"]
    feeds = zoo.sample_inputs(entry, np.random.default_rng(3), {"seq": 5})
    assert feeds["input_ids"].shape == (zoo.DEFAULT_DIMS["batch"], 5)
    assert feeds["input_ids"].dtype == np.int64
    assert 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 1000
    assert set(np.unique(feeds["attention_mask"])) <= {0, 1}
    again = zoo.sample_inputs(entry, np.random.default_rng(3), {"seq": 5})
    assert all(np.array_equal(feeds[k], again[k]) for k in feeds)


def test_build_is_deterministic(zoo_path: Path, tmp_path: Path) -> None:
    for name in ("resnet", "paddle_cnn"):
        path = zoo.build(name, tmp_path)
        assert path.read_bytes() == (zoo_path / path.name).read_bytes(), name
    assert [e["name"] for e in zoo.load_index(tmp_path)] == ["resnet", "paddle_cnn"]


def test_zoo_dir_env_override_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "custom_zoo"
    monkeypatch.setenv("OPTIMIZER_ZOO_DIR", str(target))
    assert zoo.zoo_dir(["paddle_cnn"]) == target
    built = target / "paddle_cnn.onnx"
    stamp = built.stat().st_mtime_ns
    assert zoo.zoo_dir(["paddle_cnn"]) == target  # cached: not rebuilt
    assert built.stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".custom_zoo.build-")]


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo.main(["--list"]) == 0
    assert capsys.readouterr().out.split() == list(zoo.MODELS)
    assert zoo.main(["--list", "--big"]) == 0
    assert capsys.readouterr().out.split() == list(zoo.BIG_MODELS)


def test_unknown_model_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        zoo.build("no_such_model", tmp_path)
    assert not os.listdir(tmp_path)
