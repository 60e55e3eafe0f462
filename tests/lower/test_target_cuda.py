"""--target cuda: bound groups -> Triton plans -> cubins compiled ahead of time -> format v2.

The real Triton kernels live in kernels/triton (their own tests); here two tiny test-only
twins of ``unary_f32`` (relu) and ``binary_f32`` (add) are registered in place of whatever
the plan registry holds, so these tests do not depend on them. Compiling needs no GPU; the
``gpu`` test runs the compiled cubins through CuPy with the launch metadata the module records
and compares with NumPy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

pytest.importorskip("triton")

import optimizer.kernels.triton.all  # noqa: F401
import triton
import triton.language as tl
from optimizer.kernels.registry import UnsupportedOpError
from optimizer.kernels.triton import aot, cast, launch
from optimizer.kernels.triton.launch import (
    I32,
    In,
    Out,
    TensorDesc,
    TritonLaunch,
    Unsupported,
)

from optimizer import ir
from optimizer.cli import main
from optimizer.errors import UsageError
from optimizer.lower.compile import CompileOptions, compile_model
from optimizer.module import format as fmt
from optimizer.optimize import OptimizeOptions
from tests.helpers import FLOAT, make_model

BLOCK = 256


@triton.jit
def _relu(x):
    return tl.maximum(x, 0.0)


@triton.jit
def _test_unary_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, _relu(x).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _test_add_kernel(a_ptr, b_ptr, y_ptr, n, nb, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + offs % nb, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, (a + b).to(y_ptr.dtype.element_ty), mask=mask)


def _plan_unary(inputs, outputs, iparams, fparams) -> TritonLaunch:
    if list(iparams) != [1]:
        raise Unsupported(f"test twin: act {list(iparams)} is not relu")
    n = outputs[0].numel
    return TritonLaunch(
        name="triton.test_unary",
        kernel=_test_unary_kernel,
        args={"x_ptr": In(0), "y_ptr": Out(0), "n": I32(n)},
        constexprs={"BLOCK": BLOCK},
        grid=(triton.cdiv(n, BLOCK),),
        num_warps=2,
    )


def _plan_add(inputs, outputs, iparams, fparams) -> TritonLaunch:
    a, b, y = inputs[0], inputs[1], outputs[0]
    if (
        list(iparams) != [0, 0]
        or a.shape != y.shape
        or y.shape[len(y.shape) - len(b.shape) :] != b.shape
    ):
        raise Unsupported("test twin: add of a trailing-broadcast B only")
    return TritonLaunch(
        name="triton.test_add",
        kernel=_test_add_kernel,
        args={"a_ptr": In(0), "b_ptr": In(1), "y_ptr": Out(0), "n": I32(y.numel), "nb": I32(b.numel)},
        constexprs={"BLOCK": BLOCK},
        grid=(triton.cdiv(y.numel, BLOCK),),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def plans(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Only the test twins and the cast plan; one cubin cache for the whole file."""
    registry = {"unary_f32": _plan_unary, "binary_f32": _plan_add, "cast": cast.plan_cast,
                "copy": cast.plan_cast}  # a same-type cast is a copy  # fmt: skip
    monkeypatch.setattr(launch, "_PLANS", registry)
    cache = tmp_path_factory.getbasetemp() / "odc-cache"
    monkeypatch.setenv("ODC_CACHE_DIR", str(cache))


# -- models ------------------------------------------------------------------------------------


C = np.linspace(-1, 1, 300, dtype=np.float32)


def _add_relu() -> onnx.ModelProto:
    """a = x + c (an output too, so Add and Relu stay two steps); y = relu(a)."""
    return make_model(
        [helper.make_node("Add", ["x", "c"], ["a"], name="add"),
         helper.make_node("Relu", ["a"], ["y"], name="relu")],
        [("x", FLOAT, [2, 300])], [("a", FLOAT, [2, 300]), ("y", FLOAT, [2, 300])], {"c": C},
    )  # fmt: skip


def _compile(proto: onnx.ModelProto, out: Path, **kw) -> Path:
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False), target="cuda", **kw)
    compile_model(model, out, options)
    return out


def _read(module: Path) -> tuple[dict, dict]:
    manifest = json.loads((module / "manifest.json").read_text())
    plan = json.loads((module / "plan.json").read_text())
    fmt.validate_module(fmt.Manifest.from_dict(manifest), fmt.Plan.from_dict(plan))
    return manifest, plan


# -- module content ----------------------------------------------------------------------------


def test_fp32_module_is_format_v2_with_cubins(tmp_path: Path) -> None:
    manifest, plan = _read(_compile(_add_relu(), tmp_path / "m"))
    assert manifest["format_version"] == 2
    assert manifest["targets"] == ["cuda"] and manifest["cuda"] == {"arch": "sm_90"}
    kernels = {k["name"]: k for k in manifest["kernels"]}
    assert set(kernels) == {"triton.test_add", "triton.test_unary"}
    for k in kernels.values():
        assert k["kind"] == "cubin" and k["backend"] == "triton"
        data = (tmp_path / "m" / k["file"]).read_bytes()
        assert data[:4] == b"\x7fELF" and k["file"].endswith(".cubin")
        assert k["entry"].encode() + b"\0" in data  # the symbol is in the string table
        assert k["file"] in manifest["files"]
        launch_meta = k["launch"]
        assert launch_meta["num_warps"] in (2, 4) and launch_meta["shared"] >= 0
        params = launch_meta["params"]
        # the kernel's own parameters, then Triton's hidden scratch pointers
        assert params[-2:] == ["ptr", "ptr"]
    assert kernels["triton.test_add"]["launch"]["params"][:5] == ["ptr", "ptr", "ptr", "i32", "i32"]
    assert kernels["triton.test_add"]["entry"] == "_test_add_kernel"
    assert {v["device"] for v in plan["values"]} == {"cuda"}
    assert [v["dtype"] for v in plan["values"]] == ["float32"] * 4
    add = next(s for s in plan["steps"] if s["node"] == "add")
    assert add["grid"] == [3, 1, 1]
    assert add["args"] == [{"in": 0}, {"in": 1}, {"out": 0}, {"i32": 600}, {"i32": 300},
                           {"null": 0}, {"null": 0}]  # fmt: skip
    assert add["iparams"] == [0, 0] and add["workspace"] == 0
    weights = (tmp_path / "m" / "weights.bin").read_bytes()
    c = next(v for v in plan["values"] if v["storage"] == "weights")
    assert np.array_equal(np.frombuffer(weights, np.float32, 300, c["offset"]), C)


@pytest.mark.parametrize("precision,dtype", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_low_precision_stores_floats_narrow_and_casts_at_the_boundary(
    tmp_path: Path, precision: str, dtype: str
) -> None:
    manifest, plan = _read(_compile(_add_relu(), tmp_path / "m", precision=precision))
    assert [(s["name"], s["dtype"]) for s in manifest["inputs"]] == [("x", "float32")]
    assert [(s["name"], s["dtype"]) for s in manifest["outputs"]] == [
        ("a", "float32"), ("y", "float32")]  # fmt: skip
    names = {k["id"]: k["name"] for k in manifest["kernels"]}
    steps = [(names[s["kernel"]], s["node"]) for s in plan["steps"]]
    assert steps[0] == ("triton.cast", f"x_to_{precision}")
    assert [k for k, _ in steps[1:3]] == ["triton.test_add", "triton.test_unary"]
    assert sorted(steps[3:]) == [("triton.cast", f"a_from_{precision}"),
                                 ("triton.cast", f"y_from_{precision}")]  # fmt: skip
    by_id = {v["id"]: v for v in plan["values"]}
    for s in plan["steps"][1:3]:
        assert {by_id[i]["dtype"] for i in s["inputs"] + s["outputs"]} == {dtype}
    c = next(v for v in plan["values"] if v["storage"] == "weights")
    assert c["dtype"] == dtype and c["nbytes"] == 600
    raw = np.frombuffer((tmp_path / "m" / "weights.bin").read_bytes(), np.uint16, 300, c["offset"])
    if dtype == "float16":
        np.testing.assert_array_equal(raw.view(np.float16), C.astype(np.float16))
    else:  # bfloat16: the top 16 bits, rounded to nearest even
        bits = C.view(np.uint32)
        want = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        np.testing.assert_array_equal(raw, want)
    # the arena holds the narrow intermediates only: x_fp16 and a_fp16 / y_fp16
    assert plan["arena_size"] <= 3 * 1280


def test_the_second_compile_hits_the_cubin_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = aot._triton_compile
    monkeypatch.setattr(aot, "_triton_compile", lambda *a: calls.append(a[1]) or real(*a))
    first = _compile(_add_relu(), tmp_path / "a", precision="fp16")
    # cast in, cast out (another dtype pair: another cubin), add, relu
    assert sorted(calls) == ["triton.cast", "triton.cast", "triton.test_add", "triton.test_unary"]
    assert len(list((tmp_path / "cache" / "cubins").glob("*.cubin"))) == 4
    calls.clear()
    second = _compile(_add_relu(), tmp_path / "b", precision="fp16")
    assert calls == []
    for m in (first, second):
        assert len(list((m / "kernels").glob("*.cubin"))) == 4
    for f in (first / "kernels").iterdir():
        assert f.read_bytes() == (second / "kernels" / f.name).read_bytes()
    # scalars are arguments: another size reuses the cubins, unless it changes a
    # specialization (counts divisible by 16 get a divisibility hint)
    proto = _add_relu()
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3
    for out in proto.graph.output:
        out.type.tensor_type.shape.dim[0].dim_value = 3
    _compile(proto, tmp_path / "c", precision="fp16")
    assert calls == []
    for v in [*proto.graph.input, *proto.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_value = 16
    _compile(proto, tmp_path / "d", precision="fp16")
    assert sorted(set(calls)) == ["triton.cast", "triton.test_add", "triton.test_unary"]


def test_cache_entries_that_are_damaged_are_rebuilt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path / "cache"))
    _compile(_add_relu(), tmp_path / "a")
    for f in (tmp_path / "cache" / "cubins").glob("*.cubin"):
        f.write_bytes(b"garbage")
    manifest, _ = _read(_compile(_add_relu(), tmp_path / "b"))
    for k in manifest["kernels"]:
        assert (tmp_path / "b" / k["file"]).read_bytes()[:4] == b"\x7fELF"


# -- what cannot be lowered --------------------------------------------------------------------


def _single(op: str, **attrs) -> onnx.ModelProto:
    extra = {"CumSum": ({"ax": np.array(1, np.int64)}, ["x", "ax"])}.get(op, ({}, ["x"]))
    return make_model([helper.make_node(op, extra[1], ["y"], name=f"my_{op.lower()}", **attrs)],
                      [("x", FLOAT, [2, 300])], [("y", FLOAT, [2, 300])], extra[0])  # fmt: skip


@pytest.mark.parametrize(
    "op,reason",
    [
        ("Softmax", "no Triton kernel for native entry 'softmax_f32' yet"),
        ("Exp", "test twin: act [11] is not relu"),
        ("CumSum", "no native kernel for CumSum"),
    ],
)
def test_unsupported_steps_name_op_node_target_and_reason(
    tmp_path: Path, op: str, reason: str
) -> None:
    with pytest.raises(UnsupportedOpError) as err:
        _compile(_single(op), tmp_path / "m")
    text = str(err.value)
    assert f"unsupported op {op}" in text and f"'my_{op.lower()}'" in text
    assert "on target 'cuda'" in text and reason in text and "no CPU fallback" in text
    assert not (tmp_path / "m").exists()


def test_several_unsupported_steps_are_counted(tmp_path: Path) -> None:
    proto = make_model(
        [helper.make_node("Softmax", ["x"], ["s"], name="sm"),
         helper.make_node("Exp", ["s"], ["t"], name="ex"),
         helper.make_node("Sqrt", ["t"], ["y"], name="sq")],
        [("x", FLOAT, [2, 300])], [("y", FLOAT, [2, 300])],
    )  # fmt: skip
    with pytest.raises(UnsupportedOpError, match=r"'sm'.*and 1 more unsupported step\(s\)"):
        _compile(proto, tmp_path / "m")


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--arch sm_42: unknown CUDA architecture"):
        _compile(_add_relu(), tmp_path / "m", arch="sm_42")
    with pytest.raises(UsageError, match="--precision fp8: unknown precision"):
        _compile(_add_relu(), tmp_path / "m", precision="fp8")
    with pytest.raises(UsageError, match=r"--tune-threads .* does not apply to --target cuda"):
        _compile(_add_relu(), tmp_path / "m", tune=True, tune_threads=2)
    assert not (tmp_path / "m").exists()


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(_add_relu(), path)
    return path


def test_cli_compiles_for_cuda(model_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mod"
    code = main([str(model_file), "-o", f"{out}/", "--target", "cuda", "--arch", "sm_90",
                 "--precision", "fp16", "--no-check", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest, plan = _read(out)
    assert manifest["cuda"] == {"arch": "sm_90"} and len(plan["steps"]) == 5


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--target", "cuda", "--arch", "sm_42"], "--arch sm_42: unknown CUDA architecture"),
        (["--target", "cuda", "--precision", "half"], "--precision half: unknown precision"),
        (["--target", "tpu"], "--target tpu: unknown target (use cpu or cuda)"),
        (["--arch", "sm_90"], "--arch applies to --target cuda only"),
        (["--precision", "fp16"], "--precision applies to --target cuda only"),
        (["--target", "cuda", "--tune-threads", "2"], "--tune-threads times CPU kernels"),
    ],
)
def test_cli_flag_errors_are_one_line(
    model_file: Path, tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    out = tmp_path / "mod"
    assert main([str(model_file), "-o", f"{out}/", "--no-check", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optimize: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_cli_target_needs_a_module_output(model_file: Path, tmp_path: Path, capsys) -> None:
    assert main([str(model_file), "-o", str(tmp_path / "o.onnx"), "--target", "cuda"]) == 2
    assert "--target applies to compiled modules only" in capsys.readouterr().err


# -- the AOT compiler on its own ---------------------------------------------------------------


def test_aot_reports_params_hidden_scratch_and_step_args(tmp_path: Path) -> None:
    plan = _plan_add([TensorDesc((4, 8), "float16"), TensorDesc((8,), "float16")],
                     [TensorDesc((4, 8), "float16")], [0, 0], [])  # fmt: skip
    ins = [TensorDesc((4, 8), "float16"), TensorDesc((8,), "float16")]
    cubin = aot.compile_launch(plan, ins, [TensorDesc((4, 8), "float16")], directory=tmp_path)
    assert cubin.params == ["ptr", "ptr", "ptr", "i32", "i32", *["ptr"] * cubin.hidden]
    assert cubin.hidden >= 1 and cubin.entry == "_test_add_kernel" and not cubin.cached
    assert aot.step_args(cubin, plan)[:5] == [{"in": 0}, {"in": 1}, {"out": 0}, {"i32": 32},
                                              {"i32": 8}]  # fmt: skip
    again = aot.compile_launch(plan, ins, [TensorDesc((4, 8), "float16")], directory=tmp_path)
    assert again.cached and again.path == cubin.path
    # another dtype is another cubin
    f32 = [TensorDesc((4, 8), "float32"), TensorDesc((8,), "float32")]
    other = aot.compile_launch(plan, f32, [TensorDesc((4, 8), "float32")], directory=tmp_path)
    assert other.key != cubin.key


def test_aot_refuses_launches_that_do_not_match_the_kernel(tmp_path: Path) -> None:
    ins, outs = [TensorDesc((8,), "float32")], [TensorDesc((8,), "float32")]
    swapped = TritonLaunch(name="t", kernel=_test_unary_kernel,
                           args={"y_ptr": Out(0), "x_ptr": In(0), "n": I32(8)},
                           constexprs={"BLOCK": 64})  # fmt: skip
    with pytest.raises(aot.AOTError, match="not in the order"):
        aot.compile_launch(swapped, ins, outs, directory=tmp_path)
    missing = TritonLaunch(name="t", kernel=_test_unary_kernel,
                           args={"x_ptr": In(0), "y_ptr": Out(0), "n": I32(8)})  # fmt: skip
    with pytest.raises(aot.AOTError, match=r"'BLOCK'.*neither an argument nor a constexpr"):
        aot.compile_launch(missing, ins, outs, directory=tmp_path)
    with pytest.raises(ValueError, match="unknown CUDA architecture 'sm_1'"):
        aot.compile_launch(missing, ins, outs, "sm_1", directory=tmp_path)


# -- on the CPU: the module's plan run through the Triton interpreter -------------------------


def emulate_module(module: Path, launches: list, feeds: dict[str, np.ndarray]) -> dict:
    """Runs a CUDA module's plan on the CPU: one arena (a torch uint8 tensor), every value a
    view of it / of weights.bin at its offset, each step's launch (``CompileReport.cuda
    .launches``) through Triton's interpreter. Checks offsets, aliasing (in place, elided
    views), casts and arguments without a GPU; the kernels are the launches, not the cubins."""
    import torch

    manifest, plan = _read(module)
    assert len(launches) == len(plan["steps"])
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "int64": torch.int64, "int32": torch.int32, "bool": torch.bool, "uint8": torch.uint8}  # fmt: skip
    arena = torch.zeros(max(plan["arena_size"], 1), dtype=torch.uint8)
    weights = torch.from_numpy(np.fromfile(module / "weights.bin", dtype=np.uint8))
    work = torch.zeros(max([s["workspace"] for s in plan["steps"]] + [1]), dtype=torch.uint8)
    tensors = {}
    for v in plan["values"]:
        if v["storage"] in ("arena", "weights"):
            base = arena if v["storage"] == "arena" else weights
            raw = base[v["offset"] : v["offset"] + v["nbytes"]]
            tensors[v["id"]] = raw.view(tdt[v["dtype"]]).view(v["shape"])
        else:
            tensors[v["id"]] = torch.zeros(v["shape"], dtype=tdt[v["dtype"]])
    for sig in manifest["inputs"]:
        tensors[sig["value"]].copy_(torch.from_numpy(np.ascontiguousarray(feeds[sig["name"]])))
    for step, launch_ in zip(plan["steps"], launches):
        ins = [None if i == -1 else tensors[i] for i in step["inputs"]]
        outs = [tensors[i] for i in step["outputs"]]
        launch.launch_torch(launch_, ins, outs, work)
    return {s["name"]: tensors[s["value"]].float().numpy() for s in manifest["outputs"]}


@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="runs the plan on the CPU interpreter"
)
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-6), ("fp16", 2e-3), ("bf16", 2e-2)])
def test_the_plan_computes_the_model_on_the_interpreter(
    tmp_path: Path, precision: str, tol: float
) -> None:
    """a = x + c; y = relu(reshape(a)) (a view elided); z = relu(a): casts, views, arena."""
    proto = make_model(
        [helper.make_node("Add", ["x", "c"], ["a"], name="add"),
         helper.make_node("Reshape", ["a", "shape"], ["v"], name="view"),
         helper.make_node("Relu", ["v"], ["y"], name="relu"),
         helper.make_node("Relu", ["a"], ["z"], name="relu_a")],
        [("x", FLOAT, [2, 300])], [("y", FLOAT, [600]), ("z", FLOAT, [2, 300])],
        {"c": C, "shape": np.array([600], np.int64)},
    )  # fmt: skip
    model = ir.Model.from_proto(onnx.ModelProto.FromString(proto.SerializeToString()))
    options = CompileOptions(OptimizeOptions(check=False), target="cuda", precision=precision)
    report = compile_model(model, tmp_path / "m", options)
    assert report.cuda.elided == 1
    x = np.random.default_rng(1).standard_normal((2, 300)).astype(np.float32)
    got = emulate_module(tmp_path / "m", report.cuda.launches, {"x": x})
    want = np.maximum(x + C, 0)
    np.testing.assert_allclose(got["y"], want.reshape(-1), rtol=tol, atol=tol)
    np.testing.assert_allclose(got["z"], want, rtol=tol, atol=tol)


# -- on the GPU: the cubins run with the recorded launch metadata ------------------------------


def run_module_cupy(module: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A minimal reader of format-v2 modules on CuPy: what csrc/ does, in 60 lines."""
    cp = pytest.importorskip("cupy")
    manifest, plan = _read(module)
    dtypes = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
    arena = cp.zeros(max(plan["arena_size"], 64), dtype=np.uint8)
    weights = cp.asarray(np.fromfile(module / "weights.bin", dtype=np.uint8))
    staged = {}
    for v in plan["values"]:
        if v["storage"] in ("input", "output"):
            staged[v["id"]] = cp.zeros(v["shape"], dtype=dtypes[v["dtype"]])
    for sig in manifest["inputs"]:
        staged[sig["value"]][...] = cp.asarray(feeds[sig["name"]])

    def ptr(vid: int) -> int:
        if vid == -1:
            return 0
        v = plan["values"][vid]
        if v["storage"] == "arena":
            return arena.data.ptr + v["offset"]
        if v["storage"] == "weights":
            return weights.data.ptr + v["offset"]
        return staged[vid].data.ptr

    functions = {}
    for k in manifest["kernels"]:
        fn = cp.RawModule(path=str(module / k["file"])).get_function(k["entry"])
        if k["launch"]["shared"] > 48 * 1024:
            fn.max_dynamic_shared_size_bytes = k["launch"]["shared"]
        functions[k["id"]] = (fn, k["launch"])
    for step in plan["steps"]:
        fn, meta = functions[step["kernel"]]
        args = []
        for arg in step["args"]:
            ((kind, value),) = arg.items()
            if kind == "in":
                args.append(np.uint64(ptr(step["inputs"][value])))
            elif kind == "out":
                args.append(np.uint64(ptr(step["outputs"][value])))
            elif kind in ("null", "workspace"):
                assert step["workspace"] == 0 or kind == "null"
                args.append(np.uint64(0))
            else:
                args.append({"i32": np.int32, "i64": np.int64, "f32": np.float32}[kind](value))
        fn(tuple(step["grid"]), (32 * meta["num_warps"], 1, 1), tuple(args),
           shared_mem=meta["shared"])  # fmt: skip
    cp.cuda.Device().synchronize()
    return {sig["name"]: cp.asnumpy(staged[sig["value"]]) for sig in manifest["outputs"]}


@pytest.mark.gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-6), ("fp16", 2e-3), ("bf16", 2e-2)])
def test_cubins_run_on_the_gpu(tmp_path: Path, precision: str, tol: float) -> None:
    cp = pytest.importorskip("cupy")
    if cp.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device")
    module = _compile(_add_relu(), tmp_path / "m", precision=precision)
    x = np.random.default_rng(0).standard_normal((2, 300)).astype(np.float32)
    got = run_module_cupy(module, {"x": x})
    # fp16 / bf16: x and c are rounded to the stored type, the sum is computed in fp32 and
    # rounded once more: relative error within 2 ulps of the stored type.
    np.testing.assert_allclose(got["a"], x + C, rtol=tol, atol=tol)
    np.testing.assert_allclose(got["y"], np.maximum(x + C, 0), rtol=tol, atol=tol)


def test_fp16_saturates_constants_beyond_its_range(tmp_path: Path) -> None:
    """A mask filled with float32's lowest value stays finite (-65504), inf stays inf."""
    c = np.array([-3.4e38, -1e5, 1.5, 7e4, np.inf] + [0.0] * 295, dtype=np.float32)
    proto = make_model(
        [helper.make_node("Add", ["x", "c"], ["a"], name="add"),
         helper.make_node("Relu", ["a"], ["y"], name="relu")],
        [("x", FLOAT, [2, 300])], [("a", FLOAT, [2, 300]), ("y", FLOAT, [2, 300])], {"c": c},
    )  # fmt: skip
    _, plan = _read(_compile(proto, tmp_path / "m", precision="fp16"))
    v = next(v for v in plan["values"] if v["storage"] == "weights")
    raw = np.frombuffer((tmp_path / "m" / "weights.bin").read_bytes(), np.float16, 5, v["offset"])
    np.testing.assert_array_equal(raw, [-65504, -65504, 1.5, 65504, np.inf])


def test_view_copies_are_elided_and_readers_take_the_source(tmp_path: Path) -> None:
    """relu -> Reshape -> relu -> Flatten (a graph output: stays) ."""
    proto = make_model(
        [helper.make_node("Relu", ["x"], ["r"], name="relu1"),
         helper.make_node("Reshape", ["r", "shape"], ["v"], name="view"),
         helper.make_node("Relu", ["v"], ["s"], name="relu2"),
         helper.make_node("Flatten", ["s"], ["y"], name="flat", axis=0)],
        [("x", FLOAT, [2, 300])], [("y", FLOAT, [1, 600])],
        {"shape": np.array([600], np.int64)},
    )  # fmt: skip
    manifest, plan = _read(_compile(proto, tmp_path / "m"))
    names = {k["id"]: k["name"] for k in manifest["kernels"]}
    assert [(names[s["kernel"]], s["node"]) for s in plan["steps"]] == [
        ("triton.test_unary", "relu1"),
        ("triton.test_unary", "relu2"),
        ("triton.cast", "flat"),
    ]
    by_name = {v["name"]: v["id"] for v in plan["values"]}
    assert "v" not in by_name and "shape" not in by_name
    assert plan["steps"][1]["inputs"] == [by_name["r"]]
    assert plan["steps"][1]["args"][2] == {"i32": 600}  # planned for the view's shape


def test_an_unverified_triton_is_refused_with_the_version_to_install(monkeypatch) -> None:
    from optimizer.kernels.triton import aot

    from optimizer.errors import UsageError
    from optimizer.lower import target_cuda

    target_cuda.require_triton()  # the installed one is verified
    monkeypatch.setattr(aot, "MIN_TRITON", (99, 0))
    with pytest.raises(UsageError, match=r"older than 99\.0.*install triton>=99\.0"):
        target_cuda.require_triton()
