"""Run the Examples of model/ docstrings (pytest collects doctests only under wsi/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "model.tta",
    "model.training.evaluate",
    "model.training.data",
    "model.predict",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
