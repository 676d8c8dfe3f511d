"""Execute notebooks/slide_walkthrough.ipynb on the demo slide, so it never goes stale.

An injected cell after the ``parameters`` cell points the notebook at the repository's
demo slide and a temporary output folder; every other cell runs as committed, with the
bundled model (hence the ``tf`` mark).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "slide_walkthrough.ipynb"


def test_slide_notebook_runs_on_the_demo_slide(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    tagged = [
        i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    injected = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        f"SLIDE = Path({str(ROOT / 'demo' / 'demo_slide.tif')!r})\n"
        f"OUT = Path({str(tmp_path / 'out')!r})\nMODEL = None\n"
    )
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, injected)
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    outputs = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "177 patches at 0.972 um/px" in text  # the demo slide at stride 96
    assert "scored 177 patches" in text
    assert "tumour regions" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # mask + thumbnail, heatmap, overlay
    folder = tmp_path / "out" / "demo_slide"
    for name in ("overlay.png", "heatmap.png", "tissue.png", "tumor.geojson"):
        assert (folder / name).is_file(), name
    nbformat.write(nb, tmp_path / "executed.ipynb")  # type: ignore[no-untyped-call]
