"""Exception hierarchy: every error the library raises on purpose is a ``WsiError``."""

from __future__ import annotations

__all__ = [
    "AnnotationError",
    "BusyError",
    "EvaluationError",
    "MissingResolutionError",
    "ModelLoadError",
    "NoTissueError",
    "OutputError",
    "SettingsMismatchError",
    "SlideReadError",
    "WsiError",
]


class WsiError(Exception):
    """Base class of the errors wsi-heatmap reports as a one-line message."""


class SlideReadError(WsiError, OSError):
    """A slide file cannot be opened or decoded (missing, not a slide, corrupt tiles)."""


class MissingResolutionError(WsiError, ValueError):
    """A slide has no microns-per-pixel metadata; the fix is the ``mpp`` setting."""


class NoTissueError(WsiError):
    """The tissue mask (or the patch grid over it) is empty."""


class ModelLoadError(WsiError):
    """A model file cannot be loaded or does not match the tiles it should score."""


class OutputError(WsiError, OSError):
    """An output location cannot be written (permissions, full disk, not a folder)."""

    @classmethod
    def write_failed(cls, path: object, err: OSError, *, step: str = "") -> OutputError:
        """The one wording for a file that could not be written (disk full, ...)."""
        during = f" (step {step})" if step else ""
        return cls(
            f"cannot write {path}: {err.strerror or err}{during}; free space or choose "
            "a writable `out_dir`, then run the same command again to resume"
        )

    @classmethod
    def unwritable(cls, folder: object, err: OSError) -> OutputError:
        """The error for a folder that cannot be created or written."""
        return cls(
            f"cannot write to {folder}: {err.strerror or err}; choose a writable "
            "`out_dir`"
        )


class SettingsMismatchError(WsiError):
    """An existing store was written with other settings; the fix is ``overwrite``."""


class AnnotationError(WsiError, ValueError):
    """An annotation file (ASAP XML, GeoJSON, detections CSV) cannot be read."""


class BusyError(WsiError):
    """Another process is writing the same outputs; the fix: wait, or another ``out_dir``."""


class EvaluationError(WsiError, ValueError):
    """Outputs and truth cannot be evaluated together (no match, missing input, bad CSV)."""
