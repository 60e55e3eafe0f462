"""The best launch configuration known per step shape: what plan functions use without a GPU.

A GPU times a module's tactic candidates at load (``load(..., tune=True)``, docs/module-format.md,
"tactics") and caches the winners per plan and GPU. ``tools/cuda_tactics_table.py`` turns such a
cache into entries of a table shipped with the package, one file per architecture
(``known_tactics_sm90.json`` next to this file)::

    {"format": "odc-known-tactics", "version": 1, "arch": "sm_90",
     "entries": {"<tactic key>": {"config": "m64n128k32g8w4s3", "gpu": "NVIDIA H100 ...",
                                  "speedup": 1.31}}}

A plan function computes the step's :func:`tactic_key` (native entry, dtype, shapes, iparams)
and, when no configuration is forced, takes the table's ``config`` (parsed by the kernel file)
instead of its shape rule's pick. The architecture whose table applies is set by the lowering
around planning (:func:`target_arch`); the default is sm_90. A missing, unreadable or
malformed table reads as empty (logged): it can only change tilings, never results.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optimizer.kernels.triton.launch import TensorDesc

log = logging.getLogger(__name__)

TABLE_FORMAT = "odc-known-tactics"
TABLE_VERSION = 1
#: Where the shipped tables live (one per architecture).
TABLE_DIR = Path(__file__).resolve().parent

_ARCH: contextvars.ContextVar[str] = contextvars.ContextVar("odc_triton_arch", default="sm_90")
_TABLES: dict[Path, tuple[float, dict[str, Any]]] = {}


def table_path(arch: str) -> Path:
    """``known_tactics_sm90.json`` for ``sm_90``."""
    return TABLE_DIR / f"known_tactics_{arch.replace('_', '')}.json"


@contextlib.contextmanager
def target_arch(arch: str) -> Iterator[None]:
    """Plans made inside consult ``arch``'s table."""
    token = _ARCH.set(arch)
    try:
        yield
    finally:
        _ARCH.reset(token)


def current_arch() -> str:
    return _ARCH.get()


def tactic_key(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
) -> str:
    """A step's identity for the table: ``gemm_f32 float16 [1x128x768,768x768,768,-]
    [1x128x768] [0,0,0,0]`` (omitted inputs are ``-``; fparams do not change tilings)."""

    def shape(t: TensorDesc | None) -> str:
        return "-" if t is None else "x".join(map(str, t.shape)) or "scalar"

    dtype = next((t.dtype for t in (*outputs, *inputs) if t is not None), "?")
    ins = ",".join(shape(t) for t in inputs)
    outs = ",".join(shape(t) for t in outputs)
    return f"{entry} {dtype} [{ins}] [{outs}] [{','.join(str(int(v)) for v in iparams)}]"


def check_table(table: Any, where: str) -> list[str]:
    """Every problem of a table's structure (empty: valid)."""
    if not isinstance(table, dict):
        return [f"{where}: not a JSON object"]
    p = []
    if table.get("format") != TABLE_FORMAT or table.get("version") != TABLE_VERSION:
        p.append(f"{where}: format/version is not {TABLE_FORMAT!r} {TABLE_VERSION}")
    if not isinstance(table.get("arch"), str):
        p.append(f"{where}: arch must be a string")
    entries = table.get("entries")
    if not isinstance(entries, dict):
        return [*p, f"{where}: entries must be an object"]
    for key, value in entries.items():
        if not isinstance(value, dict) or not isinstance(value.get("config"), str):
            p.append(f"{where}: entries[{key!r}]: needs a string 'config'")
    return p


def load_table(arch: str) -> dict[str, Any]:
    """``arch``'s entries (``{key: {"config": ...}}``), empty when there is no valid table."""
    path = table_path(arch)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    cached = _TABLES.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    entries: dict[str, Any] = {}
    try:
        table = json.loads(path.read_text())
        problems = check_table(table, path.name)
        if problems:
            log.warning("known tactics table ignored: %s", problems[0])
        elif table["arch"] != arch:
            log.warning("known tactics table %s is for %s, not %s: ignored", path.name,
                        table["arch"], arch)  # fmt: skip
        else:
            entries = table["entries"]
    except (OSError, ValueError) as err:
        log.warning("known tactics table %s unreadable (%s): ignored", path, err)
    _TABLES[path] = (mtime, entries)
    return entries


def known_config(
    entry: str,
    inputs: Sequence[TensorDesc | None],
    outputs: Sequence[TensorDesc],
    iparams: Sequence[int],
) -> str | None:
    """The table's configuration name for this step on the current architecture, or None."""
    hit = load_table(current_arch()).get(tactic_key(entry, inputs, outputs, iparams))
    return None if hit is None else str(hit["config"])
