"""Damaged compiled modules, generated deterministically from real compiled modules, by category.

Three base modules (``build_bases``): ``cnn`` (Conv, Relu, MaxPool, Reshape, Gemm, Softmax:
native conv2d_packed / maxpool2d / copy / gemm / softmax kernels), ``eltwise`` (a fused
elementwise program, a binary Max, a Gather whose indices are in weights.bin, a Transpose), and
``cnn_so`` (the cnn module with its ``copy`` step served by a real shared-library kernel,
``kernels/2.so``, built from C with the system compiler).

Every ``ModuleCase`` damages a fresh copy of one base and says what must happen:

- ``error``: loading fails with one line that contains every string of ``expect`` (the file or
  section, and what is wrong); odc-run exits 2.
- ``run_error``: the module loads, the run fails with one line containing ``expect`` (a kernel
  rejects what it was given); odc-run exits 1.
- ``runs``: the damage is harmless (an unlisted extra file, a rewritten graph.onnx whose hash was
  updated): load and run succeed.
- ``loads``: loading must succeed; the run may succeed or fail with a one-line kernel error
  (a flipped weight byte with checksums off: new numbers, or a Gather index out of range).
- ``any``: random damage with an unpredictable effect: success, or an error whose one line names
  one of ``where`` (the file or section hit).

``all_module_cases()`` is the full list; ``MODULE_CATEGORIES`` names the categories.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.malformed import module_bytes, module_files, module_plan
from tests.malformed.module_edits import ModuleCase, rehash

REPO = Path(__file__).resolve().parents[2]

__all__ = ["MODULE_CATEGORIES", "ModuleCase", "all_module_cases", "build_bases"]


# -- base modules -------------------------------------------------------------------------------

_COPY_KERNEL_C = r"""
#include <stdio.h>
#include <string.h>
#include "odc/abi.h"

/* The flatten step of the cnn module as a shared-library kernel: Y = X (float32, same count). */
int32_t odc_kernel_copy(const odc_kernel_args* a, char* error, int64_t error_size) {
  if (a->num_inputs != 1 || a->num_outputs != 1) {
    snprintf(error, (size_t)error_size, "copy.so: expected 1 input and 1 output");
    return 1;
  }
  const odc_tensor* x = &a->inputs[0];
  const odc_tensor* y = &a->outputs[0];
  int64_t nx = 1, ny = 1;
  for (int i = 0; i < x->ndim; ++i) nx *= x->shape[i];
  for (int i = 0; i < y->ndim; ++i) ny *= y->shape[i];
  if (x->dtype != ODC_FLOAT32 || y->dtype != ODC_FLOAT32 || nx != ny || x->data == NULL) {
    snprintf(error, (size_t)error_size, "copy.so: X and Y must be float32 of one element count");
    return 1;
  }
  memmove(y->data, x->data, (size_t)nx * 4);
  return 0;
}
"""


def _cnn_model():
    from tests.malformed.models import _cnn

    return _cnn()


def _eltwise_model():
    import numpy as np
    from onnx import helper

    from tests.helpers import FLOAT, make_model

    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Mul", ["x", "c1"], ["a"], name="mul"),
        helper.make_node("Add", ["a", "c2"], ["b"], name="add"),
        helper.make_node("Sigmoid", ["b"], ["s"], name="sig"),
        helper.make_node("Mul", ["s", "x"], ["t"], name="gate"),
        helper.make_node("Gather", ["t", "idx"], ["g"], axis=1, name="gather"),
        helper.make_node("Transpose", ["g"], ["y"], perm=[0, 2, 1], name="tr"),
        helper.make_node("Max", ["x", "c2"], ["z"], name="max"),
    ]
    weights = {
        "c1": rng.standard_normal((1, 3, 4)).astype(np.float32),
        "c2": rng.standard_normal(4).astype(np.float32),
        "idx": np.array([2, 0, -1, 1], np.int64),
    }
    return make_model(
        nodes,
        [("x", FLOAT, [2, 3, 4])],
        [("y", FLOAT, [2, 4, 4]), ("z", FLOAT, [2, 3, 4])],
        weights,
    )


def compiler() -> str | None:
    """The C compiler for the shared-library kernel (None: the cnn_so cases are left out)."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def build_bases(root: Path) -> dict[str, Path]:
    """Compiles the base modules into ``root`` (``optimize m.onnx -o dir/``); returns name -> dir."""
    import onnx

    from optimizer.cli import main

    root.mkdir(parents=True, exist_ok=True)
    bases = {}
    for name, make in (("cnn", _cnn_model), ("eltwise", _eltwise_model)):
        src = root / f"{name}.onnx"
        onnx.save(make(), src)
        code = main([str(src), "-o", f"{root / name}/", "-q", "--trials", "1"])
        if code != 0:
            raise RuntimeError(f"compiling the {name} base module failed (exit {code})")
        bases[name] = root / name
    cc = compiler()
    if cc is not None:
        d = root / "cnn_so"
        shutil.copytree(bases["cnn"], d)
        (d / "kernels").mkdir()
        (root / "copy_kernel.c").write_text(_COPY_KERNEL_C)
        subprocess.run(
            [
                cc,
                "-shared",
                "-fPIC",
                "-O1",
                "-I",
                str(REPO / "csrc" / "include"),
                "-o",
                str(d / "kernels" / "2.so"),
                str(root / "copy_kernel.c"),
            ],
            check=True,
        )
        manifest = json.loads((d / "manifest.json").read_text())
        kernel = manifest["kernels"][2]
        assert kernel["entry"] == "copy", kernel
        kernel.update(kind="shared_library", file="kernels/2.so", entry="odc_kernel_copy")
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1))
        rehash(d, extra=["kernels/2.so"])
        bases["cnn_so"] = d
    return bases


# -- all cases ----------------------------------------------------------------------------------


def module_cases(base: str, base_dir: Path) -> list[ModuleCase]:
    """Every damage of one base module (read from its compiled directory)."""
    manifest = json.loads((base_dir / "manifest.json").read_text())
    plan = json.loads((base_dir / "plan.json").read_text())
    names = sorted(manifest["files"])
    sizes = {"manifest.json": (base_dir / "manifest.json").stat().st_size}
    sizes.update({n: manifest["files"][n]["size"] for n in names})
    seed = sum(map(ord, base))
    cases: list[ModuleCase] = []
    cases += module_bytes.truncations(base, base_dir, sizes, seed)
    byte_files = {
        n: s
        for n, s in sizes.items()
        if n in ("manifest.json", "plan.json", "weights.bin", "kernels/2.so")
    }
    cases += module_bytes.byte_damage(base, byte_files, seed, n=8 if base != "cnn_so" else 3)
    docs = {"manifest.json": manifest, "plan.json": plan}
    if base == "cnn_so":  # only what the shared-library kernel adds
        return (
            [c for c in cases if "kernels/2.so" in c.name]
            + list(module_files.files(base, names))
            + [c for c in module_files.symlinks(base, ["kernels/2.so"])]
        )
    cases += module_plan.type_swaps(base, docs)
    cases += module_plan.numbers(base, docs)
    cases += module_plan.regions(base, plan, manifest["files"]["weights.bin"]["size"])
    cases += module_plan.ids(base, plan, manifest)
    cases += module_plan.order(base, plan)
    cases += module_plan.aliasing(base, plan)
    cases += module_plan.signature(base, plan, manifest)
    cases += module_files.files(base, names)
    cases += module_files.symlinks(base, ["manifest.json", "plan.json", "weights.bin"])
    if base == "cnn":
        cases += module_files.format_damage(base)
        cases += module_files.layout(base)
    return cases


def all_module_cases(bases: dict[str, Path]) -> list[ModuleCase]:
    cases = [c for name, d in bases.items() for c in module_cases(name, d)]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:5]
    return cases


MODULE_CATEGORIES = (
    "truncated",
    "bytes",
    "type_swap",
    "numbers",
    "regions",
    "ids",
    "order",
    "aliasing",
    "signature",
    "files",
    "symlinks",
    "format",
    "layout",
)
