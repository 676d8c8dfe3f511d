"""The source-JPEG store layout: the slide's own JPEG tiles, patches cut when read."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tifffile
import zarr
from click.testing import CliRunner
from PIL import Image

import wsi.store._tiling_store
from tests.fakes import ColourClassifier
from tests.slides import Blob, SlideSpec, render_region, write_slide
from wsi.errors import OutputError, SettingsMismatchError, WsiError
from wsi.scoring import ScoringParams, score_store
from wsi.slide._tiffread import JpegTiles
from wsi.store.layout import Arrays, Attr, SlideOutputs
from wsi.store.slide_store import array, open_tile_store
from wsi.tiles.tiler import PATCH_LAYOUTS, TilingParams, TilingResult, tile_slide
from wsi.tiles.tissue import TissueParams

# Level 2 (0.972 um/px, read directly) is 500 x 500 px in 64 px JPEG tiles: its last
# tile row and column are partial (448..500), and the last patches (384..480) reach
# into them. The tissue runs off the right and bottom edges.
SIZE_PX = (2000, 2000)
TILE_PX = 64
BLOB = Blob(1250, 1250, 950, 900)
#: Level-2 tile (row, col) whose bytes are removed (byte count 0): under tissue.
ABSENT = (3, 4)


def _tile(
    slide: Path, store: Path, *, slide_mpp: float | None = None, **kw: Any
) -> TilingResult:
    return tile_slide(
        slide,
        store,
        tiling=TilingParams(chunk_patches=8, **kw),
        tissue=TissueParams(),
        mpp=slide_mpp,
    )


def _patches(store: Path) -> npt.NDArray[np.uint8]:
    tiles = open_tile_store(store)
    return tiles.read_patches(0, tiles.n_patches)


def _store_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _remove_tile(path: Path, *, level: int, row: int, col: int) -> None:
    """Set one tile's byte count to 0 in the file (an absent tile, as TIFF allows)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level]
        tag = page.tags["TileByteCounts"]
        across = -(-page.imagewidth // page.tilewidth)
        code = {3: "H", 4: "I", 16: "Q"}[int(tag.dtype)]
        offset = tag.valueoffset + (row * across + col) * struct.calcsize(code)
        order = tif.byteorder
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(order + code, 0))


@pytest.fixture(scope="module")
def jpeg_slide(tmp_path_factory: pytest.TempPathFactory) -> SlideSpec:
    folder = tmp_path_factory.mktemp("source-jpeg")
    spec = write_slide(
        folder / "edges.tif", size_px=SIZE_PX, tile_px=TILE_PX, blobs=(BLOB,)
    )
    _remove_tile(spec.path, level=2, row=ABSENT[0], col=ABSENT[1])
    return spec


@pytest.fixture(scope="module")
def stores(
    jpeg_slide: SlideSpec, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stores")
    found = {}
    for layout in ("auto", "patches"):
        found[layout] = folder / f"{layout}.zarr"
        _tile(jpeg_slide.path, found[layout], patch_layout=layout)
    return found


def test_auto_keeps_the_jpeg_tiles_and_gives_the_patches_a_patch_store_gives(
    stores: dict[str, Path],
) -> None:
    jpeg, patches = open_tile_store(stores["auto"]), open_tile_store(stores["patches"])
    assert jpeg.layout == "source-jpeg"
    assert jpeg.tiling["settings"]["patch_layout"] == "source-jpeg"
    assert patches.layout == "patches"
    root = zarr.open_group(stores["auto"], mode="r")
    assert Arrays.PATCHES not in root
    assert jpeg.n_patches == patches.n_patches > 12  # two chunks of 8
    expected = _patches(stores["patches"])
    np.testing.assert_array_equal(_patches(stores["auto"]), expected)
    # Any slice, read on its own, gives the same patches.
    np.testing.assert_array_equal(jpeg.read_patches(3, 14), expected[3:14])
    assert jpeg.read_patches(5, 5).shape == (0, 96, 96, 3)


def test_edge_patches_and_the_absent_tile(stores: dict[str, Path]) -> None:
    jpeg = open_tile_store(stores["auto"])
    rowcol = np.asarray(array(jpeg.open(), Arrays.GRID)[:])
    patches = _patches(stores["auto"])
    # Patches of the last row and column cover the partial edge tiles.
    last = (500 // TILE_PX) * TILE_PX
    assert (rowcol[:, 1] * 96 + 96 > last).any()
    assert (rowcol[:, 0] * 96 + 96 > last).any()
    # The absent tile is white; tissue is around it.
    row, col = ABSENT
    y, x = row * TILE_PX, col * TILE_PX
    (i,) = np.flatnonzero((rowcol[:, 0] == y // 96) & (rowcol[:, 1] == x // 96))
    top, left = y - rowcol[i, 0] * 96, x - rowcol[i, 1] * 96
    hole = patches[i, top : top + TILE_PX, left : left + TILE_PX]
    assert (hole == 255).all()
    assert patches[i].mean() < 240
    tile_grid = np.asarray(array(jpeg.open(), Arrays.SOURCE_TILE_GRID)[:]).tolist()
    assert list(ABSENT) in tile_grid


def test_stored_tiles_are_the_file_bytes(
    jpeg_slide: SlideSpec, stores: dict[str, Path]
) -> None:
    root = zarr.open_group(stores["auto"], mode="r")
    tile_grid = np.asarray(array(root, Arrays.SOURCE_TILE_GRID)[:])
    stored = array(root, Arrays.SOURCE_TILES)[:].tolist()
    assert len(stored) == len(tile_grid) > 16  # several chunks of 16 tiles
    with tifffile.TiffFile(jpeg_slide.path) as tif, open(jpeg_slide.path, "rb") as fh:
        page = tif.pages[2]
        across = -(-page.imagewidth // page.tilewidth)
        for (row, col), data in zip(tile_grid.tolist(), stored, strict=True):
            index = row * across + col
            fh.seek(page.dataoffsets[index])
            assert bytes(data) == fh.read(page.databytecounts[index])
    assert bytes(stored[tile_grid.tolist().index(list(ABSENT))]) == b""


def test_the_store_is_much_smaller(stores: dict[str, Path]) -> None:
    tiles = _store_bytes(stores["auto"] / Arrays.SOURCE_TILES)
    pixels = _store_bytes(stores["patches"] / Arrays.PATCHES)
    assert 0 < tiles < pixels / 4
    assert _store_bytes(stores["auto"]) < _store_bytes(stores["patches"]) / 3


def test_scores_are_those_of_the_patch_store(
    stores: dict[str, Path], tmp_path: Path
) -> None:
    scores = {}
    for layout, store in stores.items():
        copy = tmp_path / store.name
        shutil.copytree(store, copy)
        score_store(
            copy, params=ScoringParams(workers=2), classifier=ColourClassifier()
        )
        scores[layout] = np.asarray(array(zarr.open_group(copy), Arrays.SCORES)[:])
    assert not np.isnan(scores["auto"]).any()
    assert scores["auto"].std() > 0
    np.testing.assert_array_equal(scores["auto"], scores["patches"])


def test_a_killed_run_resumes_to_the_same_store(
    jpeg_slide: SlideSpec,
    stores: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "resume.zarr"
    calls: list[int] = []
    read = JpegTiles.read

    def killed(self: JpegTiles, fd: int, row: int, col: int) -> bytes:
        calls.append(1)
        if len(calls) > 20:  # the first chunk (16 tiles) is written, then killed
            raise KeyboardInterrupt("killed")
        return read(self, fd, row, col)

    monkeypatch.setattr(JpegTiles, "read", killed)
    with pytest.raises(KeyboardInterrupt):
        _tile(jpeg_slide.path, store)
    root = zarr.open_group(store, mode="r")
    flags = np.asarray(root[Arrays.TILED][:])
    assert flags[0]
    assert not flags.all()
    assert not root.attrs[Attr.TILING_COMPLETE]
    with pytest.raises(WsiError, match="did not finish"):
        open_tile_store(store)
    monkeypatch.setattr(JpegTiles, "read", read)
    copied: list[int] = []
    copy_tiles = wsi.store._tiling_store.copy_tiles

    def counting(group: Any, stored: Any, chunks: Any, **kw: Any) -> None:
        copied.extend(chunks)
        copy_tiles(group, stored, chunks, **kw)

    monkeypatch.setattr("wsi.tiles.tiler.copy_tiles", counting)
    result = _tile(jpeg_slide.path, store)
    assert result.resumed
    assert copied
    assert 0 not in copied
    np.testing.assert_array_equal(_patches(store), _patches(stores["patches"]))


def test_other_layout_is_refused_unless_overwrite(
    jpeg_slide: SlideSpec, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    _tile(jpeg_slide.path, store)
    with pytest.raises(SettingsMismatchError, match="patch_layout"):
        _tile(jpeg_slide.path, store, patch_layout="patches")
    again = _tile(jpeg_slide.path, store, patch_layout="source-jpeg")
    assert again.resumed
    assert again.patches_written == 0


def test_auto_reuses_a_store_of_an_older_layout(
    jpeg_slide: SlideSpec, tmp_path: Path
) -> None:
    # A store tiled before source-jpeg was the default is kept, not refused.
    store = tmp_path / "s.zarr"
    _tile(jpeg_slide.path, store, patch_layout="patches")
    again = _tile(jpeg_slide.path, store)
    assert again.resumed
    assert again.patches_written == 0
    assert open_tile_store(store).layout == "patches"
    # Forcing a layout still names the difference.
    with pytest.raises(SettingsMismatchError, match="patch_layout"):
        _tile(jpeg_slide.path, store, patch_layout="source-jpeg")


def test_real_aperio_tiles_with_shared_jpeg_tables(
    fixture_slides: Path, tmp_path: Path
) -> None:
    # CMU-1's level 0 read as 0.972 um/px: its 240 px RGB JPEG tiles with JPEGTables.
    slide = fixture_slides / "cmu-1-small-region.svs"
    for layout in ("auto", "patches"):
        _tile(slide, tmp_path / f"{layout}.zarr", slide_mpp=0.972, patch_layout=layout)
    tiles = open_tile_store(tmp_path / "auto.zarr")
    assert tiles.layout == "source-jpeg"
    assert tiles.tiling["source_jpeg"]["jpeg_tables_base64"]
    assert tiles.n_patches > 20
    np.testing.assert_array_equal(
        _patches(tmp_path / "auto.zarr"), _patches(tmp_path / "patches.zarr")
    )


def test_ycbcr_tiles_as_camelyon16_stores_them(tmp_path: Path) -> None:
    # Camelyon16's pages are YCbCr JPEG (photometric 6), chroma subsampled.
    image = render_region(
        x0=0, y0=0, width=2048, height=2048, downsample=1.0, blobs=(BLOB,)
    )
    path = tmp_path / "ycbcr.tif"
    with tifffile.TiffWriter(path) as tif:
        for i, ds in enumerate((1, 2, 4, 8)):
            size = 2048 // ds
            level = Image.fromarray(image).resize((size, size), Image.Resampling.BOX)
            tif.write(
                np.asarray(level),
                tile=(256, 256),
                photometric="ycbcr",
                subsampling=(2, 2),
                compression="jpeg",
                compressionargs={"level": 90},
                subfiletype=1 if i else 0,
                metadata=None,
                resolution=(1e4 / (0.243 * ds), 1e4 / (0.243 * ds)),
                resolutionunit="CENTIMETER",
            )
    with tifffile.TiffFile(path) as tif:
        assert int(tif.pages[2].photometric) == 6
    for layout in ("auto", "patches"):
        _tile(path, tmp_path / f"{layout}.zarr", patch_layout=layout)
    assert open_tile_store(tmp_path / "auto.zarr").layout == "source-jpeg"
    assert open_tile_store(tmp_path / "auto.zarr").n_patches > 12
    np.testing.assert_array_equal(
        _patches(tmp_path / "auto.zarr"), _patches(tmp_path / "patches.zarr")
    )


def test_resampled_or_lossless_levels_keep_decoded_pixels(
    utrecht_slide: SlideSpec, tmp_path: Path
) -> None:
    zlib = write_slide(tmp_path / "zlib.tif", compression="zlib", blobs=(BLOB,))
    for spec in (utrecht_slide, zlib):  # 0.226 um/px: resampled; zlib tiles
        store = tmp_path / f"{spec.path.stem}.zarr"
        _tile(spec.path, store)
        assert open_tile_store(store).layout == "patches"
        assert "patch_layout" not in open_tile_store(store).tiling["settings"]
        with pytest.raises(WsiError, match="cannot keep its JPEG tiles"):
            _tile(spec.path, tmp_path / "forced.zarr", patch_layout="source-jpeg")


def test_overlapping_strides_keep_cells_unless_asked(
    jpeg_slide: SlideSpec, tmp_path: Path
) -> None:
    _tile(jpeg_slide.path, tmp_path / "cells.zarr", stride_px=32)
    assert open_tile_store(tmp_path / "cells.zarr").layout == "cells"
    _tile(
        jpeg_slide.path,
        tmp_path / "jpeg.zarr",
        stride_px=32,
        patch_layout="source-jpeg",
    )
    assert open_tile_store(tmp_path / "jpeg.zarr").layout == "source-jpeg"
    np.testing.assert_array_equal(
        _patches(tmp_path / "jpeg.zarr"), _patches(tmp_path / "cells.zarr")
    )


def test_the_cli_option_chooses_the_layout(
    jpeg_slide: SlideSpec, tmp_path: Path
) -> None:
    from wsi.cli import cli

    for layout in ("patches", "auto"):
        out = tmp_path / layout
        result = CliRunner().invoke(
            cli,
            ["tile", str(jpeg_slide.path), "--out", str(out), "--patch-layout", layout],
        )
        assert result.exit_code == 0, result.output
        store = SlideOutputs.for_slide(out, jpeg_slide.path).store
        assert (
            open_tile_store(store).layout
            == {"patches": "patches", "auto": "source-jpeg"}[layout]
        )
    option = next(p for p in cli.commands["tile"].params if p.name == "patch_layout")
    assert tuple(option.type.choices) == PATCH_LAYOUTS  # type: ignore[attr-defined]


def test_a_corrupt_slide_tile_is_named_when_read(tmp_path: Path) -> None:
    # Tiling copies the tiles' bytes undecoded; the damage shows when they are read.
    spec = write_slide(
        tmp_path / "corrupt.tif", size_px=SIZE_PX, tile_px=TILE_PX, blobs=(BLOB,)
    )
    with tifffile.TiffFile(spec.path) as tif:
        page = tif.pages[2]
        across = -(-page.imagewidth // page.tilewidth)
        index = ABSENT[0] * across + ABSENT[1]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(spec.path, "r+b") as handle:
        handle.seek(offset + 2)  # keep the start-of-image marker, break the rest
        handle.write(b"\x00" * (count - 4))
    store = tmp_path / "s.zarr"
    _tile(spec.path, store)
    assert open_tile_store(store).layout == "source-jpeg"
    with pytest.raises(
        OutputError, match=r"tile \(3, 4\) does not decode.*`overwrite`"
    ):
        _patches(store)
