"""The kernel registry: which kernels exist, what each one can run, and why it refuses the rest.

A backend registers its kernels explicitly at import time (``register(KernelSpec(...))``). Lowering
asks ``select(node, target)`` for a node described as a plain :class:`NodeInfo` (no IR types, so
kernels never depend on onnx or onnx-graphsurgeon) and gets back the kernels that can run it plus,
for every other candidate, the reason it cannot. When nothing qualifies,
``Selection.require()`` raises :class:`UnsupportedOpError` listing op, node, target and each
candidate's reason, with a hint.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizer.errors import UnsupportedModelError

log = logging.getLogger(__name__)

#: A kernel's compute function: ``(inputs, attrs, opset) -> outputs``; omitted optional inputs
#: are ``None``.
KernelFn = Callable[[list[Any], dict[str, Any], int], list[np.ndarray]]

#: ``KernelSpec.targets`` entry meaning "runs wherever the host runs" (reference kernels).
ANY_TARGET = "*"

#: The reference backend: always present, so an import error there is a bug and propagates.
_REFERENCE_PACKAGE = "optimizer.kernels.reference"
#: Optional backend packages imported on first use of the registry (absent dependency: skipped).
_BACKEND_PACKAGES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Support:
    """Answer of a capability check: ``ok``, or not with the ``reason`` why."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Support:
        """A positive answer."""
        return cls(True)

    @classmethod
    def no(cls, reason: str) -> Support:
        """A rejection; ``reason`` says what is not supported, in a few words."""
        if not reason:
            raise ValueError("a rejection needs a reason")
        return cls(False, reason)

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class NodeInfo:
    """An IR-independent description of one node, as capability checks see it.

    Shapes are tuples of ints (``None`` or a string for an unknown dimension), or ``None`` when
    the whole shape is unknown; dtypes are NumPy dtype names (``"float32"``) or ``None``.
    ``constant_inputs`` maps input positions to their value when the input is a constant.
    Omitted optional inputs have shape and dtype ``None``.
    """

    op: str
    domain: str = ""
    opset: int = 17
    name: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    input_shapes: Sequence[tuple | None] = ()
    input_dtypes: Sequence[str | None] = ()
    output_shapes: Sequence[tuple | None] = ()
    output_dtypes: Sequence[str | None] = ()
    constant_inputs: dict[int, np.ndarray] = field(default_factory=dict)

    def rank(self, index: int = 0) -> int | None:
        """Rank of input ``index``, or ``None`` when unknown or absent."""
        if index >= len(self.input_shapes) or self.input_shapes[index] is None:
            return None
        return len(self.input_shapes[index])

    def dtype(self, index: int = 0) -> str | None:
        """Dtype name of input ``index``, or ``None`` when unknown or absent."""
        return self.input_dtypes[index] if index < len(self.input_dtypes) else None


Check = Callable[[NodeInfo, str], Support]


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: what it computes, where it runs, and a pure check of what it supports.

    Attributes:
        name: ``<backend>.<op>_<variant>`` (reference kernels: ``reference.<op>``).
        op: ONNX op type.
        backend: ``"reference"``, ``"native"``, ``"numba"``, ...
        fn: the compute function (``KernelFn``), for kernels callable from Python.
        domain: ONNX domain (``""`` is the default domain).
        since: first opset this kernel implements (inclusive).
        until: first opset it no longer implements (exclusive); ``None`` for open-ended.
        targets: targets it runs on; ``ANY_TARGET`` for all.
        version: bump when numerics or the ABI change (keys the tactic timing cache).
        check: extra capability check beyond op, opset and target; must be pure and give a
            reason for every rejection.
        builder: optional ``builder(node) -> KernelFn`` specializing the kernel to one node
            (pre-packed weights, compiled code); default: ``fn`` itself.
    """

    name: str
    op: str
    backend: str
    fn: KernelFn | None = None
    domain: str = ""
    since: int = 1
    until: int | None = None
    targets: frozenset[str] = frozenset({ANY_TARGET})
    version: int = 1
    check: Check | None = None
    builder: Callable[[NodeInfo], KernelFn] | None = None

    def __post_init__(self) -> None:
        if not self.name.startswith(f"{self.backend}."):
            raise ValueError(f"kernel name {self.name!r} must start with {self.backend!r}.")
        if self.fn is None and self.builder is None:
            raise ValueError(f"kernel {self.name!r} needs fn or builder")

    def covers_opset(self, opset: int) -> bool:
        """Whether ``opset`` falls in ``[since, until)``."""
        return self.since <= opset and (self.until is None or opset < self.until)

    def runs_on(self, target: str) -> bool:
        """Whether this kernel can run on ``target``."""
        return ANY_TARGET in self.targets or target in self.targets

    def supports(self, node: NodeInfo, target: str) -> Support:
        """Whether this kernel can run ``node`` on ``target``; pure, with a reason if not."""
        if (node.op, node.domain) != (self.op, self.domain):
            return Support.no(
                f"implements {_qualified(self.op, self.domain)}, not "
                f"{_qualified(node.op, node.domain)}"
            )
        if not self.covers_opset(node.opset):
            upper = "" if self.until is None else f" to {self.until - 1}"
            return Support.no(f"opset {node.opset} outside supported range {self.since}{upper}")
        if not self.runs_on(target):
            return Support.no(f"target {target!r} not in {sorted(self.targets)}")
        if self.check is not None:
            return self.check(node, target)
        return Support.yes()

    def build(self, node: NodeInfo | None = None) -> KernelFn:
        """The compute function for ``node`` (specialized if the kernel has a builder)."""
        if self.builder is not None and node is not None:
            return self.builder(node)
        if self.fn is None:
            raise ValueError(f"kernel {self.name!r} must be built for a node")
        return self.fn

    def __call__(self, inputs: list[Any], attrs: dict[str, Any], opset: int) -> list[np.ndarray]:
        return self.build()(inputs, attrs, opset)


class UnsupportedOpError(UnsupportedModelError):
    """No registered kernel can run a node on the requested target."""

    def __init__(
        self,
        node: NodeInfo,
        target: str,
        rejected: Sequence[tuple[KernelSpec, str]],
        hint: str | None = None,
    ) -> None:
        self.node = node
        self.target = target
        self.rejected = list(rejected)
        op = _qualified(node.op, node.domain)
        if self.rejected:
            reasons = "; ".join(f"{spec.name}: {reason}" for spec, reason in self.rejected)
        else:
            reasons = "no kernel is registered for this op"
        if hint is None:
            hint = (
                "allow the reference fallback, pick another target, or rewrite the node into "
                "supported ops"
                if self.rejected
                else "add a kernel for it (a reference kernel is the minimum) or rewrite it"
            )
        super().__init__(
            f"unsupported op {op} (opset {node.opset}) at node {node.name or '<unnamed>'!r} "
            f"on target {target!r}: {reasons}. Hint: {hint}"
        )


@dataclass
class Selection:
    """The outcome of ``select``: kernels that qualify, and why each other candidate does not."""

    node: NodeInfo
    target: str
    supported: list[KernelSpec]
    rejected: list[tuple[KernelSpec, str]]

    @property
    def only_reference(self) -> bool:
        """True when nothing but the reference fallback qualifies."""
        return bool(self.supported) and all(s.backend == "reference" for s in self.supported)

    def require(self, *, allow_reference: bool = True) -> list[KernelSpec]:
        """The qualifying kernels, or ``UnsupportedOpError`` when there are none.

        With ``allow_reference=False`` (``--no-fallback``) reference kernels do not count; they
        appear among the rejections instead.
        """
        supported = list(self.supported)
        rejected = list(self.rejected)
        if not allow_reference:
            for spec in [s for s in supported if s.backend == "reference"]:
                supported.remove(spec)
                rejected.append((spec, "reference fallback forbidden (--no-fallback)"))
        if not supported:
            raise UnsupportedOpError(self.node, self.target, rejected)
        return supported


_REGISTRY: dict[str, KernelSpec] = {}
_BY_OP: dict[tuple[str, str], list[KernelSpec]] = {}
_loaded = False


def register(spec: KernelSpec) -> KernelSpec:
    """Add ``spec`` to the registry; names are unique. Returns ``spec``."""
    if spec.name in _REGISTRY:
        raise ValueError(f"kernel {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    _BY_OP.setdefault((spec.op, spec.domain), []).append(spec)
    return spec


def load_backends() -> None:
    """Import the built-in backend packages so their kernels register (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module(_REFERENCE_PACKAGE)
    for package in _BACKEND_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError as err:  # an optional backend whose dependency is absent
            log.debug("kernel backend %s not available: %s", package, err)


def get(name: str) -> KernelSpec:
    """The kernel registered as ``name``; ``KeyError`` if there is none."""
    load_backends()
    return _REGISTRY[name]


def all_kernels(backend: str | None = None) -> list[KernelSpec]:
    """Every registered kernel (of ``backend``, if given), in registration order."""
    load_backends()
    return [s for s in _REGISTRY.values() if backend is None or s.backend == backend]


def candidates(op: str, opset: int, target: str, domain: str = "") -> list[KernelSpec]:
    """Kernels registered for ``op`` that cover ``opset`` and run on ``target``.

    Backend kernels come before reference kernels, otherwise in registration order.
    """
    load_backends()
    specs = [s for s in _BY_OP.get((op, domain), []) if s.covers_opset(opset) and s.runs_on(target)]
    return sorted(specs, key=lambda s: s.backend == "reference")


def select(node: NodeInfo, target: str) -> Selection:
    """Check every kernel registered for ``node.op`` against ``node`` and ``target``."""
    load_backends()
    specs = sorted(_BY_OP.get((node.op, node.domain), []), key=lambda s: s.backend == "reference")
    supported: list[KernelSpec] = []
    rejected: list[tuple[KernelSpec, str]] = []
    for spec in specs:
        answer = spec.supports(node, target)
        if answer.ok:
            supported.append(spec)
        else:
            rejected.append((spec, answer.reason))
    return Selection(node, target, supported, rejected)


def _qualified(op: str, domain: str) -> str:
    return f"{domain}::{op}" if domain else op
