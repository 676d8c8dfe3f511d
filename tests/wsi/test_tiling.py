"""The tiler: patch selection, the zarr store, resume, parallel reads, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zarr

import wsi.slide.reader
import wsi.tiles._bands
from tests.slides import Blob, SlideSpec, write_slide
from wsi.errors import (
    MissingResolutionError,
    NoTissueError,
    OutputError,
    SettingsMismatchError,
    SlideReadError,
)
from wsi.geometry import CENTER_PX, MASK_CELL_PX, PCAM_MPP, SlideGeometry, TileGrid
from wsi.slide.reader import open_slide
from wsi.store.layout import Arrays, Attr
from wsi.store.slide_store import (
    array,
    attrs_section,
    grid_from_attrs,
    open_tile_store,
    read_tissue_mask,
)
from wsi.tiles.tiler import (
    TilingParams,
    TilingResult,
    patch_tissue_fraction,
    tile_slide,
)
from wsi.tiles.tissue import TissueParams

TISSUE = TissueParams()


def _tile(
    slide: Path, store: Path, *, slide_mpp: float | None = None, **kw: Any
) -> TilingResult:
    """``tile_slide`` with TilingParams fields as keywords (``mpp`` is the target)."""
    params = {k: kw.pop(k) for k in list(kw) if k in TilingParams.__dataclass_fields__}
    return tile_slide(
        slide, store, tiling=TilingParams(**params), tissue=TISSUE, mpp=slide_mpp, **kw
    )


def _arrays(store: Path) -> dict[str, npt.NDArray[Any]]:
    """Patches (whatever the store's layout), grid positions and coords."""
    root = zarr.open_group(store, mode="r")
    tiles = open_tile_store(store)
    return {
        Arrays.PATCHES: tiles.read_patches(0, tiles.n_patches),
        **{
            name: np.asarray(array(root, name)[:])
            for name in (Arrays.GRID, Arrays.COORDS)
        },
    }


@pytest.fixture(scope="module")
def tiny_store(tiny_slide: SlideSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("tiled") / "tiny.zarr"
    _tile(tiny_slide.path, store, stride_px=32, chunk_patches=16)
    return store


class _Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int]] = []
        self.done = 0

    def start(self, total: int, desc: str) -> None:
        self.stages.append((desc, total))
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n

    def close(self) -> None:
        pass


def test_kept_patches_have_tissue_in_their_centre(
    tiny_slide: SlideSpec, tiny_store: Path
) -> None:
    store = open_tile_store(tiny_store)
    arrays = _arrays(tiny_store)
    grid = store.grid
    assert grid.shape == (14, 14)
    # Centre of each kept patch, in level-0 px: in the blob, give or take half the
    # 32 x 32 centre square (64 level-0 px).
    centre = (arrays[Arrays.GRID][:, ::-1] * 32 + 48) * grid.downsample
    (blob,) = tiny_slide.blobs
    grown = Blob(blob.cx, blob.cy, blob.rx + 64, blob.ry + 64)
    assert grown.contains(centre[:, 0], centre[:, 1]).all()
    # Every cell whose centre square lies well inside the blob is kept.
    rr, cc = np.mgrid[0:14, 0:14]
    xs, ys = (cc * 32 + 48) * 4.0, (rr * 32 + 48) * 4.0
    deep = tiny_slide.tissue_at(xs, ys)
    for dx in (-100, 100):
        deep &= tiny_slide.tissue_at(xs + dx, ys) & tiny_slide.tissue_at(xs, ys + dx)
    kept = {tuple(rc) for rc in arrays[Arrays.GRID].tolist()}
    assert {(int(r), int(c)) for r, c in zip(rr[deep], cc[deep], strict=True)} <= kept
    # Row-major order, one coord per patch.
    np.testing.assert_array_equal(
        arrays[Arrays.GRID], sorted(arrays[Arrays.GRID].tolist())
    )
    np.testing.assert_array_equal(
        arrays[Arrays.COORDS], grid.coords(arrays[Arrays.GRID])
    )


def test_store_layout_and_attributes(tiny_store: Path, tiny_slide: SlideSpec) -> None:
    root = zarr.open_group(tiny_store, mode="r")
    # Stride 32: the cell layout, each target pixel stored once.
    assert Arrays.PATCHES not in root
    n = open_tile_store(tiny_store).n_patches
    cells, grid = array(root, Arrays.CELLS), array(root, Arrays.CELL_GRID)
    index = np.asarray(array(root, Arrays.PATCH_CELLS)[:])
    m = cells.shape[0]
    assert cells.shape == (m, 32, 32, 3)
    assert cells.dtype == np.uint8
    # As many pixels as 16 patches a chunk, and no bigger than the store.
    assert cells.chunks == (min(16 * 9, m), 32, 32, 3)
    assert grid.shape == (m, 2)
    assert index.shape == (n, 9)
    assert np.unique(index).size == m  # every cell belongs to some patch
    assert n < m < 2 * n  # not 9 n: neighbours share their cells
    assert array(root, Arrays.COORDS).shape == array(root, Arrays.GRID).shape == (n, 2)
    assert array(root, Arrays.TISSUE_MASK).shape == (64, 64)
    assert array(root, Arrays.THUMBNAIL).shape == (64, 64, 3)
    assert np.asarray(array(root, Arrays.TILED)[:]).all()
    assert root.attrs[Attr.TILING_COMPLETE] is True
    tiling = attrs_section(root, Attr.TILING)
    assert root.attrs[Attr.SETTINGS_HASH] == tiling["settings_hash"]
    assert tiling["slide"]["path"] == str(tiny_slide.path.resolve())
    assert tiling["settings"]["slide_size_bytes"] == tiny_slide.path.stat().st_size
    assert len(tiling["settings"]["slide_sha256_first_mib"]) == 64
    assert (tiling["read"]["level"], tiling["read"]["downsample"]) == (2, 4.0)
    assert tiling["requested_mpp"] == PCAM_MPP
    assert tiling["effective_mpp"] == pytest.approx(0.972)
    assert (tiling["tile_px"], tiling["stride_px"], tiling["n_patches"]) == (96, 32, n)
    assert tiling["settings"]["min_tissue_fraction"] == 0.5
    assert tiling["settings"]["tissue"]["min_saturation"] == 0.07
    assert tiling["software"]["wsi-heatmap"]
    assert tiling["mask_cell_px"] == MASK_CELL_PX
    assert tiling["patch_layout"] == tiling["settings"]["patch_layout"] == "cells"


def test_grid_and_mask_come_back_from_the_store(
    tiny_store: Path, tiny_slide: SlideSpec
) -> None:
    store = open_tile_store(tiny_store)
    with open_slide(tiny_slide.path) as slide:
        assert store.grid == TileGrid(geometry=slide.geometry, stride_px=32)
    assert grid_from_attrs(store.tiling) == store.grid
    assert store.n_chunks == -(-store.n_patches // 16)
    assert store.chunk_slice(store.n_chunks - 1).stop == store.n_patches
    mask = read_tissue_mask(tiny_store)
    assert mask.mask.shape == (64, 64)
    assert mask.mask.any()
    assert mask.downsample == pytest.approx(32.0)


def test_patches_are_the_slide_pixels_at_their_coords(
    tiny_store: Path, tiny_slide: SlideSpec
) -> None:
    arrays = _arrays(tiny_store)
    with open_slide(tiny_slide.path) as slide:
        for i in (0, len(arrays[Arrays.COORDS]) // 2, -1):
            x, y = (int(v) for v in arrays[Arrays.COORDS][i])
            direct = slide.read_level(level=2, l0_xy=(x, y), size=(96, 96))
            np.testing.assert_array_equal(arrays[Arrays.PATCHES][i], direct)


def test_stride_96_patches_equal_the_matching_stride_32_patches(
    tiny_slide: SlideSpec, tiny_store: Path, tmp_path: Path
) -> None:
    _tile(tiny_slide.path, tmp_path / "s96.zarr", stride_px=96)
    coarse = _arrays(tmp_path / "s96.zarr")
    fine = _arrays(tiny_store)
    index = {tuple(rc): i for i, rc in enumerate(fine[Arrays.GRID].tolist())}
    assert len(coarse[Arrays.GRID]) > 0
    for i, (r, c) in enumerate(coarse[Arrays.GRID].tolist()):
        j = index[(3 * r, 3 * c)]
        np.testing.assert_array_equal(
            coarse[Arrays.PATCHES][i], fine[Arrays.PATCHES][j]
        )


@pytest.mark.parametrize(
    ("fixture", "stride", "tolerance"),
    [
        ("tiny_slide", 32, 0),  # level read as is: the same pixels
        ("utrecht_slide", 32, 1),  # resampled from other read origins: +-1
        ("npot_slide", 48, 1),
    ],
)
def test_a_cell_store_gives_the_patches_a_patch_store_gives(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fixture: str,
    stride: int,
    tolerance: int,
) -> None:
    slide: SlideSpec = request.getfixturevalue(fixture)
    stores = {}
    for layout in ("cells", "patches"):
        _tile(
            slide.path,
            tmp_path / f"{layout}.zarr",
            stride_px=stride,
            chunk_patches=4,
            patch_layout=layout,
        )
        stores[layout] = _arrays(tmp_path / f"{layout}.zarr")
    cells, patches = stores["cells"], stores["patches"]
    np.testing.assert_array_equal(cells[Arrays.GRID], patches[Arrays.GRID])
    assert len(patches[Arrays.PATCHES]) > 4
    diff = np.abs(
        cells[Arrays.PATCHES].astype(int) - patches[Arrays.PATCHES].astype(int)
    )
    assert diff.max() <= tolerance
    if tolerance:
        assert (diff == 0).mean() > 0.9
    # Each pixel stored once: a fraction of the bytes of the whole patches.
    root = zarr.open_group(tmp_path / "cells.zarr", mode="r")
    k = 96 // stride
    assert array(root, Arrays.CELLS).nbytes < 2 * patches[Arrays.PATCHES].nbytes / k**2


@pytest.mark.parametrize("stride", [96, 64, 40])
def test_the_cell_layout_needs_a_stride_that_divides_the_patch(stride: int) -> None:
    with pytest.raises(ValueError, match="'cells' needs a stride below 96"):
        TilingParams(stride_px=stride, patch_layout="cells")
    assert TilingParams(stride_px=stride).layout == "patches"


def test_workers_and_band_size_do_not_change_a_resampled_store(
    utrecht_slide: SlideSpec, tmp_path: Path
) -> None:
    one = _tile(
        utrecht_slide.path,
        tmp_path / "a.zarr",
        stride_px=32,
        workers=1,
        chunk_patches=8,
    )
    assert one.level == 2
    assert one.effective_mpp == pytest.approx(PCAM_MPP)
    _tile(
        utrecht_slide.path,
        tmp_path / "b.zarr",
        stride_px=32,
        workers=2,
        chunk_patches=8,
    )
    a, b = _arrays(tmp_path / "a.zarr"), _arrays(tmp_path / "b.zarr")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    with open_slide(utrecht_slide.path) as slide:
        plan = slide.geometry.read_plan(PCAM_MPP)
        r, c = (int(v) for v in a[Arrays.GRID][5])
        want = slide.read_target(
            plan, x_px=c * 32, y_px=r * 32, width_px=96, height_px=96
        )
    # Read from another origin: equal up to float rounding of the area weights.
    assert np.abs(a[Arrays.PATCHES][5].astype(int) - want).max() <= 1


def test_non_power_of_two_pyramid_reads_a_level_within_one_percent(
    npot_slide: SlideSpec, tmp_path: Path
) -> None:
    result = _tile(
        npot_slide.path,
        tmp_path / "npot.zarr",
        stride_px=48,
        workers=2,
        chunk_patches=4,
        band_rows=2,
    )
    assert result.level == 1
    assert result.effective_mpp == pytest.approx(0.324 * 2048 / 683)
    assert result.requested_mpp == PCAM_MPP
    again = _tile(
        npot_slide.path,
        tmp_path / "npot1.zarr",
        stride_px=48,
        workers=1,
        chunk_patches=4,
        band_rows=2,
    )
    assert again.n_patches == result.n_patches > 0
    a, b = _arrays(tmp_path / "npot.zarr"), _arrays(tmp_path / "npot1.zarr")
    np.testing.assert_array_equal(a[Arrays.PATCHES], b[Arrays.PATCHES])


def test_whole_patch_region_keeps_fewer_patches(
    tiny_slide: SlideSpec, tiny_store: Path, tmp_path: Path
) -> None:
    whole = _tile(
        tiny_slide.path, tmp_path / "p.zarr", stride_px=32, tissue_region="patch"
    )
    assert 0 < whole.n_patches < open_tile_store(tiny_store).n_patches


def test_a_killed_run_resumes_to_the_same_store(
    tiny_slide: SlideSpec,
    tiny_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "resume.zarr"
    real = wsi.tiles._bands.run_task

    calls: list[int] = []

    def dies_midway(task: wsi.tiles._bands.TileTask) -> int:
        calls.append(1)
        if len(calls) > 1:  # the first task finishes, then the run is killed
            raise KeyboardInterrupt("killed")
        return real(task)

    monkeypatch.setattr(wsi.tiles._bands, "run_task", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        _tile(
            tiny_slide.path,
            store,
            stride_px=32,
            chunk_patches=4,
            workers=1,
            band_rows=2,
        )
    root = zarr.open_group(store, mode="r")
    assert root.attrs[Attr.TILING_COMPLETE] is False
    flags = np.asarray(array(root, Arrays.TILED)[:])
    assert flags.any()
    assert not flags.all()
    # A chunk that was being written when the run died: garbage, not marked done.
    todo = int(np.flatnonzero(~flags)[0])
    chunk_file = store / Arrays.CELLS / "c" / str(todo) / "0" / "0" / "0"
    chunk_file.parent.mkdir(parents=True, exist_ok=True)
    chunk_file.write_bytes(b"half a chunk")
    monkeypatch.setattr(wsi.tiles._bands, "run_task", real)
    progress = _Recorder()
    result = _tile(
        tiny_slide.path,
        store,
        stride_px=32,
        chunk_patches=4,
        workers=1,
        band_rows=2,
        progress=progress,
    )
    assert result.resumed
    assert 0 < result.patches_written < result.n_patches
    assert progress.stages[-1][1] == result.n_patches == progress.done
    resumed, uninterrupted = _arrays(store), _arrays(tiny_store)
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name])
    assert open_tile_store(store).n_patches == result.n_patches


def test_finished_store_is_not_redone(tiny_slide: SlideSpec, tiny_store: Path) -> None:
    before = (tiny_store / "zarr.json").stat().st_mtime_ns
    result = _tile(tiny_slide.path, tiny_store, stride_px=32, chunk_patches=16)
    assert result.resumed
    assert result.patches_written == 0
    assert (tiny_store / "zarr.json").stat().st_mtime_ns == before


def test_other_settings_are_refused_unless_overwrite(
    tiny_slide: SlideSpec, tmp_path: Path
) -> None:
    store = tmp_path / "s.zarr"
    _tile(tiny_slide.path, store)
    with pytest.raises(
        SettingsMismatchError, match=r"stride_px: 96 -> 32.*`overwrite`"
    ):
        _tile(tiny_slide.path, store, stride_px=32)
    result = _tile(tiny_slide.path, store, stride_px=32, overwrite=True)
    assert not result.resumed
    assert open_tile_store(store).grid.stride_px == 32


def test_progress_reports_mask_bands_then_patches(
    tiny_slide: SlideSpec, tmp_path: Path
) -> None:
    progress = _Recorder()
    result = _tile(tiny_slide.path, tmp_path / "p.zarr", progress=progress)
    assert [desc.split()[0] for desc, _ in progress.stages] == ["tissue", "tiling"]
    assert progress.stages[-1][1] == result.n_patches == progress.done


def test_reads_stay_within_the_band_budget(
    tiny_slide: SlideSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    real = wsi.slide.reader.Slide.read_target

    def spy(self: Any, plan: Any, **kw: int) -> Any:
        sizes.append(kw["width_px"] * kw["height_px"])
        return real(self, plan, **kw)

    monkeypatch.setattr(wsi.slide.reader.Slide, "read_target", spy)
    result = _tile(
        tiny_slide.path, tmp_path / "b.zarr", stride_px=32, band_pixels=40_000
    )
    assert result.n_patches > 0
    assert len(sizes) > 3
    assert max(sizes) <= 40_000


def test_runs_under_dask_distributed(
    tiny_slide: SlideSpec, tiny_store: Path, tmp_path: Path
) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),  # type: ignore[no-untyped-call]
    ):
        progress = _Recorder()
        result = _tile(
            tiny_slide.path,
            tmp_path / "d.zarr",
            stride_px=32,
            chunk_patches=16,
            progress=progress,
        )
    assert progress.done == result.n_patches
    a, b = _arrays(tmp_path / "d.zarr"), _arrays(tiny_store)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_reads_skip_glass_and_task_specs_hold_no_handles(tiny_slide: SlideSpec) -> None:
    import pickle

    rowcol = np.array([[0, 0], [0, 1], [0, 9], [1, 2], [3, 2]])
    layout = wsi.tiles._bands.BandLayout.build(
        rowcol, band_rows=2, chunk_patches=2, max_gap_cols=3, max_cols=100
    )
    # Band 0: columns 0-2 in one read, column 9 (beyond a 6-column gap) in another.
    assert layout.segments == ((0, 0, 2), (0, 9, 9), (1, 2, 2))
    assert layout.chunk_bands == ((0, 0), (0, 0), (1, 1))
    narrow = wsi.tiles._bands.BandLayout.build(
        rowcol, band_rows=2, chunk_patches=2, max_gap_cols=3, max_cols=2
    )
    assert narrow.segments[:2] == ((0, 0, 1), (0, 2, 2))
    tasks = wsi.tiles._bands.make_tasks(
        layout,
        [0, 2],
        per_task=4,
        slide_path=str(tiny_slide.path),
        slide_mpp=None,
        mpp_from_objective=False,
        store_path="x.zarr",
        grid_mpp=PCAM_MPP,
        stride_px=96,
    )
    assert [t.chunks for t in tasks] == [(0,), (2,)]
    assert tasks[1].segments == ((1, 2, 2),)
    assert pickle.loads(pickle.dumps(tasks)) == tasks


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("missing.svs", SlideReadError, r"missing\.svs does not exist"),
        ("broken.svs", SlideReadError, r"broken\.svs is not a slide"),
        ("unreadable.svs", SlideReadError, r"unreadable\.svs.*corrupt or truncated"),
        ("small.svs", NoTissueError, r"small\.svs is 16x16 px.*smaller than one 96x96"),
        ("tcga-cr-7395-01a-01-ts1.svs", MissingResolutionError, "`mpp`"),
        (
            "boxes.tiff",
            MissingResolutionError,
            r"boxes\.tiff: level 0 is 352.8 um/px.*`mpp`",
        ),
    ],
)
def test_bad_slides_give_one_clear_error(
    fixture_slides: Path,
    tmp_path: Path,
    name: str,
    error: type[Exception],
    message: str,
) -> None:
    store = tmp_path / "out.zarr"
    with pytest.raises(error, match=message) as info:
        _tile(fixture_slides / name, store)
    assert "\n" not in str(info.value)
    assert not store.exists()


def test_truncated_slide_is_a_slide_read_error(
    corrupt_slide: Path, tmp_path: Path
) -> None:
    with pytest.raises(SlideReadError, match=r"corrupt\.tif"):
        _tile(corrupt_slide, tmp_path / "c.zarr")


def test_the_slide_directory_is_not_a_slide(
    fixture_slides: Path, tmp_path: Path
) -> None:
    with pytest.raises(SlideReadError, match="is a folder, not a slide file"):
        _tile(fixture_slides, tmp_path / "dir.zarr")


def test_no_tissue_is_a_clear_error_and_no_store(
    blank_slide: SlideSpec, tmp_path: Path
) -> None:
    store = tmp_path / "blank.zarr"
    with pytest.raises(
        NoTissueError, match=r"no tissue found in .*blank\.tif.*`tissue.min_saturation`"
    ):
        _tile(blank_slide.path, store)
    assert not store.exists()


def test_too_strict_threshold_names_the_option(generated: Path, tmp_path: Path) -> None:
    # A disc of 130 target px: tissue, but no 96 x 96 patch lies wholly on it.
    slide = write_slide(
        generated / "disc.tif",
        size_px=(1024, 1024),
        downsamples=(1, 4),
        blobs=(Blob(512, 512, 260, 260),),
    )
    with pytest.raises(
        NoTissueError, match=r"no patch of .*disc\.tif.*`tiling.min_tissue_fraction`"
    ):
        _tile(
            slide.path,
            tmp_path / "x.zarr",
            min_tissue_fraction=1.0,
            tissue_region="patch",
        )


def test_unwritable_output_names_the_folder(
    tiny_slide: SlideSpec, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"cannot write to .*not-a-folder.*`out_dir`"):
        _tile(tiny_slide.path, blocker / "s.zarr")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not a zarr store"):
        _tile(tiny_slide.path, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").exists()


def test_missing_mpp_can_be_given(no_mpp_slide: SlideSpec, tmp_path: Path) -> None:
    with pytest.raises(MissingResolutionError, match="`mpp`"):
        _tile(no_mpp_slide.path, tmp_path / "a.zarr")
    result = _tile(no_mpp_slide.path, tmp_path / "b.zarr", slide_mpp=0.243)
    assert result.n_patches > 0
    assert open_tile_store(tmp_path / "b.zarr").tiling["slide"]["mpp_source"] == "user"


@pytest.mark.parametrize(
    ("name", "slide_mpp", "target_mpp", "level"),
    [
        ("cmu-1-small-region.svs", None, PCAM_MPP, 0),
        # JPEG 2000 tiles decode slowly: a coarser grid keeps the test quick.
        ("tcga-cr-7395-01a-01-ts1.svs", 0.499, 2.5, 1),
    ],
)
def test_real_svs_slides(
    fixture_slides: Path,
    tmp_path: Path,
    name: str,
    slide_mpp: float | None,
    target_mpp: float,
    level: int,
) -> None:
    result = _tile(
        fixture_slides / name,
        tmp_path / "real.zarr",
        slide_mpp=slide_mpp,
        mpp=target_mpp,
    )
    assert result.level == level
    assert result.effective_mpp == pytest.approx(target_mpp)
    arrays = _arrays(tmp_path / "real.zarr")
    assert len(arrays[Arrays.PATCHES]) == result.n_patches > 20
    # Tissue patches are H&E, not glass.
    assert arrays[Arrays.PATCHES].mean() < 225


def test_a_real_svs_at_stride_32_gives_the_same_patches_from_cells(
    fixture_slides: Path, tmp_path: Path
) -> None:
    slide = fixture_slides / "cmu-1-small-region.svs"  # 0.499 um/px: resampled
    stores = {}
    for layout in ("cells", "patches"):
        _tile(slide, tmp_path / f"{layout}.zarr", stride_px=32, patch_layout=layout)
        stores[layout] = _arrays(tmp_path / f"{layout}.zarr")
    assert len(stores["cells"][Arrays.PATCHES]) > 100
    np.testing.assert_array_equal(
        stores["cells"][Arrays.PATCHES], stores["patches"][Arrays.PATCHES]
    )


def test_patch_tissue_fraction_weighs_partial_mask_pixels() -> None:
    g = SlideGeometry(
        width_px=2000,
        height_px=1000,
        mpp_x=0.243,
        mpp_y=0.243,
        level_dimensions=((2000, 1000),),
    )
    grid = TileGrid(geometry=g, stride_px=36)  # not a multiple of MASK_CELL_PX
    rng = np.random.default_rng(1)
    mask = rng.random(grid.mask_shape) > 0.5
    fine = np.repeat(np.repeat(mask, MASK_CELL_PX, 0), MASK_CELL_PX, 1)
    for region, offset, size in (("center", 32, CENTER_PX), ("patch", 0, 96)):
        got = patch_tissue_fraction(mask, grid, region=region)  # type: ignore[arg-type]
        assert got.shape == grid.shape
        for r, c in ((0, 0), (3, 7), (grid.shape[0] - 1, grid.shape[1] - 1)):
            y, x = r * 36 + offset, c * 36 + offset
            assert got[r, c] == pytest.approx(fine[y : y + size, x : x + size].mean())
