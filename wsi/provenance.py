"""Versions, git commit and hashes recorded with every output."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "settings_hash", "software_versions"]

_PACKAGES = (
    "wsi-heatmap",
    "numpy",
    "openslide-python",
    "openslide-bin",
    "zarr",
    "dask",
    "scikit-image",
    "tensorflow",
    "keras",
)


def software_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the source checkout, or None outside git."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able settings mapping."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
