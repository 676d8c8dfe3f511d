"""Research tests: ``pytest research/tests`` (not part of ``make test``).

The modules under research/ import as top-level names (``soup``, ``ensemble``); the
model fixtures come from tests/.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import *  # noqa: F403
from tests.model.conftest import *  # noqa: F403
