"""The per-slide zarr v3 store: open, create, check settings, chunk bookkeeping.

Shared by tiling and scoring. A stage that writes an array chunk by chunk keeps a
``bool (n_chunks,)`` flag array beside it (``Arrays.TILED``, ``Arrays.SCORED``), one
zarr chunk per flag: a chunk's flag is set only after the chunk itself is written, and
zarr writes every chunk file atomically (temporary file, then rename), so a killed run
never leaves a chunk marked done with partial data. A stage records its settings under
its attribute section with their hash; reopening with other settings is refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from wsi.errors import OutputError, SettingsMismatchError
from wsi.geometry import SlideGeometry, TileGrid
from wsi.provenance import settings_hash
from wsi.store._cells import assemble_patches
from wsi.store._source_jpeg import codec_from_attrs
from wsi.store._source_jpeg import read_patches as read_source_patches
from wsi.store.layout import Arrays, Attr

__all__ = [
    "PATCH_CODECS",
    "STORE_FORMAT_VERSION",
    "TileStore",
    "TissueMask",
    "array",
    "attrs_section",
    "check_settings",
    "chunk_flags",
    "codec_name",
    "compressors_for",
    "create_chunk_flags",
    "ensure_array",
    "geometry_attrs",
    "geometry_from_attrs",
    "grid_from_attrs",
    "is_store",
    "jsonable",
    "mark_chunk_done",
    "open_store",
    "open_tile_store",
    "prepare_store",
    "read_tissue_mask",
    "settings_section",
]

logger = logging.getLogger(__name__)

#: Version of the store layout documented in the README; part of the settings.
STORE_FORMAT_VERSION: Final = 1
#: Codecs the ``patches`` array can be written with. zarr alone reads every one
#: (stores written before 0.2 used ``zstd`` level 1, and still read). Chosen by
#: ``benchmarks/bench_codec.py``: decoded JPEG pixels hardly compress losslessly.
PATCH_CODECS: Final = ("none", "blosc-lz4", "zstd")
_SETTINGS: Final = "settings"
_HASH: Final = "settings_hash"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TissueMask:
    """A slide's tissue mask and the thumbnail it was computed from.

    The store's tissue section; `wsi.tiles.tissue` computes it.

    Parameters
    ----------
    mask
        ``bool[H, W]``; pixel ``[i, j]`` covers level-0
        ``[j * downsample, (j + 1) * downsample)`` horizontally (same for rows).
    thumbnail
        ``uint8[H, W, 3]`` RGB at the same resolution.
    mpp
        Microns per mask pixel.
    downsample
        Level-0 pixels per mask pixel.
    level
        The pyramid level the thumbnail was read from.
    """

    mask: npt.NDArray[np.bool_]
    thumbnail: npt.NDArray[np.uint8]
    mpp: float
    downsample: float
    level: int = 0

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide's area covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def is_store(path: Path) -> bool:
    """Whether ``path`` is a zarr v3 store (a folder with ``zarr.json``)."""
    return (Path(path) / "zarr.json").is_file()


def open_store(path: Path, *, writable: bool = False) -> zarr.Group:
    """Open an existing store.

    Raises
    ------
    OutputError
        ``path`` is not a zarr store.
    """
    path = Path(path)
    if not is_store(path):
        raise OutputError(
            f"{path} is not a wsi-heatmap zarr store; run `wsi-heatmap tile` first"
        )
    try:
        return zarr.open_group(path, mode="r+" if writable else "r", zarr_format=3)
    except (OSError, ValueError) as err:
        raise OutputError(f"cannot open the store {path}: {err}") from err


def prepare_store(path: Path, *, overwrite: bool) -> None:
    """Check that ``path`` can hold a store.

    Its folder must be writable, and anything already at ``path`` must be a store
    (removed first when ``overwrite``).

    Raises
    ------
    OutputError
        The folder cannot be created or written, or ``path`` is something else.
    """
    path = Path(path)
    if path.exists() and not is_store(path):
        if path.is_dir() and not any(path.iterdir()):
            return
        raise OutputError(
            f"{path} exists and is not a zarr store; remove it or choose another `out_dir`"
        )
    if overwrite and path.exists():
        logger.info("removing the existing store %s (`overwrite`)", path)
        shutil.rmtree(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError.unwritable(path.parent, err) from err


def attrs_section(group: zarr.Group, name: str) -> dict[str, Any]:
    """The attribute section ``name`` of a store as a plain dict (empty if absent)."""
    value = group.attrs.asdict().get(name)
    return dict(value) if isinstance(value, Mapping) else {}


def array(group: zarr.Group, name: str) -> zarr.Array[Any]:
    """The array ``name`` of a store.

    Raises
    ------
    OutputError
        The store has no such array (it was damaged or is from another stage).
    """
    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise OutputError(
            f"{group.store} has no array {name!r}; run the stage that writes it again "
            "(`overwrite` if the store is damaged)"
        )
    return node


def check_settings(
    group: zarr.Group, *, section: str, settings: Mapping[str, Any], path: Path
) -> bool:
    """Whether ``group`` already holds ``section`` with these exact settings.

    Returns False when the section is absent (a new store).

    Raises
    ------
    SettingsMismatchError
        The section was written with other settings; names what differs.
    """
    stored = attrs_section(group, section)
    if _SETTINGS not in stored:
        return False
    if stored.get(_HASH) == settings_hash(dict(settings)):
        return True
    old: dict[str, Any] = dict(stored[_SETTINGS])
    diffs = [
        f"{key}: {old.get(key)!r} -> {settings.get(key)!r}"
        for key in sorted(set(old) | set(settings))
        if jsonable(old.get(key)) != jsonable(settings.get(key))
    ]
    raise SettingsMismatchError(
        f"{path} was written with other {section} settings ({'; '.join(diffs[:6])}); "
        "pass `overwrite` to replace it, or choose another `out_dir`"
    )


def settings_section(settings: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """An attribute section holding ``settings``, their hash and ``extra`` values."""
    return {
        **extra,
        _SETTINGS: jsonable(dict(settings)),
        _HASH: settings_hash(dict(settings)),
    }


def jsonable(value: Any) -> Any:
    """Normalise tuples to lists so stored and fresh settings compare equal."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def compressors_for(codec: str, *, level: int = 1) -> Any:
    """Zarr v3 compressors for a :data:`PATCH_CODECS` name (None: uncompressed).

    Examples
    --------
    >>> compressors_for("none") is None
    True
    >>> codec_name(compressors_for("zstd", level=3))
    'zstd-3'
    """
    if codec == "none":
        return None
    if codec == "zstd":
        return ZstdCodec(level=level)
    if codec == "blosc-lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    raise ValueError(f"codec must be one of {PATCH_CODECS}, got {codec!r}")


def codec_name(compressors: Any) -> str:
    """A short name for an array's compressors (``none``, ``zstd-1``, ...)."""
    if compressors is None:
        return "none"
    found = compressors if isinstance(compressors, tuple | list) else [compressors]
    names = []
    for codec in found:
        if isinstance(codec, ZstdCodec):
            names.append(f"zstd-{codec.level}")
        elif isinstance(codec, BloscCodec):
            names.append(f"blosc-{codec.cname.value if codec.cname else ''}")
        else:
            names.append(type(codec).__name__)
    return "+".join(names) or "none"


def ensure_array(
    group: zarr.Group,
    name: str,
    *,
    shape: tuple[int, ...],
    dtype: npt.DTypeLike,
    chunks: tuple[int, ...],
    compression_level: int | None = 1,
    codec: str = "zstd",
) -> tuple[zarr.Array[Any], bool]:
    """The array ``name`` with this shape, dtype and chunks, created if needed.

    ``codec`` (:data:`PATCH_CODECS`) compresses a new array (zstd at
    ``compression_level``; None: uncompressed); an existing matching array keeps
    the codec it was written with.

    Returns
    -------
    tuple
        ``(array, created)``; ``created`` is False when a matching array was kept.
    """
    if name in group:
        existing = group[name]
        if (
            isinstance(existing, zarr.Array)
            and existing.shape == tuple(shape)
            and existing.chunks == tuple(chunks)
            and existing.dtype == np.dtype(dtype)
        ):
            return existing, False
    compressors = (
        None
        if compression_level is None
        else compressors_for(codec, level=compression_level)
    )
    array = group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compressors=compressors,
        fill_value=np.zeros((), dtype=dtype).item(),
        overwrite=True,
        # Skip zarr's check for chunks equal to the fill value: it costs more than
        # compressing and writing them (patches are never empty anyway).
        config={"write_empty_chunks": True},
    )
    return array, True


def create_chunk_flags(
    group: zarr.Group, name: str, *, n_chunks: int
) -> zarr.Array[Any]:
    """A fresh ``bool (n_chunks,)`` flag array, one zarr chunk per flag, all False."""
    return group.create_array(
        name,
        shape=(n_chunks,),
        dtype=bool,
        chunks=(1,),
        compressors=None,
        fill_value=False,
        overwrite=True,
    )


def chunk_flags(group: zarr.Group, name: str) -> npt.NDArray[np.bool_]:
    """Which chunks a stage has finished (all False when the flags do not exist)."""
    if name not in group:
        return np.zeros(0, dtype=bool)
    return np.asarray(array(group, name)[:], dtype=bool)


def mark_chunk_done(group: zarr.Group, name: str, index: int) -> None:
    """Set chunk ``index``'s flag, after its data is written."""
    array(group, name)[index] = True


def geometry_attrs(geometry: SlideGeometry) -> dict[str, Any]:
    """JSON-able description of a slide's geometry (for :func:`geometry_from_attrs`)."""
    return {
        "width_px": geometry.width_px,
        "height_px": geometry.height_px,
        "mpp_x": geometry.mpp_x,
        "mpp_y": geometry.mpp_y,
        "level_dimensions": [list(d) for d in geometry.level_dimensions],
        "level_downsamples": list(geometry.level_downsamples),
    }


def geometry_from_attrs(attrs: Mapping[str, Any]) -> SlideGeometry:
    """Rebuild a :class:`SlideGeometry` from :func:`geometry_attrs` output."""
    return SlideGeometry(
        width_px=int(attrs["width_px"]),
        height_px=int(attrs["height_px"]),
        mpp_x=float(attrs["mpp_x"]),
        mpp_y=float(attrs["mpp_y"]),
        level_dimensions=tuple((int(w), int(h)) for w, h in attrs["level_dimensions"]),
    )


def grid_from_attrs(tiling: Mapping[str, Any]) -> TileGrid:
    """Rebuild the patch grid from a store's ``tiling`` attribute section.

    Examples
    --------
    >>> g = SlideGeometry(width_px=1000, height_px=500, mpp_x=0.243, mpp_y=0.243,
    ...                   level_dimensions=((1000, 500), (250, 125)))
    >>> grid = TileGrid(geometry=g, mpp=0.972, stride_px=32)
    >>> grid_from_attrs({"geometry": geometry_attrs(g), "grid": {
    ...     "mpp": 0.972, "tile_px": 96, "stride_px": 32}}) == grid
    True
    """
    spec = tiling["grid"]
    return TileGrid(
        geometry=geometry_from_attrs(tiling["geometry"]),
        mpp=float(spec["mpp"]),
        tile_px=int(spec["tile_px"]),
        stride_px=int(spec["stride_px"]),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TileStore:
    """A finished tile store: where it is, its grid and its size.

    Attributes
    ----------
    path
        The store folder.
    grid
        The patch grid, rebuilt from the attributes.
    n_patches
        Length of ``patches``, ``coords`` and ``grid``.
    chunk_patches
        Patches per zarr chunk of ``patches`` (and of any per-patch array).
    tiling
        The ``tiling`` attribute section (slide, read level, settings, versions).
    """

    path: Path
    grid: TileGrid
    n_patches: int
    chunk_patches: int
    tiling: Mapping[str, Any]

    @property
    def n_chunks(self) -> int:
        """Number of patch chunks."""
        return -(-self.n_patches // self.chunk_patches)

    def chunk_slice(self, index: int) -> slice:
        """Patch indices of chunk ``index``."""
        start = index * self.chunk_patches
        return slice(start, min(start + self.chunk_patches, self.n_patches))

    def open(self, *, writable: bool = False) -> zarr.Group:
        """The store's root group."""
        return open_store(self.path, writable=writable)

    @property
    def layout(self) -> str:
        """``patches`` (whole patches), ``cells`` or ``source-jpeg`` (slide tiles).

        See :mod:`wsi.store._cells` and :mod:`wsi.store._source_jpeg`.
        """
        return str(self.tiling.get("patch_layout", "patches"))

    def read_patches(
        self, start: int, stop: int, *, group: zarr.Group | None = None
    ) -> npt.NDArray[np.uint8]:
        """Patches ``start .. stop - 1`` as ``uint8[n, 96, 96, 3]``, whatever the layout.

        A cell store's patches are put together from the cells they cover: only the
        cells of these patches are read. A source-JPEG store's are cut from the
        slide tiles they cover, decoded (once per process: a shared cache).

        Raises
        ------
        OutputError
            The store lacks what these patches need (it is damaged).
        """
        root = self.open() if group is None else group
        start, stop = max(0, start), min(stop, self.n_patches)
        if self.layout == "patches":
            return np.asarray(array(root, Arrays.PATCHES)[start:stop], dtype=np.uint8)
        if self.layout == "source-jpeg":
            rowcol = np.asarray(
                array(root, Arrays.GRID)[start : max(start, stop)], dtype=np.int64
            )
            return read_source_patches(
                rowcol.reshape(-1, 2),
                stride_px=self.grid.stride_px,
                patch_px=self.grid.tile_px,
                codec=codec_from_attrs(self.tiling["source_jpeg"]),
                tile_grid=np.asarray(array(root, Arrays.SOURCE_TILE_GRID)[:], np.int64),
                tiles=array(root, Arrays.SOURCE_TILES),
                cache_key=(
                    "source-jpeg",
                    str(self.path.resolve()),
                    self.tiling.get("settings_hash"),
                    self.tiling.get("selection_sha256"),
                    self.tiling.get("created"),
                ),
                path=self.path,
            )
        tile, cell = self.grid.tile_px, self.grid.stride_px
        if stop <= start:
            return np.zeros((0, tile, tile, 3), dtype=np.uint8)
        index = np.asarray(array(root, Arrays.PATCH_CELLS)[start:stop], dtype=np.int64)
        lo, hi = int(index.min()), int(index.max()) + 1
        cells = np.asarray(array(root, Arrays.CELLS)[lo:hi], dtype=np.uint8)
        return assemble_patches(cells, index - lo, k=tile // cell)


def open_tile_store(path: Path, *, require_complete: bool = True) -> TileStore:
    """Open a store written by :func:`wsi.tiles.tiler.tile_slide`.

    Raises
    ------
    OutputError
        ``path`` is not a store, or its tiling did not finish (and
        ``require_complete``).
    """
    path = Path(path)
    group = open_store(path)
    attrs = group.attrs.asdict()
    tiling = attrs_section(group, Attr.TILING)
    if "settings" not in tiling:
        raise OutputError(f"{path} holds no tiles; run `wsi-heatmap tile` on its slide")
    if require_complete and not attrs.get(Attr.TILING_COMPLETE, False):
        raise OutputError(
            f"tiling of {path} did not finish; run `wsi-heatmap tile` again with the "
            "same settings to resume it"
        )
    return TileStore(
        path=path,
        grid=grid_from_attrs(tiling),
        n_patches=int(tiling["n_patches"]),
        chunk_patches=int(tiling["settings"]["chunk_patches"]),
        tiling=tiling,
    )


def read_tissue_mask(path: Path) -> TissueMask:
    """The tissue mask and thumbnail stored with the tiles (for ``tissue_png``)."""
    store = open_tile_store(path, require_complete=False)
    group = store.open()
    mask_attrs = store.tiling["tissue_mask"]
    return TissueMask(
        mask=np.asarray(array(group, Arrays.TISSUE_MASK)[:], dtype=bool),
        thumbnail=np.asarray(array(group, Arrays.THUMBNAIL)[:], dtype=np.uint8),
        mpp=float(mask_attrs["mpp"]),
        downsample=float(mask_attrs["downsample"]),
        level=int(mask_attrs["level"]),
    )
