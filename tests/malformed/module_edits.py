"""The damaged-module cases' type and the helpers that damage a module directory.

A damage is a function of the module directory (edited in place) returning the path to load.
JSON edits of plan.json are rehashed (the manifest's sha256 made to match), so the loader's
content checks, not the checksum, must catch them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTIONS = (
    "manifest.json",
    "plan.json",
    "weights.bin",
    "graph.onnx",
    "__init__.py",
    "kernels[",
    "kernels/",
    "step ",
    "cannot open module",
)


@dataclass(frozen=True)
class ModuleCase:
    category: str
    name: str
    base: str  # "cnn" | "eltwise" | "cnn_so"
    damage: Damage  # edits the module directory in place; returns the path to load
    outcome: str = "error"  # error | run_error | runs | loads | any
    expect: tuple[str, ...] = ()
    where: tuple[str, ...] = SECTIONS
    no_verify: bool = False

    @property
    def id(self) -> str:
        return f"{self.category}/{self.base}/{self.name}"


Damage = Callable[[Path], Path]


# -- editing helpers ----------------------------------------------------------------------------


def rehash(d: Path, extra: Sequence[str] = ()) -> None:
    """Makes the manifest's files table (size + sha256) match the files on disk."""
    manifest = json.loads((d / "manifest.json").read_text())
    files = manifest["files"]
    for name in [*files, *extra]:
        p = d / name
        if p.is_file():
            data = p.read_bytes()
            files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1))


RAW = "__raw_json_token__"


def edit_json(
    name: str, edit: Callable[[Any], Any], raw: str | None = None, replace: bool = False
) -> Damage:
    """Edits manifest.json or plan.json (``replace``: ``edit`` returns a new document); a value
    set to ``RAW`` is written as the raw token ``raw`` (NaN, 1e999, ...). Edits of plan.json
    are rehashed, so the loader's content checks are what must catch them."""

    def damage(d: Path) -> Path:
        doc = json.loads((d / name).read_text())
        result = edit(doc)
        text = json.dumps(result if replace else doc, indent=1)
        if raw is not None:
            text = text.replace(json.dumps(RAW), raw)
        (d / name).write_text(text)
        if name != "manifest.json":
            rehash(d)
        return d

    return damage


def edit_bytes(name: str, edit: Callable[[bytes], bytes], refresh: bool) -> Damage:
    """Rewrites a file's bytes; ``refresh``: then update the manifest's size and sha256."""

    def damage(d: Path) -> Path:
        (d / name).write_bytes(edit((d / name).read_bytes()))
        if refresh and name != "manifest.json":
            rehash(d)
        return d

    return damage


def get_at(doc: Any, path: Sequence[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(path: Sequence[Any], value: Any) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        get_at(doc, path[:-1])[path[-1]] = value

    return edit


def delete_at(path: Sequence[Any]) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        parent = get_at(doc, path[:-1])
        del parent[path[-1]]

    return edit


def path_name(path: Sequence[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def where_of(file: str, path: Sequence[Any]) -> tuple[str, ...]:
    """The location prefixes a message about ``path`` in ``file`` may start with."""
    if not path:
        return (file,)
    head = path[0]
    if head == "targets":
        return (f"{file}: targets",)
    if len(path) >= 2 and isinstance(path[1], int):
        element = f"{head}[{path[1]}]"
        if head == "steps":
            return (f"{file}: {element}", f"step {path[1]},")
        if head == "kernels":
            return (f"{file}: {element}", f"{element} ")
        return (f"{file}: {element}",)
    if file == "manifest.json" and head == "files" and len(path) >= 2:
        return (f"{file}: files: '{path[1]}'", f"{path[1]}: ")
    return (f"{file}: {head}", f"{file}: ")


def where_for(file: str, path: Sequence[Any], original: Any, raw: bool = False) -> tuple[str, ...]:
    """``where_of`` plus where an edited id is missed (by the steps or the signature that refer to
    it) and, for a raw token that is not JSON (NaN, 1e999), the parse error's place."""
    where = where_of(file, path)
    if path[-1] == "id" and path[0] == "kernels":
        where += (f"kernel {original} is not in the kernel table",)
    elif path[-1] == "id" and path[0] == "values":
        where += (f"value {original} does not exist", f"value {original} is not in plan.json")
    if raw:
        where += (f"{file}: not valid JSON",)
    return where


def swaps(value: Any) -> list[tuple[str, Any]]:
    """Values of every other JSON type for a field holding ``value``."""
    if isinstance(value, bool) or value is None:
        options = [("string", "x"), ("number", 1), ("list", []), ("object", {})]
        return options + ([("null", None)] if value is not None else [])
    if isinstance(value, int):
        return [
            ("string", str(value)),
            ("float", value + 0.5),
            ("null", None),
            ("list", [value]),
            ("object", {}),
            ("bool", True),
        ]
    if isinstance(value, float):
        return [("string", str(value)), ("null", None), ("list", [value]), ("object", {})]
    if isinstance(value, str):
        return [
            ("number", 1),
            ("null", None),
            ("list", [value]),
            ("object", {"v": value}),
            ("bool", False),
        ]
    if isinstance(value, list):
        return [("string", "x"), ("number", 3), ("null", None), ("object", {})]
    return [("string", "x"), ("number", 3), ("null", None), ("list", [])]


def leaf_paths(doc: Any, prefix: tuple = (), max_items: int = 3) -> Iterator[tuple]:
    """Every field path of a JSON document (the first ``max_items`` elements of long lists)."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaf_paths(value, (*prefix, key), max_items)
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:max_items]):
            yield from leaf_paths(value, (*prefix, i), max_items)
