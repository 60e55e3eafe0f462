"""Strict JSON reading and readable JSON writing for the module's manifest.json and plan.json."""

from __future__ import annotations

import json
from typing import Any

from optimizer.errors import InvalidModuleError

__all__ = ["InvalidModuleError", "Reader", "dumps", "format_json", "loads"]


class Reader:
    """Strict field access with errors naming file, section and key."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, message: str) -> None:
        raise InvalidModuleError(f"invalid module: {self.where}: {message}")

    def typed(self, value: Any, kind: type | tuple[type, ...], at: str) -> Any:
        # bool is an int to Python, never to the format
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(f"{at}: expected {names}, got {type(value).__name__}")
        return value

    def obj(self, value: Any, at: str) -> dict[str, Any]:
        return self.typed(value, dict, at or "top level")

    def get(
        self, d: dict[str, Any], key: str, kind: type, at: str = "", optional: bool = False
    ) -> Any:
        prefix = f"{at}: " if at else ""
        if key not in d or (optional and d[key] is None):
            if optional:
                return None
            self.fail(f"{prefix}missing key '{key}'")
        return self.typed(d[key], kind, f"{prefix}{key}")

    def ints(self, values: list[Any], at: str) -> list[int]:
        return [self.typed(v, int, f"{at}[{i}]") for i, v in enumerate(values)]


def dumps(d: dict[str, Any]) -> str:
    """Readable and diffable: sections expanded, each value / step / kernel on one line."""
    return format_json(d, 0) + "\n"


def format_json(obj: Any, depth: int) -> str:
    if depth >= 2 or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj, allow_nan=False, separators=(", ", ": "))
    pad = " " * (depth + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k)}: {format_json(v, depth + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    items = [pad + format_json(v, depth + 1) for v in obj]
    return "[\n" + ",\n".join(items) + "\n" + " " * depth + "]"


def loads(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidModuleError(f"invalid module: {where}: not valid JSON ({exc})") from None
