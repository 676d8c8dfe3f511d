"""``wsi-heatmap doctor``: reports each check and fails when one fails."""

from __future__ import annotations

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
