"""``run(..., stream=...)``: a cuda module enqueued on the caller's stream (asynchronous when
every tensor is on the device), as TensorRT's enqueue does."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer import runtime
from optimizer.runtime import ModuleError
from optimizer.runtime.module import CompiledModule
from tests.runtime.cuda_modules import cuda_chain_module, have_cuda_driver, weights_for
from tests.runtime.module_builder import standard_feeds


def test_stream_on_a_cpu_module_is_refused(module_dir):
    module = runtime.load(module_dir)
    with pytest.raises(ModuleError, match="stream= needs a module that targets cuda"):
        module.run(standard_feeds(1), stream=0)


class _FakeNative:
    device = "cuda"


class _TorchLike:
    def __init__(self, handle: int) -> None:
        self.cuda_stream = handle


class _CupyLike:
    def __init__(self, handle: int) -> None:
        self.ptr = handle


@pytest.mark.parametrize(
    ("stream", "handle"),
    [
        (None, None),
        (0, 1),
        (12345, 12345),
        (_TorchLike(0), 1),
        (_TorchLike(77), 77),
        (_CupyLike(99), 99),
    ],
)
def test_stream_handles(stream, handle) -> None:
    """0 (the legacy default stream) goes to the runtime as CU_STREAM_LEGACY, since the C API
    reads a NULL stream as the module's own."""
    module = CompiledModule.__new__(CompiledModule)
    module._module = _FakeNative()
    assert module._stream_handle(stream) == handle


@pytest.mark.parametrize("stream", [-1, True, "s", 1.5, _TorchLike(-3)])
def test_bad_streams_are_named(stream) -> None:
    module = CompiledModule.__new__(CompiledModule)
    module._module = _FakeNative()
    with pytest.raises(ModuleError, match="stream: expected a CUDA stream"):
        module._stream_handle(stream)


# --- on a GPU ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    if not have_cuda_driver():
        pytest.skip("no NVIDIA driver")
    from tests.runtime.cuda_modules import compile_cubin

    data = compile_cubin(tmp_path_factory.mktemp("cubin"))
    if data is None:
        pytest.skip("no nvcc to build the test cubin")
    return cuda_chain_module(tmp_path_factory.mktemp("m") / "m", data, steps=40, n=4096)


@pytest.mark.gpu
def test_gpu_async_runs_on_the_callers_streams(chain):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    module = runtime.load(chain)
    w = torch.from_numpy(weights_for([4096])).cuda()
    current = torch.cuda.current_stream()
    side = torch.cuda.Stream()
    outs = [torch.full((4096,), float("nan"), device="cuda") for _ in range(6)]
    xs = []
    for i, y in enumerate(outs):
        stream = current if i % 2 == 0 else side
        with torch.cuda.stream(stream):
            # produced by a torch kernel on the same stream right before the (async) run, and
            # consumed right after it without a synchronization in between
            x = torch.full((4096,), float(i), device="cuda").sin()
            module.run({"x": x}, out={"y": y}, stream=stream)
            y.mul_(2)
            xs.append(x)
    torch.cuda.synchronize()
    for x, y in zip(xs, outs):
        torch.testing.assert_close(y, 2 * (x + 40 * w), rtol=1e-5, atol=1e-5)
    # host arrays with a stream: still a synchronous, correct run
    x = np.linspace(-1, 1, 4096, dtype=np.float32)
    got = module.run({"x": x}, stream=current)["y"]
    np.testing.assert_allclose(got, x + 40 * weights_for([4096]), rtol=1e-5, atol=1e-5)
