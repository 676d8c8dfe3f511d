"""Say which options changed when a store was tiled with other settings.

The tiler records everything that decides a store's content, including values it
derives (read-band rows, segment widths) that no user sets. When a rerun is refused,
`explain_tiling_change` names what the user changed, as command-line options
(``--stride 96 -> 32``), and mentions derived values only when nothing else differs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsi.errors import SettingsMismatchError, WsiError
from wsi.store.layout import Attr
from wsi.store.slide_store import attrs_section, jsonable, open_store

__all__ = [
    "TILING_SETTINGS",
    "describe_changes",
    "explain_tiling_change",
    "reworded_mismatch",
]

logger = logging.getLogger(__name__)

#: Stored tiling setting -> the run setting that decides it (``RunConfig`` terms; the
#: command line spells them as its flags, `wsi.cli.flags`). Tissue settings are
#: ``tissue.<field>``.
TILING_SETTINGS: dict[str, str] = {
    "mpp": "tiling.mpp",
    "stride_px": "tiling.stride_px",
    "min_tissue_fraction": "tiling.min_tissue_fraction",
    "tissue_region": "tiling.tissue_region",
    "chunk_patches": "tiling.chunk_patches",
    "patch_layout": "tiling.patch_layout",
    "level0_mpp_x": "mpp",
}
_SLIDE_KEYS = ("slide_size_bytes", "slide_sha256_first_mib")
_VERSION_KEYS = ("format_version", "software_version", "pixel_source")


def _show(value: Any) -> str:
    return (
        "unset"
        if value is None
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Name the differences between two tiling settings, in setting names.

    Parameters
    ----------
    old, new
        The settings the store records and those of this run (the tiler's
        ``tiling_settings``).

    Returns
    -------
    str
        e.g. ``"`tiling.stride_px` 96 -> 32; `tissue.min_saturation` 0.07 -> 0.05"``.

    Examples
    --------
    >>> old = {"stride_px": 96, "band_rows": 1, "tissue": {"min_saturation": 0.07}}
    >>> new = {"stride_px": 32, "band_rows": 8, "tissue": {"min_saturation": 0.05}}
    >>> describe_changes(old, new)
    '`tiling.stride_px` 96 -> 32; `tissue.min_saturation` 0.07 -> 0.05'
    >>> describe_changes({"band_rows": 1}, {"band_rows": 8})
    'internal read layout (band_rows 1 -> 8), from another wsi-heatmap version'
    """
    changes: list[str] = []
    for key, setting in TILING_SETTINGS.items():
        if old.get(key) != new.get(key):
            changes.append(
                f"`{setting}` {_show(old.get(key))} -> {_show(new.get(key))}"
            )
    old_tissue: Mapping[str, Any] = _section(old, "tissue")
    new_tissue: Mapping[str, Any] = _section(new, "tissue")
    for key in sorted(set(old_tissue) | set(new_tissue)):
        a, b = old_tissue.get(key), new_tissue.get(key)
        if jsonable(a) != jsonable(b):
            changes.append(f"`tissue.{key}` {_show(a)} -> {_show(b)}")
    if any(old.get(k) != new.get(k) for k in _SLIDE_KEYS):
        changes.append("the slide file itself changed")
    if changes:
        return "; ".join(changes)
    versions = [
        f"{k} {_show(old.get(k))} -> {_show(new.get(k))}"
        for k in _VERSION_KEYS
        if old.get(k) != new.get(k)
    ]
    if versions:
        return "written by another wsi-heatmap version (" + "; ".join(versions) + ")"
    internal = [
        f"{k} {_show(old.get(k))} -> {_show(new.get(k))}"
        for k in sorted(set(old) | set(new))
        if k != "tissue" and jsonable(old.get(k)) != jsonable(new.get(k))
    ]
    return (
        "internal read layout (" + "; ".join(internal[:3]) + "), from another "
        "wsi-heatmap version"
    )


def explain_tiling_change(
    store: Path, slide: Path, *, tiling: Any, tissue: Any, mpp: float | None
) -> str | None:
    """The one-line refusal for a store tiled with other settings, or None.

    Reads the settings the store records and compares them with this run's, the
    user's options first. None when the store records none (the caller keeps the
    tiler's own message).
    """
    try:
        group = open_store(store)
        recorded = dict(attrs_section(group, Attr.TILING).get("settings", {}))
    except (WsiError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not recorded:
        return None
    current = dict(recorded)  # what this run would record, for the user's settings
    current.update(
        mpp=tiling.mpp,
        stride_px=tiling.stride_px,
        min_tissue_fraction=tiling.min_tissue_fraction,
        tissue_region=tiling.tissue_region,
        chunk_patches=tiling.chunk_patches,
        tissue=dataclasses.asdict(tissue),
    )
    if mpp is not None:
        current["level0_mpp_x"] = mpp
    if tiling.patch_layout != "auto":  # ``auto`` depends on the slide: as recorded
        current.pop("patch_layout", None)  # patch stores record none
        if tiling.patch_layout != "patches":
            current["patch_layout"] = tiling.patch_layout
    if jsonable(current) == jsonable(recorded):
        return (
            f"{store} was tiled by another version of wsi-heatmap (its internal read "
            f"layout differs); pass `overwrite` to redo {Path(slide).name}, or "
            "choose another `out_dir`"
        )
    changes = describe_changes(recorded, current)
    return (
        f"{store} was tiled with other settings ({changes}); pass `overwrite` to "
        f"redo {Path(slide).name}, or choose another `out_dir`"
    )


def reworded_mismatch(
    err: SettingsMismatchError,
    store: Path,
    slide: Path,
    *,
    tiling: Any,
    tissue: Any,
    mpp: float | None,
) -> SettingsMismatchError:
    """``err`` with its message in setting names (`explain_tiling_change`)."""
    message = explain_tiling_change(store, slide, tiling=tiling, tissue=tissue, mpp=mpp)
    return SettingsMismatchError(message or str(err))


def _section(settings: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = settings.get(name)
    return value if isinstance(value, Mapping) else {}
