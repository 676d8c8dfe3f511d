"""Progress reporting: a small Protocol, a no-op default and a tqdm implementation."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "TqdmProgress", "ensure_progress"]


class Progress(Protocol):
    """Receives progress from long library functions."""

    def start(self, total: int, desc: str) -> None:
        """Begin a stage of ``total`` units."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units are done."""

    def close(self) -> None:
        """The stage is over."""


class NullProgress:
    """Reports nothing (the library's default)."""

    def start(self, total: int, desc: str) -> None:
        """Begin a stage (ignored)."""

    def advance(self, n: int = 1) -> None:
        """Advance (ignored)."""

    def close(self) -> None:
        """End a stage (ignored)."""


class TqdmProgress:
    """One tqdm bar per stage, on stderr."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self._kwargs = tqdm_kwargs
        self._bar: Any = None

    def start(self, total: int, desc: str) -> None:
        """Open a bar."""
        from tqdm.auto import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=desc, **self._kwargs)

    def advance(self, n: int = 1) -> None:
        """Move the bar."""
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def ensure_progress(progress: Progress | None) -> Progress:
    """``progress`` or a no-op."""
    return progress if progress is not None else NullProgress()
