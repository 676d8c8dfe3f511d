"""The legacy torch state-dict reader, on files the tests write themselves."""

from __future__ import annotations

import collections
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.training.torch_legacy import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    LegacyFormatError,
    read_legacy_state_dict,
)


def _fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Modules named like torch's, so pickle writes the globals torch would."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    storages = {}
    for name in ("FloatStorage", "LongStorage"):
        cls = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, cls)
        storages[name] = cls
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return types.SimpleNamespace(rebuild=_rebuild_tensor_v2, **storages)


class _Tensor:
    def __init__(
        self,
        fake: Any,
        key: str,
        kind: str,
        offset: int,
        shape: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> None:
        self.fake, self.key, self.kind = fake, key, kind
        self.offset, self.shape, self.stride = offset, shape, stride

    def __reduce__(self) -> Any:
        storage = ("storage", getattr(self.fake, self.kind), self.key, "cpu", 0, None)
        return (
            self.fake.rebuild,
            (
                _Storage(storage),
                self.offset,
                self.shape,
                self.stride,
                False,
                collections.OrderedDict(),
            ),
        )


class _Storage:
    def __init__(self, pid: tuple[Any, ...]) -> None:
        self.pid = pid


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, _Storage) else None


def write_legacy(
    path: Path,
    state: dict[str, _Tensor],
    storages: dict[str, np.ndarray],
    *,
    extra: Any = None,
) -> None:
    """Write the sequence of pickles and raw storages torch's legacy format has."""
    with path.open("wb") as handle:
        pickle.dump(MAGIC_NUMBER, handle, protocol=2)
        pickle.dump(PROTOCOL_VERSION, handle, protocol=2)
        pickle.dump(
            {"protocol_version": PROTOCOL_VERSION, "little_endian": True},
            handle,
            protocol=2,
        )
        body = collections.OrderedDict(state)
        if extra is not None:
            body["extra"] = extra
        _Pickler(handle, protocol=2).dump(body)
        pickle.dump(list(storages), handle, protocol=2)
        for data in storages.values():
            handle.write(np.int64(data.size).tobytes())
            handle.write(data.tobytes())


def test_reads_non_contiguous_views_with_their_offset_and_strides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_torch(monkeypatch)
    # A (2, 3, 2, 2) kernel stored in another axis order, as TF-ported weights are,
    # after 5 leading elements of another tensor sharing the storage.
    kernel = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    stored = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))  # (kh, kw, in, out)
    data = np.concatenate([np.full(5, -1, np.float32), stored.ravel()])
    strides = tuple(
        s // 4
        for s in np.lib.stride_tricks.as_strided(stored, stored.shape)
        .transpose(3, 2, 0, 1)
        .strides
    )
    counts = np.array([7], np.int64)
    path = tmp_path / "legacy.pth"
    write_legacy(
        path,
        {
            "conv.weight": _Tensor(fake, "0", "FloatStorage", 5, (2, 3, 2, 2), strides),
            "bias": _Tensor(fake, "0", "FloatStorage", 0, (5,), (1,)),
            "bn.num_batches_tracked": _Tensor(fake, "1", "LongStorage", 0, (1,), (1,)),
        },
        {"0": data, "1": counts},
    )
    state = read_legacy_state_dict(path)
    assert list(state) == ["conv.weight", "bias", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["conv.weight"], kernel)
    np.testing.assert_array_equal(state["bias"], np.full(5, -1, np.float32))
    assert state["bn.num_batches_tracked"].dtype == np.int64
    assert state["bn.num_batches_tracked"][0] == 7


def test_refuses_any_other_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_torch(monkeypatch)
    path = tmp_path / "evil.pth"
    write_legacy(
        path,
        {"w": _Tensor(fake, "0", "FloatStorage", 0, (1,), (1,))},
        {"0": np.zeros(1, np.float32)},
        extra=Path("x"),
    )
    with pytest.raises(LegacyFormatError, match="refuses to unpickle pathlib"):
        read_legacy_state_dict(path)


def test_truncated_storage_and_zip_format_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_torch(monkeypatch)
    path = tmp_path / "cut.pth"
    write_legacy(
        path,
        {"w": _Tensor(fake, "0", "FloatStorage", 0, (4,), (1,))},
        {"0": np.zeros(4, np.float32)},
    )
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(LegacyFormatError, match="truncated"):
        read_legacy_state_dict(path)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(LegacyFormatError, match="zip-format"):
        read_legacy_state_dict(zipped)
    other = tmp_path / "other.pth"
    other.write_bytes(pickle.dumps(12345))
    with pytest.raises(LegacyFormatError, match="bad magic"):
        read_legacy_state_dict(other)
