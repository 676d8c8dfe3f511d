"""Labelled PCam patch sets in the three common layouts, as one small interface.

* class folders: ``SPLIT/{0,1}/*.jpg|png|tif`` (the layout of the shared PCam copy);
* the Kaggle layout: ``train/*.tif`` plus ``train_labels.csv`` with ``id,label``;
* the official PCam HDF5 pair ``camelyonpatch_level_2_split_<split>_{x,y}.h5``,
  streamed from disk (the train split is 7 GB and is never loaded whole).

Image-file layouts are decoded once into memory, checking every file, so a bad file
is reported by name before training starts rather than halfway through an epoch.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wsi.errors import WsiError
from wsi.geometry import PATCH_PX

__all__ = [
    "ArrayPatchSet",
    "DataError",
    "H5PatchSet",
    "IndexedPatchSet",
    "PatchSet",
    "open_patch_set",
    "sample_index",
    "split_patch_set",
]

logger = logging.getLogger(__name__)


class DataError(WsiError, ValueError):
    """A labelled patch set is malformed (wrong size or mode, corrupt, missing labels)."""


class PatchSet(Protocol):
    """Labelled 96x96 RGB patches that can be read by index."""

    @property
    def name(self) -> str:
        """A short name for messages."""
        ...

    def __len__(self) -> int:
        """Number of patches."""
        ...

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels, 1 = tumour in the centre 32x32."""
        ...

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """``uint8[len(indices), 96, 96, 3]`` patches in the order given."""
        ...

    def fingerprint(self) -> str:
        """A short hash identifying the data (files and labels)."""
        ...


@dataclass(frozen=True)
class ArrayPatchSet:
    """Patches held in memory."""

    name: str
    images: npt.NDArray[np.uint8]
    label_array: npt.NDArray[np.uint8]
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1:] != (PATCH_PX, PATCH_PX, 3):
            raise DataError(
                f"{self.name}: images have shape {self.images.shape}, "
                "expected (N, 96, 96, 3)"
            )
        if self.images.dtype != np.uint8:
            raise DataError(
                f"{self.name}: images are {self.images.dtype}, expected uint8"
            )
        if len(self.images) != len(self.label_array):
            raise DataError(
                f"{self.name}: {len(self.images)} images but {len(self.label_array)} labels"
            )
        _check_binary(self.label_array, where=self.name)

    def __len__(self) -> int:
        """Number of patches."""
        return len(self.label_array)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels."""
        return self.label_array

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Patches at ``indices``."""
        return self.images[indices]

    def fingerprint(self) -> str:
        """Hash of the file names and labels (or of the pixels without names)."""
        digest = hashlib.sha256()
        if self.sources:
            digest.update("\n".join(self.sources).encode())
        else:
            digest.update(self.images.tobytes())
        digest.update(self.label_array.tobytes())
        return digest.hexdigest()[:16]


class H5PatchSet:
    """The official PCam HDF5 pair, read lazily from disk.

    Only the labels (one byte per patch) are held in memory; ``read`` fetches the
    requested patches from ``x`` batch by batch.
    """

    def __init__(self, x_path: Path, y_path: Path) -> None:
        import h5py

        self.name = x_path.name
        self._x_path, self._y_path = x_path, y_path
        for path in (x_path, y_path):
            if not path.is_file():
                raise DataError(
                    f"{path}: no such file; the PCam HDF5 layout needs both "
                    "camelyonpatch_level_2_split_<split>_x.h5 and its _y.h5"
                )
        try:
            self._x_file = h5py.File(x_path, "r")
            self._x = self._x_file["x"]
            with h5py.File(y_path, "r") as y_file:
                y = np.asarray(y_file["y"])
        except (OSError, KeyError) as err:
            raise DataError(
                f"{x_path}: cannot read PCam HDF5 datasets 'x' and 'y' ({err}); "
                "expected camelyonpatch_level_2_split_<split>_{x,y}.h5"
            ) from err
        if self._x.ndim != 4 or self._x.shape[1:] != (PATCH_PX, PATCH_PX, 3):
            raise DataError(
                f"{x_path}: 'x' has shape {self._x.shape}, expected (N, 96, 96, 3)"
            )
        if self._x.dtype != np.uint8:
            raise DataError(f"{x_path}: 'x' is {self._x.dtype}, expected uint8")
        if len(y) != len(self._x):
            raise DataError(
                f"{x_path}: 'x' has {len(self._x)} patches but {y_path.name} has "
                f"{len(y)} labels; use the matching _x/_y pair"
            )
        if y.size != len(y):
            raise DataError(
                f"{y_path}: 'y' has shape {y.shape}, expected one label per patch "
                "(PCam stores (N, 1, 1, 1))"
            )
        self._labels = y.reshape(-1).astype(np.uint8)
        _check_binary(self._labels, where=str(y_path))

    def __len__(self) -> int:
        """Number of patches."""
        return len(self._labels)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels."""
        return self._labels

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Patches at ``indices`` (h5py needs increasing indices: sort, then undo)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return np.empty((0, PATCH_PX, PATCH_PX, 3), dtype=np.uint8)
        order = np.argsort(indices)
        sorted_idx = np.asarray(indices)[order]
        unique, inverse = np.unique(sorted_idx, return_inverse=True)
        block = np.asarray(self._x[unique.tolist()], dtype=np.uint8)[inverse]
        out = np.empty_like(block)
        out[order] = block
        return out

    def fingerprint(self) -> str:
        """Hash of the file names, sizes and labels."""
        digest = hashlib.sha256()
        for path in (self._x_path, self._y_path):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
        digest.update(self._labels.tobytes())
        return digest.hexdigest()[:16]


class IndexedPatchSet:
    """A view of some patches of another set, in a given order (no copy)."""

    def __init__(self, base: PatchSet, indices: npt.ArrayLike, *, name: str) -> None:
        self.name = name
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {self.indices.shape}")
        if self.indices.size and (
            self.indices.min() < 0 or self.indices.max() >= len(base)
        ):
            raise ValueError(f"indices must lie in [0, {len(base)}) for {base.name}")
        self._labels = base.labels[self.indices]

    def __len__(self) -> int:
        """Number of patches."""
        return len(self.indices)

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """``uint8[N]`` labels."""
        return self._labels

    def read(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """Patches at ``indices`` of this view."""
        return self.base.read(self.indices[np.asarray(indices, dtype=np.int64)])

    def fingerprint(self) -> str:
        """Hash of the base set's fingerprint and the chosen indices."""
        digest = hashlib.sha256(self.base.fingerprint().encode())
        digest.update(self.indices.tobytes())
        return digest.hexdigest()[:16]


def split_patch_set(
    patches: PatchSet, *, valid_fraction: float, seed: int = 0
) -> tuple[IndexedPatchSet, IndexedPatchSet]:
    """Split a set into training and validation parts, stratified by label.

    Split before augmenting: the validation part is never augmented. Patches of the
    same slide can land on both sides (PCam and its Kaggle copy carry no slide ids),
    so the validation AUC of such a split is optimistic; prefer the official split.

    Parameters
    ----------
    patches
        The labelled set.
    valid_fraction
        Fraction of each class that goes to validation, in (0, 1).
    seed
        Seed of the permutation.

    Returns
    -------
    tuple of IndexedPatchSet
        ``(train, valid)``, each in increasing index order.

    Examples
    --------
    >>> images = np.zeros((10, 96, 96, 3), np.uint8)
    >>> data = ArrayPatchSet(name="d", images=images, label_array=np.arange(10) % 2)
    >>> train, valid = split_patch_set(data, valid_fraction=0.2)
    >>> len(train), len(valid), valid.labels.tolist()
    (8, 2, [0, 1])
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    rng = np.random.default_rng(seed)
    valid: list[npt.NDArray[np.int64]] = []
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(patches.labels == label))
        if len(members) >= 2:
            valid.append(members[: max(1, round(valid_fraction * len(members)))])
    valid_idx = np.sort(np.concatenate(valid)) if valid else np.empty(0, np.int64)
    train_idx = np.setdiff1d(np.arange(len(patches)), valid_idx)
    return (
        IndexedPatchSet(patches, train_idx, name=f"{patches.name}[train]"),
        IndexedPatchSet(patches, valid_idx, name=f"{patches.name}[valid]"),
    )


def sample_index(size: int, n: int, *, seed: int) -> npt.NDArray[np.int64]:
    """``min(n, size)`` distinct positions of ``range(size)``, fixed by ``seed``, sorted.

    The one seeded sample of a patch set (batch-norm recalibration, the scripts that
    score a sample of the training set).

    Examples
    --------
    >>> sample_index(5, 9, seed=0).tolist()
    [0, 1, 2, 3, 4]
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(size, min(n, size), replace=False)).astype(np.int64)


def open_patch_set(
    path: Path, *, split: str = "train", workers: int = 8, limit: int | None = None
) -> PatchSet:
    """Open a labelled patch set in any of the three layouts.

    Parameters
    ----------
    path
        A folder holding ``0/`` and ``1/``; a Kaggle folder holding
        ``train_labels.csv``; a folder holding the PCam ``.h5`` files (``split``
        picks them); or one ``..._x.h5`` file.
    split
        ``train``, ``valid`` or ``test``, for the HDF5 layout.
    workers
        Threads decoding image files.
    limit
        Use at most this many patches, half of each class where both have enough
        (a fixed choice, for quick runs and tests).

    Raises
    ------
    DataError
        The layout is not recognised, or a file or label is bad.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".h5":
        return _limited(_h5_pair(path), limit)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; give a patch folder or PCam .h5 file")
    h5 = path / f"camelyonpatch_level_2_split_{split}_x.h5"
    if h5.exists():
        return _limited(_h5_pair(h5), limit)
    from model.training._image_files import (
        IMAGE_SUFFIXES,
        class_folder_items,
        decode_all,
        kaggle_items,
    )

    if (path / "0").is_dir() or (path / "1").is_dir():
        files, labels = class_folder_items(path)
    elif (path / "train_labels.csv").exists():
        files, labels = kaggle_items(path)
    else:
        raise DataError(
            f"{path}: not a patch set; expected 0/ and 1/ class folders, "
            "train_labels.csv with train/*.tif, or camelyonpatch_level_2_*.h5"
        )
    if limit is not None:
        keep = _balanced_subset(labels, limit)
        files = [files[i] for i in keep]
        labels = labels[keep]
    if not files:
        raise DataError(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    images = decode_all(files, workers=workers)
    return ArrayPatchSet(
        name=path.name,
        images=images,
        label_array=labels,
        sources=tuple(str(f.relative_to(path)) for f in files),
    )


def _h5_pair(path: Path) -> H5PatchSet:
    """The ``_x``/``_y`` pair that ``path`` (either of the two) belongs to."""
    if path.name.endswith("_x.h5"):
        return H5PatchSet(path, path.with_name(path.name[: -len("_x.h5")] + "_y.h5"))
    if path.name.endswith("_y.h5"):
        return H5PatchSet(path.with_name(path.name[: -len("_y.h5")] + "_x.h5"), path)
    raise DataError(
        f"{path}: PCam HDF5 files are named ..._x.h5 (patches) and ..._y.h5 (labels); "
        "rename the pair or give the folder holding them"
    )


def _limited(patches: PatchSet, limit: int | None) -> PatchSet:
    if limit is None or limit >= len(patches):
        return patches
    keep = _balanced_subset(patches.labels, limit)
    return IndexedPatchSet(patches, keep, name=f"{patches.name}[:{limit}]")


def _check_binary(labels: npt.NDArray[np.generic], *, where: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() > 1):
        raise DataError(
            f"{where}: labels must be 0 or 1, found values in "
            f"[{labels.min()}, {labels.max()}]"
        )


def _balanced_subset(
    labels: npt.NDArray[np.uint8], limit: int
) -> npt.NDArray[np.int64]:
    """Up to ``limit`` indices, half of each class where both have enough."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    rng = np.random.default_rng(0)
    neg, pos = (rng.permutation(np.flatnonzero(labels == c)) for c in (0, 1))
    n_pos = min(len(pos), max(limit // 2, limit - len(neg)))
    return np.sort(np.concatenate([pos[:n_pos], neg[: limit - n_pos]]))
