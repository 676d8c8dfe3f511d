"""Write an output file all at once: a reader never sees half a file."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wsi.errors import OutputError

__all__ = ["atomic_output"]


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    The parent folder is created. On any error the temporary file is removed and
    ``path`` is left as it was; an ``OSError`` becomes an `OutputError` naming the
    file and the fix.

    Parameters
    ----------
    path
        The file to write.

    Yields
    ------
    Path
        Where to write; it has the same suffix as ``path`` (some writers care).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = Path(folder) / "sub" / "a.txt"
    ...     with atomic_output(out) as tmp:
    ...         _ = tmp.write_text("done")
    ...     out.read_text()
    'done'
    """
    path = Path(path)
    # Not mkstemp: its 0600 mode would stick to the output after the rename.
    tmp = path.with_name(
        f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError.write_failed(path, err) from err
    finally:
        with contextlib.suppress(OSError):  # gone after the rename, or never made
            tmp.unlink()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file of its own.

    Raises
    ------
    OutputError
        The file cannot be written (its path, the cause and the fix).
    """
    import json

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
