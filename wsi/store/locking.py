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
from wsi.store.layout import lock_path

__all__ = ["discard_unused", "store_lock"]


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
            "wait for it to finish, or choose another `out_dir`"
        ) from None
    except OSError as err:
        raise OutputError.unwritable(path.parent, err) from err
    try:
        yield
    finally:
        lock.release()


def discard_unused(store: Path) -> bool:
    """Remove a slide's output folder if it holds nothing but its free lock file.

    A slide that fails before anything is written (missing file, no resolution)
    would otherwise leave ``OUT/<stem>/`` with only ``<stem>.lock`` in it. The lock
    is taken (without waiting) while the file is removed, so a folder that another
    process is starting to write is left alone.

    Returns
    -------
    bool
        True if the folder was removed.
    """
    path = lock_path(store)
    folder = path.parent
    try:
        if {p.name for p in folder.iterdir()} - {path.name}:
            return False
        lock = FileLock(path, timeout=0, is_singleton=True)
        with lock:
            path.unlink(missing_ok=True)
        folder.rmdir()
    except (OSError, Timeout):
        return False
    return True
