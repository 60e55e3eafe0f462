"""The kernel registry: registration, candidates, selection with reasons, UnsupportedOpError."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
from optimizer.kernels import registry
from optimizer.kernels.registry import KernelSpec, NodeInfo, Support, UnsupportedOpError

from optimizer.errors import OptimizerError


def _identity(inputs, attrs, opset):
    return [inputs[0]]


def _fake(name: str, op: str = "Resize", **kwargs) -> KernelSpec:
    return KernelSpec(name=f"fake.{name}", op=op, backend="fake", fn=_identity, **kwargs)


@pytest.fixture
def fake_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers two fake Resize kernels in a throwaway copy of the registry."""
    registry.load_backends()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BY_OP", {k: list(v) for k, v in registry._BY_OP.items()})
    registry.register(
        _fake(
            "resize_nearest",
            targets=frozenset({"cpu"}),
            check=lambda n, t: (
                Support.yes()
                if n.attrs.get("mode", "nearest") == "nearest"
                else Support.no("only mode=nearest")
            ),
        )
    )
    registry.register(_fake("resize_gpu", targets=frozenset({"cuda"}), since=13))


def test_reference_covers_at_least_80_ops_including_the_zoo() -> None:
    ops = {k.op for k in registry.all_kernels("reference")}
    assert len(ops) >= 80
    zoo = {
        "Add",
        "BatchNormalization",
        "Cast",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Div",
        "Dropout",
        "Erf",
        "Exp",
        "Expand",
        "Flatten",
        "GRU",
        "Gather",
        "Gemm",
        "GlobalAveragePool",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "LSTM",
        "LayerNormalization",
        "LeakyRelu",
        "MatMul",
        "MaxPool",
        "Mul",
        "Pad",
        "Pow",
        "Range",
        "ReduceMean",
        "Relu",
        "Reshape",
        "Resize",
        "Shape",
        "Sigmoid",
        "Slice",
        "Softmax",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Tanh",
        "Transpose",
        "Unsqueeze",
    }
    assert zoo <= ops, sorted(zoo - ops)


def test_every_reference_kernel_is_checked_against_onnxruntime() -> None:
    import tests.kernels as package

    tested: set[str] = set()
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("test_reference_"):
            module = importlib.import_module(f"tests.kernels.{info.name}")
            tested |= {case.op for case in module.CASES}
    ops = {k.op for k in registry.all_kernels("reference")}
    assert ops <= tested, f"reference kernels without an onnxruntime test: {sorted(ops - tested)}"


def test_names_and_uniqueness() -> None:
    for spec in registry.all_kernels():
        assert spec.name.startswith(f"{spec.backend}.")
    assert registry.get("reference.Conv").op == "Conv"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("reference.Conv"))
    with pytest.raises(ValueError, match="must start with"):
        KernelSpec(name="native.conv", op="Conv", backend="numba", fn=_identity)


def test_support_needs_a_reason() -> None:
    assert Support.yes().ok and not Support.no("why").ok
    with pytest.raises(ValueError):
        Support.no("")


def test_candidates_filter_by_opset_and_target(fake_kernels: None) -> None:
    names = [s.name for s in registry.candidates("Resize", 13, "cpu")]
    assert names == ["fake.resize_nearest", "reference.Resize"]  # backends before reference
    assert [s.name for s in registry.candidates("Resize", 11, "cuda")] == ["reference.Resize"]
    assert "fake.resize_gpu" in [s.name for s in registry.candidates("Resize", 13, "cuda")]
    assert registry.candidates("NoSuchOp", 17, "cpu") == []


def test_select_gives_a_reason_for_each_rejection(fake_kernels: None) -> None:
    node = NodeInfo("Resize", opset=11, name="up1", attrs={"mode": "cubic"})
    sel = registry.select(node, "cpu")
    assert sel.supported == []
    reasons = {spec.name: reason for spec, reason in sel.rejected}
    assert reasons == {
        "fake.resize_nearest": "only mode=nearest",
        "fake.resize_gpu": "opset 11 outside supported range 13",
        "reference.Resize": reasons["reference.Resize"],
    }
    assert "mode='cubic' not implemented" in reasons["reference.Resize"]

    ok = registry.select(NodeInfo("Resize", opset=13, attrs={"mode": "linear"}), "cpu")
    assert [s.name for s in ok.supported] == ["reference.Resize"] and ok.only_reference
    assert [r for _, r in ok.rejected] == ["only mode=nearest", "target 'cpu' not in ['cuda']"]


def test_unsupported_op_error_names_op_node_target_candidates_and_hint(
    fake_kernels: None,
) -> None:
    node = NodeInfo("Resize", opset=13, name="up1", attrs={"mode": "cubic"})
    with pytest.raises(UnsupportedOpError) as err:
        registry.select(node, "cpu").require()
    text = str(err.value)
    for part in (
        "Resize",
        "'up1'",
        "'cpu'",
        "opset 13",
        "fake.resize_nearest: only mode=nearest",
        "fake.resize_gpu: target 'cpu' not in ['cuda']",
        "reference.Resize: mode=",
        "Hint:",
    ):
        assert part in text, (part, text)
    assert isinstance(err.value, OptimizerError)
    assert "\n" not in text


def test_no_fallback_turns_reference_into_a_rejection() -> None:
    node = NodeInfo("Relu", opset=17, name="act", input_dtypes=["float32"])
    assert [s.name for s in registry.select(node, "cpu").require()] == ["reference.Relu"]
    with pytest.raises(UnsupportedOpError, match=r"reference.Relu: reference fallback forbidden"):
        registry.select(node, "cpu").require(allow_reference=False)


def test_unknown_op_error() -> None:
    node = NodeInfo("FancyOp", domain="com.example", opset=1, name="n7")
    sel = registry.select(node, "cpu")
    assert sel.supported == [] and sel.rejected == []
    with pytest.raises(UnsupportedOpError) as err:
        sel.require()
    text = str(err.value)
    assert "com.example::FancyOp" in text and "'n7'" in text and "'cpu'" in text
    assert "no kernel is registered" in text and "Hint:" in text


@pytest.mark.parametrize(
    ("op", "attrs", "reason"),
    [
        ("Resize", {"mode": "cubic"}, "mode='cubic' not implemented"),
        (
            "Resize",
            {"coordinate_transformation_mode": "tf_crop_and_resize"},
            "coordinate_transformation_mode='tf_crop_and_resize' not implemented",
        ),
        ("Resize", {"antialias": 1}, "antialias=1 not implemented"),
        ("Pad", {"mode": "mirror"}, "mode='mirror' not implemented"),
        ("BatchNormalization", {"training_mode": 1}, "training_mode=1 not implemented"),
        ("LSTM", {"input_forget": 1}, "input_forget=1 not implemented"),
        ("GRU", {"activations": ["Gelu", "Tanh"]}, "activation 'Gelu' not implemented"),
        ("Cast", {"to": 16}, "cast to TensorProto type 16 not implemented"),
        ("Conv", {"auto_pad": "WEIRD"}, "auto_pad='WEIRD' not implemented"),
        ("Constant", {"sparse_value": 0}, "not implemented"),
        ("ScatterND", {"reduction": "avg"}, "reduction='avg' not implemented"),
        ("MaxPool", {}, "missing kernel_shape"),
    ],
)
def test_reference_rejections_have_reasons(op: str, attrs: dict, reason: str) -> None:
    node = NodeInfo(op, opset=19, name="n", attrs=attrs, input_dtypes=["float32"])
    answer = registry.get(f"reference.{op}").supports(node, "cpu")
    assert not answer.ok and reason in answer.reason, answer.reason


def test_bfloat16_is_rejected_with_a_reason() -> None:
    node = NodeInfo("Add", opset=17, input_dtypes=["bfloat16", "bfloat16"])
    answer = registry.get("reference.Add").supports(node, "cpu")
    assert not answer.ok and "bfloat16" in answer.reason


def test_kernel_spec_build_and_call() -> None:
    spec = registry.get("reference.Split")
    node = NodeInfo("Split", opset=13, attrs={"axis": 0}, output_dtypes=["float32"] * 3)
    parts = spec.build(node)([np.arange(6.0)], {"axis": 0}, 13)
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert [p.tolist() for p in spec([np.arange(4.0)], {"num_outputs": 2}, 18)] == [
        [0.0, 1.0],
        [2.0, 3.0],
    ]
