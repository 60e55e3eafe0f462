"""Writing a multi-target module (format version 3, docs/module-format.md).

``optimize m.onnx -o dir/ --target cpu,cuda`` ships one directory: a complete module per target
in a sub-directory named after the target (``cpu/`` is a version-1 module, ``cuda/`` a
version-2 one, each exactly what ``--target cpu`` / ``--target cuda`` writes) and a top-level
``manifest.json`` index naming the targets, the shared signature and every top-level file with
its size and SHA-256 (each target's ``manifest.json`` among them, which in turn checksums that
target's files). The runtime validates every target, then picks one at load.

``write_multi_target`` builds the whole directory in a temporary sibling and renames it into
place: an error in any target (an ``UnsupportedOpError`` in the cuda part, say) leaves nothing
behind and an existing module untouched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optimizer.errors import InvariantError, UsageError
from optimizer.module import format as fmt
from optimizer.module.atomic_dir import atomic_directory
from optimizer.module.init_template import INIT_SOURCE
from optimizer.module.writer import _file_entry, _is_module_dir, _producer_version

log = logging.getLogger(__name__)

#: The index's format version: a reader of versions 1-2 must refuse it ("newer than this
#: runtime"), since it has no plan of its own.
FORMAT_VERSION_MULTI = 3
#: Target names a multi-target module may carry (each its sub-directory's name).
KNOWN_TARGETS = ("cpu", "cuda")


def write_multi_target(
    out_dir: str | os.PathLike[str],
    targets: Sequence[str],
    build: Callable[[str, Path], Any],
    build_order: Sequence[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Writes the multi-target module ``out_dir`` atomically.

    Args:
        out_dir: The module directory; an existing module there is replaced, any other
            non-empty directory is refused.
        targets: The targets, in the order the index lists them (``["cpu", "cuda"]``).
        build: ``build(target, directory)`` writes the complete single-target module of
            ``target`` into ``directory`` (which does not exist yet) and returns anything
            (collected into the result).
        build_order: The order targets are built in (default ``targets``): the one most
            likely to fail first, so errors come early.

    Returns:
        The module directory and ``{target: what build returned}``.

    Raises:
        UsageError: unknown or repeated targets; ``out_dir`` is a file or a non-module
            directory. Whatever ``build`` raises, with nothing written.
    """
    targets = list(targets)
    check_targets(targets)
    order = list(build_order) if build_order is not None else targets
    if sorted(order) != sorted(targets):
        raise UsageError(f"write_multi_target: build order {order} != targets {targets}")
    out = Path(out_dir)
    results: dict[str, Any] = {}
    with atomic_directory(out, replaceable=_is_module_dir) as tmp:
        for target in order:
            results[target] = build(target, tmp / target)
        manifests = {t: json.loads((tmp / t / fmt.MANIFEST_FILE).read_bytes()) for t in targets}
        for target, manifest in manifests.items():
            if manifest.get("targets", ["cpu"]) != [target]:
                raise InvariantError(f"the {target} part was built as a module for "
                                     f"{manifest.get('targets')}")  # fmt: skip
        inputs, outputs = _shared_signature(manifests)
        files = {fmt.INIT_FILE: _write(tmp / fmt.INIT_FILE, INIT_SOURCE.encode())}
        for target in targets:
            files[f"{target}/{fmt.MANIFEST_FILE}"] = _file_entry(tmp / target / fmt.MANIFEST_FILE)
        first = manifests[targets[0]]
        index = {
            "format": fmt.FORMAT_NAME,
            "format_version": FORMAT_VERSION_MULTI,
            "producer": {"name": fmt.PRODUCER_NAME, "version": _producer_version()},
            "source_model_sha256": first.get("source_model_sha256"),
            "targets": targets,
            "inputs": inputs,
            "outputs": outputs,
            "files": {
                name: {"size": e.size, "sha256": e.sha256} for name, e in sorted(files.items())
            },
        }
        _write(tmp / fmt.MANIFEST_FILE, (json.dumps(index, indent=2) + "\n").encode())
    log.info("wrote multi-target module %s: %s", out, ", ".join(targets))
    return out, results


def check_targets(targets: Sequence[str]) -> None:
    """Raises UsageError (one line) on an empty list, an unknown or a repeated target."""
    if not targets:
        raise UsageError("--target: no target given (use cpu, cuda or cpu,cuda)")
    seen: set[str] = set()
    for name in targets:
        if name not in KNOWN_TARGETS:
            which = f" '{name}'" if len(targets) > 1 else ""
            raise UsageError(
                f"--target {','.join(targets)}: unknown target{which} "
                f"(use {' or '.join(KNOWN_TARGETS)}), or both: --target cpu,cuda"
            )
        if name in seen:
            raise UsageError(f"--target {','.join(targets)}: target '{name}' is given twice")
        seen.add(name)


def _shared_signature(manifests: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """The inputs and outputs (name, dtype, shape) every target agrees on."""
    sigs = {}
    for target, manifest in manifests.items():
        sigs[target] = tuple(
            [
                {"name": t["name"], "dtype": t["dtype"], "shape": list(t["shape"])}
                for t in manifest[k]
            ]
            for k in ("inputs", "outputs")
        )
    first, *rest = sigs
    for other in rest:
        if sigs[other] != sigs[first]:
            raise InvariantError(
                f"targets {first} and {other} compiled to different signatures: "
                f"{sigs[first]} != {sigs[other]}"
            )
    return sigs[first]


def _write(path: Path, data: bytes) -> fmt.FileEntry:
    path.write_bytes(data)
    return _file_entry(path)
