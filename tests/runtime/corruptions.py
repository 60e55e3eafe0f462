"""Ways to damage the standard test module, each with the error it must produce.

Each entry: (id, damage(directory), expected substring of the one-line error). Used from
Python (``optimizer.runtime.load``) and from the runner (``odc-run``, exit code 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.runtime.module_builder import edit_json, refresh_files


def _truncate(name: str, keep: int, refresh: bool) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:keep])
        if refresh:
            refresh_files(d)

    return damage


def _write(name: str, data: bytes, refresh: bool = True) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
        if refresh:
            refresh_files(d)

    return damage


def _plan_value(index: int, **fields) -> Callable[[Path], None]:
    return lambda d: edit_json(d, "plan.json", lambda p: p["values"][index].update(fields))


def _plan_step(index: int, **fields) -> Callable[[Path], None]:
    return lambda d: edit_json(d, "plan.json", lambda p: p["steps"][index].update(fields))


def _plan(**fields) -> Callable[[Path], None]:
    return lambda d: edit_json(d, "plan.json", lambda p: p.update(fields))


def _manifest(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda d: edit_json(d, "manifest.json", edit)


def _shared_library_kernel(d: Path, data: bytes | None) -> None:
    def edit(m: dict) -> None:
        m["kernels"][0].update(kind="shared_library", file="kernels/0.so", entry="odc_kernel_x")

    edit_json(d, "manifest.json", edit)
    if data is not None:
        _write("kernels/0.so", data, refresh=False)(d)
        manifest = json.loads((d / "manifest.json").read_text())
        refresh_files(d, [*manifest["files"], "kernels/0.so"])


# Value indices of the standard module: 0 x, 1 z, 2 w (weights @0, 48 B), 3 b (weights @64,
# 16 B), 4 h (arena @0, 32 B), 5 r (arena @64), 6 y (output), 7 s (output); arena_size 128,
# weights.bin 80 bytes.
CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "truncated_weights",
        _truncate("weights.bin", 70, refresh=False),
        "invalid module: weights.bin: size 70 != 80 in manifest",
    ),
    (
        "truncated_weights_rehashed",
        _truncate("weights.bin", 70, refresh=True),
        "invalid module: plan.json: values[3]: offset 64 + nbytes 16 exceeds weights.bin size 70",
    ),
    (
        "missing_weights",
        lambda d: (d / "weights.bin").unlink(),
        "invalid module: weights.bin: missing file",
    ),
    (
        "misaligned_offset",
        _plan_value(5, offset=96),
        "invalid module: plan.json: values[5]: offset 96 is not a multiple of alignment 64",
    ),
    (
        "offset_out_of_range",
        _plan_value(5, offset=4096),
        "invalid module: plan.json: values[5]: offset 4096 + nbytes 32 exceeds arena_size 128",
    ),
    (
        "offset_overflow",
        _plan_value(5, offset=2**63 - 64),
        "values[5]: offset 9223372036854775744 + nbytes 32 exceeds arena_size 128",
    ),
    (
        "offset_beyond_int64",
        _plan_value(5, offset=2**64 - 64),
        "values[5]: offset 18446744073709551552 is out of range",
    ),
    ("negative_offset", _plan_value(5, offset=-64), "values[5]: offset -64 < 0"),
    (
        "nbytes_mismatch",
        _plan_value(4, nbytes=16),
        "values[4]: nbytes 16 != 32 for shape [2, 4] float32",
    ),
    (
        "weights_out_of_range",
        _plan_value(3, offset=128),
        "values[3]: offset 128 + nbytes 16 exceeds weights.bin size 80",
    ),
    (
        "format_version_newer",
        _manifest(lambda m: m.update(format_version=4)),
        "invalid module: manifest.json: format_version 4 is newer than this runtime (3)",
    ),
    (
        "format_version_zero",
        _manifest(lambda m: m.update(format_version=0)),
        "manifest.json: format_version 0 is not valid",
    ),
    (
        "format_version_string",
        _manifest(lambda m: m.update(format_version="1")),
        "manifest.json: format_version must be an integer, got a string",
    ),
    (
        "format_name",
        _manifest(lambda m: m.update(format="onnx-other")),
        "invalid module: manifest.json: format 'onnx-other' is not 'onnx-deploy-module'",
    ),
    (
        "format_missing",
        _manifest(lambda m: m.pop("format")),
        "manifest.json: missing 'format' (not a compiled module?)",
    ),
    (
        "manifest_not_object",
        _write("manifest.json", b"[1, 2]", refresh=False),
        "manifest.json: expected an object, got an array",
    ),
    (
        "missing_kernel_file",
        lambda d: _shared_library_kernel(d, None),
        "invalid module: kernels[0]: missing file kernels/0.so",
    ),
    (
        "kernel_file_not_a_library",
        lambda d: _shared_library_kernel(d, b"not an ELF file"),
        "kernels[0] 'builtin.test.matmul_f32_naive': cannot load kernels/0.so",
    ),
    (
        "manifest_size_edited",
        _manifest(
            lambda m: m["files"]["plan.json"].update(size=m["files"]["plan.json"]["size"] + 1)
        ),
        "invalid module: plan.json: size",
    ),
    (
        "manifest_hash_edited",
        _manifest(lambda m: m["files"]["plan.json"].update(sha256="ab" * 32)),
        "invalid module: plan.json: sha256 differs from the manifest (file edited or corrupt)",
    ),
    (
        "weights_edited",
        lambda d: (d / "weights.bin").write_bytes(b"\x01" * 80),
        "invalid module: weights.bin: sha256 differs from the manifest",
    ),
    (
        "plan_edited_not_rehashed",
        lambda d: edit_json(d, "plan.json", lambda p: p.update(arena_size=99999), refresh=False),
        "plan.json: size",
    ),
    (
        "bad_sha256_format",
        _manifest(lambda m: m["files"]["plan.json"].update(sha256="xyz")),
        "manifest.json: files: 'plan.json': sha256 must be 64 hex digits",
    ),
    (
        "plan_not_listed",
        _manifest(lambda m: m["files"].pop("plan.json")),
        "manifest.json: files: plan.json is not listed",
    ),
    (
        "path_traversal",
        _manifest(lambda m: m["files"].update({"../escape": {"size": 0, "sha256": "0" * 64}})),
        "manifest.json: files: '../escape': path must be relative",
    ),
    (
        "unknown_dtype_plan",
        _plan_value(4, dtype="float8"),
        "invalid module: plan.json: values[4]: unknown dtype 'float8'",
    ),
    (
        "unknown_dtype_manifest",
        _manifest(lambda m: m["inputs"][0].update(dtype="complex64")),
        "manifest.json: inputs[0]: unknown dtype 'complex64'",
    ),
    (
        "step_missing_value",
        _plan_step(1, inputs=[99]),
        "invalid module: plan.json: steps[1]: inputs[0]: value 99 does not exist",
    ),
    (
        "step_missing_output_value",
        _plan_step(1, outputs=[42]),
        "plan.json: steps[1]: outputs[0]: value 42 does not exist",
    ),
    (
        "step_unknown_kernel",
        _plan_step(0, kernel=7),
        "plan.json: steps[0]: kernel 7 is not in the kernel table",
    ),
    (
        "step_writes_weights",
        _plan_step(1, outputs=[2]),
        "steps[1]: outputs[0]: value 2 'w' has storage 'weights' and cannot be written",
    ),
    (
        "step_writes_input",
        _plan_step(1, outputs=[0]),
        "steps[1]: outputs[0]: value 0 'x' has storage 'input' and cannot be written",
    ),
    (
        "read_before_write",
        _plan_step(0, inputs=[5, 2, 3]),
        "steps[0]: inputs[0]: value 5 'r' is read before any step writes it",
    ),
    (
        "output_never_written",
        lambda d: edit_json(d, "plan.json", lambda p: p["steps"].pop()),
        "plan.json: values[7] 's': output is never written by any step",
    ),
    (
        "iparams_not_ints",
        _plan_step(3, iparams=[1.5]),
        "steps[3]: iparams[0] must be an integer, got a float",
    ),
    (
        "fparams_not_numbers",
        _plan_step(3, fparams=["2.0", 1]),
        "steps[3]: fparams[0] must be a number, got a string",
    ),
    ("negative_dim", _plan_value(4, shape=[-1, 4]), "values[4]: shape[0] is -1 (must be >= 0)"),
    (
        "symbolic_dim",
        _plan_value(4, shape=["batch", 4]),
        "values[4]: shape[0] is symbolic 'batch'; pin it at compile time (--input-shape)",
    ),
    ("rank_too_big", _plan_value(4, shape=[1] * 9), "values[4]: rank 9 exceeds ODC_MAX_RANK 8"),
    (
        "element_count_overflow",
        _plan_value(4, shape=[2**31, 2**31, 2**31]),
        "values[4]: shape [2147483648, 2147483648, 2147483648] overflows int64 bytes",
    ),
    (
        "bytes_overflow",
        _plan_value(4, shape=[2**62]),
        "values[4]: shape [4611686018427387904] overflows int64 bytes",
    ),
    ("unknown_storage", _plan_value(4, storage="disk"), "values[4]: unknown storage 'disk'"),
    (
        "gpu_device",
        _plan_value(4, device="cuda"),
        "values[4]: device 'cuda' in a module that targets cpu (format_version 1 is cpu only)",
    ),
    ("duplicate_value_id", _plan_value(5, id=4), "plan.json: values[5]: duplicate id 4"),
    (
        "bad_alignment",
        _plan(alignment=48),
        "plan.json: alignment 48 must be a power of two in [64, 4096]",
    ),
    (
        "arena_too_big",
        _plan(arena_size=2**62),
        "plan.json: arena_size 4611686018427387904 exceeds this machine's memory",
    ),
    (
        "signature_mismatch",
        _manifest(lambda m: m["inputs"][0].update(shape=[2, 5])),
        "manifest.json: inputs[0] 'x': float32 [2, 5] != plan.json value 0: float32 [2, 3]",
    ),
    (
        "signature_wrong_storage",
        _manifest(lambda m: m["outputs"][0].update(value=4)),
        "manifest.json: outputs[0] 'y': value 4 has storage 'arena' in plan.json, not 'output'",
    ),
    (
        "signature_missing_value",
        _manifest(lambda m: m["inputs"][1].update(value=77)),
        "manifest.json: inputs[1] 'z': value 77 is not in plan.json",
    ),
    (
        "unreferenced_input",
        _manifest(lambda m: m["inputs"].pop()),
        "plan.json: values[1] 'z': storage 'input' but no manifest inputs entry refers to it",
    ),
    (
        "unregistered_builtin",
        _manifest(lambda m: m["kernels"][1].update(entry="nope")),
        "kernels[1] 'builtin.test.relu_f32': builtin 'nope' is not registered in this runtime",
    ),
    (
        "unknown_kernel_kind",
        _manifest(lambda m: m["kernels"][1].update(kind="opencl")),
        "manifest.json: kernels[1]: unknown kind 'opencl' (this runtime knows builtin, "
        "shared_library, python, cubin)",
    ),
    (
        "garbage_manifest",
        _write("manifest.json", b'{"format": onnx', refresh=False),
        "invalid module: manifest.json: not valid JSON: parse error",
    ),
    (
        "garbage_plan",
        _write("plan.json", b"\x00\xff garbage"),
        "invalid module: plan.json: not valid JSON: parse error",
    ),
    (
        "empty_manifest",
        _write("manifest.json", b"", refresh=False),
        "invalid module: manifest.json: empty file",
    ),
    ("empty_plan", _write("plan.json", b""), "invalid module: plan.json: empty file"),
    (
        "missing_manifest",
        lambda d: (d / "manifest.json").unlink(),
        "invalid module: manifest.json: missing file",
    ),
    (
        "deep_json",
        _write("plan.json", b"[" * 100000 + b"]" * 100000),
        "plan.json: JSON nested deeper than 64 levels",
    ),
    ("plan_not_object", _write("plan.json", b"42"), "plan.json: expected an object, got a number"),
]


def _kernel(index: int, **fields) -> Callable[[Path], None]:
    return _manifest(lambda m: m["kernels"][index].update(fields))


def _launch(index: int, **fields) -> Callable[[Path], None]:
    return _manifest(lambda m: m["kernels"][index]["launch"].update(fields))


def _arg(step: int, index: int, arg: dict) -> Callable[[Path], None]:
    def edit(p: dict) -> None:
        p["steps"][step]["args"][index] = arg

    return lambda d: edit_json(d, "plan.json", edit)


def _cubin_in_cpu_module(d: Path) -> None:
    def edit(m: dict) -> None:
        m["kernels"][0].update(
            kind="cubin",
            file="kernels/0.cubin",
            launch={"num_warps": 4, "shared": 0, "params": ["ptr"]},
        )

    edit_json(d, "manifest.json", edit)
    _write("kernels/0.cubin", b"cubin", refresh=False)(d)
    manifest = json.loads((d / "manifest.json").read_text())
    refresh_files(d, [*manifest["files"], "kernels/0.cubin"])


# Damages of the standard cuda module (tests/runtime/cuda_modules.py): values 0 x, 1 z, 2 w,
# 3 h (arena), 4 y, 5 s; kernels 0 'test.axpb' (ptr ptr ptr i32 f32 ptr), 1 'test.add_ws'
# (ptr ptr ptr i64 ptr); steps 0 scale (axpb), 1 residual (add_ws, workspace 32), 2 negate.
# Every one is found before the driver is opened, so they run without a GPU.
CUDA_CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "cubin_missing",
        lambda d: (d / "kernels/0.cubin").unlink(),
        "invalid module: kernels[0]: missing file kernels/0.cubin",
    ),
    (
        "cubin_edited",
        lambda d: (d / "kernels/1.cubin").write_bytes((d / "kernels/1.cubin").read_bytes().upper()),
        "invalid module: kernels/1.cubin: sha256 differs from the manifest",
    ),
    (
        "cubin_truncated",
        _truncate("kernels/0.cubin", 5, refresh=False),
        "invalid module: kernels/0.cubin: size 5 != ",
    ),
    (
        "cubin_without_file",
        _manifest(lambda m: m["kernels"][0].pop("file")),
        "manifest.json: kernels[0]: kind 'cubin' needs a 'file'",
    ),
    (
        "cubin_file_outside",
        _kernel(0, file="../0.cubin"),
        "manifest.json: kernels[0]: file '../0.cubin' must be relative, inside the module",
    ),
    (
        "launch_missing",
        _manifest(lambda m: m["kernels"][1].pop("launch")),
        "manifest.json: kernels[1]: missing 'launch'",
    ),
    (
        "num_warps_zero",
        _launch(0, num_warps=0),
        "kernels[0]: launch: num_warps 0 must be in [1, 32] (at most 1024 threads per block)",
    ),
    (
        "num_warps_too_many",
        _launch(1, num_warps=64),
        "kernels[1]: launch: num_warps 64 must be in [1, 32]",
    ),
    (
        "shared_negative",
        _launch(0, shared=-1),
        "kernels[0]: launch: shared -1 must be in [0, 1048576] bytes",
    ),
    (
        "param_type_unknown",
        _launch(0, params=["ptr", "ptr", "ptr", "i32", "f16", "ptr"]),
        "kernels[0]: launch: params[4] 'f16' is not one of 'ptr', 'i32', 'i64', 'f32'",
    ),
    (
        "param_not_string",
        _launch(1, params=["ptr", 1, "ptr", "i64", "ptr"]),
        "kernels[1]: launch: params[1] a number is not one of",
    ),
    (
        "grid_zero",
        _plan_step(0, grid=[0, 1, 1]),
        "plan.json: steps[0]: grid[0] 0 must be in [1, 2147483647]",
    ),
    (
        "grid_y_too_big",
        _plan_step(2, grid=[1, 65536, 1]),
        "plan.json: steps[2]: grid[1] 65536 must be in [1, 65535]",
    ),
    (
        "grid_two_dims",
        _plan_step(1, grid=[1, 1]),
        "plan.json: steps[1]: 'grid' must be an array [gx, gy, gz]",
    ),
    (
        "grid_missing",
        lambda d: edit_json(d, "plan.json", lambda p: p["steps"][0].pop("grid")),
        "plan.json: steps[0]: missing 'grid'",
    ),
    (
        "args_missing",
        lambda d: edit_json(d, "plan.json", lambda p: p["steps"][2].pop("args")),
        "plan.json: steps[2]: missing 'args'",
    ),
    (
        "args_count",
        lambda d: edit_json(d, "plan.json", lambda p: p["steps"][0]["args"].pop()),
        "plan.json: steps[0]: 5 args for the 6 launch params of kernels[0] 'test.axpb'",
    ),
    (
        "arg_type_mismatch",
        _arg(0, 0, {"i32": 3}),
        "steps[0]: args[0]: i32 argument for launch param 0 of type 'ptr' of kernels[0] 'test.axpb'",
    ),
    (
        "arg_pointer_for_scalar",
        _arg(1, 3, {"in": 0}),
        "steps[1]: args[3]: in argument for launch param 3 of type 'i64' of kernels[1]",
    ),
    (
        "arg_in_out_of_range",
        _arg(0, 1, {"in": 2}),
        "plan.json: steps[0]: args[1]: in 2 is out of range (the step has 2 inputs)",
    ),
    (
        "arg_out_out_of_range",
        _arg(2, 2, {"out": 1}),
        "plan.json: steps[2]: args[2]: out 1 is out of range (the step has 1 outputs)",
    ),
    (
        "arg_in_negative",
        _arg(0, 0, {"in": -1}),
        "steps[0]: args[0]: in -1 is out of range",
    ),
    (
        "arg_i32_overflow",
        _arg(0, 3, {"i32": 2**31}),
        "steps[0]: args[3]: i32 2147483648 is out of int32 range",
    ),
    (
        "arg_f32_overflow",
        _arg(2, 4, {"f32": 1e39}),
        "steps[2]: args[4]: f32 1e+39 is out of float32 range",
    ),
    (
        "arg_f32_string",
        _arg(2, 4, {"f32": "2.0"}),
        "steps[2]: args[4]: f32 must be a number, got a string",
    ),
    (
        "arg_unknown_kind",
        _arg(0, 4, {"f64": 2.0}),
        "steps[0]: args[4]: unknown argument kind 'f64' (in, out, i32, i64, f32, null, workspace)",
    ),
    (
        "arg_two_members",
        _arg(0, 0, {"in": 0, "out": 0}),
        'steps[0]: args[0] must be an object with one member, like {"in": 0}',
    ),
    (
        "arg_null_nonzero",
        _arg(0, 5, {"null": 1}),
        "steps[0]: args[5]: null must be 0",
    ),
    (
        "arg_workspace_without_workspace",
        _arg(0, 5, {"workspace": 0}),
        "steps[0]: args[5]: workspace argument but the step's workspace is 0 bytes",
    ),
    (
        "value_on_cpu",
        _plan_value(3, device="cpu"),
        "plan.json: values[3]: device 'cpu' in a module that targets cuda",
    ),
    (
        "value_unknown_device",
        _plan_value(3, device="tpu"),
        "plan.json: values[3]: unknown device 'tpu' (cpu, cuda)",
    ),
    (
        "arch_not_sm",
        _manifest(lambda m: m["cuda"].update(arch="compute_90")),
        "manifest.json: cuda: arch 'compute_90' is not a CUDA architecture like 'sm_90'",
    ),
    (
        "cuda_section_missing",
        _manifest(lambda m: m.pop("cuda")),
        "manifest.json: missing 'cuda'",
    ),
    (
        "targets_two",
        _manifest(lambda m: m.update(targets=["cpu", "cuda"])),
        "manifest.json: targets ['cpu', 'cuda'] must be exactly one of 'cpu', 'cuda'",
    ),
    (
        "targets_missing",
        _manifest(lambda m: m.pop("targets")),
        "manifest.json: missing 'targets'",
    ),
    (
        "cuda_in_format_1",
        _manifest(lambda m: m.update(format_version=1)),
        "manifest.json: target 'cuda' needs format_version 2 (this is 1)",
    ),
    (
        "format_version_4",
        _manifest(lambda m: m.update(format_version=4)),
        "invalid module: manifest.json: format_version 4 is newer than this runtime (3)",
    ),
    (
        "cpu_kernel_in_cuda_module",
        _kernel(1, kind="builtin", entry="test.add_f32"),
        "manifest.json: kernels[1]: kind 'builtin' runs on the CPU; every kernel of a cuda "
        "module is a 'cubin'",
    ),
]

# Damages of the standard (cpu, format 1) module that concern the cuda additions.
CPU_CUDA_CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "cubin_in_cpu_module",
        _cubin_in_cpu_module,
        "manifest.json: kernels[0]: kind 'cubin' needs a module that targets cuda "
        "(format_version 2)",
    ),
    (
        "cuda_target_in_format_1",
        _manifest(lambda m: m.update(targets=["cuda"])),
        "manifest.json: target 'cuda' needs format_version 2 (this is 1)",
    ),
]
