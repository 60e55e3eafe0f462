"""Turn a GPU's tactics cache into known-tactics table entries (the no-GPU default per shape).

A cuda module compiled with ``optimize ... --target cuda --tune`` carries alternative launches
per GEMM / convolution step; loading it with ``tune=True`` (``odc-run --tune``) on a GPU times
them and caches the winners in ``$ODC_CACHE_DIR/cuda_tactics.json``. Each cache entry records
the step's known-tactics key, the candidates' configuration names and times, the module's
architecture and the GPU. This script folds the entries whose winner is not the default launch
(and beats it by ``--min-speedup``) into the table a plan function consults when no GPU is
around (``kernels/triton/known_tactics_sm90.json`` for sm_90)::

    python tools/cuda_tactics_table.py ~/.cache/onnx-deploy-optimizer/cuda_tactics.json
    python tools/cuda_tactics_table.py CACHE --arch sm_90 --dry-run     # print, write nothing

Entries already in the table are replaced by newer measurements of the same key; ``--prune``
drops table entries whose key a measurement showed the default launch wins. The table is
written atomically (temporary file + rename).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TABLE_FORMAT = "odc-known-tactics"
TABLE_VERSION = 1


def table_path(arch: str) -> Path:
    return REPO / "kernels" / "triton" / f"known_tactics_{arch.replace('_', '')}.json"


def read_cache(path: Path) -> dict[str, Any]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"cuda_tactics_table: {path}: not a readable JSON file ({err})") from None
    if not isinstance(cache, dict) or cache.get("format") != "odc-cuda-tactics":
        raise SystemExit(
            f"cuda_tactics_table: {path}: not a tactics cache (format odc-cuda-tactics)"
        )
    entries = cache.get("entries")
    return entries if isinstance(entries, dict) else {}


def measurements(entries: dict[str, Any], arch: str) -> dict[str, tuple[str | None, float, str]]:
    """key -> (winning configuration or None when the default won, speedup, gpu); of several
    measurements of one key (several modules, several loads), the largest speedup is kept."""
    out: dict[str, tuple[str | None, float, str]] = {}
    for entry in entries.values():
        if not isinstance(entry, dict) or entry.get("arch") != arch or not entry.get("key"):
            continue
        names, seconds, chosen = entry.get("names"), entry.get("seconds"), entry.get("chosen")
        if not (isinstance(names, list) and isinstance(seconds, list) and isinstance(chosen, int)):
            continue
        if not 0 <= chosen < len(names) == len(seconds):
            continue
        base, best = seconds[0], seconds[chosen]
        if not isinstance(best, (int, float)) or best <= 0:
            continue
        speedup = base / best if isinstance(base, (int, float)) and base > 0 else float("inf")
        winner = names[chosen] if chosen != 0 and names[chosen] else None
        previous = out.get(entry["key"])
        if previous is None or speedup > previous[1]:
            out[entry["key"]] = (winner, speedup, str(entry.get("gpu", "")))
    return out


def merge(
    table: dict[str, Any], found: dict[str, tuple[str | None, float, str]], min_speedup: float,
    prune: bool,
) -> tuple[int, int]:  # fmt: skip
    """Adds / replaces entries in ``table['entries']``; returns (written, pruned)."""
    written = pruned = 0
    entries = table["entries"]
    for key, (winner, speedup, gpu) in sorted(found.items()):
        if winner is None:
            if prune and key in entries:
                del entries[key]
                pruned += 1
            continue
        if speedup < min_speedup:
            continue
        entries[key] = {"config": winner, "gpu": gpu, "speedup": round(speedup, 3)}
        written += 1
    return written, pruned


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cache", type=Path, help="a cuda_tactics.json from a tuning run on the GPU")
    p.add_argument("--arch", default="sm_90", help="architecture whose table to update (sm_90)")
    p.add_argument("--table", type=Path, help="table file (default: the shipped one for --arch)")
    p.add_argument("--min-speedup", type=float, default=1.03,
                   help="keep winners at least this much faster than the default (1.03)")  # fmt: skip
    p.add_argument("--prune", action="store_true",
                   help="drop table entries whose measured winner was the default launch")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the entries, write nothing")
    args = p.parse_args(argv)

    path = args.table or table_path(args.arch)
    table: dict[str, Any] = {"format": TABLE_FORMAT, "version": TABLE_VERSION,
                             "arch": args.arch, "entries": {}}  # fmt: skip
    if path.exists():
        try:
            table = json.loads(path.read_text())
        except ValueError as err:
            raise SystemExit(f"cuda_tactics_table: {path}: not valid JSON ({err})") from None
        if table.get("format") != TABLE_FORMAT or table.get("arch") != args.arch:
            raise SystemExit(
                f"cuda_tactics_table: {path}: not a {TABLE_FORMAT} table for {args.arch}"
            )
        table.setdefault("entries", {})
    found = measurements(read_cache(args.cache), args.arch)
    written, pruned = merge(table, found, args.min_speedup, args.prune)
    if args.dry_run:
        print(json.dumps(table["entries"], indent=2, sort_keys=True))
    else:
        write_atomic(path, table)
    print(f"{len(found)} measured keys for {args.arch}: {written} table entries written, "
          f"{pruned} pruned ({'dry run' if args.dry_run else path})", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
