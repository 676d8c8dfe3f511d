"""One writer per slide: an OS file lock beside the store.

Two processes given the same slide and output folder (a batch started twice, two
cluster jobs over one slide list) would otherwise write the same zarr chunks and
output files at once. The lock is ``flock``-based (via ``filelock``), so the
operating system releases it when the holder dies: a killed run leaves nothing
stale, and the next run resumes. Locks on network file systems are only as good
as the file system's ``flock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from wsi.errors import BusyError, OutputError
from wsi.layout import lock_path

__all__ = ["store_lock"]


@contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """Hold the lock of ``store`` (and the outputs beside it) for the block.

    Re-entrant in one thread, so the pipeline can hold it around the stages that
    take it too.

    Parameters
    ----------
    store
        The zarr store (``SlideOutputs.store``); its folder is created if needed.

    Raises
    ------
    BusyError
        Another process holds the lock.
    OutputError
        The lock file cannot be created.
    """
    path = lock_path(store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0, is_singleton=True)
        lock.acquire()
    except Timeout:
        raise BusyError(
            f"{store}: another process is writing these outputs (lock {path}); "
            "wait for it to finish, or choose another --out"
        ) from None
    except OSError as err:
        raise OutputError.unwritable(path.parent, err) from err
    try:
        yield
    finally:
        lock.release()
