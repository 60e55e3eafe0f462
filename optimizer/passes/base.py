"""The pass contract: ``run(model, ctx) -> PassResult(model, modified, stats)``.

A pass is one class in one file. It never prints; it logs, and every change it makes is
counted in ``stats`` (a change that is not counted is a bug the base class reports).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from optimizer.errors import InvariantError
from optimizer.ir import Model

log = logging.getLogger(__name__)


@dataclass
class PassContext:
    """Options and shared state for one optimization run.

    Attributes:
        fold_size_limit: Constant folding never creates a constant with more elements than
            this unless it replaces at least as many constant elements (never bloat a model).
        target_opset: Upgrade to this opset first, unlocking newer standard ops.
        explain: Rule names whose non-matches are logged with their reasons at INFO level.
        verify: Check graph invariants after every pass (on in tests).
        history: Names of passes run so far (for invariant errors and bisection).
    """

    fold_size_limit: int = 1 << 20
    target_opset: int | None = None
    explain: set[str] = field(default_factory=set)
    verify: bool = False
    history: list[str] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)


@dataclass
class PassResult:
    """What a pass did.

    Attributes:
        model: The (possibly new) model object; passes usually edit in place and return it.
        modified: Whether anything changed.
        stats: What changed, e.g. ``{"Identity removed": 3}``; empty iff not modified.
    """

    model: Model
    modified: bool
    stats: Counter[str] = field(default_factory=Counter)


class Pass(ABC):
    """Base class of every graph pass.

    Subclasses set ``name`` (the id used by ``--disable`` and reports) and ``summary`` (one
    line for ``--list-passes``) and implement :meth:`run`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @abstractmethod
    def run(self, model: Model, ctx: PassContext) -> PassResult:
        """Applies the pass. Must count every change in ``stats``."""

    def __call__(self, model: Model, ctx: PassContext) -> PassResult:
        result = self.run(model, ctx)
        if not isinstance(result, PassResult):
            raise InvariantError(
                f"pass {self.name} returned {type(result).__name__}, not PassResult", ctx.history
            )
        changes = sum(result.stats.values())
        if result.modified != (changes > 0):
            raise InvariantError(
                f"pass {self.name} reported modified={result.modified} with stats {dict(result.stats)}",
                ctx.history,
            )
        return result

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


def result(model: Model, stats: Counter[str]) -> PassResult:
    """Builds a PassResult whose ``modified`` flag follows from ``stats``."""
    stats = Counter({k: v for k, v in stats.items() if v})
    return PassResult(model, bool(stats), stats)
