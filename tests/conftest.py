"""Project-wide test configuration.

Timing: tests never sleep to synchronise. Bounded waits use ``MS`` multiples, scaled by
``AIOSERVERSYNC_TESTS_TIMEOUT_FACTOR`` for slow machines.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # lets tests import tests.* helpers and benchmarks.*

TIMEOUT_FACTOR = float(os.environ.get("AIOSERVERSYNC_TESTS_TIMEOUT_FACTOR", "1"))
MS = 0.001 * TIMEOUT_FACTOR
