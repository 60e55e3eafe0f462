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
