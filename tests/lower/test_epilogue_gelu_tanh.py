"""The erf GELU written out (``0.5 * x * (1 + Erf(x / sqrt(2)))``, as exporters arrange it) and
Tanh fuse into the preceding GEMM's epilogue (act codes gelu_erf, tanh), natively and for
--target cuda; near misses stay separate steps. Numerics against onnxruntime."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import optimizer
from optimizer import ir
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

M, K, N = 6, 5, 7
RNG = np.random.default_rng(4)
W = (RNG.standard_normal((K, N)) * 0.7).astype(np.float32)
BIAS = RNG.standard_normal(N).astype(np.float32)
W2 = (RNG.standard_normal((N, N)) * 0.5).astype(np.float32)
F32 = np.float32


def _gelu(arrangement: str, root: tuple[str, float] = ("Div", math.sqrt(2)),
          output: str = "") -> onnx.ModelProto:  # fmt: skip
    """MatMul + bias, then the GELU in one of its arrangements, then a second MatMul.

    ``bert``: ``(x * a) * 0.5``; ``vit``: ``x * (0.5 * a)``; ``half_first``: ``(0.5 * x) * a``
    for ``a = 1 + Erf(root(x))``. ``output``: a value also made a graph output.
    """
    op, c = root
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["bias", "m"], ["h"], name="bias"),
        helper.make_node(op, ["h", "c"], ["u"], name="root"),
        helper.make_node("Erf", ["u"], ["e"], name="erf"),
        helper.make_node("Add", ["one", "e"], ["a"], name="plus1"),
    ]
    if arrangement == "bert":
        nodes += [helper.make_node("Mul", ["h", "a"], ["t"], name="mul"),
                  helper.make_node("Mul", ["t", "half"], ["g"], name="mul_half")]  # fmt: skip
    elif arrangement == "vit":
        nodes += [helper.make_node("Mul", ["half", "a"], ["t"], name="mul_half"),
                  helper.make_node("Mul", ["h", "t"], ["g"], name="mul")]  # fmt: skip
    else:
        nodes += [helper.make_node("Mul", ["h", "half"], ["t"], name="mul_half"),
                  helper.make_node("Mul", ["a", "t"], ["g"], name="mul")]  # fmt: skip
    nodes.append(helper.make_node("MatMul", ["g", "w2"], ["y"], name="mm2"))
    outputs = [("y", FLOAT, [M, N])]
    if output:
        outputs.append((output, FLOAT, [M, N]))
    weights = {"w": W, "bias": BIAS, "c": np.array(c, F32), "one": np.array(1.0, F32),
               "half": np.array([0.5], F32), "w2": W2}  # fmt: skip
    return make_model(nodes, [("x", FLOAT, [M, K])], outputs, weights, opset=13)


def _tanh_pooler() -> onnx.ModelProto:
    """BERT's pooler: Gemm (transB) -> Tanh."""
    nodes = [helper.make_node("Gemm", ["x", "wt", "bias"], ["p"], transB=1, name="pooler"),
             helper.make_node("Tanh", ["p"], ["y"], name="tanh")]  # fmt: skip
    weights = {"wt": np.ascontiguousarray(W.T), "bias": BIAS}
    return make_model(nodes, [("x", FLOAT, [M, K])], [("y", FLOAT, [M, N])], weights, opset=13)


def _compile(proto: onnx.ModelProto, out: Path, **kw):
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    return compile_model(model, out, CompileOptions(OptimizeOptions(check=False), **kw))


def _ort(proto: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))


def _check_native(proto: onnx.ModelProto, out: Path) -> list[str]:
    report = _compile(proto, out)
    x = RNG.standard_normal((M, K)).astype(F32)
    got = optimizer.load(out).run({"x": x})
    for key, want in _ort(proto, x).items():
        np.testing.assert_allclose(got[key], want, atol=1e-5, rtol=1e-4, err_msg=key)
    return [row.pattern for row in report.steps]


@pytest.mark.parametrize("arrangement", ["bert", "vit", "half_first"])
@pytest.mark.parametrize("root", [("Div", math.sqrt(2)), ("Mul", math.sqrt(0.5))])
def test_erf_gelu_is_a_gemm_epilogue(tmp_path: Path, arrangement: str, root) -> None:
    patterns = _check_native(_gelu(arrangement, root), tmp_path / "m")
    assert patterns == ["gemm+bias+gelu", "matmul"]  # MatMul + Add became a Gemm


@pytest.mark.parametrize(
    "kw",
    [
        {"arrangement": "bert", "root": ("Div", 1.5)},  # not sqrt(2)
        {"arrangement": "vit", "root": ("Mul", math.sqrt(2))},  # multiplies by sqrt(2)
        {"arrangement": "bert", "output": "a"},  # an intermediate is read outside
        {"arrangement": "half_first", "output": "h"},  # x itself is a graph output
    ],
)
def test_near_misses_stay_elementwise(tmp_path: Path, kw: dict) -> None:
    patterns = _check_native(_gelu(**kw), tmp_path / "m")
    assert not any("gelu" in p for p in patterns), patterns
    assert any("erf" in p for p in patterns), patterns


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the CPU interpreter")
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("fp16", 1e-2)])
def test_cuda_plan_fuses_and_matches(tmp_path: Path, precision: str, tol: float) -> None:
    pytest.importorskip("triton")
    from tests.lower.test_target_cuda import emulate_module

    proto = _gelu("vit")
    report = _compile(proto, tmp_path / "m", target="cuda", precision=precision)
    assert [r.kernel for r in report.steps if r.kernel != "triton.cast"] == [
        "triton.gemm_bias_act"] * 2  # fmt: skip
    x = RNG.standard_normal((M, K)).astype(F32)
    got = emulate_module(tmp_path / "m", report.cuda.launches, {"x": x})
    np.testing.assert_allclose(got["y"], _ort(proto, x)["y"], atol=tol, rtol=tol)


def test_tanh_is_a_gemm_epilogue(tmp_path: Path) -> None:
    assert _check_native(_tanh_pooler(), tmp_path / "m") == ["gemm+bias+tanh"]


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the CPU interpreter")
def test_cuda_tanh_epilogue_matches(tmp_path: Path) -> None:
    pytest.importorskip("triton")
    from tests.lower.test_target_cuda import emulate_module

    proto = _tanh_pooler()
    report = _compile(proto, tmp_path / "m", target="cuda")
    assert [r.kernel for r in report.steps] == ["triton.gemm_bias_act"]
    x = RNG.standard_normal((M, K)).astype(F32)
    got = emulate_module(tmp_path / "m", report.cuda.launches, {"x": x})
    np.testing.assert_allclose(got["y"], _ort(proto, x)["y"], atol=1e-6, rtol=1e-5)
