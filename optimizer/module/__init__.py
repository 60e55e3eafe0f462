"""Packaging: the compiled module directory (format version 1, docs/module-format.md)."""

from __future__ import annotations

from optimizer.module.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    FileEntry,
    InvalidModuleError,
    KernelEntry,
    Manifest,
    Plan,
    PlanStep,
    PlanValue,
    Producer,
    TensorSignature,
    module_problems,
    validate_module,
)
from optimizer.module.writer import KernelBinding, ModuleTables, build_tables, write_module

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FileEntry",
    "InvalidModuleError",
    "KernelBinding",
    "KernelEntry",
    "Manifest",
    "ModuleTables",
    "Plan",
    "PlanStep",
    "PlanValue",
    "Producer",
    "TensorSignature",
    "build_tables",
    "module_problems",
    "validate_module",
    "write_module",
]
