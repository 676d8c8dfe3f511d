"""Patch-set readers: the three layouts, subsets, splits and every kind of bad input."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from model.training.data import (
    ArrayPatchSet,
    DataError,
    H5PatchSet,
    IndexedPatchSet,
    open_patch_set,
    split_patch_set,
)

Patches = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def _kaggle(
    tmp_path: Path,
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    *,
    drop_row: int | None = None,
) -> Path:
    root = tmp_path / "kaggle"
    (root / "train").mkdir(parents=True)
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        ident = f"{i:040x}"
        Image.fromarray(image).save(root / "train" / f"{ident}.tif")
        if i != drop_row:
            rows.append({"id": ident, "label": int(label)})
    with (root / "train_labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_class_folders_read_real_patches(pcam_dir: Path) -> None:
    data = open_patch_set(pcam_dir)
    assert len(data) == 24
    assert data.labels.tolist() == [0] * 12 + [1] * 12
    patches = data.read(np.array([23, 0]))
    assert patches.shape == (2, 96, 96, 3)
    assert patches.dtype == np.uint8
    assert len(data.fingerprint()) == 16


def test_three_layouts_agree(
    tmp_path: Path, pcam_dir: Path, fixture_patches: Patches, pcam_h5_dir: Path
) -> None:
    images, labels = fixture_patches
    folders = open_patch_set(pcam_dir)
    kaggle = open_patch_set(_kaggle(tmp_path, images, labels))
    h5 = open_patch_set(pcam_h5_dir, split="valid")
    assert isinstance(h5, H5PatchSet)
    idx = np.arange(24)
    for data in (kaggle, h5):
        assert data.labels.tolist() == labels.tolist()
        np.testing.assert_array_equal(data.read(idx), folders.read(idx))


def test_h5_file_path_either_half(pcam_h5_dir: Path) -> None:
    x = pcam_h5_dir / "camelyonpatch_level_2_split_train_x.h5"
    y = pcam_h5_dir / "camelyonpatch_level_2_split_train_y.h5"
    assert len(open_patch_set(x)) == len(open_patch_set(y)) == 24


def test_h5_read_any_order_with_repeats(
    pcam_h5_dir: Path, fixture_patches: Patches
) -> None:
    images, _ = fixture_patches
    data = open_patch_set(pcam_h5_dir, split="valid")
    idx = np.array([5, 1, 5, 20, 0])
    np.testing.assert_array_equal(data.read(idx), images[idx])
    assert data.read(np.array([], dtype=np.int64)).shape == (0, 96, 96, 3)


def test_limit_is_balanced_for_every_layout(pcam_dir: Path, pcam_h5_dir: Path) -> None:
    for path in (pcam_dir, pcam_h5_dir):
        data = open_patch_set(path, split="valid", limit=6)
        assert len(data) == 6
        assert int(data.labels.sum()) == 3
        assert (
            open_patch_set(path, split="valid", limit=6).fingerprint()
            == data.fingerprint()
        )


def test_split_is_stratified_disjoint_and_seeded(pcam_dir: Path) -> None:
    data = open_patch_set(pcam_dir)
    train, valid = split_patch_set(data, valid_fraction=0.25, seed=3)
    assert len(train) + len(valid) == 24
    assert int(valid.labels.sum()) == 3
    assert len(valid) == 6
    assert not set(train.indices.tolist()) & set(valid.indices.tolist())
    again = split_patch_set(data, valid_fraction=0.25, seed=3)[1]
    assert again.indices.tolist() == valid.indices.tolist()
    np.testing.assert_array_equal(
        valid.read(np.array([0])), data.read(valid.indices[:1])
    )
    with pytest.raises(ValueError, match="valid_fraction"):
        split_patch_set(data, valid_fraction=1.0)


def test_indexed_set_checks_indices(pcam_dir: Path) -> None:
    data = open_patch_set(pcam_dir, limit=4)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 4\)"):
        IndexedPatchSet(data, [0, 4], name="bad")


@pytest.mark.parametrize(
    ("size", "mode", "message"),
    [
        ((64, 64), "RGB", r"image is 64x64, PCam patches are 96x96"),
        ((96, 96), "L", r"image mode is L, expected RGB"),
        ((96, 96), "RGBA", r"image mode is RGBA, expected RGB"),
    ],
)
def test_bad_image_is_named(
    tmp_path: Path, size: tuple[int, int], mode: str, message: str
) -> None:
    for label in (0, 1):
        (tmp_path / str(label)).mkdir()
        Image.new("RGB", (96, 96)).save(tmp_path / str(label) / "good.png")
    bad = tmp_path / "1" / "bad.png"
    Image.new(mode, size).save(bad)
    with pytest.raises(DataError, match=message) as info:
        open_patch_set(tmp_path)
    assert str(bad) in str(info.value)


def test_corrupt_image_is_named(tmp_path: Path, pcam_dir: Path) -> None:
    (tmp_path / "0").mkdir()
    source = next((pcam_dir / "0").glob("*.jpg")).read_bytes()
    (tmp_path / "0" / "truncated.jpg").write_bytes(source[: len(source) // 3])
    (tmp_path / "0" / "text.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*remove or replace it"):
        open_patch_set(tmp_path)


def test_kaggle_missing_label_row(tmp_path: Path, fixture_patches: Patches) -> None:
    images, labels = fixture_patches
    root = _kaggle(tmp_path, images[:4], labels[:4], drop_row=2)
    with pytest.raises(DataError, match=r"no label row for 1 images, e\.g\. 0+2\.tif"):
        open_patch_set(root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,value\nx,1\n", "expected a header 'id,label'"),
        (f"id,label\n{0:040x},2\n", "labels must be 0 or 1, found 2"),
        (f"id,label\n{0:040x},-1\n", "labels must be 0 or 1, found -1"),
        (f"id,label\n{0:040x},yes\n", "labels must be 0 or 1"),
        (f"id,label\n{0:040x}\n", "labels must be 0 or 1"),
    ],
)
def test_kaggle_bad_label_table(
    tmp_path: Path, fixture_patches: Patches, content: str, message: str
) -> None:
    images, labels = fixture_patches
    root = _kaggle(tmp_path, images[:1], labels[:1])
    (root / "train_labels.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        open_patch_set(root)


def test_h5_length_mismatch(
    tmp_path: Path, fixture_patches: Patches, h5_writer: Callable[..., Path]
) -> None:
    images, labels = fixture_patches
    x = h5_writer(tmp_path, images, labels, n_labels=20)
    with pytest.raises(
        DataError, match=r"'x' has 24 patches but .*_y\.h5 has 20 labels"
    ):
        open_patch_set(x)


def test_h5_bad_schema(tmp_path: Path, h5_writer: Callable[..., Path]) -> None:
    import h5py

    x = h5_writer(tmp_path, np.zeros((2, 64, 64, 3), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"expected \(N, 96, 96, 3\)"):
        open_patch_set(x)
    with h5py.File(tmp_path / "wrong_x.h5", "w") as f:
        f.create_dataset("images", data=np.zeros((1, 96, 96, 3), np.uint8))
    (tmp_path / "wrong_y.h5").write_bytes(b"")
    with pytest.raises(DataError, match="cannot read PCam HDF5 datasets"):
        open_patch_set(tmp_path / "wrong_x.h5")
    renamed = x.rename(x.with_name("patches.h5"))
    with pytest.raises(DataError, match=r"named \.\.\._x\.h5"):
        open_patch_set(renamed)


def test_h5_missing_partner_and_bad_labels(
    tmp_path: Path, h5_writer: Callable[..., Path]
) -> None:
    x = h5_writer(
        tmp_path, np.zeros((2, 96, 96, 3), np.uint8), np.array([0, 3], np.uint8)
    )
    with pytest.raises(
        DataError, match=r"labels must be 0 or 1, found values in \[0, 3\]"
    ):
        open_patch_set(x)
    Path(str(x).replace("_x.h5", "_y.h5")).unlink()
    with pytest.raises(DataError, match="needs both"):
        open_patch_set(x)


def test_not_a_patch_set(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a patch set; expected 0/ and 1/"):
        open_patch_set(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        open_patch_set(tmp_path / "missing")
    (tmp_path / "0").mkdir()
    with pytest.raises(DataError, match="no images found"):
        open_patch_set(tmp_path)


def test_array_patch_set_validates() -> None:
    with pytest.raises(DataError, match=r"expected \(N, 96, 96, 3\)"):
        ArrayPatchSet(
            name="a",
            images=np.zeros((1, 96, 96), np.uint8),
            label_array=np.zeros(1, np.uint8),
        )
    with pytest.raises(DataError, match="2 images but 1 labels"):
        ArrayPatchSet(
            name="a",
            images=np.zeros((2, 96, 96, 3), np.uint8),
            label_array=np.zeros(1, np.uint8),
        )
