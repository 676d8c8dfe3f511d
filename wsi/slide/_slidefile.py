"""Checks and identity of a slide file, before and beside OpenSlide (private)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Final

from wsi.errors import SlideReadError

__all__ = ["check_path", "slide_fingerprint"]

_FINGERPRINT_BYTES: Final = 1 << 20


def check_path(path: Path) -> None:
    if not path.exists():
        raise SlideReadError(f"slide {path} does not exist; check the path")
    if path.is_dir():
        raise SlideReadError(
            f"{path} is a folder, not a slide file; pass the slide file itself "
            "(for MIRAX, the .mrxs file next to the folder)"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise SlideReadError(
            f"cannot read {path}: {err.strerror}; check its permissions"
        ) from err


def slide_fingerprint(path: Path) -> dict[str, Any]:
    """Identify a slide file cheaply: its size and the sha256 of its first MiB.

    Parameters
    ----------
    path
        The slide file.

    Returns
    -------
    dict
        ``{"size_bytes": int, "sha256_first_mib": str}``.

    Raises
    ------
    SlideReadError
        The file cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(_FINGERPRINT_BYTES)
        size = path.stat().st_size
    except OSError as err:
        raise SlideReadError(
            f"cannot read {path}: {err.strerror}; check the path"
        ) from err
    return {"size_bytes": size, "sha256_first_mib": hashlib.sha256(head).hexdigest()}
