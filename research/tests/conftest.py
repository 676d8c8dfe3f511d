"""The model fixtures of tests/model, for research tests: ``pytest research/tests``."""

from tests.conftest import *  # noqa: F403
from tests.model.conftest import *  # noqa: F403
