from __future__ import annotations

import ctypes.util
import logging
import os

logging.getLogger("optimizer").setLevel(logging.INFO)

# Triton kernels run on the CPU through Triton's interpreter where there is no NVIDIA driver
# (CI). It must be chosen before anything imports triton: @triton.jit reads it when a kernel
# is defined.
if ctypes.util.find_library("cuda") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Hypothesis profiles (select with pytest's --hypothesis-profile=NAME, default "ci"):
# "ci": derandomized (a fixed seed: CI is reproducible), no deadline (compile times vary on a
# shared machine); "long": the fuzz tests' long run, examples kept in .hypothesis/ (gitignored)
# so a failure found once is replayed first next time. Tests with their own @settings keep
# their explicit values.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    # generated graphs are built step by step from many draws; too_slow flags that, not a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_LONG_EXAMPLES", "5000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
