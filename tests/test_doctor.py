"""``wsi-heatmap doctor``: reports each check and fails when one fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wsi import doctor
from wsi.cli import cli


def _fast(monkeypatch: pytest.MonkeyPatch, **failures: str) -> None:
    """Skip the slow checks (TensorFlow, the model) unless told to fail them."""
    for name in ("_check_tensorflow", "_check_model", "_check_slide_end_to_end"):
        message = failures.get(name)

        def check(message: str | None = message) -> str:
            if message:
                raise RuntimeError(message)
            return "skipped in this test"

        monkeypatch.setattr(doctor, name, check)


def test_doctor_reports_versions_and_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    _fast(monkeypatch)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "openslide: library 4." in result.output
    assert "zarr 3." in result.output


def test_doctor_fails_when_a_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fast(monkeypatch, _check_model="model/weights/x.keras: no sidecar")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert (
        "[FAIL] bundled model: RuntimeError: model/weights/x.keras: no sidecar"
        in result.output
    )


@pytest.mark.slow
def test_doctor_end_to_end_with_the_bundled_model() -> None:
    checks = doctor.run_checks()
    assert all(c.ok for c in checks), checks


def test_issue_30_doctor_out_names_damaged_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wsi-heatmap doctor OUT` reports a store whose scores chunk is gone."""
    import numpy as np

    from tests.fakes import NORMAL_RGB, ColourClassifier
    from wsi.cli import main
    from wsi.pipeline import RunConfig, run
    from wsi.store.layout import Arrays
    from wsi.synthetic import write_pyramid_tiff

    rgb = np.full((1536, 1536, 3), 245, np.uint8)
    rgb[300:1200, 300:1200] = NORMAL_RGB
    slides = []
    for stem in ("a", "b"):
        slides.append(write_pyramid_tiff(tmp_path / f"{stem}.tif", rgb, mpp=0.243))
    out = tmp_path / "out"
    assert run(
        RunConfig(slides=tuple(slides), out_dir=out), classifier=ColourClassifier()
    ).ok
    main(["doctor", str(out)])  # all stores fine: returns, exit status 0
    assert "[FAIL]" not in capsys.readouterr().out
    (out / "b" / "b.zarr" / Arrays.SCORES / "c" / "0").unlink()
    with pytest.raises(SystemExit) as damaged:
        main(["doctor", str(out)])
    printed = capsys.readouterr().out
    assert damaged.value.code == 1
    assert "[ok  ] a:" in printed
    assert "[FAIL] b:" in printed
    assert "scores missing or damaged" in printed
