"""Native start-up chatter on descriptor 2 is hidden during an import, not errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_NOISY = """
import os
os.write(2, b"I0000 port.cc:153] native chatter\\n")
{tail}
"""


def _run(tmp_path: Path, tail: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "noisy").mkdir()
    (tmp_path / "noisy" / "__init__.py").write_text(_NOISY.format(tail=tail))
    code = textwrap.dedent(
        """
        import sys
        from wsi.quiet_import import quiet_first_import
        quiet_first_import("noisy")
        import noisy
        print("imported", noisy.__loader__.__class__.__name__, flush=True)
        sys.stderr.write("after the import\\n")
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{Path.cwd()}"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_chatter_during_the_import_is_hidden_and_stderr_works_after(
    tmp_path: Path,
) -> None:
    done = _run(tmp_path, "VALUE = 1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["imported", "SourceFileLoader"]
    assert done.stderr == "after the import\n"


def test_a_failing_import_shows_what_it_printed(tmp_path: Path) -> None:
    done = _run(tmp_path, "raise ImportError('libfoo.so: cannot open shared object')")
    assert done.returncode == 1
    assert "native chatter" in done.stderr
    assert "libfoo.so: cannot open shared object" in done.stderr
