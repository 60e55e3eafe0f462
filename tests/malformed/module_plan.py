"""Content damage of manifest.json and plan.json: field types, numbers, regions, ids, step order,
aliasing, signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.malformed.module_edits import (
    RAW,
    ModuleCase,
    edit_bytes,
    edit_json,
    get_at,
    leaf_paths,
    path_name,
    set_at,
    swaps,
    where_for,
)


def _repeat(doc: Any, path: tuple) -> bool:
    """A later element of a list of numbers (shape[2], inputs[1]): checked like element 0."""
    return isinstance(path[-1], int) and path[-1] > 0 and not isinstance(get_at(doc, path), dict)


def type_swaps(base: str, docs: dict[str, Any]) -> Iterator[ModuleCase]:
    for file, doc in docs.items():
        for path in leaf_paths(doc):
            if not path or _repeat(doc, path):
                continue
            if (
                file == "plan.json"
                and path[0] == "values"
                and len(path) > 1
                and path[1] not in (0, 1, 3)
            ):
                continue
            value = get_at(doc, path)
            for type_name, new in swaps(value):
                yield ModuleCase(
                    "type_swap",
                    f"{file}:{path_name(path)}={type_name}",
                    base,
                    edit_json(file, set_at(path, new)),
                    "any",
                    where=where_for(file, path, value),
                )


def _int_paths(doc: Any) -> Iterator[tuple]:
    for path in leaf_paths(doc, max_items=16):
        value = get_at(doc, path) if path else None
        if isinstance(value, int) and not isinstance(value, bool):
            yield path


NUMBERS = [
    ("-1", -1),
    ("min_int64", -(2**63)),
    ("max_int64", 2**63 - 1),
    ("2^64", 2**64),
    ("1e308", 1e308),
    ("nan", "NaN"),
    ("inf", "Infinity"),
    ("1e999", "1e999"),
    ("10^400", "1" + "0" * 400),
]


def numbers(base: str, docs: dict[str, Any]) -> Iterator[ModuleCase]:
    for file, doc in docs.items():
        for path in _int_paths(doc):
            is_param = "iparams" in path
            if not is_param and _repeat(doc, path):
                continue
            if is_param:  # the kernels' own checks: every parameter, a few values
                numbers = [
                    ("-1", -1),
                    ("0", 0),
                    ("2^31", 2**31),
                    ("2^62", 2**62),
                    ("min_int64", -(2**63)),
                ]
            elif path[0] == "values" and path[1] not in (0, 1, 3):
                continue
            else:
                numbers = (
                    NUMBERS
                    if path[-1] in ("offset", "arena_size", "format_version")
                    else NUMBERS[:5]
                )
            for label, number in numbers:
                if isinstance(number, str):
                    edit, raw = set_at(path, RAW), number
                else:
                    edit, raw = set_at(path, number), None
                yield ModuleCase(
                    "numbers",
                    f"{file}:{path_name(path)}={label}",
                    base,
                    edit_json(file, edit, raw),
                    "any",
                    where=where_for(file, path, get_at(doc, path), raw is not None),
                )


def values_of(plan: dict, storage: str) -> list[int]:
    return [i for i, v in enumerate(plan["values"]) if v["storage"] == storage]


def regions(base: str, plan: dict, weights_size: int) -> Iterator[ModuleCase]:
    arena = plan["arena_size"]
    for storage, region, size in (
        ("arena", "arena_size", arena),
        ("weights", "weights.bin size", weights_size),
    ):
        for i in values_of(plan, storage):
            v = plan["values"][i]
            at = f"invalid module: plan.json: values[{i}]: "
            n = v["nbytes"]
            for offset in sorted({size, (size - n) // 64 * 64 + 64, 2**62}):
                if offset + n <= size:
                    continue
                yield ModuleCase(
                    "regions",
                    f"values[{i}].offset={offset}",
                    base,
                    edit_json("plan.json", set_at(("values", i, "offset"), offset)),
                    expect=(at + f"offset {offset} + nbytes {n} exceeds {region} {size}",),
                )
            for nbytes in (n + 4, n - 4, 0, 2**40):
                yield ModuleCase(
                    "regions",
                    f"values[{i}].nbytes={nbytes}",
                    base,
                    edit_json("plan.json", set_at(("values", i, "nbytes"), nbytes)),
                    expect=(at + f"nbytes {nbytes} != {n}",),
                )
            yield ModuleCase(
                "regions",
                f"values[{i}].offset=-64",
                base,
                edit_json("plan.json", set_at(("values", i, "offset"), -64)),
                expect=(at + "offset -64 < 0",),
            )
            yield ModuleCase(
                "regions",
                f"values[{i}].offset+8",
                base,
                edit_json("plan.json", set_at(("values", i, "offset"), v["offset"] + 8)),
                expect=(at + f"offset {v['offset'] + 8} is not a multiple of alignment 64",),
            )
    top = max(
        plan["values"][i]["offset"] + plan["values"][i]["nbytes"] for i in values_of(plan, "arena")
    )
    for new in (0, 64, top - 1):
        yield ModuleCase(
            "regions",
            f"arena_size={new}",
            base,
            edit_json("plan.json", set_at(("arena_size",), new)),
            expect=("invalid module: plan.json: values[", f"exceeds arena_size {new}"),
        )
    yield ModuleCase(
        "regions",
        "arena_size=-1",
        base,
        edit_json("plan.json", set_at(("arena_size",), -1)),
        expect=("invalid module: plan.json: arena_size -1 < 0",),
    )
    for alignment in (0, 32, 96, 8192, -64):
        yield ModuleCase(
            "regions",
            f"alignment={alignment}",
            base,
            edit_json("plan.json", set_at(("alignment",), alignment)),
            expect=(f"plan.json: alignment {alignment} must be a power of two in [64, 4096]",),
        )
    yield ModuleCase(
        "regions",
        "workspace=2^62",
        base,
        edit_json("plan.json", set_at(("steps", 0, "workspace"), 2**62)),
        expect=("plan.json: steps[0]: workspace 4611686018427387904 is not a sane size",),
    )
    # Weights padded at the end (hash updated): nothing reads the tail, the module runs.
    yield ModuleCase(
        "regions",
        "weights.bin+64",
        base,
        edit_bytes("weights.bin", lambda b: b + b"\0" * 64, True),
        "runs",
    )


def ids(base: str, plan: dict, manifest: dict) -> Iterator[ModuleCase]:
    values, steps = plan["values"], plan["steps"]
    for i in range(1, len(values), 2):
        dup = values[i - 1]["id"]
        yield ModuleCase(
            "ids",
            f"values[{i}].id=dup",
            base,
            edit_json("plan.json", set_at(("values", i, "id"), dup)),
            expect=(f"invalid module: plan.json: values[{i}]: duplicate id {dup}",),
        )
    for i in range(len(values)):
        vid = values[i]["id"]
        users = [
            s for s, step in enumerate(steps) if vid in step["inputs"] or vid in step["outputs"]
        ]
        removed = lambda p, i=i: p["values"].pop(i)  # noqa: E731
        if users:
            yield ModuleCase(
                "ids",
                f"values[{i}]:removed",
                base,
                edit_json("plan.json", removed),
                expect=(f"plan.json: steps[{users[0]}]: ", f"value {vid} does not exist"),
            )
        yield ModuleCase(
            "ids",
            f"values[{i}].id=9999",
            base,
            edit_json("plan.json", set_at(("values", i, "id"), 9999)),
            "any",
            where=("plan.json: steps[", "manifest.json: inputs[", "manifest.json: outputs["),
        )
    for s in range(len(steps)):
        yield ModuleCase(
            "ids",
            f"steps[{s}].kernel=99",
            base,
            edit_json("plan.json", set_at(("steps", s, "kernel"), 99)),
            expect=(f"plan.json: steps[{s}]: kernel 99 is not in the kernel table",),
        )
        yield ModuleCase(
            "ids",
            f"steps[{s}].inputs[0]=77",
            base,
            edit_json("plan.json", set_at(("steps", s, "inputs", 0), 77)),
            expect=(f"plan.json: steps[{s}]: inputs[0]: value 77 does not exist",),
        )
        yield ModuleCase(
            "ids",
            f"steps[{s}].outputs[0]=77",
            base,
            edit_json("plan.json", set_at(("steps", s, "outputs", 0), 77)),
            expect=(f"plan.json: steps[{s}]: outputs[0]: value 77 does not exist",),
        )
        yield ModuleCase(
            "ids",
            f"steps[{s}].outputs=[]",
            base,
            edit_json("plan.json", set_at(("steps", s, "outputs"), [])),
            "any",
        )
    kernels = manifest["kernels"]
    for k in range(1, len(kernels)):
        yield ModuleCase(
            "ids",
            f"kernels[{k}].id=dup",
            base,
            edit_json("manifest.json", set_at(("kernels", k, "id"), kernels[0]["id"])),
            expect=(f"manifest.json: kernels[{k}]: duplicate id {kernels[0]['id']}",),
        )
        yield ModuleCase(
            "ids",
            f"kernels[{k}]:removed",
            base,
            edit_json("manifest.json", lambda m, k=k: m["kernels"].pop(k)),
            expect=(f"kernel {kernels[k]['id']} is not in the kernel table",),
        )
    # An unused extra kernel (registered builtin) and an unused extra value: harmless.
    yield ModuleCase(
        "ids",
        "extra_kernel",
        base,
        edit_json("manifest.json", lambda m: m["kernels"].append({**m["kernels"][0], "id": 42})),
        "runs",
    )
    yield ModuleCase(
        "ids",
        "extra_value",
        base,
        edit_json(
            "plan.json",
            lambda p: p["values"].append({**p["values"][values_of(p, "arena")[0]], "id": 4242}),
        ),
        "runs",
    )
    for key in ("inputs", "outputs"):
        entry = manifest[key][0]
        yield ModuleCase(
            "ids",
            f"{key}[0].value=9999",
            base,
            edit_json("manifest.json", set_at((key, 0, "value"), 9999)),
            expect=(f"manifest.json: {key}[0] '{entry['name']}': value 9999 is not in plan.json",),
        )
        yield ModuleCase(
            "ids",
            f"{key}:duplicated",
            base,
            edit_json("manifest.json", lambda m, key=key: m[key].append(dict(m[key][0]))),
            expect=(
                f"manifest.json: {key}[{len(manifest[key])}]: duplicate name '{entry['name']}'",
            ),
        )
        yield ModuleCase(
            "ids",
            f"{key}:emptied",
            base,
            edit_json("manifest.json", set_at((key,), [])),
            expect=(f"storage '{key[:-1]}' but no manifest {key} entry refers to it",),
        )
        other = manifest["outputs" if key == "inputs" else "inputs"][0]["value"]
        yield ModuleCase(
            "ids",
            f"{key}[0].value=other",
            base,
            edit_json("manifest.json", set_at((key, 0, "value"), other)),
            expect=(f"manifest.json: {key}[0] '{entry['name']}': value {other} has storage",),
        )


def order(base: str, plan: dict) -> Iterator[ModuleCase]:
    steps = plan["steps"]
    n = len(steps)
    yield ModuleCase(
        "order",
        "reversed",
        base,
        edit_json("plan.json", lambda p: p["steps"].reverse()),
        expect=("plan.json: steps[", "is read before any step writes it"),
    )
    for s in range(n - 1):

        def swap(p, s=s):
            p["steps"][s], p["steps"][s + 1] = p["steps"][s + 1], p["steps"][s]

        yield ModuleCase(
            "order",
            f"swap{s}-{s + 1}",
            base,
            edit_json("plan.json", swap),
            "any",
            where=("is read before any step writes it", "step "),
        )
    for s in range(n):
        yield ModuleCase(
            "order",
            f"drop{s}",
            base,
            edit_json("plan.json", lambda p, s=s: p["steps"].pop(s)),
            expect=("invalid module: plan.json: ",),
        )
    # Running a step twice rewrites the same values: harmless.
    yield ModuleCase(
        "order",
        "repeat_last",
        base,
        edit_json("plan.json", lambda p: p["steps"].append(dict(p["steps"][-1]))),
        "runs",
    )
    yield ModuleCase(
        "order",
        "no_steps",
        base,
        edit_json("plan.json", set_at(("steps",), [])),
        expect=("invalid module: plan.json: values[", "output is never written by any step"),
    )


def aliasing(base: str, plan: dict) -> Iterator[ModuleCase]:
    steps, values = plan["steps"], plan["values"]
    index = {v["id"]: i for i, v in enumerate(values)}
    for s, step in enumerate(steps):
        # A step that reads its own output (a one-step cycle): the output is read before written,
        # unless an earlier step wrote it; then the kernel sees X and Y in one buffer.
        out = step["outputs"][0]
        yield ModuleCase(
            "aliasing",
            f"steps[{s}].inputs[0]=own_output",
            base,
            edit_json("plan.json", set_at(("steps", s, "inputs", 0), out)),
            expect=(
                f"plan.json: steps[{s}]: inputs[0]: value {out} ",
                "is read before any step writes it",
            ),
        )
        if s + 1 < len(steps):
            nxt = steps[s + 1]["outputs"][0]
            yield ModuleCase(
                "aliasing",
                f"steps[{s}]<-steps[{s + 1}]",
                base,
                edit_json("plan.json", set_at(("steps", s, "inputs", 0), nxt)),
                expect=(
                    f"plan.json: steps[{s}]: inputs[0]: value {nxt} ",
                    "is read before any step writes it",
                ),
            )
        # Input and output of one step in overlapping arena bytes.
        x, y = step["inputs"][0], step["outputs"][0]
        if (
            x in index
            and y in index
            and values[index[x]]["storage"] == values[index[y]]["storage"] == "arena"
        ):
            vx = values[index[x]]
            yield ModuleCase(
                "aliasing",
                f"steps[{s}]:output_over_input",
                base,
                edit_json("plan.json", set_at(("values", index[y], "offset"), vx["offset"])),
                "loads",
                where=(f"step {s},",),
            )

    # Every arena value at offset 0: all of them alias; runs or a kernel names the overlap.
    def squash(p):
        for v in p["values"]:
            if v["storage"] == "arena":
                v["offset"] = 0

    yield ModuleCase(
        "aliasing",
        "all_arena_at_0",
        base,
        edit_json("plan.json", squash),
        "loads",
        where=("step ",),
    )


def signature(base: str, plan: dict, manifest: dict) -> Iterator[ModuleCase]:
    for key in ("inputs", "outputs"):
        entry = manifest[key][0]
        vid, name = entry["value"], entry["name"]
        at = f"manifest.json: {key}[0] '{name}': "
        vindex = next(i for i, v in enumerate(plan["values"]) if v["id"] == vid)
        shape = entry["shape"]
        for dtype in ("float16", "int64", "bool", "bfloat16", "float64"):
            yield ModuleCase(
                "signature",
                f"{key}[0].dtype={dtype}",
                base,
                edit_json("manifest.json", set_at((key, 0, "dtype"), dtype)),
                expect=(at + f"{dtype} ", f"!= plan.json value {vid}: float32"),
            )
        for dtype in ("float8", "FLOAT32", "", "float32\u0000"):
            yield ModuleCase(
                "signature",
                f"{key}[0].dtype={dtype!r}",
                base,
                edit_json("manifest.json", set_at((key, 0, "dtype"), dtype)),
                expect=(f"manifest.json: {key}[0]: unknown dtype",),
            )
        variants = {
            "bigger": [d + 1 for d in shape],
            "smaller": [max(d - 1, 1) for d in shape[:-1]] + [1],
            "rank+1": [1, *shape],
            "rank-1": shape[1:],
            "scalar": [],
        }
        for label, new in variants.items():
            yield ModuleCase(
                "signature",
                f"{key}[0].shape:{label}",
                base,
                edit_json("manifest.json", set_at((key, 0, "shape"), new)),
                expect=(at + f"float32 {new} != plan.json value {vid}",),
            )

            # The same change in both files: the signature agrees, the kernels must refuse.
            def both(d, key=key, new=new, vindex=vindex):
                edit_json("plan.json", set_at(("values", vindex, "shape"), new))(d)
                return edit_json("manifest.json", set_at((key, 0, "shape"), new))(d)

            yield ModuleCase(
                "signature",
                f"{key}[0].shape:{label}+plan",
                base,
                both,
                "run_error",
                expect=("failed: ",),
                where=("step ",),
            )

        def both_dtype(d, key=key, vindex=vindex):
            edit_json("plan.json", set_at(("values", vindex, "dtype"), "float64"))(d)
            return edit_json("manifest.json", set_at((key, 0, "dtype"), "float64"))(d)

        yield ModuleCase(
            "signature",
            f"{key}[0].dtype=float64+plan",
            base,
            both_dtype,
            "run_error",
            expect=("failed: ",),
        )
