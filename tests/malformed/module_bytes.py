"""Byte damage: truncations at many offsets and random flips / insertions, per module file.

Every damaged file is tried as it is (the manifest's size or sha256 must catch it) and, where
the runtime reads the content, with the manifest updated to match (hostile content: the loader's
own checks must catch it). Not tried: a kernel .so whose machine code is flipped and whose hash
is updated, or checked with --no-verify: the runtime runs that code and must trust it (a
truncated one is caught: its ELF segments are checked against the file size before dlopen).
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.malformed.module_edits import (
    ModuleCase,
    edit_bytes,
)


def _elf_end(data: bytes) -> int:
    """Where the last segment of a 64-bit little-endian ELF file ends (what dlopen maps)."""
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", data, 32)[0],
        *struct.unpack_from("<HH", data, 54),
    )
    end = 0
    for i in range(phnum):
        offset, filesz = (
            struct.unpack_from("<Q", data, phoff + i * phentsize + 8)[0],
            struct.unpack_from("<Q", data, phoff + i * phentsize + 32)[0],
        )
        end = max(end, offset + filesz if filesz else 0)
    return end


def _needed(d: Path, name: str) -> int:
    """How many leading bytes of a file the runtime needs (the rest is harmless to cut)."""
    data = (d / name).read_bytes()
    if name.endswith(".json"):
        return len(data.rstrip())
    if name == "weights.bin":
        plan = json.loads((d / "plan.json").read_text())
        return max(v["offset"] + v["nbytes"] for v in plan["values"] if v["storage"] == "weights")
    if name.endswith(".so"):
        return _elf_end(data)
    return 0  # graph.onnx, __init__.py: not read by the runtime


def truncations(
    base: str, base_dir: Path, files: dict[str, int], seed: int
) -> Iterator[ModuleCase]:
    rng = random.Random(seed)
    for name, size in files.items():
        needed = _needed(base_dir, name)
        offsets = sorted({0, 1, size // 7, size // 3, size // 2, size - 1, rng.randrange(1, size)})
        for keep in offsets:
            cut = lambda data, keep=keep: data[:keep]  # noqa: E731
            if name == "manifest.json":
                if keep >= needed:
                    yield ModuleCase(
                        "truncated", f"{name}@{keep}", base, edit_bytes(name, cut, False), "runs"
                    )
                else:
                    yield ModuleCase(
                        "truncated",
                        f"{name}@{keep}",
                        base,
                        edit_bytes(name, cut, False),
                        expect=("invalid module: manifest.json: ",),
                    )
                continue
            yield ModuleCase(
                "truncated",
                f"{name}@{keep}",
                base,
                edit_bytes(name, cut, False),
                expect=(f"invalid module: {name}: size {keep} != {size} in manifest",),
            )
            # Rehashed: the manifest agrees with the short file, the content checks must catch it.
            rehashed = edit_bytes(name, cut, True)
            label = f"{name}@{keep}+rehash"
            if keep >= needed:  # only padding, whitespace or unread bytes were cut
                yield ModuleCase("truncated", label, base, rehashed, "runs")
            elif name == "plan.json":
                yield ModuleCase(
                    "truncated", label, base, rehashed, expect=("invalid module: plan.json: ",)
                )
            elif name == "weights.bin":
                yield ModuleCase(
                    "truncated",
                    label,
                    base,
                    rehashed,
                    expect=(
                        "invalid module: plan.json: values[",
                        f"exceeds weights.bin size {keep}",
                    ),
                )
            else:  # kernels/2.so
                yield ModuleCase(
                    "truncated",
                    label,
                    base,
                    rehashed,
                    expect=("kernels[2] 'native.copy': cannot load kernels/2.so: ",),
                )


def _flip(data: bytes, rng: random.Random, count: int, alphabet: bytes | None) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        pos = rng.randrange(len(out))
        if alphabet is None:
            out[pos] ^= 1 << rng.randrange(8)
        else:
            out[pos] = rng.choice([c for c in alphabet if c != out[pos]])
    return bytes(out)


def _insert(data: bytes, rng: random.Random, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        pos = rng.randrange(len(out) + 1)
        out[pos:pos] = bytes([rng.randrange(256)]) * rng.randint(1, 4)
    return bytes(out)


JSON_NOISE = b'0123456789-.eE+[]{}",:tfn\x00\xff\\ '


def _flipper(seed: float, count: int, alphabet: bytes | None) -> Callable[[bytes], bytes]:
    return lambda data: _flip(data, random.Random(seed), count, alphabet)


def _inserter(seed: float, count: int) -> Callable[[bytes], bytes]:
    return lambda data: _insert(data, random.Random(seed), count)


def byte_damage(base: str, files: dict[str, int], seed: int, n: int) -> Iterator[ModuleCase]:
    for name in files:
        is_json = name.endswith(".json")
        for k in range(n):
            rng = random.Random(f"{seed}:{name}:{k}")
            count = rng.randint(1, 4)
            alphabet = JSON_NOISE if is_json and k % 2 == 0 else None
            flip = _flipper(rng.random(), count, alphabet)
            ins = _inserter(rng.random(), count)
            if name == "manifest.json":
                yield ModuleCase(
                    "bytes", f"{name}:flip{k}", base, edit_bytes(name, flip, False), "any"
                )
                yield ModuleCase(
                    "bytes", f"{name}:insert{k}", base, edit_bytes(name, ins, False), "any"
                )
                continue
            # The manifest's checksums catch every damage of another file ...
            yield ModuleCase(
                "bytes",
                f"{name}:flip{k}",
                base,
                edit_bytes(name, flip, False),
                expect=(f"invalid module: {name}: sha256 differs from the manifest",),
            )
            if k < 2:
                yield ModuleCase(
                    "bytes",
                    f"{name}:insert{k}",
                    base,
                    edit_bytes(name, ins, False),
                    expect=(f"invalid module: {name}: size ", " in manifest"),
                )
            # ... and with the hashes updated (plan.json) or not checked (weights.bin,
            # --no-verify), the content checks must: hostile JSON, new weight values.
            if name == "plan.json":
                yield ModuleCase(
                    "bytes", f"{name}:flip{k}+rehash", base, edit_bytes(name, flip, True), "any"
                )
                yield ModuleCase(
                    "bytes", f"{name}:insert{k}+rehash", base, edit_bytes(name, ins, True), "any"
                )
            elif name == "weights.bin":
                yield ModuleCase(
                    "bytes",
                    f"{name}:flip{k}-no-verify",
                    base,
                    edit_bytes(name, flip, False),
                    "loads",
                    where=("step ",),
                    no_verify=True,
                )
                if k < 3:
                    yield ModuleCase(
                        "bytes",
                        f"{name}:flip{k}+rehash",
                        base,
                        edit_bytes(name, flip, True),
                        "loads",
                        where=("step ",),
                    )
