from __future__ import annotations

import logging

logging.getLogger("optimizer").setLevel(logging.INFO)
