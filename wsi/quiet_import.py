"""Hide what a native library prints on its own stderr while Python imports it.

TensorFlow's C++ start-up lines ("All log messages before absl::InitializeLog() ...",
"oneDNN custom operations are on", "Could not find cuda drivers") are written to file
descriptor 2 before ``TF_CPP_MIN_LOG_LEVEL`` takes effect. The CLI installs
:func:`quiet_first_import` for ``tensorflow`` unless ``--verbose`` or ``--debug``:
the first import, wherever it happens, runs with descriptor 2 pointed at a
temporary file, which is replayed if the import fails. Nothing is imported early.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import ModuleType

__all__ = ["quiet_first_import"]

_LOCK = threading.Lock()


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module`` with descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module sees its real loader (resources, ``is_package``, pickling).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        sys.stderr.flush()
        with _LOCK, tempfile.TemporaryFile() as sink:
            saved = os.dup(2)
            os.dup2(sink.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                os.dup2(saved, 2)
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``name`` once through the other finders and wraps its loader."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup below
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_first_import(name: str) -> None:
    """Silence descriptor 2 during the first import of top-level module ``name``.

    Does nothing if ``name`` is already imported or a hook for it is installed.

    Parameters
    ----------
    name
        A top-level module, e.g. ``"tensorflow"``.
    """
    if name in sys.modules or any(
        isinstance(f, _QuietFinder) and f.name == name for f in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _QuietFinder(name))
