"""NVRTC kernels (kernels/cuda): every kernel compiles for sm_90 and sm_80 in every dtype, the
cubin holds the entry the launch names with the launch's parameter types, the cache, and the
one-line errors. No GPU needed (NVRTC compiles for a named architecture)."""

from __future__ import annotations

import sys

import pytest
from optimizer.kernels.cuda import nvrtc, plans
from optimizer.kernels.cuda.nvrtc import NvrtcError
from optimizer.kernels.triton import aot
from optimizer.kernels.triton.launch import TensorDesc, Unsupported

needs_nvrtc = pytest.mark.skipif(nvrtc.available() is not None,
                                 reason=f"NVRTC not installed: {nvrtc.available()}")  # fmt: skip
DTYPES = ("float32", "float16", "bfloat16")


def _launches():
    """(id, launch) for every kernel entry of the sources: resize in each float dtype and both
    modes, gather for each unit width and index type."""
    out = []
    for dt in DTYPES:
        x, y = TensorDesc((2, 3, 5, 7), dt), TensorDesc((2, 3, 10, 14), dt)
        out.append((f"nearest-{dt}", plans.plan_resize_nearest([x], [y], [0, 0], [0.0, 0.0])))
        out.append((f"bilinear-{dt}", plans.plan_resize_bilinear([x], [y], [1], [0.0, 0.0])))
        gap = plans.plan_global_avgpool([x], [TensorDesc((2, 3, 1, 1), dt)], [], [])
        out.append((f"global-avgpool-{dt}", gap))
    for dt, inner in (("uint8", 3), ("float16", 3), ("float32", 3), ("int64", 3),
                      ("float16", 64)):  # fmt: skip
        for it in ("int32", "int64"):
            data, idx = TensorDesc((10, inner), dt), TensorDesc((4,), it)
            launch = plans.plan_gather([data, idx], [TensorDesc((4, inner), dt)], [0], [])
            out.append((f"gather-{dt}x{inner}-{it}", launch))
    return out


LAUNCHES = _launches()


def test_every_kernel_of_the_sources_is_planned() -> None:
    entries = {launch.entry for _, launch in LAUNCHES}
    assert entries == {f"{k}_{s}" for k in ("resize_nearest", "resize_bilinear", "global_avgpool")
                       for s in ("f32", "f16", "bf16")} | {
        f"gather_u{b}_{i}" for b in (8, 16, 32, 64, 128) for i in ("i32", "i64")}  # fmt: skip


@needs_nvrtc
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_every_kernel_compiles_with_the_launch_parameters(arch: str, tmp_path) -> None:
    for name, launch in LAUNCHES:
        cubin = plans.compile_launch(launch, arch, directory=tmp_path)
        data = cubin.path.read_bytes()
        assert data[:4] == b"\x7fELF", name
        assert launch.entry.encode() + b"\0" in data, name  # the symbol is in the string table
        assert cubin.entry == launch.entry and cubin.arch == arch
        assert cubin.params == launch.params and cubin.hidden == 0 and cubin.shared == 0
        assert cubin.launch_metadata() == {"num_warps": launch.num_warps, "shared": 0,
                                           "params": launch.params}  # fmt: skip
        args = aot.step_args(cubin, launch)
        assert len(args) == len(cubin.params)
        assert [next(iter(a)) for a in args][:3] in (["in", "out", "i64"],
                                                     ["in", "in", "out"])  # fmt: skip


@needs_nvrtc
def test_the_cache_is_keyed_by_source_and_arch(tmp_path) -> None:
    first = nvrtc.compile_source("resize.cu", "sm_90", directory=tmp_path)
    again = nvrtc.compile_source("resize.cu", "sm_90", directory=tmp_path)
    other = nvrtc.compile_source("resize.cu", "sm_80", directory=tmp_path)
    assert not first.cached and again.cached and not other.cached
    assert again.path == first.path and other.key != first.key
    assert again.kernels == first.kernels
    first.path.write_bytes(b"junk")  # damaged: rebuilt
    rebuilt = nvrtc.compile_source("resize.cu", "sm_90", directory=tmp_path)
    assert not rebuilt.cached and rebuilt.path.read_bytes()[:4] == b"\x7fELF"


@needs_nvrtc
def test_a_compile_error_is_the_logs_first_error_line() -> None:
    with pytest.raises(NvrtcError, match=r"^bad\.cu: NVRTC failed to compile for sm_90: "
                       r"bad\.cu\(1\): error: .*undefined") as err:  # fmt: skip
        nvrtc._compile("bad.cu", 'extern "C" __global__ void k() { undefined_fn(); }', {},
                       ["--gpu-architecture=sm_90"])  # fmt: skip
    assert "\n" not in str(err.value)


@needs_nvrtc
def test_launch_parameters_are_checked_against_the_ptx(tmp_path) -> None:
    launch = LAUNCHES[0][1]
    launch.args.pop("mode")
    with pytest.raises(NvrtcError, match="takes PTX parameters"):
        plans.compile_launch(launch, "sm_90", directory=tmp_path)
    launch.entry = "no_such_kernel"
    with pytest.raises(NvrtcError, match="no kernel 'no_such_kernel'"):
        plans.compile_launch(launch, "sm_90", directory=tmp_path)


def test_missing_nvrtc_says_install_the_cuda_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda", None)
    with pytest.raises(NvrtcError, match=r"NVRTC is not installed .*install the cuda extra"):
        nvrtc.nvrtc_version()
    assert "cuda extra" in (nvrtc.available() or "")
    # without NVRTC a step has no NVRTC alternative (the Triton kernel runs alone)
    x, y = TensorDesc((1, 1, 2, 2), "float32"), TensorDesc((1, 1, 4, 4), "float32")
    assert plans.nvrtc_alternatives("resize_bilinear_f32", [x], [y], [0], [0.0, 0.0]) == []


def test_unknown_sources_and_archs_are_errors() -> None:
    with pytest.raises(NvrtcError, match=r"no CUDA source 'nope\.cu'"):
        nvrtc.compile_source("nope.cu")
    with pytest.raises(NvrtcError, match="unknown CUDA architecture 'sm_1'"):
        nvrtc.compile_source("resize.cu", "sm_1")


def test_plans_refuse_what_the_kernels_cannot_do() -> None:
    x = TensorDesc((1, 1, 2, 2), "float32")
    with pytest.raises(Unsupported, match="nearest mode 5"):
        plans.plan_resize_nearest([x], [TensorDesc((1, 1, 4, 4), "float32")], [0, 5], [0, 0])
    with pytest.raises(Unsupported, match="must share N and C"):
        plans.plan_resize_bilinear([x], [TensorDesc((1, 2, 4, 4), "float32")], [0], [0, 0])
    with pytest.raises(Unsupported, match="indices must be int32 or int64"):
        plans.plan_gather([x, TensorDesc((2,), "float32")], [TensorDesc((2, 1, 2, 2), "float32")],
                          [0], [])  # fmt: skip
    with pytest.raises(Unsupported, match="does not fit X"):
        plans.plan_global_avgpool([x], [TensorDesc((1, 1, 2, 1), "float32")], [], [])
    with pytest.raises(Unsupported, match="should be"):
        plans.plan_gather([x, TensorDesc((2,), "int64")], [TensorDesc((2, 2), "float32")], [0], [])


def test_gather_moves_the_widest_unit_dividing_a_row() -> None:
    def entry(shape, dt, it="int64"):
        data, idx = TensorDesc(shape, dt), TensorDesc((3,), it)
        y = TensorDesc((3, *shape[1:]), dt)
        return plans.plan_gather([data, idx], [y], [0], []).entry

    assert entry((10, 64), "float16") == "gather_u128_i64"  # a bert embedding row: 8 x 16 B
    assert entry((10, 3), "float32", "int32") == "gather_u32_i32"
    assert entry((10, 6), "float16") == "gather_u32_i64"
    assert entry((10, 3), "uint8") == "gather_u8_i64"
    assert entry((10, 1), "int64") == "gather_u64_i64"


def test_prefer_nvrtc_rule() -> None:
    # H100 timings (plans.py's docstring): only a global average pool over few planes
    gap = TensorDesc((1, 2048, 7, 7), "float16")
    assert plans.prefer_nvrtc("global_avgpool_f32", [gap], [TensorDesc((1, 2048), "float16")],
                              [], [])  # fmt: skip
    big = TensorDesc((16, 2048, 7, 7), "float16")
    assert not plans.prefer_nvrtc("global_avgpool_f32", [big],
                                  [TensorDesc((16, 2048), "float16")], [], [])  # fmt: skip
    table, ids = TensorDesc((1000, 64), "float16"), TensorDesc((16, 16), "int64")
    assert not plans.prefer_nvrtc("gather", [table, ids], [TensorDesc((16, 16, 64), "float16")],
                                  [0], [])  # fmt: skip
    x, y = TensorDesc((1, 64, 16, 16), "float16"), TensorDesc((1, 64, 32, 32), "float16")
    assert not plans.prefer_nvrtc("resize_nearest_f32", [x], [y], [0, 0], [2.0, 2.0])
    assert not plans.prefer_nvrtc("softmax_f32", [x], [x], [1, 0], [])
