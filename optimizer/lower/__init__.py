"""Lowering: partition the optimized graph into fusion groups, schedule them, plan memory.

``partition`` -> ``schedule`` -> ``plan_memory`` (checked by ``assert_plan_valid``); kernel
selection (``optimizer.kernels``) and packaging (``optimizer.module``) come after.
"""

from __future__ import annotations

from optimizer.lower.memory import (
    ALIGNMENT,
    Block,
    InPlace,
    MemoryPlan,
    Placement,
    assign_offsets,
    plan_memory,
)
from optimizer.lower.partition import (
    Epilogue,
    FusionGroup,
    PartitionOptions,
    describe_partition,
    partition,
    pattern_counts,
)
from optimizer.lower.schedule import Schedule, schedule
from optimizer.lower.static_shapes import require_static_shapes
from optimizer.lower.verify_plan import assert_plan_valid, plan_problems

__all__ = [
    "ALIGNMENT",
    "Block",
    "Epilogue",
    "FusionGroup",
    "InPlace",
    "MemoryPlan",
    "PartitionOptions",
    "Placement",
    "Schedule",
    "assert_plan_valid",
    "assign_offsets",
    "describe_partition",
    "partition",
    "pattern_counts",
    "plan_memory",
    "plan_problems",
    "require_static_shapes",
    "schedule",
]
