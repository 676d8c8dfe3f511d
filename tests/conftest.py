"""Session fixtures: real slides copied into the repository and generated slides.

Generated slides are Camelyon-like pyramidal TIFFs (``tests/slides.py``) with known
tissue blobs and known microns per pixel: Radboud's 0.243 um/px (PCam's level 2 is
then an exact level), Utrecht's 0.226 (resampled from level 2), and a pyramid whose
downsamples are neither integers nor powers of two.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.slides import Blob, SlideSpec, write_slide

FIXTURES = Path(__file__).parent / "fixtures"
SLIDES = FIXTURES / "slides"
TISSUE = FIXTURES / "tissue"

#: The tissue blob of the generated slides, in level-0 pixels.
BLOB = Blob(1024, 1024, 600, 450)


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files of the code under test (and its subprocesses, dask's scratch
    space) go under pytest's base temp folder, not the system's."""
    base = config.getoption("basetemp")
    if base:
        folder = Path(base).resolve().parent / f"{Path(base).name}-tmp"
        shutil.rmtree(folder, ignore_errors=True)  # last run's, as pytest does basetemp
        folder.mkdir(parents=True)
        tempfile.tempdir = str(folder)
        os.environ["TMPDIR"] = str(folder)


@pytest.fixture(scope="session")
def fixture_slides() -> Path:
    """Folder of the real slide fixtures (cmu, tcga, small, boxes, unreadable, broken)."""
    return SLIDES


@pytest.fixture(scope="session")
def tissue_fixtures() -> Path:
    """Folder of the tissue-tile fixtures and histolab's reference masks."""
    return TISSUE


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding this session's generated slides."""
    return tmp_path_factory.mktemp("slides")


@pytest.fixture(scope="session")
def tiny_slide(generated: Path) -> SlideSpec:
    """2048 x 2048 px at 0.243 um/px (Radboud), 4 levels (1, 2, 4, 8), one blob."""
    return write_slide(generated / "tiny.tif", mpp=0.243, blobs=(BLOB,))


@pytest.fixture(scope="session")
def utrecht_slide(generated: Path) -> SlideSpec:
    """Like ``tiny_slide`` at 0.226 um/px (Utrecht): PCam scale needs resampling."""
    return write_slide(generated / "utrecht.tif", mpp=0.226, blobs=(BLOB,))


@pytest.fixture(scope="session")
def npot_slide(generated: Path) -> SlideSpec:
    """Downsamples (1, 3, 9) rounded to sizes: 2.9985..., neither integer nor 2^k.

    At 0.324 um/px level 1 (0.9715 um/px) is within 1% of PCam's 0.972.
    """
    return write_slide(
        generated / "npot.tif", mpp=0.324, downsamples=(1, 3, 9), blobs=(BLOB,)
    )


@pytest.fixture(scope="session")
def pen_slide(generated: Path) -> SlideSpec:
    """Tissue blob plus a green pen ellipse and a black ellipse on glass."""
    blobs = (BLOB, Blob(300, 1750, 180, 160, "pen"), Blob(1750, 300, 160, 160, "black"))
    return write_slide(generated / "pen.tif", mpp=0.243, blobs=blobs)


@pytest.fixture(scope="session")
def blank_slide(generated: Path) -> SlideSpec:
    """Glass only: no tissue."""
    return write_slide(generated / "blank.tif", mpp=0.243, blobs=())


@pytest.fixture(scope="session")
def no_mpp_slide(generated: Path) -> SlideSpec:
    """A pyramidal TIFF without resolution tags."""
    return write_slide(generated / "no_mpp.tif", mpp=None, blobs=(BLOB,))


@pytest.fixture(scope="session")
def objective_only_slide(generated: Path) -> SlideSpec:
    """An Aperio-style TIFF with a 40x objective power and no microns per pixel."""
    return write_slide(
        generated / "objective.svs", mpp=None, blobs=(BLOB,), aperio_magnification=40
    )


@pytest.fixture(scope="session")
def corrupt_slide(tiny_slide: SlideSpec, generated: Path) -> Path:
    """``tiny_slide`` truncated to a third of its bytes."""
    data = tiny_slide.path.read_bytes()
    path = generated / "corrupt.tif"
    path.write_bytes(data[: len(data) // 3])
    return path
