"""Modules that target cuda: what runs without a GPU (driver not found, cpu modules unaffected),
and, marked ``gpu``, the device path on a real GPU (numerics, graph replay, device tensors)."""

from __future__ import annotations

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
