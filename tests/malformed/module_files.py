"""Damage of the module directory: missing / extra / replaced files, symlinks, FIFOs, the
format header, the directory itself."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tests.malformed.module_edits import (
    ModuleCase,
    delete_at,
    edit_bytes,
    edit_json,
    rehash,
    set_at,
)


def files(base: str, names: list[str]) -> Iterator[ModuleCase]:
    for name in names:

        def remove(d, name=name):
            (d / name).unlink()
            return d

        if name == "kernels/2.so":
            expect = ("invalid module: kernels[2]: missing file kernels/2.so",)
        else:
            expect = (f"invalid module: {name}: missing file",)
        yield ModuleCase("files", f"{name}:deleted", base, remove, expect=expect)

        def to_dir(d, name=name):
            (d / name).unlink()
            (d / name).mkdir()
            return d

        yield ModuleCase("files", f"{name}:directory", base, to_dir, expect=(f"{name}: ",))
    if "kernels/2.so" in names:
        yield ModuleCase(
            "files",
            "kernels:deleted",
            base,
            lambda d: (shutil.rmtree(d / "kernels"), d)[1],
            expect=("invalid module: kernels[2]: missing file kernels/2.so",),
        )
        yield ModuleCase(
            "files",
            "so_not_listed",
            base,
            edit_json("manifest.json", lambda m: m["files"].pop("kernels/2.so")),
            expect=("kernels[2]: file kernels/2.so is not listed in manifest.json files",),
        )
        for bad in ("../2.so", "/tmp/2.so", "kernels/../kernels/2.so", "", "kernels//2.so"):
            yield ModuleCase(
                "files",
                f"so_path={bad!r}",
                base,
                edit_json("manifest.json", set_at(("kernels", 2, "file"), bad)),
                expect=("manifest.json: kernels[2]: file ", "must be relative, inside the module"),
            )
        yield ModuleCase(
            "files",
            "so_entry_missing",
            base,
            edit_json("manifest.json", set_at(("kernels", 2, "entry"), "odc_kernel_nope")),
            expect=("kernels[2] 'native.copy': kernels/2.so has no symbol 'odc_kernel_nope'",),
        )
        yield ModuleCase(
            "files",
            "so_is_text",
            base,
            edit_bytes("kernels/2.so", lambda b: b"#!/bin/sh\necho hi\n", True),
            expect=("kernels[2] 'native.copy': cannot load kernels/2.so: ",),
        )
        yield ModuleCase(
            "files",
            "so_is_weights",
            base,
            lambda d: (shutil.copy(d / "weights.bin", d / "kernels/2.so"), rehash(d), d)[2],
            expect=("kernels[2] 'native.copy': cannot load kernels/2.so: ",),
        )
    yield ModuleCase(
        "files",
        "extra_unlisted_file",
        base,
        lambda d: ((d / "notes.txt").write_text("hello"), d)[1],
        "runs",
    )
    for bad, msg in (
        ("../escape", "path must be relative"),
        ("/etc/passwd", "path must be relative"),
        ("a/./b", "path must be relative"),
        ("manifest.json", "the manifest cannot list itself"),
    ):
        yield ModuleCase(
            "files",
            f"listed={bad!r}",
            base,
            edit_json(
                "manifest.json",
                lambda m, bad=bad: m["files"].update({bad: m["files"]["plan.json"]}),
            ),
            expect=(f"manifest.json: files: '{bad}': {msg}",),
        )
    yield ModuleCase(
        "files",
        "listed_missing",
        base,
        edit_json(
            "manifest.json",
            lambda m: m["files"].update({"extra.bin": {"size": 1, "sha256": "0" * 64}}),
        ),
        expect=("invalid module: extra.bin: missing file",),
    )
    yield ModuleCase(
        "files",
        "plan_unlisted",
        base,
        edit_json("manifest.json", lambda m: m["files"].pop("plan.json")),
        expect=("manifest.json: files: plan.json is not listed",),
    )
    yield ModuleCase(
        "files",
        "weights_unlisted",
        base,
        edit_json("manifest.json", lambda m: m["files"].pop("weights.bin")),
        expect=(
            "plan.json: values[",
            "storage 'weights' but weights.bin is not listed in the manifest",
        ),
    )


def symlinks(base: str, names: list[str]) -> Iterator[ModuleCase]:
    for name in names:

        def outside_copy(d, name=name):
            target = d.parent / ("outside_" + name.replace("/", "_"))
            shutil.copy(d / name, target)
            (d / name).unlink()
            (d / name).symlink_to(target)
            return d

        yield ModuleCase(
            "symlinks",
            f"{name}->outside_copy",
            base,
            outside_copy,
            expect=(f"invalid module: {name}: ", "outside the module"),
        )

        def to_device(d, name=name):
            (d / name).unlink()
            (d / name).symlink_to("/dev/zero")
            return d

        yield ModuleCase("symlinks", f"{name}->/dev/zero", base, to_device, expect=(f"{name}: ",))

        def dangling(d, name=name):
            (d / name).unlink()
            (d / name).symlink_to(d / "does-not-exist")
            return d

        yield ModuleCase(
            "symlinks", f"{name}->dangling", base, dangling, expect=(name, "missing file")
        )

        def loop(d, name=name):
            (d / name).unlink()
            (d / name).symlink_to(d / (name + ".loop"))
            (d / (name + ".loop")).symlink_to(d / name)
            return d

        yield ModuleCase("symlinks", f"{name}->loop", base, loop, expect=(name,))

        def fifo(d, name=name):
            (d / name).unlink()
            os.mkfifo(d / name)
            return d

        yield ModuleCase(
            "symlinks", f"{name}:fifo", base, fifo, expect=(f"{name}: ", "not a regular file")
        )

        def inside(d, name=name):
            (d / "store").mkdir(exist_ok=True)
            (d / name).rename(d / "store" / name.replace("/", "_"))
            (d / name).symlink_to(
                Path("store" if "/" not in name else "../store") / name.replace("/", "_")
            )
            return d

        yield ModuleCase("symlinks", f"{name}->inside", base, inside, "runs")
    yield ModuleCase(
        "symlinks",
        "module_dir_is_a_link",
        base,
        lambda d: (d.parent.joinpath("link").symlink_to(d.name), d.parent / "link")[1],
        "runs",
    )


def format_damage(base: str) -> Iterator[ModuleCase]:
    at = "invalid module: manifest.json: "
    for version, msg in (
        (0, "format_version 0 is not valid"),
        (-1, "format_version -1 is not valid"),
        (4, "format_version 4 is newer than this runtime (3)"),
        (999, "format_version 999 is newer than this runtime (3)"),
        (2**63 - 1, "is newer than this runtime (3)"),
        (-(2**63), "is not valid"),
        (2**64, "format_version must be an integer, got a float"),
        ("1", "format_version must be an integer, got a string"),
        (1.0, "format_version must be an integer, got a float"),
        (True, "format_version must be an integer, got a boolean"),
        (None, "format_version must be an integer, got null"),
        ([1], "format_version must be an integer, got an array"),
    ):
        yield ModuleCase(
            "format",
            f"format_version={version!r}",
            base,
            edit_json("manifest.json", set_at(("format_version",), version)),
            expect=(at, msg),
        )
    yield ModuleCase(
        "format",
        "format_version:missing",
        base,
        edit_json("manifest.json", delete_at(("format_version",))),
        expect=(at + "missing 'format_version'",),
    )
    for fmt, msg in (
        ("onnx-other", "format 'onnx-other' is not"),
        (1, "format a number is not"),
        ("", "format '' is not"),
        ("ONNX-DEPLOY-MODULE", "is not 'onnx-deploy-module'"),
    ):
        yield ModuleCase(
            "format",
            f"format={fmt!r}",
            base,
            edit_json("manifest.json", set_at(("format",), fmt)),
            expect=(at, msg),
        )
    for fmt in (None, "missing"):
        edit = delete_at(("format",)) if fmt == "missing" else set_at(("format",), None)
        yield ModuleCase(
            "format",
            f"format={fmt}",
            base,
            edit_json("manifest.json", edit),
            expect=(at + "missing 'format' (not a compiled module?)",),
        )
    for doc, kind in (([], "an array"), ("module", "a string"), (3, "a number"), (None, "null")):
        yield ModuleCase(
            "format",
            f"manifest={kind}",
            base,
            edit_json("manifest.json", lambda m, doc=doc: doc, replace=True),
            expect=(at + f"expected an object, got {kind}",),
        )
        yield ModuleCase(
            "format",
            f"plan={kind}",
            base,
            edit_json("plan.json", lambda p, doc=doc: doc, replace=True),
            expect=(f"invalid module: plan.json: expected an object, got {kind}",),
        )
    for label, text in (
        ("utf16", '{"format": 1}'.encode("utf-16")),
        ("bom", b"\xef\xbb\xbf{}"),
        ("nul", b"\x00" * 64),
        ("deep", b"[" * 5000 + b"]" * 5000),
        ("huge_string", b'{"format": "' + b"a" * 5_000_000 + b'"}'),
    ):
        yield ModuleCase(
            "format",
            f"manifest:{label}",
            base,
            edit_bytes("manifest.json", lambda b, text=text: text, False),
            expect=(at,),
        )


def layout(base: str) -> Iterator[ModuleCase]:
    def empty(d):
        shutil.rmtree(d)
        d.mkdir()
        return d

    yield ModuleCase(
        "layout",
        "empty_directory",
        base,
        empty,
        expect=("invalid module: manifest.json: missing file",),
    )

    def a_file(d):
        shutil.rmtree(d)
        d.write_bytes(b"not a module")
        return d

    yield ModuleCase(
        "layout",
        "file_instead_of_directory",
        base,
        a_file,
        expect=("cannot open module ", ": not a directory"),
    )

    def manifest_path(d):
        return d / "manifest.json"

    yield ModuleCase(
        "layout",
        "path_is_the_manifest",
        base,
        manifest_path,
        expect=("cannot open module ", ": not a directory"),
    )

    def gone(d):
        shutil.rmtree(d)
        return d

    yield ModuleCase(
        "layout",
        "nonexistent",
        base,
        gone,
        expect=("cannot open module ", "No such file or directory"),
    )

    def only_manifest(d):
        for p in d.iterdir():
            if p.name != "manifest.json":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        return d

    yield ModuleCase(
        "layout",
        "only_manifest",
        base,
        only_manifest,
        expect=("invalid module: ", ": missing file"),
    )
