"""Peak activation arena vs. the naive no-reuse layout, for every zoo model.

Each model: pin its inputs to the zoo's sample dims, optimize (O2, no numeric check),
partition, schedule, plan memory with both greedy strategies, check the plan independently,
and report::

    python tools/plan_report.py [--only NAME ...] [--big] [--markdown]

Columns: nodes and fusion groups, planned intermediate values (and how many are written in
place), the naive arena (every value its own 64-byte aligned block), the best-fit and
first-fit arenas, the live-bytes lower bound (no layout can use less), and the saving.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # executed as `python tools/plan_report.py`
    sys.path.insert(0, str(REPO_ROOT))

from optimizer import ir, lower  # noqa: E402
from optimizer.optimize import OptimizeOptions, optimize_model  # noqa: E402
from tools import zoo  # noqa: E402


def sample_shapes(entry: Mapping[str, Any]) -> dict[str, list[int]]:
    """The entry's inputs with symbolic dims set to its sample dims (as ``sample_inputs``)."""
    dims = {**zoo.DEFAULT_DIMS, **entry.get("sample_dims", {})}
    return {
        i["name"]: [dims.get(d, 1) if isinstance(d, str) else int(d) for d in i["shape"]]
        for i in entry["inputs"]
    }


def plan_model(path: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Optimizes and plans one model; raises InvariantError if a plan fails the checker."""
    model = ir.load(path)
    shapes = sample_shapes(entry)
    ir.pin_input_shapes(model, shapes)
    optimized, _ = optimize_model(model, OptimizeOptions(input_shapes=shapes, check=False))
    t0 = time.perf_counter()
    groups = lower.partition(optimized)
    steps = lower.schedule(optimized, groups)
    plans = {s: lower.plan_memory(steps, strategy=s) for s in ("best_fit", "first_fit")}
    seconds = time.perf_counter() - t0
    for plan in plans.values():
        lower.assert_plan_valid(plan)
    best = plans["best_fit"]
    return {
        "model": entry["name"],
        "shapes": shapes,
        "nodes": len(optimized.graph.nodes),
        "groups": len(groups),
        "fused": sum(len(g.nodes) for g in groups if len(g.nodes) > 1),
        "values": len(best.placements),
        "inplace": len(best.inplace),
        "naive": best.naive_size,
        "best_fit": best.arena_size,
        "first_fit": plans["first_fit"].arena_size,
        "lower_bound": best.live_peak,
        "plan_seconds": seconds,
        "patterns": lower.pattern_counts(groups),
    }


def zoo_rows(names: Sequence[str] | None = None, big: bool = False) -> list[dict[str, Any]]:
    root = zoo.zoo_dir()
    # (the default zoo's models only: a directory may hold more, e.g. a big model built into it)
    entries = [(root, e) for e in zoo.load_index(root) if e["name"] in zoo.MODELS]
    if big:
        from tools.time_big import default_cache_dir, ensure_model

        cache = default_cache_dir()
        ensure_model(cache)
        entries += [(cache, e) for e in zoo.load_index(cache)]
    rows = []
    for folder, entry in entries:
        if names and entry["name"] not in names:
            continue
        rows.append(plan_model(folder / entry["file"], entry))
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], markdown: bool = False) -> str:
    header = ["model", "nodes", "groups", "values", "in place", "naive KiB", "best-fit KiB"]
    header += ["first-fit KiB", "lower bound KiB", "saved"]
    lines = []
    for r in rows:
        saved = 1 - r["best_fit"] / r["naive"] if r["naive"] else 0.0
        lines.append(
            [r["model"], str(r["nodes"]), str(r["groups"]), str(r["values"]), str(r["inplace"])]
            + [f"{r[k] / 1024:.1f}" for k in ("naive", "best_fit", "first_fit", "lower_bound")]
            + [f"{saved:.0%}"]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt_row = "  ".join(
        f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)
    )
    return "\n".join([fmt_row.format(*header), *(fmt_row.format(*line) for line in lines)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="model names (default: the whole zoo)")
    parser.add_argument("--big", action="store_true", help="also plan resnet50_big")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    parser.add_argument("--patterns", action="store_true", help="list fusion patterns per model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = zoo_rows(args.only, args.big)
    print(format_table(rows, args.markdown))
    if args.patterns:
        for r in rows:
            print(f"\n{r['model']}: {r['patterns']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
