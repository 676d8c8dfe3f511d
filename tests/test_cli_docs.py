"""docs/CLI.md is the commands' own help, regenerated and compared on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "cli_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "", "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
