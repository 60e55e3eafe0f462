"""``optimize fuzz``: the user-facing differential fuzzer (issue 4, acceptance 4).

Small models exercise each feature (targets, distributions, integer ranges, samples, NaN
reporting, the report formats and exit codes); planted bugs (a wrong reference kernel in a
compiled module, a wrong BatchNorm fold in the optimized graph, NaNs) must be caught with
exit 1, the output named and the worst input saved. The zoo test runs every zoo model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optimizer.cli import main
from optimizer.fuzz import FuzzOptions, fuzz_model
from optimizer.fuzz.inputs import InputSpec, generate, index_ranges
from optimizer.ir import Model
from tests.helpers import FLOAT, INT64, make_model


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["fuzz", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("optimize fuzz: error:"), err
    assert expected in lines[0], err
    assert "Traceback" not in err


def _save(proto: onnx.ModelProto, path: Path) -> Path:
    onnx.save(proto, path)
    return path


def _mlp_softplus() -> onnx.ModelProto:
    """x[N, 8] -> MatMul -> Add -> Softplus -> y: Softplus has no native kernel, so the compiled
    module runs it through the NumPy reference kernel (the one a test plants a bug in)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
        helper.make_node("Softplus", ["a"], ["y"], name="softplus"),
    ]
    return make_model(
        nodes,
        [("x", FLOAT, ["N", 8])],
        [("y", FLOAT, ["N", 6])],
        {
            "w": rng.standard_normal((8, 6)).astype(np.float32),
            "b": rng.standard_normal(6).astype(np.float32),
        },
        opset=13,
    )


def _embedding() -> onnx.ModelProto:
    """ids -> Cast -> Gather(table[50, 4]); mask -> Cast -> Mul; OneHot(cls, depth 7)."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Gather", ["table", "ids32"], ["emb"], axis=0, name="lookup"),
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axes"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["y"]),
        helper.make_node("OneHot", ["cls", "depth", "onoff"], ["onehot"], axis=-1),
    ]
    return make_model(
        nodes,
        [("ids", INT64, ["B", "S"]), ("mask", INT64, ["B", "S"]), ("cls", INT64, ["B"])],
        [("y", FLOAT, ["B", "S", 4]), ("onehot", FLOAT, ["B", 7])],
        {
            "table": rng.standard_normal((50, 4)).astype(np.float32),
            "axes": np.array([2], np.int64),
            "depth": np.array(7, np.int64),
            "onoff": np.array([0.0, 1.0], np.float32),
        },
        opset=13,
    )


def _conv_bn() -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu: the O2 pipeline folds the BN into the Conv."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "mu", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["y"], name="relu"),
    ]
    return make_model(
        nodes,
        [("x", FLOAT, ["N", 3, 8, 8])],
        [("y", FLOAT, ["N", 4, 8, 8])],
        {
            "w": (0.3 * rng.standard_normal((4, 3, 3, 3))).astype(np.float32),
            "g": rng.uniform(0.5, 1.5, 4).astype(np.float32),
            "beta": rng.standard_normal(4).astype(np.float32),
            "mu": rng.standard_normal(4).astype(np.float32),
            "var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        },
        opset=13,
    )


def _log_model() -> onnx.ModelProto:
    """y = Log(x) + 0: NaN for every negative input, in the reference and in ours."""
    nodes = [
        helper.make_node("Log", ["x"], ["l"]),
        helper.make_node("Add", ["l", "zero"], ["y"]),
    ]
    return make_model(
        nodes, [("x", FLOAT, [4, 5])], [("y", FLOAT, [4, 5])], {"zero": np.zeros(1, np.float32)}
    )


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    return _save(_mlp_softplus(), tmp_path / "mlp.onnx")


# -- the happy path --------------------------------------------------------------------------------


def test_graph_target_within_tolerance_text_report(mlp: Path, capsys) -> None:
    code, out, err = _run([str(mlp), "--iterations", "8", "--input-shape", "x:3x8"], capsys)
    assert code == 0, err
    assert "8 input sets (8 random: normal, uniform, large, zeros; seed 0)" in out
    assert "inputs: x float32[3x8]" in out
    assert "graph: optimized graph (O2)" in out
    assert "result: ok" in out
    assert err == ""  # no progress bar: stderr is not a terminal


def test_compiled_and_graph_json_report(mlp: Path, capsys) -> None:
    code, out, err = _run(
        [str(mlp), "--graph", "--compiled", "--iterations", "4", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert [t["name"] for t in report["targets"]] == ["graph", "compiled"]
    assert "reference (NumPy) kernels" in report["targets"][1]["summary"]  # Softplus
    assert report["inputs"][0]["shape"] == [2, 8]  # open dim N: 2 first
    assert report["input_sets"] == 4
    assert [(o["target"], o["output"]) for o in report["outputs"]] == [
        ("graph", "y"),
        ("compiled", "y"),
    ]
    for o in report["outputs"]:
        assert o["ok"] and o["failures"] == 0 and o["input_sets"] == 4
        assert o["atol"] == 1e-4 and o["rtol"] == 1e-3
        assert o["max_abs_error"] < 1e-2
        assert o["nan"] == {"reference": 0, "ours": 0}
        assert o["worst"]["distribution"] in ("normal", "uniform", "large", "zeros")


def test_existing_module(mlp: Path, tmp_path: Path, capsys) -> None:
    module = tmp_path / "mod"
    assert main([str(mlp), "-o", f"{module}/", "--input-shape", "x:5x8", "-q"]) == 0
    code, out, err = _run(
        [str(mlp), "--module", str(module), "--iterations", "4", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["inputs"][0]["shape"] == [5, 8]  # the module's signature
    assert report["outputs"][0]["target"] == "module" and report["ok"]
    # a module of another model: its inputs do not match
    other = _save(_log_model(), tmp_path / "log.onnx")
    code, _, err = _run([str(other), "--module", str(module), "--iterations", "1"], capsys)
    _assert_one_line_error(code, err, "was it compiled from this model?")


# -- planted bugs ------------------------------------------------------------------------------


def test_planted_wrong_reference_kernel_is_caught(
    mlp: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Softplus 1% too large above 2 (a subtle bug, absent near zero): exit 1, the output
    named, and the worst input saved where it reproduces the failure."""
    from optimizer.kernels.reference import unary

    good = unary._softplus
    monkeypatch.setattr(
        unary, "_softplus", lambda x: (good(x) * np.where(x > 2, 1.01, 1.0)).astype(x.dtype)
    )
    worst = tmp_path / "worst"
    args = [str(mlp), "--compiled", "--iterations", "8", "--save-worst", str(worst)]
    code, out, err = _run(args, capsys)
    assert code == 1, out + err
    assert "compiled  y" in out and "FAIL" in out
    assert "compiled output 'y': worst at iteration" in out
    assert f"input saved in {worst / 'compiled' / 'y'}" in out
    case = json.loads((worst / "compiled" / "y" / "case.json").read_text())
    assert case["ok"] is False and case["tolerance_ratio"] > 1
    saved = np.load(worst / "compiled" / "y" / "x.npy")
    assert saved.shape == (2, 8) and saved.dtype == np.float32
    outputs = np.load(worst / "compiled" / "y" / "outputs.npz")
    assert not np.allclose(outputs["actual"], outputs["expected"], atol=1e-4, rtol=1e-3)

    # replaying the saved input alone fails again; with the kernel fixed it passes
    replay = [str(mlp), "--compiled", "--iterations", "0", "--inputs", str(worst), "--json"]
    code, out, _ = _run(replay, capsys)
    assert code == 1 and json.loads(out)["samples"] == 1
    monkeypatch.setattr(unary, "_softplus", good)
    code, out, _ = _run(replay, capsys)
    assert code == 0, out


def test_planted_wrong_batchnorm_fold_is_caught(tmp_path: Path, capsys, monkeypatch) -> None:
    """The optimized graph's BN fold shifted by 1e-3: caught on the graph target."""
    from optimizer.passes import fold_batchnorm

    good = fold_batchnorm._bn_scale_shift

    def wrong(m):
        s, t = good(m)
        return s, t + 1e-3

    path = _save(_conv_bn(), tmp_path / "convbn.onnx")
    code, out, err = _run([str(path), "--iterations", "4"], capsys)
    assert code == 0, out + err
    monkeypatch.setattr(fold_batchnorm, "_bn_scale_shift", wrong)
    code, out, err = _run([str(path), "--iterations", "4", "--json"], capsys)
    assert code == 1, out + err
    (o,) = json.loads(out)["outputs"]
    assert o["output"] == "y" and not o["ok"] and o["failures"] >= 3  # all but zeros-ish
    assert 5e-4 < o["max_abs_error"] < 2e-3


def test_wrong_native_kernel_result_in_existing_module_is_caught(tmp_path: Path, capsys) -> None:
    """A module whose native GEMM computes 0.3% too much (its packed weights scaled, the
    checksum re-signed so the runtime loads it): ``--module`` fails it, the graph still passes."""
    import hashlib

    rng = np.random.default_rng(4)
    proto = make_model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")],
        [("x", FLOAT, [4, 16])],
        [("y", FLOAT, [4, 8])],
        {
            "w": rng.standard_normal((16, 8)).astype(np.float32),
            "b": rng.standard_normal(8).astype(np.float32),
        },
        opset=13,
    )
    path = _save(proto, tmp_path / "fc.onnx")
    module = tmp_path / "fc_module"
    assert main([str(path), "-o", f"{module}/", "-q", "--no-fallback"]) == 0
    code, out, err = _run([str(path), "--module", str(module), "--iterations", "4"], capsys)
    assert code == 0, out + err
    weights = module / "weights.bin"
    data = np.fromfile(weights, np.float32) * np.float32(1.003)
    data.tofile(weights)
    manifest = json.loads((module / "manifest.json").read_text())
    manifest["files"]["weights.bin"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (module / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = _run([str(path), "--module", str(module), "--iterations", "4"], capsys)
    assert code == 1, out + err
    assert "module output 'y': worst at iteration" in out and "FAIL 4/4" in out
    code, _, err = _run([str(path), "--module", str(module), "--input-shape", "x:2x16"], capsys)
    _assert_one_line_error(code, err, "x:2x16 conflicts with the module's [4, 16]")


def test_nan_in_ours_only_fails_and_is_reported(mlp: Path, capsys, monkeypatch) -> None:
    from optimizer.kernels.reference import unary

    good = unary._softplus
    monkeypatch.setattr(
        unary, "_softplus", lambda x: np.where(x > 3, np.nan, good(x)).astype(x.dtype)
    )
    code, out, _ = _run([str(mlp), "--compiled", "--iterations", "4", "--json"], capsys)
    assert code == 1
    (o,) = json.loads(out)["outputs"]
    assert o["nan"]["reference"] == 0 and o["nan"]["ours"] > 0
    assert o["worst"]["tolerance_ratio"] == "inf"
    assert "NaN where the reference has a number" in o["worst"]["detail"]


def test_nan_in_both_is_reported_not_failed(tmp_path: Path, capsys) -> None:
    path = _save(_log_model(), tmp_path / "log.onnx")
    code, out, err = _run([str(path), "--iterations", "4"], capsys)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.split()[:2] == ["graph", "y"])
    nan_ref, nan_ours = row.split()[6].split("/")  # "NaN ref/ours" column
    assert int(nan_ref) > 0 and nan_ref == nan_ours


def test_native_exp_overflows_to_inf_like_expf(tmp_path: Path, capsys) -> None:
    """Regression (found by this fuzzer on the ONNX Exp node test): the native exp clamped its
    argument at 88.3, so exp(1000) was 2.2e38 instead of inf and exp(88.5) 18% too small."""
    import optimizer

    proto = make_model(
        [helper.make_node("Exp", ["x"], ["y"], name="exp")],
        [("x", FLOAT, [3, 4])],
        [("y", FLOAT, [3, 4])],
        opset=13,
    )
    path = _save(proto, tmp_path / "exp.onnx")
    code, out, err = _run([str(path), "--compiled", "--iterations", "4", "--json"], capsys)
    assert code == 0, out + err
    (o,) = json.loads(out)["outputs"]
    assert o["inf"]["reference"] > 0 and o["inf"]["ours"] == o["inf"]["reference"]
    module = tmp_path / "exp_module"
    assert main([str(path), "-o", f"{module}/", "-q", "--no-fallback"]) == 0
    x = np.array(
        [[0, 1, 80, 88.0], [88.3, 88.5, 88.7, 88.72], [88.73, 89, 1e3, np.inf]], np.float32
    )
    got = optimizer.load(module).run({"x": x})["y"]
    with np.errstate(over="ignore"):
        want = np.exp(x)
    np.testing.assert_allclose(got, want, rtol=1e-6)  # inf == inf


# -- inputs ------------------------------------------------------------------------------------


def test_integer_inputs_get_valid_ranges(tmp_path: Path, capsys) -> None:
    proto = _embedding()
    model = Model.from_proto(proto)
    bounds = index_ranges(model)
    assert bounds["ids"] == (50, "Gather 'lookup' axis 0")  # through the Cast
    assert bounds["cls"][0] == 7  # OneHot depth
    assert "mask" not in bounds
    path = _save(proto, tmp_path / "emb.onnx")
    code, out, err = _run([str(path), "--iterations", "8", "--json"], capsys)
    assert code == 0, err  # onnxruntime rejects an out-of-range Gather index: none was made
    ranges = {i["name"]: i["range"] for i in json.loads(out)["inputs"]}
    assert ranges == {"ids": [0, 49], "mask": [0, 1], "cls": [0, 6]}
    # a user range that leaves the table: the reference fails on every input set -> exit 2
    code, _, err = _run([str(path), "--iterations", "2", "--range", "ids=50:60"], capsys)
    _assert_one_line_error(code, err, "the original model does not run on random inputs")


def test_shape_operands_are_held_at_the_sample(tmp_path: Path, capsys) -> None:
    """A Reshape whose target shape is an input: with a sample, every set keeps its value (a
    compiled module fixes shapes at compile time); the data input still varies."""
    proto = make_model(
        [helper.make_node("Reshape", ["data", "shape"], ["y"], name="r")],
        [("data", FLOAT, [2, 3, 4]), ("shape", INT64, [3])],
        [("y", FLOAT, [4, 2, 3])],
        opset=13,
    )
    path = _save(proto, tmp_path / "reshape.onnx")
    np.save(tmp_path / "d.npy", np.ones((2, 3, 4), np.float32))
    np.save(tmp_path / "s.npy", np.array([4, 2, 3], np.int64))
    args = [str(path), "--graph", "--compiled", "--iterations", "8", "--json"]
    args += ["--inputs", f"data={tmp_path / 'd.npy'}", "--inputs", f"shape={tmp_path / 's.npy'}"]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    report = json.loads(out)
    shape = report["inputs"][1]
    assert shape["held"] == [4, 2, 3] and shape["range_from"] == "shape operand 1 of Reshape 'r'"
    assert report["input_sets"] == 9 and report["reference_failures"] == []


def test_zero_size_dimension_of_a_sample_is_kept(tmp_path: Path, capsys) -> None:
    """A sample with a zero-size dimension gives the random sets that shape (0 is a size, not
    an open dimension: it used to become 2, and a compiled module then refused the sample)."""
    proto = make_model(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
        [("x", FLOAT, [3, 4]), ("axes", INT64, ["k"])],
        [("y", FLOAT, [1, 1])],
        opset=13,
    )
    path = _save(proto, tmp_path / "reduce.onnx")
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "axes.npy", np.zeros((0,), np.int64))  # empty axes: reduce all
    args = [str(path), "--iterations", "4", "--json", "--inputs", f"x={tmp_path / 'x.npy'}"]
    code, out, err = _run([*args, "--inputs", f"axes={tmp_path / 'axes.npy'}"], capsys)
    assert code == 0, err
    axes = json.loads(out)["inputs"][1]
    assert axes["shape"] == [0] and axes["held"] == []


def test_distributions() -> None:
    rng = np.random.default_rng(0)
    f = InputSpec("x", np.dtype(np.float32), (200, 50))
    i = InputSpec("i", np.dtype(np.int64), (200, 50), low=0, high=49)
    r = InputSpec("r", np.dtype(np.float32), (200, 50), low=-2.0, high=3.0)
    normal = generate([f, i, r], "normal", rng)
    assert 0.9 < normal["x"].std() < 1.1 and normal["x"].dtype == np.float32
    assert normal["i"].min() == 0 and normal["i"].max() == 49 and normal["i"].dtype == np.int64
    assert -2 <= normal["r"].min() and normal["r"].max() <= 3
    uniform = generate([f, r], "uniform", rng)
    assert -1 <= uniform["x"].min() < -0.99 and 0.99 < uniform["x"].max() <= 1
    large = generate([f, i, r], "large", rng, large_scale=1e3)
    assert 900 < large["x"].std() < 1100
    assert set(np.unique(large["i"])) == {0, 49}  # boundary values of the range
    assert set(np.unique(large["r"])) == {-2.0, 3.0}
    zeros = generate([f, i, r], "zeros", rng)
    assert not zeros["x"].any() and not zeros["i"].any() and not zeros["r"].any()
    b = InputSpec("b", np.dtype(np.bool_), (10,), low=0, high=1)
    assert generate([b], "normal", rng)["b"].dtype == np.bool_


def test_scalar_bool_and_fp16_inputs(tmp_path: Path, capsys) -> None:
    """0-d inputs come out as arrays in every distribution (a NumPy scalar is not a valid
    onnxruntime feed); bools are coins; fp16 outputs get the fp16 tolerance."""
    nodes = [
        helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
        helper.make_node("Mul", ["xh", "s"], ["m"]),
        helper.make_node("Where", ["c", "m", "xh"], ["y"]),
    ]
    proto = make_model(
        nodes,
        [("x", FLOAT, ["N", 3]), ("c", TensorProto.BOOL, ["N", 3]), ("s", TensorProto.FLOAT16, [])],
        [("y", TensorProto.FLOAT16, ["N", 3])],
        opset=13,
    )
    path = _save(proto, tmp_path / "fp16.onnx")
    code, out, err = _run(
        [str(path), "--graph", "--compiled", "--iterations", "8", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["input_sets"] == 8 and report["reference_failures"] == []
    assert report["inputs"][2]["shape"] == [] and report["inputs"][1]["range"] == [0, 1]
    assert all((o["atol"], o["rtol"]) == (1e-2, 1e-2) for o in report["outputs"])


def test_distribution_flag_and_seed(mlp: Path, capsys) -> None:
    args = [str(mlp), "--iterations", "3", "--distributions", "large", "--json"]
    _, first, _ = _run([*args, "--seed", "5"], capsys)
    _, again, _ = _run([*args, "--seed", "5"], capsys)
    _, other, _ = _run([*args, "--seed", "6"], capsys)
    first, again, other = (json.loads(x)["outputs"][0] for x in (first, again, other))
    assert first["worst"]["distribution"] == "large"
    assert first["max_abs_error"] == again["max_abs_error"]
    assert first["max_tolerance_ratio"] == again["max_tolerance_ratio"]
    assert json.loads(json.dumps(other))["output"] == "y"


def test_npy_samples_file_and_directory(mlp: Path, tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(3).standard_normal((7, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    code, out, err = _run(
        [str(mlp), "--inputs", f"x={tmp_path / 'a.npy'}", "--iterations", "2", "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["samples"] == 1 and report["input_sets"] == 3
    assert report["inputs"][0]["shape"] == [7, 8]  # random sets take the samples' shape
    # a directory: every folder holding x.npy is a set; float64 samples are cast
    for k in range(3):
        (tmp_path / "samples" / f"s{k}").mkdir(parents=True)
        np.save(tmp_path / "samples" / f"s{k}" / "x.npy", x.astype(np.float64) * (k + 1))
    code, out, err = _run(
        [str(mlp), "--inputs", str(tmp_path / "samples"), "--iterations", "0", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["samples"] == 3


def test_quiet_and_progress_bar(mlp: Path, capsys, monkeypatch) -> None:
    code, out, err = _run([str(mlp), "--iterations", "2", "-q"], capsys)
    assert (code, out, err) == (0, "", "")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    code, out, err = _run([str(mlp), "--iterations", "3"], capsys)
    assert code == 0 and "fuzzing" in err  # tqdm on a terminal


# -- bad usage: one line, exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "the following arguments are required: model"),
        (["{mlp}", "--bogus"], "unrecognized arguments: --bogus"),
        (["{dir}/missing.onnx"], "no such model file"),
        (["{dir}/junk.onnx"], "junk.onnx"),
        (["{mlp}", "--iterations", "-1"], "--iterations must be >= 0"),
        (["{mlp}", "--iterations", "0"], "nothing to run"),
        (["{mlp}", "--iterations", "x"], "invalid int value"),
        (["{mlp}", "--distributions", "normal,gauss"], "unknown gauss"),
        (["{mlp}", "--range", "x=3"], "expected NAME=LOW:HIGH"),
        (["{mlp}", "--range", "x=3:1"], "need finite LOW <= HIGH"),
        (["{mlp}", "--range", "nope=0:1"], "model has no input of that name"),
        (["{mlp}", "--input-shape", "x:3xa"], "dimensions must be integers"),
        (["{mlp}", "--input-shape", "x:3x9"], "dimension 1 is fixed to 8"),
        (["{mlp}", "--input-shape", "q:3"], "model has no input 'q'"),
        (["{mlp}", "--inputs", "x={dir}/none.npy"], "no such file"),
        (["{mlp}", "--inputs", "y={dir}/none.npy"], "model has no input of that name"),
        (["{mlp}", "--inputs", "{dir}/nodir"], "no such directory"),
        (["{mlp}", "--inputs", "{dir}"], "no input set found"),
        (["{mlp}", "--no-fallback"], "--no-fallback applies to --compiled only"),
        (["{mlp}", "--module", "{dir}/nodir"], "no such module directory"),
        (["{mlp}", "--atol", "-1"], "--atol must be >= 0"),
        (["{mlp}", "--save-worst", "{mlp}"], "--save-worst"),
    ],
)
def test_bad_arguments_one_line_exit_2(
    argv: list[str], expected: str, mlp: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    argv = [a.format(mlp=mlp, dir=tmp_path) for a in argv]
    code, out, err = _run([*argv, *(["--iterations", "1"] if len(argv) == 1 else [])], capsys)
    _assert_one_line_error(code, err, expected)
    assert out == ""


def test_console_exit_codes_in_a_subprocess(mlp: Path, tmp_path: Path) -> None:
    """The real command line: exit 0 with a JSON report, 1 out of tolerance, 2 bad usage."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "optimizer.cli", "fuzz", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    ok = run(str(mlp), "--iterations", "2", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    # NaN in the reference only where ours has it too: fine; a tolerance of 0 with a noise
    # floor of 0 fails the compiled module's rounding differences
    strict = run(str(mlp), "--compiled", "--iterations", "2", "--atol", "0", "--rtol", "0",
                 "--noise-factor", "0", "-q")  # fmt: skip
    assert strict.returncode == 1, strict.stderr
    assert strict.stdout == "" and "compiled output 'y'" in strict.stderr
    bad = run(str(tmp_path / "missing.onnx"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_a_model_file_named_fuzz(tmp_path: Path, capsys, monkeypatch) -> None:
    """`optimize fuzz ...` is the subcommand; a model file named fuzz is optimized as ./fuzz,
    and the subcommand's usage error says so when such a file exists."""
    monkeypatch.chdir(tmp_path)
    _save(_mlp_softplus(), tmp_path / "fuzz")
    assert main(["./fuzz", "-o", "out.onnx", "-q"]) == 0
    assert (tmp_path / "out.onnx").is_file()
    code, _, err = _run(["-o", "out2.onnx"], capsys)
    _assert_one_line_error(code, err, "to optimize the file named 'fuzz', write ./fuzz")
    assert not (tmp_path / "out2.onnx").exists()


# -- the zoo -----------------------------------------------------------------------------------

ZOO_MODELS = [
    "resnet", "resnet_dynamo", "mobilenetv3", "mobilenetv3_op14", "yolo", "bert", "bert_dynamo",
    "vit", "lstm", "unet", "paddle_cnn", "paddle_det",
]  # fmt: skip


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_model(name: str, tmp_path: Path, capsys) -> None:
    """Every zoo model: optimized graph and compiled module against onnxruntime, one input set
    per distribution, exit 0; the JSON report covers every output of both targets."""
    pytest.importorskip("torch")
    from tools import zoo

    root = zoo.zoo_dir()
    entry = next(e for e in zoo.load_index(root) if e["name"] == name)
    args = [str(root / entry["file"]), "--graph", "--compiled", "--iterations", "4", "--json"]
    args += ["--threads", "2", "--save-worst", str(tmp_path / "worst")]
    code, out, err = _run(args, capsys)
    report = json.loads(out) if out else {}
    assert code == 0, err or json.dumps(report.get("outputs"), indent=1)
    names = [o["name"] for o in entry["outputs"]]
    assert [(o["target"], o["output"]) for o in report["outputs"]] == [
        (t, n) for t in ("graph", "compiled") for n in names
    ]
    assert report["input_sets"] == 4
    for i in entry["inputs"]:  # integer inputs stay inside the zoo's declared bounds
        spec = next(s for s in report["inputs"] if s["name"] == i["name"])
        if "high" in i:
            assert spec["range"][1] <= i["high"] - 1, spec
    assert all(os.path.isdir(o["worst"]["saved"]) for o in report["outputs"])


def test_python_api_with_samples_and_ranges() -> None:
    """``fuzz_model`` on an in-memory model: samples run first, a --range is honoured."""
    model = Model.from_proto(_embedding())
    sample = {
        "ids": np.full((3, 4), 49, np.int64),
        "mask": np.ones((3, 4), np.int64),
        "cls": np.array([0, 6, 3], np.int64),
    }
    report = fuzz_model(
        model,
        FuzzOptions(samples=[sample], ranges={"ids": (10, 12)}, iterations=4, seed=1),
    )
    assert report.ok and report.runs == 5 and report.samples == 1
    specs = {s.name: s for s in report.inputs}
    assert specs["ids"].shape == (3, 4)  # from the sample
    assert (specs["ids"].low, specs["ids"].high, specs["ids"].why) == (10, 12, "--range")
    assert [(o.target, o.name) for o in report.outputs] == [("graph", "y"), ("graph", "onehot")]
