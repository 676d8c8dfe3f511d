"""Execute notebooks/patch_classifier.ipynb on the fixtures, so it never goes stale.

The parameters cell (tagged ``parameters``) is followed by an injected cell that points the
notebook at the 24 fixture patches and at a tiny logistic-regression run trained by the
``tiny_run`` fixture; every other cell runs as committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "patch_classifier.ipynb"


def test_notebook_runs_on_the_fixtures(
    tiny_run: Path, pcam_dir: Path, tmp_path: Path
) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    tagged = [
        i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    injected = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        f"DATA = {str(pcam_dir)!r}\n"
        f"RUN_DIR = {str(tiny_run)!r}\n"
        "MODEL = None\nLIMIT = None\nN_WRONG = 8\n"
        "TTA_MODES_TO_COMPARE = ('none', 'flips', 'dihedral')\n"
    )
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, injected)

    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    outputs = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "24 patches, 12 with tumour" in text
    assert "tta=dihedral" in text
    assert "best epoch" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # curves, ROC, worst patches
    nbformat.write(nb, tmp_path / "executed.ipynb")  # type: ignore[no-untyped-call]
