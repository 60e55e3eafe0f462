"""The on-disk caches shared by the compilers: where they live and the cubin cache entries.

``cache_root()`` is ``$ODC_CACHE_DIR``, default ``~/.cache/onnx-deploy-optimizer``: CPU tactics
(``tactics.json``), cubins (``cubins/``) and the GPU runtime's ``cuda_tactics.json`` live there.

A cubin cache entry is ``<key>.cubin`` plus ``<key>.json`` (the compiler's metadata record, with
a ``version``), each written atomically, the cubin first, so a record only ever sits next to a
complete cubin. Triton's AOT compiler (``kernels/triton/aot.py``) and the NVRTC compiler
(``kernels/cuda/nvrtc.py``) share them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def cache_root() -> Path:
    """``$ODC_CACHE_DIR`` (default ``~/.cache/onnx-deploy-optimizer``)."""
    base = os.environ.get("ODC_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "onnx-deploy-optimizer"


def load_cubin(
    root: Path, key: str, name: str, version: int, build: Callable[[dict[str, Any], Path], T]
) -> T | None:
    """``build(record, cubin path)`` of a complete entry of this ``version``, else None; a damaged
    entry (unreadable record, not an ELF cubin, ``build`` failing on its record) is logged and
    reads as a miss, so the caller recompiles."""
    meta_path, path = root / f"{key}.json", root / f"{key}.cubin"
    try:
        record = json.loads(meta_path.read_text())
        if record.get("version") != version or not path.is_file():
            return None
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None
        return build(record, path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("cubin cache entry %s for %s is unreadable (%s): recompiling", key, name, err)
        return None


def store_cubin(
    root: Path, key: str, data: bytes, record: dict[str, Any], use_cache: bool = True
) -> Path:
    """Writes the entry and returns the cubin's path; without ``use_cache``, or when the cache
    cannot be written (logged), the cubin goes to a fresh temporary directory instead."""
    if use_cache:
        try:
            root.mkdir(parents=True, exist_ok=True)
            for suffix, blob in ((".cubin", data), (".json", json.dumps(record).encode())):
                _write_atomic(root, f"{key}{suffix}", blob)
            return root / f"{key}.cubin"
        except OSError as err:
            log.warning("cubin cache %s not written: %s", root, err)
    path = Path(tempfile.mkdtemp(prefix="odc-cubin-")) / f"{key}.cubin"
    path.write_bytes(data)
    return path


def _write_atomic(root: Path, name: str, blob: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, root / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
