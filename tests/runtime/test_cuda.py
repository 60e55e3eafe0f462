"""Modules that target cuda: what runs without a GPU (driver not found, cpu modules unaffected),
and, marked ``gpu``, the device path on a real GPU (numerics, graph replay, device tensors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from optimizer import runtime
from optimizer.runtime import ModuleError
from tests.runtime.cuda_modules import (
    compile_cubin,
    cuda_chain_module,
    cuda_standard_module,
    cuda_standard_reference,
    have_cuda_driver,
    weights_for,
)
from tests.runtime.module_builder import standard_feeds, standard_reference

NO_DRIVER = "module targets cuda: NVIDIA driver not found"


def _without_driver_env() -> dict[str, str]:
    return {**os.environ, "ODC_CUDA_DRIVER": "/nonexistent/libcuda.so.1"}


def test_driver_not_found_python(tmp_path):
    directory = cuda_standard_module(tmp_path / "m")
    code = (
        "import sys\n"
        "from optimizer import runtime\n"
        "try:\n"
        f"    runtime.load({str(directory)!r})\n"
        "except runtime.ModuleError as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=_without_driver_env(),
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == f"{NO_DRIVER} (/nonexistent/libcuda.so.1)"


def test_driver_not_found_runner(tmp_path):
    directory = cuda_standard_module(tmp_path / "m")
    proc = subprocess.run(
        [runtime.runner_path(), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_without_driver_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr == f"odc-run: {NO_DRIVER} (/nonexistent/libcuda.so.1)\n"


@pytest.mark.skipif(have_cuda_driver(), reason="this machine has an NVIDIA driver")
def test_no_driver_in_process(tmp_path):
    with pytest.raises(ModuleError, match=r"^module targets cuda: NVIDIA driver not found \("):
        runtime.load(cuda_standard_module(tmp_path / "m"))


def test_cpu_module_unaffected(module_dir):
    module = runtime.load(module_dir)
    assert module.device == "cpu"
    feeds = standard_feeds(5)
    out = module.run(feeds)
    for name, want in standard_reference(**feeds).items():
        np.testing.assert_allclose(out[name], want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ModuleError, match="device_outputs=True needs a module that targets cuda"):
        module.run(feeds, device_outputs=True)


# ---------------------------------------------------------------------------------------------
# On a GPU (pytest -m gpu): the standard cuda module with a real cubin (nvcc -cubin).


@pytest.fixture(scope="module")
def cubin(tmp_path_factory):
    if not have_cuda_driver():
        pytest.skip("no NVIDIA driver")
    data = compile_cubin(tmp_path_factory.mktemp("cubin"))
    if data is None:
        pytest.skip("no nvcc to build the test cubin")
    return data


def _feeds(shape, seed):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal(shape).astype(np.float32),
        "z": rng.standard_normal(shape).astype(np.float32),
    }


SHAPE = (4, 300)  # 1200 elements: 10 blocks of 128 threads, the last one partial


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [True, False], ids=["graph", "plain"])
def test_gpu_run_matches_numpy(tmp_path, cubin, graphs):
    module = runtime.load(cuda_standard_module(tmp_path / "m", cubin, SHAPE), cuda_graphs=graphs)
    assert module.device == "cuda"
    for seed in range(3):  # the first run captures the graph, the later ones replay it
        feeds = _feeds(SHAPE, seed)
        out = module.run(feeds)
        want = cuda_standard_reference(**feeds)
        for name in ("y", "s"):
            np.testing.assert_allclose(out[name], want[name], rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
def test_gpu_profile(tmp_path, cubin):
    module = runtime.load(cuda_standard_module(tmp_path / "m", cubin, SHAPE))
    times = module.profile(_feeds(SHAPE, 1), iterations=3)
    assert [t.node for t in times] == ["scale", "residual", "negate"]
    assert all(0 <= t.seconds < 0.1 for t in times) and sum(t.seconds for t in times) > 0
    feeds = _feeds(SHAPE, 2)  # a run after profiling still replays correctly
    np.testing.assert_allclose(
        module.run(feeds)["s"], cuda_standard_reference(**feeds)["s"], rtol=1e-6, atol=1e-6
    )


@pytest.mark.gpu
def test_gpu_chain_of_50_steps(tmp_path, cubin):
    module = runtime.load(cuda_chain_module(tmp_path / "m", cubin, steps=50))
    x = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    for _ in range(2):
        y = module.run({"x": x})["y"]
        np.testing.assert_allclose(y, x + 50 * weights_for([256]), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_gpu_device_tensors_torch(tmp_path, cubin):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    module = runtime.load(cuda_standard_module(tmp_path / "m", cubin, SHAPE))
    for seed in range(2):
        feeds = _feeds(SHAPE, 10 + seed)
        # Produced by a kernel on torch's stream right before the run: the DLPack stream
        # handshake must order our copy after it.
        device_feeds = {k: (torch.from_numpy(v).cuda() * 2) / 2 for k, v in feeds.items()}
        want = cuda_standard_reference(**feeds)
        host = module.run(device_feeds)
        np.testing.assert_allclose(host["y"], want["y"], rtol=1e-6, atol=1e-6)
        device = module.run(device_feeds, device_outputs=True)
        y = torch.from_dlpack(device["y"])
        assert y.is_cuda and tuple(y.shape) == SHAPE and y.dtype == torch.float32
        np.testing.assert_allclose(y.cpu().numpy(), want["y"], rtol=1e-6, atol=1e-6)
        s = torch.from_dlpack(device["s"])
        del device  # the torch tensor keeps the buffer alive
        np.testing.assert_allclose(s.cpu().numpy(), want["s"], rtol=1e-6, atol=1e-6)
        given = {"y": torch.full(SHAPE, float("nan"), device="cuda")}
        out = module.run(device_feeds, out=given)
        assert out["y"] is given["y"]  # written in place on the device, no allocation
        np.testing.assert_allclose(given["y"].cpu().numpy(), want["y"], rtol=1e-6, atol=1e-6)
    with pytest.raises(ModuleError, match="not C-contiguous"):
        module.run({"x": torch.zeros(300, 4, device="cuda").t(), "z": device_feeds["z"]})
    with pytest.raises(ModuleError, match=r"dtype float16 != expected float32"):
        module.run({"x": device_feeds["x"].half(), "z": device_feeds["z"]})


@pytest.mark.gpu
def test_gpu_device_tensors_cupy(tmp_path, cubin):
    cupy = pytest.importorskip("cupy")
    module = runtime.load(cuda_standard_module(tmp_path / "m", cubin, SHAPE))
    feeds = _feeds(SHAPE, 20)
    out = module.run({k: cupy.asarray(v) for k, v in feeds.items()}, device_outputs=True)
    s = cupy.from_dlpack(out["s"])
    np.testing.assert_allclose(
        cupy.asnumpy(s), cuda_standard_reference(**feeds)["s"], rtol=1e-6, atol=1e-6
    )


@pytest.mark.gpu
def test_gpu_runner(tmp_path, cubin):
    directory = cuda_standard_module(tmp_path / "m", cubin, SHAPE)
    feeds = _feeds(SHAPE, 3)
    for name, value in feeds.items():
        np.save(tmp_path / f"{name}.npy", value)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.run(
        [
            runtime.runner_path(),
            str(directory),
            "--input",
            f"x={tmp_path / 'x.npy'}",
            "--input",
            f"z={tmp_path / 'z.npy'}",
            "--iterations",
            "5",
            "--save-outputs",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(cuda, graph replay)" in proc.stdout
    want = cuda_standard_reference(**feeds)
    for name in ("y", "s"):
        np.testing.assert_allclose(np.load(out_dir / f"{name}.npy"), want[name], atol=1e-6)


@pytest.mark.gpu
def test_gpu_wrong_arch_and_missing_function(tmp_path, cubin):
    from tests.runtime.module_builder import edit_json

    other = compile_cubin(tmp_path / "sm80", arch="sm_80")
    directory = cuda_standard_module(tmp_path / "m80", other, SHAPE)
    edit_json(directory, "manifest.json", lambda m: m["cuda"].update(arch="sm_80"))
    with pytest.raises(ModuleError) as info:
        runtime.load(directory)
    assert "kernels[0] 'test.axpb': cannot load kernels/0.cubin on this GPU (sm_" in str(info.value)
    assert "the module was built for sm_80): cuModuleLoadData: CUDA_ERROR_" in str(info.value)

    directory = cuda_standard_module(tmp_path / "m", cubin, SHAPE)
    edit_json(directory, "manifest.json", lambda m: m["kernels"][1].update(entry="nope"))
    with pytest.raises(
        ModuleError,
        match=r"kernels\[1\] 'test.add_ws': kernels/1.cubin has no "
        r"kernel function 'nope': cuModuleGetFunction: CUDA_ERROR_NOT_FOUND",
    ):
        runtime.load(directory)


@pytest.mark.gpu
def test_gpu_triton_cubin(tmp_path, cubin):
    # A Triton kernel compiled ahead of time: its hidden trailing pointers get NULL.
    pytest.importorskip("triton")
    from tests.runtime.module_builder import ModuleBuilder
    from tests.runtime.triton_cubin import axpb_cubin

    kernel = axpb_cubin(block=128, num_warps=4)
    assert kernel.params[:5] == ["ptr", "ptr", "ptr", "i32", "f32"]
    assert all(p == "ptr" for p in kernel.params[5:])
    n = 1000
    m = ModuleBuilder(target="cuda")
    x = m.input("x", [n])
    b = m.weight("b", weights_for([n]))
    y = m.output("y", [n])
    k = m.cubin_kernel(
        "triton.axpb",
        kernel.entry,
        kernel.data,
        kernel.params,
        num_warps=kernel.num_warps,
        shared=kernel.shared,
    )
    hidden = [{"null": 0}] * (len(kernel.params) - 5)
    m.step(
        k,
        [x, b],
        [y],
        grid=[(n + 127) // 128, 1, 1],
        args=[{"in": 0}, {"in": 1}, {"out": 0}, {"i32": n}, {"f32": 3.0}, *hidden],
    )
    module = runtime.load(m.write(tmp_path / "m"))
    for seed in range(2):
        xv = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
        np.testing.assert_allclose(
            module.run({"x": xv})["y"], 3 * xv + weights_for([n]), rtol=1e-6, atol=1e-6
        )


def _shared_module(directory, cubin, n, shared):
    from tests.runtime.cuda_modules import SHARED_COPY_PARAMS
    from tests.runtime.module_builder import ModuleBuilder

    m = ModuleBuilder(target="cuda")
    x = m.input("x", [n])
    y = m.output("y", [n])
    k = m.cubin_kernel("test.shared_copy", "shared_copy", cubin, SHARED_COPY_PARAMS, shared=shared)
    m.step(k, [x], [y], grid=[1, 1, 1], args=[{"in": 0}, {"out": 0}, {"i32": n}])
    return m.write(directory)


@pytest.mark.gpu
def test_gpu_dynamic_shared_memory_over_48k(tmp_path, cubin):
    n = 24576  # 96 KiB of dynamic shared memory: needs cuFuncSetAttribute's opt-in
    module = runtime.load(_shared_module(tmp_path / "m", cubin, n, n * 4))
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    for _ in range(2):
        np.testing.assert_array_equal(module.run({"x": x})["y"], x + 1)
    with pytest.raises(
        ModuleError,
        match=r"kernels\[0\] 'test.shared_copy': launch.shared 1048576 "
        r"bytes exceeds this GPU's \d+ bytes of shared memory per block \(sm_",
    ):
        runtime.load(_shared_module(tmp_path / "big", cubin, n, 1 << 20))


@pytest.mark.gpu
def test_gpu_concurrent_runs_are_serialized(tmp_path, cubin):
    import threading

    module = runtime.load(cuda_standard_module(tmp_path / "m", cubin, SHAPE))
    errors = []

    def worker(seed):
        try:
            for i in range(20):
                feeds = _feeds(SHAPE, seed * 100 + i)
                out = module.run(feeds)
                np.testing.assert_allclose(
                    out["s"], cuda_standard_reference(**feeds)["s"], rtol=1e-6, atol=1e-6
                )
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@pytest.mark.gpu
def test_gpu_cuda_tensor_for_cpu_module(module_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    module = runtime.load(module_dir)
    feeds = standard_feeds(0)
    with pytest.raises(
        ModuleError, match="input 'x' is on a CUDA device but the module targets cpu"
    ):
        module.run({"x": torch.from_numpy(feeds["x"]).cuda(), "z": feeds["z"]})


# ---------------------------------------------------------------------------------------------
# Tactics: alternative launches of a step, chosen at load (docs/module-format.md, "Tactics").


def cuda_tactics_module(directory, cubin=None, shape=(2, 4)):
    """The standard cuda module with tactics: step 0 (axpb) may also run as kernel 2 (the same
    function at 1 warp, 32-thread blocks) or with twice the blocks; step 1 (add_ws) with three
    times the blocks. Every candidate computes the same values."""
    from tests.runtime.cuda_modules import FAKE_CUBIN, THREADS
    from tests.runtime.module_builder import edit_json

    d = cuda_standard_module(directory, cubin or FAKE_CUBIN, shape)
    n = int(np.prod(shape))
    blocks = (n + THREADS - 1) // THREADS

    def manifest(m):
        alt = json.loads(json.dumps(m["kernels"][0]))
        alt.update(id=2)
        alt["launch"]["num_warps"] = 1
        m["kernels"].append(alt)

    def plan(p):
        s0, s1 = p["steps"][0], p["steps"][1]
        s0["tactic_key"] = f"test.axpb n={n}"
        s0["tactic_name"] = "w4"
        s0["tactics"] = [
            {"kernel": 2, "grid": [(n + 31) // 32, 1, 1], "args": s0["args"], "workspace": 0,
             "name": "w1"},
            {"kernel": 0, "grid": [2 * blocks, 1, 1], "args": s0["args"], "workspace": 0,
             "name": "wide"},
        ]  # fmt: skip
        s1["tactics"] = [
            {"kernel": 1, "grid": [3 * blocks, 1, 1], "args": s1["args"], "workspace": n * 4}
        ]

    edit_json(d, "manifest.json", manifest, refresh=False)
    edit_json(d, "plan.json", plan)
    return d


def _tactic_edit(edit):
    from tests.runtime.module_builder import edit_json

    return lambda d: edit_json(d, "plan.json", edit)


def _set(step, key, value):
    return _tactic_edit(lambda p: p["steps"][step].__setitem__(key, value))


def _tactic(step, index, **fields):
    return _tactic_edit(lambda p: p["steps"][step]["tactics"][index].update(fields))


def _tactic_pop(step, index, key):
    return _tactic_edit(lambda p: p["steps"][step]["tactics"][index].pop(key))


# Each damage of a tactic gives the same named error as the step's own launch would, with
# "tactics[t]" in the place; all found before the driver is opened.
TACTICS_DAMAGES = [
    ("not_array", _set(0, "tactics", {}),
     "plan.json: steps[0]: 'tactics' must be an array of 1 to 16 alternative launches"),
    ("empty", _set(0, "tactics", []), "steps[0]: 'tactics' must be an array of 1 to 16"),
    ("too_many", _tactic_edit(lambda p: p["steps"][0].__setitem__(
        "tactics", p["steps"][0]["tactics"] * 9)), "steps[0]: 'tactics' must be an array of 1 to 16"),
    ("not_object", _set(1, "tactics", [3]), "plan.json: steps[1]: tactics[0]: expected an object"),
    ("kernel_missing", _tactic_pop(0, 0, "kernel"), "plan.json: steps[0]: tactics[0]: missing 'kernel'"),
    ("kernel_unknown", _tactic(0, 1, kernel=9),
     "plan.json: steps[0]: tactics[1]: kernel 9 is not in the kernel table"),
    ("grid_missing", _tactic_pop(0, 1, "grid"), "plan.json: steps[0]: tactics[1]: missing 'grid'"),
    ("grid_zero", _tactic(0, 0, grid=[0, 1, 1]),
     "plan.json: steps[0]: tactics[0]: grid[0] 0 must be in [1, 2147483647]"),
    ("grid_z_too_big", _tactic(1, 0, grid=[1, 1, 65536]),
     "plan.json: steps[1]: tactics[0]: grid[2] 65536 must be in [1, 65535]"),
    ("args_missing", _tactic_pop(1, 0, "args"), "plan.json: steps[1]: tactics[0]: missing 'args'"),
    ("args_count", _tactic_edit(lambda p: p["steps"][0]["tactics"][0]["args"].pop()),
     "plan.json: steps[0]: tactics[0]: 5 args for the 6 launch params of kernels[2] 'test.axpb'"),
    ("arg_type", _tactic_edit(lambda p: p["steps"][1]["tactics"][0]["args"].__setitem__(
        3, {"i32": 8})), "plan.json: steps[1]: tactics[0]: args[3]: i32 argument for launch "
     "param 3 of type 'i64' of kernels[1] 'test.add_ws'"),
    ("arg_out_of_range", _tactic_edit(lambda p: p["steps"][0]["tactics"][1]["args"].__setitem__(
        2, {"out": 1})), "steps[0]: tactics[1]: args[2]: out 1 is out of range (the step has 1 "
     "outputs)"),
    ("workspace_missing", _tactic_pop(1, 0, "workspace"),
     "plan.json: steps[1]: tactics[0]: missing 'workspace'"),
    ("workspace_negative", _tactic(1, 0, workspace=-1),
     "plan.json: steps[1]: tactics[0]: workspace -1 is not a sane size"),
    ("workspace_arg_without_workspace", _tactic(1, 0, workspace=0),
     "steps[1]: tactics[0]: args[4]: workspace argument but the step's workspace is 0 bytes"),
    ("name_not_string", _tactic(0, 0, name=7),
     "plan.json: steps[0]: tactics[0]: 'name' must be a string of at most 256 bytes"),
    ("key_not_string", _set(0, "tactic_key", ["a"]),
     "plan.json: steps[0]: 'tactic_key' must be a string of at most 1024 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "message"), [pytest.param(d, m, id=n) for n, d, m in TACTICS_DAMAGES]
)
def test_tactics_damage_python(tmp_path, damage, message):
    directory = cuda_tactics_module(tmp_path / "m")
    damage(directory)
    with pytest.raises(ModuleError) as info:
        runtime.load(directory, tune=True)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("damage", "message"), [pytest.param(d, m, id=n) for n, d, m in TACTICS_DAMAGES[::3]]
)
def test_tactics_damage_runner(tmp_path, damage, message):
    directory = cuda_tactics_module(tmp_path / "m")
    damage(directory)
    proc = subprocess.run([runtime.runner_path(), str(directory), "--tune"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("odc-run: ") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_tactics_module_is_valid_up_to_the_driver(tmp_path):
    """The undamaged tactics module passes every check (also the Python reader's); with a
    missing driver, loading stops exactly there, tuning or not."""
    from optimizer.module import format as fmt

    directory = cuda_tactics_module(tmp_path / "m")
    manifest = fmt.Manifest.from_json((directory / "manifest.json").read_bytes())
    plan = fmt.Plan.from_json((directory / "plan.json").read_bytes())
    fmt.validate_module(manifest, plan)
    assert [len(s.tactics or []) for s in plan.steps] == [2, 1, 0]
    for tune in (False, True):
        env = {**_without_driver_env(), "ODC_CUDA_TUNE": "1" if tune else "0"}
        proc = subprocess.run([runtime.runner_path(), str(directory)], capture_output=True,
                              text=True, timeout=60, env=env)  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr == f"odc-run: {NO_DRIVER} (/nonexistent/libcuda.so.1)\n"


def test_tactics_on_a_cpu_step_are_refused(tmp_path):
    from tests.runtime.module_builder import edit_json, standard_module

    directory = standard_module(tmp_path / "m")
    edit_json(directory, "plan.json", lambda p: p["steps"][0].__setitem__("tactics", []))
    with pytest.raises(ModuleError, match=r"steps\[0\]: 'tactics' are for steps of cubin kernels"):
        runtime.load(directory)


@pytest.mark.gpu
def test_gpu_tactics_tuned_cached_and_reused(tmp_path, cubin, monkeypatch):
    """tune=True times every candidate, keeps one, writes the cache; a later plain load takes
    the cached choice; outputs equal NumPy whichever candidate runs; a damaged cache is
    ignored (default launches) and rewritten by the next tuning."""
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ODC_CUDA_TUNE", raising=False)
    shape = (3, 1000)
    directory = cuda_tactics_module(tmp_path / "m", cubin, shape)
    feeds = _feeds(shape, 0)
    want = cuda_standard_reference(**feeds)

    untuned = runtime.load(directory)
    assert [(t.step, t.source, t.chosen) for t in untuned.tactics()] == [(0, "default", 0),
                                                                         (1, "default", 0)]  # fmt: skip
    tuned = runtime.load(directory, tune=True)
    tactics = tuned.tactics()
    assert [t.step for t in tactics] == [0, 1] and {t.source for t in tactics} == {"tuned"}
    assert tactics[0].names == ("w4", "w1", "wide") and tactics[0].key == "test.axpb n=3000"
    assert all(s is not None and s > 0 for t in tactics for s in t.seconds)
    for module in (untuned, tuned):
        out = module.run(feeds)
        for name in ("y", "s"):
            np.testing.assert_allclose(out[name], want[name], rtol=1e-6, atol=1e-6)

    cache = json.loads((tmp_path / "cache" / "cuda_tactics.json").read_text())
    assert cache["format"] == "odc-cuda-tactics" and len(cache["entries"]) == 2
    entry = next(e for k, e in cache["entries"].items() if k.endswith("/0"))
    assert entry["chosen"] == tactics[0].chosen and entry["names"] == ["w4", "w1", "wide"]

    again = runtime.load(directory)
    assert [(t.source, t.chosen) for t in again.tactics()] == [("cache", t.chosen) for t in tactics]
    out = again.run(feeds)
    np.testing.assert_allclose(out["s"], want["s"], rtol=1e-6, atol=1e-6)

    cache_file = tmp_path / "cache" / "cuda_tactics.json"
    wrong_types = {k: {"count": "3", "chosen": [1], "seconds": "x"} for k in cache["entries"]}
    for damaged in ("{not json", json.dumps({"format": 7}), json.dumps({**cache, "entries": 3}),
                    json.dumps({**cache, "entries": wrong_types})):  # fmt: skip
        cache_file.write_text(damaged)
        assert {t.source for t in runtime.load(directory).tactics()} == {"default"}, damaged
    runtime.load(directory, tune=True)
    assert len(json.loads((tmp_path / "cache" / "cuda_tactics.json").read_text())["entries"]) == 2

    proc = subprocess.run([runtime.runner_path(), str(directory), "--tune", "--iterations", "2"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ODC_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "tactics: step 0 test.axpb (scale), tuned:" in proc.stdout
    assert "tactics: 2 steps" in proc.stdout


def tuned_model(path):
    """conv 3x3 + relu -> conv 1x1 (+ residual-free) -> flatten -> gemm: three tunable steps."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = {
        "w1": rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1,
        "b1": rng.standard_normal(32).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((32, 32, 1, 1)).astype(np.float32) * 0.1,
        "g": rng.standard_normal((32 * 16 * 16, 64)).astype(np.float32) * 0.01,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tuned",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tuned_triton_module(tmp_path_factory):
    """(module dir, model.onnx) of tuned_model compiled with ``--target cuda --tune``: compiled
    here when this Triton can (>= 3.9), else taken from $ODC_TEST_TUNED_MODULE (a directory
    holding module/ and model.onnx, compiled elsewhere: the GPU machine's Triton is older)."""
    if not have_cuda_driver():
        pytest.skip("no NVIDIA driver")
    given = os.environ.get("ODC_TEST_TUNED_MODULE")
    if given:
        return os.path.join(given, "module"), os.path.join(given, "model.onnx")
    pytest.importorskip("triton")
    from optimizer.kernels.triton import aot

    try:
        aot.check_triton_version()
    except aot.AOTError as err:
        pytest.skip(f"cannot compile here: {err}; set ODC_TEST_TUNED_MODULE")
    return compile_tuned_module(tmp_path_factory.mktemp("tuned"))


def compile_tuned_module(directory):
    from optimizer.cli import main

    model = tuned_model(directory / "model.onnx")
    args = [str(model), "-o", f"{directory / 'module'}/", "--target", "cuda", "--tune", "-q"]
    assert main([*args, "--no-check"]) == 0
    return str(directory / "module"), str(model)


@pytest.mark.gpu
def test_gpu_triton_module_tuned_at_load(tmp_path, tuned_triton_module, monkeypatch):
    """A module compiled with --tune: its default launches and its tuned choice both match
    onnxruntime; the second load takes the cached choice."""
    import onnxruntime as ort

    module_dir, model = tuned_triton_module
    monkeypatch.setenv("ODC_CACHE_DIR", str(tmp_path / "cache"))
    x = np.random.default_rng(3).standard_normal((1, 16, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    plain = runtime.load(module_dir)
    assert [t.source for t in plain.tactics()] == ["default"] * 3
    y_default = plain.run({"x": x})["y"]
    tuned = runtime.load(module_dir, tune=True)
    tactics = tuned.tactics()
    assert len(tactics) == 3 and {t.source for t in tactics} == {"tuned"}
    assert all(len(t.names) >= 3 and all(t.names) and None not in t.seconds for t in tactics)
    for t in tactics:
        print(t)
    y_tuned = tuned.run({"x": x})["y"]
    np.testing.assert_allclose(y_default, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y_tuned, want, rtol=1e-4, atol=1e-4)
    again = runtime.load(module_dir)
    assert [(t.source, t.chosen) for t in again.tactics()] == [("cache", t.chosen) for t in tactics]
    np.testing.assert_allclose(again.run({"x": x})["y"], y_tuned, rtol=0, atol=0)
