"""Read a legacy (pre-zip) PyTorch ``.pth`` state dict with numpy, without torch.

The legacy format is a run of pickles: a magic number, a protocol version, system
information, the state dict itself (tensors refer to storages by persistent id), then
the list of storage keys; after it, each storage's raw bytes follow as an int64 element
count and the elements. Only the classes a state dict needs are unpickled
(``torch._utils._rebuild_tensor_v2``, ``torch.*Storage``, ``collections.OrderedDict``):
any other class in the file is refused, so no code from the file runs.

Notes
-----
1. Tensors are views: ``(storage, offset, shape, strides)``, strides in elements. The
   weights this project reads are not contiguous (TensorFlow-ordered kernels saved
   as permuted views), so each array is rebuilt with its offset and strides.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

__all__ = ["LegacyFormatError", "read_legacy_state_dict"]

MAGIC_NUMBER: Final = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION: Final = 1001
#: torch storage class name -> numpy dtype of its elements.
STORAGE_DTYPES: Final = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class LegacyFormatError(ValueError):
    """The file is not a legacy PyTorch state dict this reader accepts."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = STORAGE_DTYPES[name]


class _TensorRef:
    """A tensor whose storage bytes are read after the pickles."""

    def __init__(
        self, key: str, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.key, self.offset, self.shape, self.stride = key, offset, shape, stride


def _rebuild_tensor_v2(
    storage: tuple[str, np.dtype[Any]],
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    *_: Any,
) -> _TensorRef:
    return _TensorRef(storage[0], offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle: BinaryIO, source: Path) -> None:
        super().__init__(handle)
        self.source = source
        self.dtypes: dict[str, np.dtype[Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise LegacyFormatError(
            f"{self.source}: refuses to unpickle {module}.{name}; only plain tensor "
            "state dicts are read"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise LegacyFormatError(f"{self.source}: unknown persistent id {pid!r}")
        _, storage_type, key = pid[:3]
        self.dtypes[key] = storage_type.dtype
        return (key, storage_type.dtype)


def read_legacy_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Read a legacy-format ``.pth`` state dict into numpy arrays.

    Parameters
    ----------
    path
        A file written by ``torch.save(..., _use_new_zipfile_serialization=False)``
        (or by torch < 1.6).

    Returns
    -------
    dict
        Name -> array with the tensor's shape (a contiguous copy), in file order.

    Raises
    ------
    LegacyFormatError
        Not a legacy file (a zip-format file says so), a class other than tensors,
        or truncated storage data.
    """
    path = Path(path)
    with path.open("rb") as handle:
        if handle.read(2) == b"PK":
            raise LegacyFormatError(
                f"{path}: is a zip-format torch file; this reader takes only the "
                "legacy format"
            )
        handle.seek(0)
        try:
            magic = pickle.load(handle)
        except Exception as err:
            raise LegacyFormatError(f"{path}: not a torch file ({err})") from err
        if magic != MAGIC_NUMBER:
            raise LegacyFormatError(f"{path}: not a legacy torch file (bad magic)")
        if _Unpickler(handle, path).load() != PROTOCOL_VERSION:
            raise LegacyFormatError(f"{path}: unsupported torch protocol version")
        _Unpickler(handle, path).load()  # system info: byte order and type sizes
        unpickler = _Unpickler(handle, path)
        state = unpickler.load()
        keys = _Unpickler(handle, path).load()
        storages = {
            key: _read_storage(handle, unpickler.dtypes[key], path) for key in keys
        }
    if not isinstance(state, dict):
        raise LegacyFormatError(f"{path}: holds a {type(state).__name__}, not a dict")
    return {
        name: _view(storages[ref.key], ref) if isinstance(ref, _TensorRef) else ref
        for name, ref in state.items()
    }


def _read_storage(
    handle: BinaryIO, dtype: np.dtype[Any], path: Path
) -> npt.NDArray[Any]:
    head = handle.read(8)
    if len(head) != 8:
        raise LegacyFormatError(f"{path}: truncated storage data")
    count = int(np.frombuffer(head, "<i8")[0])
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise LegacyFormatError(f"{path}: truncated storage data")
    return np.frombuffer(data, dtype)


def _view(storage: npt.NDArray[Any], ref: _TensorRef) -> npt.NDArray[Any]:
    item = storage.itemsize
    needed = (
        ref.offset
        + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
        + 1
    )
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, storage.dtype)
    if needed > storage.size:
        raise LegacyFormatError(f"tensor view exceeds its storage ({ref.key})")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * item for s in ref.stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)
