"""Load + run hand-written modules through optimizer.runtime; compare with NumPy."""

from __future__ import annotations

import ctypes
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from optimizer.kernels.python_bridge import OdcKernelArgs, OdcTensor

from optimizer import runtime
from optimizer.errors import OptimizerError
from optimizer.runtime import ModuleError
from tests.runtime.module_builder import (
    ModuleBuilder,
    standard_feeds,
    standard_reference,
)


def test_signature(module_dir):
    m = runtime.load(module_dir)
    assert [(i.name, i.dtype, i.shape) for i in m.inputs] == [
        ("x", "float32", (2, 3)),
        ("z", "float32", (2, 4)),
    ]
    assert [(o.name, o.dtype, o.shape) for o in m.outputs] == [
        ("y", "float32", (2, 4)),
        ("s", "float32", (2, 4)),
    ]
    assert m.steps == [
        ("builtin.test.matmul_f32_naive", "fc"),
        ("builtin.test.relu_f32", "act"),
        ("builtin.test.add_f32", "residual"),
        ("builtin.test.scale_f32", "affine"),
    ]
    assert m.arena_size == 128
    assert "x: float32[2, 3]" in repr(m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_run_matches_numpy(module_dir, seed):
    m = runtime.load(module_dir)
    feeds = standard_feeds(seed)
    got = m.run(feeds)
    want = standard_reference(**feeds)
    assert list(got) == ["y", "s"]
    for name in want:
        # float32 matmul of K=3 accumulated in double: differences are rounding only.
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)


def test_run_writes_into_given_output_buffers(module_dir):
    m = runtime.load(module_dir)
    feeds = standard_feeds(3)
    want = standard_reference(**feeds)
    y = np.full(m.outputs[0].shape, np.nan, dtype=np.float32)
    got = m.run(feeds, out={"y": y})
    assert got["y"] is y  # written in place, returned as given; "s" allocated as usual
    np.testing.assert_allclose(y, want["y"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["s"], want["s"], rtol=1e-6, atol=1e-6)
    with pytest.raises(ModuleError, match="out: unknown output 'q'"):
        m.run(feeds, out={"q": y})
    with pytest.raises(ModuleError, match=r"out 'y': float64\[2, 3\] != float32"):
        m.run(feeds, out={"y": np.zeros((2, 3))})
    with pytest.raises(ModuleError, match="C-contiguous and writeable"):
        m.run(feeds, out={"y": np.zeros((4, 2), dtype=np.float32).T})
    with pytest.raises(ModuleError, match="out must be a dict"):
        m.run(feeds, out=[y])


def test_repeated_runs_and_skip_checksums(module_dir):
    m = runtime.load(module_dir, verify_checksums=False)
    for seed in range(5):
        feeds = standard_feeds(seed)
        np.testing.assert_allclose(m.run(feeds)["s"], standard_reference(**feeds)["s"], atol=1e-6)


def test_non_contiguous_inputs_are_accepted(module_dir):
    m = runtime.load(module_dir)
    feeds = standard_feeds()
    x_t = np.asfortranarray(feeds["x"])
    got = m.run({"x": x_t, "z": feeds["z"][:, :]})
    np.testing.assert_allclose(got["y"], standard_reference(**feeds)["y"], atol=1e-6)


def test_profile(module_dir):
    m = runtime.load(module_dir)
    profile = m.profile(standard_feeds(), iterations=3)
    assert [(p.index, p.kernel, p.node) for p in profile] == [
        (0, "builtin.test.matmul_f32_naive", "fc"),
        (1, "builtin.test.relu_f32", "act"),
        (2, "builtin.test.add_f32", "residual"),
        (3, "builtin.test.scale_f32", "affine"),
    ]
    assert all(p.seconds >= 0 for p in profile)
    with pytest.raises(ModuleError, match="iterations must be >= 1"):
        m.profile(standard_feeds(), iterations=0)


def test_threads(module_dir):
    m = runtime.load(module_dir)
    assert m.num_threads >= 1
    m.set_num_threads(3)
    assert m.num_threads == 3
    with pytest.raises(ModuleError, match=r"num_threads 0 must be in \[1, 4096\]"):
        m.set_num_threads(0)
    with pytest.raises(ModuleError, match="must be an int"):
        m.set_num_threads(2.5)


def test_concurrent_runs_are_serialized(module_dir):
    m = runtime.load(module_dir)
    feeds = standard_feeds()
    want = standard_reference(**feeds)["s"]
    errors = []

    def work():
        try:
            for _ in range(50):
                np.testing.assert_allclose(m.run(feeds)["s"], want, atol=1e-6)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.zeros((2, 3), np.float32)}, "missing input 'z' (float32[2, 4])"),
        (
            {"x": np.zeros((2, 3), np.float32), "z": np.zeros((2, 4), np.float32), "q": 1},
            "unknown input 'q'; the module's inputs are x: float32[2, 3], z: float32[2, 4]",
        ),
        (
            {"x": np.zeros((2, 3), np.float64), "z": np.zeros((2, 4), np.float32)},
            "input 'x': dtype float64 != float32 (convert with .astype(np.float32))",
        ),
        (
            {"x": np.zeros((3, 2), np.float32), "z": np.zeros((2, 4), np.float32)},
            "input 'x': shape [3, 2] != [2, 3]",
        ),
        ([1, 2], "feeds must be a dict"),
    ],
)
def test_bad_feeds(module_dir, feeds, message):
    m = runtime.load(module_dir)
    with pytest.raises(ModuleError, match=re.escape(message)):
        m.run(feeds)


def test_native_layer_checks_buffers(module_dir):
    # Below the Python checks, the C++ runtime checks every caller buffer itself.
    m = runtime.load(module_dir)
    native = m._module
    x = np.zeros((2, 3), np.float32)
    z = np.zeros((2, 4), np.float32)
    outs = [np.empty((2, 4), np.float32), np.empty((2, 4), np.float32)]
    with pytest.raises(ModuleError, match=r"run: inputs\[0\] 'x': shape \[3, 2\] != expected"):
        native.run([x.reshape(3, 2), z], outs)
    with pytest.raises(ModuleError, match=r"run: inputs\[1\] 'z': dtype int32 != expected float32"):
        native.run([x, z.astype(np.int32)], outs)
    with pytest.raises(ModuleError, match="run: got 1 inputs and 2 outputs"):
        native.run([x], outs)
    with pytest.raises(ModuleError, match=r"run: outputs\[0\] is read-only"):
        ro = np.empty((2, 4), np.float32)
        ro.flags.writeable = False
        native.run([x, z], [ro, outs[1]])
    with pytest.raises(ModuleError, match=r"run: inputs\[0\] is not C-contiguous"):
        native.run([np.zeros((3, 2), np.float32).T, z], outs)


def test_module_error_is_an_optimizer_error(tmp_path):
    with pytest.raises(OptimizerError) as info:
        runtime.load(tmp_path / "nowhere")
    assert isinstance(info.value, ModuleError)
    assert "cannot open module" in str(info.value)
    assert "\n" not in str(info.value)


def test_kernel_failure_names_kernel_step_and_node(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [4])
    h = m.arena("h", [4])
    y = m.output("y", [4])
    m.step(m.kernel("test.relu_f32"), [x], [h], node="ok")
    m.step(m.kernel("test.fail"), [h], [y], iparams=[42], node="conv1")
    mod = runtime.load(m.write(tmp_path / "m"))
    with pytest.raises(
        ModuleError,
        match=r"^kernel builtin.test.fail \(step 1, node 'conv1'\) failed: "
        r"test failure \(iparams\[0\]=42\)$",
    ):
        mod.run({"x": np.ones(4, np.float32)})


def test_optional_input_and_workspace(tmp_path):
    m = ModuleBuilder()
    a = m.input("a", [3, 2])
    b = m.weight("b", np.full((2, 5), 0.5, np.float32))
    h = m.arena("h", [3, 5])
    y = m.output("y", [3, 5])
    m.step(m.kernel("test.matmul_f32_naive"), [a, b, -1], [h])  # bias omitted
    m.step(m.kernel("test.copy_workspace"), [h], [y], workspace=60)
    mod = runtime.load(m.write(tmp_path / "m"))
    a_val = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_allclose(mod.run({"a": a_val})["y"], a_val @ np.full((2, 5), 0.5))


def test_zero_sized_tensors(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [0, 4])
    y = m.output("y", [0, 4])
    m.step(m.kernel("test.relu_f32"), [x], [y])
    mod = runtime.load(m.write(tmp_path / "m"))
    assert mod.run({"x": np.zeros((0, 4), np.float32)})["y"].shape == (0, 4)


def test_output_read_by_later_step_and_no_weights(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [5])
    y = m.output("y", [5])
    y2 = m.output("y2", [5])
    relu = m.kernel("test.relu_f32")
    m.step(relu, [x], [y])
    m.step(m.kernel("test.add_f32"), [y, y], [y2])
    mod = runtime.load(m.write(tmp_path / "m"))
    xv = np.linspace(-2, 2, 5, dtype=np.float32)
    out = mod.run({"x": xv})
    np.testing.assert_array_equal(out["y2"], 2 * np.maximum(xv, 0))


# Kind "python": the entry returns an odc_kernel_fn address (here a ctypes callback).
# The ABI structs are the ones the Python fallback bridge uses.
_Tensor, _Args = OdcTensor, OdcKernelArgs

_KERNEL_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.POINTER(_Args), ctypes.c_char_p, ctypes.c_int64
)


def _negate(args_ptr, error, error_size):
    args = args_ptr.contents
    src, dst = args.inputs[0], args.outputs[0]
    n = int(np.prod([src.shape[i] for i in range(src.ndim)]))
    x = np.ctypeslib.as_array(ctypes.cast(src.data, ctypes.POINTER(ctypes.c_float)), (n,))
    y = np.ctypeslib.as_array(ctypes.cast(dst.data, ctypes.POINTER(ctypes.c_float)), (n,))
    y[:] = -x
    return 0


def negate_kernel():
    """A python-kind kernel entry: returns a ctypes function pointer."""
    return _KERNEL_FN(_negate)


def test_python_kernel(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [6])
    y = m.output("y", [6])
    m.step(m.kernel("tests.runtime.test_load_run:negate_kernel", kind="python"), [x], [y])
    mod = runtime.load(m.write(tmp_path / "m"))
    xv = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(mod.run({"x": xv})["y"], -xv)


def test_python_kernel_import_error(tmp_path):
    m = ModuleBuilder()
    x = m.input("x", [6])
    y = m.output("y", [6])
    m.step(m.kernel("no_such_module_xyz:kernel", kind="python"), [x], [y])
    with pytest.raises(
        ModuleError,
        match=r"kernels\[0\] 'python.no_such_module_xyz:kernel': python entry "
        r"'no_such_module_xyz:kernel': ModuleNotFoundError: No module named",
    ):
        runtime.load(m.write(tmp_path / "m"))


def test_builtin_registry_has_no_conflicts():
    from optimizer import _runtime

    assert _runtime.builtin_registration_errors() == []
    assert {"test.add_f32", "test.relu_f32", "test.matmul_f32_naive"} <= set(
        _runtime.builtin_kernels()
    )
    assert _runtime.FORMAT_VERSION == 3
    assert _runtime.ABI_VERSION == 1


def test_optimizer_load_opens_module_directories_and_onnx_files(tmp_path) -> None:
    import optimizer
    from tests.runtime.module_builder import standard_feeds, standard_module, standard_reference

    module = optimizer.load(standard_module(tmp_path / "mod"))
    feeds = standard_feeds()
    got = module.run(feeds)
    for name, want in standard_reference(feeds["x"], feeds["z"]).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-6)
    demo = Path(__file__).resolve().parents[2] / "examples" / "paddle_cnn.onnx"
    assert type(optimizer.load(demo)).__name__ == "Model"
