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
# "ci": derandomized (a fixed seed: CI is reproducible; no example database then), no deadline
# (compile times vary on a shared machine); "long": the fuzz tests' long run, FUZZ_LONG_EXAMPLES
# examples per test, failing examples kept in .hypothesis/examples (gitignored; $FUZZ_DB moves
# it, tools/fuzz_long.py shares one between its workers) so a failure found once is replayed
# first next time. Tests with their own @settings keep their explicit values.
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# generated graphs are built step by step from many draws; too_slow flags that, not a bug
_SLOW_DRAWS = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=_SLOW_DRAWS,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_LONG_EXAMPLES", "5000")),
    deadline=None,
    print_blob=True,
    database=DirectoryBasedExampleDatabase(
        os.environ.get("FUZZ_DB") or os.path.join(_ROOT, ".hypothesis", "examples")
    ),
    suppress_health_check=_SLOW_DRAWS,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
