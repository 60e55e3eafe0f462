"""End to end: ONNX model -> compile_model / `optimize -o dir/` -> optimizer.load(dir).run == onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from optimizer.kernels import python_bridge
from optimizer.kernels.registry import UnsupportedOpError

import optimizer
from optimizer import ir
from optimizer.cli import main
from optimizer.errors import UnsupportedModelError
from optimizer.lower.compile import CompileOptions, CompileReport, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

ATOL, RTOL = 1e-4, 1e-3


def _rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _compile(proto: onnx.ModelProto, out: Path, shapes: dict, **kw) -> CompileReport:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(input_shapes=shapes, check=False), **kw)
    return compile_model(model, out, options)


def _check_against_ort(proto_or_path, module_dir: Path, feeds: dict) -> None:
    source = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    want = ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)
    module = optimizer.load(module_dir)
    got = module.run(feeds)
    assert len(got) == len(want)
    for (name, g), w in zip(got.items(), want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL, err_msg=name)


def _conv_bias_relu() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "dw"], ["d"], group=8, strides=[2, 2], name="dwconv"),
        helper.make_node("Add", ["d", "db"], ["y"], name="bias_add"),
    ]
    weights = {
        "w": _rand(rng, 8, 3, 3, 3, scale=0.3),
        "b": _rand(rng, 8),
        "dw": _rand(rng, 8, 1, 3, 3, scale=0.3),
        "db": _rand(rng, 1, 8, 1, 1),
    }
    return make_model(
        nodes, [("x", FLOAT, ["N", 3, 9, 9])], [("y", FLOAT, ["N", 8, 4, 4])], weights
    )


def _gemm_pool() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], name="maxpool"),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2, 2], strides=[1, 1],
                         ceil_mode=1, name="avgpool"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w", "c"], ["h"], transB=1, alpha=0.5, name="fc"),
        helper.make_node("Sigmoid", ["h"], ["s"], name="sigmoid"),
        helper.make_node("Softmax", ["s"], ["y"], axis=-1, name="softmax"),
    ]  # fmt: skip
    weights = {"w": _rand(rng, 10, 6), "c": _rand(rng, 10)}
    return make_model(nodes, [("x", FLOAT, ["N", 6, 10, 10])], [("y", FLOAT, ["N", 10])], weights)


def _with_fallback() -> onnx.ModelProto:
    """Softplus and LpNormalization have no native kernel: they run on the reference bridge."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Softplus", ["m"], ["t"], name="softplus"),
        helper.make_node("LpNormalization", ["t"], ["y"], axis=2, p=2, name="lpnorm"),
    ]
    return make_model(
        nodes, [("x", FLOAT, ["N", 5, 4])], [("y", FLOAT, ["N", 5, 6])], {"w": _rand(rng, 4, 6)},
        opset=13,
    )  # fmt: skip


def test_conv_bias_relu_all_native(tmp_path: Path) -> None:
    report = _compile(_conv_bias_relu(), tmp_path / "m", {"x": [2, 3, 9, 9]})
    assert not report.fallbacks
    kernels = {row.kernel for row in report.steps}
    assert kernels == {"native.conv2d_packed_f32", "native.depthwise_conv2d_f32"}
    assert report.arena_size > 0
    x = _rand(np.random.default_rng(5), 2, 3, 9, 9)
    _check_against_ort(_conv_bias_relu(), tmp_path / "m", {"x": x})


def test_gemm_and_pools_native(tmp_path: Path) -> None:
    report = _compile(_gemm_pool(), tmp_path / "m", {"x": [3, 6, 10, 10]})
    kernels = {row.kernel for row in report.steps}
    assert {"native.maxpool2d_f32", "native.avgpool2d_f32", "native.global_avgpool_f32",
            "native.gemm_f32", "native.softmax_f32"} <= kernels  # fmt: skip
    assert report.fallback_ops in ([], ["Flatten"], ["Reshape"])  # a view op may stay Python
    x = _rand(np.random.default_rng(6), 3, 6, 10, 10)
    _check_against_ort(_gemm_pool(), tmp_path / "m", {"x": x})


def test_fallback_warns_and_matches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="optimizer"):
        report = _compile(_with_fallback(), tmp_path / "m", {"x": [2, 5, 4]})
    assert {"Softplus", "LpNormalization"} <= set(report.fallback_ops)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "Softplus" in warning and "LpNormalization" in warning
    assert any(r.kernel == "native.gemm_f32" for r in report.steps)
    x = _rand(np.random.default_rng(7), 2, 5, 4)
    _check_against_ort(_with_fallback(), tmp_path / "m", {"x": x})


def test_no_fallback_raises_unsupported_op(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        _compile(_with_fallback(), tmp_path / "m", {"x": [2, 5, 4]}, no_fallback=True)
    message = str(info.value)
    assert "Softplus" in message and "'softplus'" in message and "'cpu'" in message
    assert "--no-fallback" in message  # the reference kernel's reason
    assert not (tmp_path / "m").exists()


def test_unpinned_symbolic_dim_names_input_and_flag(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match=r"input 'x'.*--input-shape x:"):
        _compile(_conv_bias_relu(), tmp_path / "m", {})


def test_bridge_program_roundtrip() -> None:
    program = {"opset": 17, "nodes": [{"op": "Relu", "attrs": {"t": python_bridge.encode_attr(
        np.arange(3, dtype=np.int64))}, "in": [0], "out": [1]}], "outputs": [1]}  # fmt: skip
    assert python_bridge.decode_program(python_bridge.encode_program(program)) == program
    assert all(0 <= w < 2**63 for w in python_bridge.encode_program(program))


def test_cli_compiles_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(_conv_bias_relu(), src)
    out = tmp_path / "module"
    rc = main([str(src), "-o", f"{out}/", "--input-shape", "x:1x3x9x9", "--no-fallback"])
    assert rc == 0, capsys.readouterr().err
    assert "peak arena" in capsys.readouterr().out
    x = _rand(np.random.default_rng(8), 1, 3, 9, 9)
    _check_against_ort(str(src), out, {"x": x})
    # an existing directory also means "compile"; a missing --input-shape is a clear error
    rc = main([str(src), "-o", str(out)])
    assert rc == 2
    assert "--input-shape x:" in capsys.readouterr().err


def test_cli_no_fallback_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(_with_fallback(), src)
    rc = main([str(src), "-o", f"{tmp_path / 'm'}/", "--input-shape", "x:2x5x4", "--no-fallback"])
    assert rc == 2
    assert "unsupported op Softplus" in capsys.readouterr().err


ZOO_MODELS = [
    "resnet", "resnet_dynamo", "mobilenetv3", "mobilenetv3_op14", "yolo", "bert", "bert_dynamo",
    "vit", "lstm", "unet", "paddle_cnn", "paddle_det",
]  # fmt: skip


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model_compiles_natively_and_matches(name: str, tmp_path: Path) -> None:
    """Issue 3, acceptance 1: every zoo model compiles with no fallback (``--no-fallback``) and
    matches onnxruntime at 1e-4 abs / 1e-3 rel through Python and through the C++ runner."""
    pytest.importorskip("torch")
    import subprocess

    from optimizer import runtime
    from tools import plan_report, zoo

    root = zoo.zoo_dir()
    entry = next(e for e in zoo.load_index(root) if e["name"] == name)
    shapes = plan_report.sample_shapes(entry)
    dims = {
        d: size
        for i in entry["inputs"]
        for d, size in zip(i["shape"], shapes[i["name"]])
        if isinstance(d, str)
    }
    report = compile_model(
        ir.load(root / entry["file"]),
        tmp_path / name,
        CompileOptions(OptimizeOptions(input_shapes=shapes, check=False), no_fallback=True),
    )
    assert report.steps and not any(r.fallback for r in report.steps)
    feeds = zoo.sample_inputs(entry, 0, dims)
    _check_against_ort(str(root / entry["file"]), tmp_path / name, feeds)
    # the same module in the C++ runner (no Python inside), inputs and outputs as .npy
    args = [runtime.runner_path(), str(tmp_path / name), "--iterations", "2"]
    for key, value in feeds.items():
        np.save(tmp_path / f"in_{key}.npy", value)
        args += ["--input", f"{key}={tmp_path / f'in_{key}.npy'}"]
    out_dir = tmp_path / "runner_out"
    out_dir.mkdir()
    proc = subprocess.run([*args, "--save-outputs", str(out_dir)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = ort.InferenceSession(str(root / entry["file"]), providers=["CPUExecutionProvider"])
    names = [o.name for o in want.get_outputs()]
    for out_name, expected in zip(names, want.run(None, feeds)):
        got = np.load(out_dir / f"{out_name}.npy")
        np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL, err_msg=out_name)


def _eltwise_chains() -> onnx.ModelProto:
    """Elementwise chains no fixed native pattern covers: they run as eltwise_program_f32."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        # erf GELU
        helper.make_node("Div", ["m", "sqrt2"], ["g0"], name="g_div"),
        helper.make_node("Erf", ["g0"], ["g1"], name="g_erf"),
        helper.make_node("Add", ["g1", "one"], ["g2"], name="g_add"),
        helper.make_node("Mul", ["m", "g2"], ["g3"], name="g_mul"),
        helper.make_node("Mul", ["g3", "half"], ["g"], name="g_mul2"),
        helper.make_node("MatMul", ["g", "w2"], ["h"], name="matmul2"),
        # broadcasting over [N, 5, 6]: (h - mean[6]) / sqrt(var[5,1] + eps), clip, exp, pow
        helper.make_node("Sub", ["h", "mean"], ["s0"], name="s_sub"),
        helper.make_node("Add", ["var", "eps"], ["s1"], name="s_add"),
        helper.make_node("Sqrt", ["s1"], ["s2"], name="s_sqrt"),
        helper.make_node("Div", ["s0", "s2"], ["s3"], name="s_div"),
        helper.make_node("Clip", ["s3", "lo", "hi"], ["s4"], name="s_clip"),
        helper.make_node("Exp", ["s4"], ["s5"], name="s_exp"),
        helper.make_node("Pow", ["s5", "two"], ["s6"], name="s_pow"),
        helper.make_node("Max", ["s6", "h", "mean"], ["s7"], name="s_max"),
        helper.make_node("Sigmoid", ["s7"], ["s8"], name="s_sig"),
        helper.make_node("Mul", ["s8", "h"], ["y"], name="s_mul"),
    ]
    f32 = np.float32
    weights = {
        "w": _rand(rng, 4, 6), "w2": _rand(rng, 6, 6), "sqrt2": np.array(1.4142135, f32),
        "one": np.array(1.0, f32), "half": np.array([0.5], f32), "mean": _rand(rng, 6),
        "var": np.abs(_rand(rng, 5, 1)), "eps": np.array(1e-5, f32),
        "lo": np.array(-2.0, f32), "hi": np.array(2.0, f32), "two": np.array(2.0, f32),
    }  # fmt: skip
    return make_model(
        nodes, [("x", FLOAT, ["N", 5, 4])], [("y", FLOAT, ["N", 5, 6])], weights, opset=13
    )


def test_eltwise_chains_run_as_programs(tmp_path: Path) -> None:
    report = _compile(_eltwise_chains(), tmp_path / "m", {"x": [2, 5, 4]})
    assert not report.fallbacks, report.fallbacks
    kernels = [row.kernel for row in report.steps]
    # the erf GELU is the first MatMul's epilogue (act gelu_erf); the other chain a program
    assert report.steps[0].pattern == "matmul+gelu", report.steps
    assert kernels.count("native.eltwise_program_f32") >= 1, kernels
    x = _rand(np.random.default_rng(9), 2, 5, 4)
    _check_against_ort(_eltwise_chains(), tmp_path / "m", {"x": x})


def test_eltwise_program_casts_integer_input(tmp_path: Path) -> None:
    """The attention-mask chain: the program kernel converts the int64 mask on load."""
    nodes = [
        helper.make_node("Cast", ["mask"], ["c"], to=1, name="cast"),
        helper.make_node("Sub", ["one", "c"], ["s"], name="sub"),
        helper.make_node("Mul", ["s", "big"], ["m"], name="mul"),
        helper.make_node("Add", ["x", "m"], ["y"], name="add"),
    ]
    weights = {"one": np.array(1.0, np.float32), "big": np.array(-1e4, np.float32)}
    proto = make_model(
        nodes, [("x", FLOAT, ["N", 6]), ("mask", onnx.TensorProto.INT64, ["N", 6])],
        [("y", FLOAT, ["N", 6])], weights, opset=13,
    )  # fmt: skip
    report = _compile(proto, tmp_path / "m", {"x": [2, 6], "mask": [2, 6]})
    assert not report.fallbacks, report.fallbacks
    assert {r.kernel for r in report.steps} == {"native.eltwise_program_f32"}
    x = _rand(np.random.default_rng(10), 2, 6)
    mask = np.array([[1, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]], np.int64)
    _check_against_ort(proto, tmp_path / "m", {"x": x, "mask": mask})


@pytest.mark.parametrize(
    ("c", "hw", "co", "k", "attrs"),
    [
        (8, 9, 70, 3, {"pads": [1, 1, 1, 1]}),  # Co across three 32-wide weight panels
        (12, 11, 18, 3, {"group": 3, "strides": [2, 2], "pads": [1, 0, 2, 1]}),  # grouped
        (6, 13, 40, 3, {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
        (64, 2, 128, 3, {"pads": [1, 1, 1, 1]}),  # 4 output pixels: a partial micro-kernel row
        (5, 17, 33, 1, {}),  # pointwise, Co = 32 + 1
    ],
)
def test_conv_packed_weights_match_ort(tmp_path: Path, c, hw, co, k, attrs) -> None:
    """Constant conv weights are packed at compile time into 32-wide panels (params.md)."""
    rng = np.random.default_rng(co)
    cg = c // attrs.get("group", 1)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", **attrs),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]  # fmt: skip
    weights = {"w": _rand(rng, co, cg, k, k, scale=0.3), "b": _rand(rng, co)}
    proto = make_model(nodes, [("x", FLOAT, [2, c, hw, hw])], [("y", FLOAT, [2, co, "H", "W"])],
                       weights)  # fmt: skip
    report = _compile(proto, tmp_path / "m", {})
    assert [s.kernel for s in report.steps] == ["native.conv2d_packed_f32"]
    _check_against_ort(proto, tmp_path / "m", {"x": _rand(rng, 2, c, hw, hw)})


def test_pack_conv_weights_layout() -> None:
    from optimizer.lower.bind import pack_conv_weights

    w = np.arange(2 * 35 * 3 * 2 * 2, dtype=np.float32).reshape(70, 3, 2, 2)  # group 2: Mg 35
    packed = pack_conv_weights(w, 2)
    assert packed.shape == (2, 2, 12, 32)
    flat = w.reshape(2, 35, 12)
    assert packed[1, 0, 5, 7] == flat[1, 7, 5]
    assert packed[1, 1, 11, 2] == flat[1, 34, 11]
    assert not packed[0, 1, :, 3:].any()  # channels 35..63 of the last panel are zero
