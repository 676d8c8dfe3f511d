"""Each model carries its tuned post-processing; flags and files still win; a bad
``--model`` fails before any slide is touched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from model.card import ModelCard, read_card, write_card
from model.registry import (
    BUNDLED_MODELS,
    DEFAULT_MODEL,
    resolve_model_path,
    tuned_settings,
)
from wsi.cli import main
from wsi.cli.commands import build_config, run_command
from wsi.pipeline import tuned_sections
from wsi.regions.detection import DetectionParams
from wsi.regions.polygons import PolygonParams
from wsi.regions.slide_score import SlideScoreParams

FIXTURES = Path(__file__).parent / "fixtures" / "slides"


def _model_with_settings(folder: Path, settings: dict[str, dict[str, object]]) -> Path:
    """A model file whose card tunes ``settings`` (the weights are never loaded)."""
    path = folder / "tuned.keras"
    path.write_bytes(b"not read: only the card is")
    write_card(path, ModelCard(architecture="logreg", settings=settings))
    return path


def _config(tmp_path: Path, toml: Path | None = None, **flags: object) -> object:
    with click.Context(run_command) as ctx:
        return build_config(ctx, (Path("s.tif"),), tmp_path, toml, **flags)


def test_the_model_card_settings_reach_the_run(tmp_path: Path) -> None:
    model = _model_with_settings(
        tmp_path,
        {
            "detection": {"smooth_sigma_um": 0.0, "nms_radius_um": 175.0},
            "slide_score": {"method": "top_mean"},
            "polygons": {"threshold": 0.6},
        },
    )
    config = _config(tmp_path, model_path=model)
    assert config.detection == DetectionParams(smooth_sigma_um=0.0, nms_radius_um=175.0)
    assert config.slide_score.method == "top_mean"
    assert config.polygons.threshold == 0.6
    # Fields the card leaves out keep the generic defaults.
    assert config.polygons.min_area_um2 == PolygonParams().min_area_um2


def test_flags_and_the_config_file_override_the_model_settings(tmp_path: Path) -> None:
    model = _model_with_settings(
        tmp_path,
        {"detection": {"smooth_sigma_um": 0.0}, "polygons": {"threshold": 0.6}},
    )
    toml = tmp_path / "run.toml"
    toml.write_text("[polygons]\nthreshold = 0.7\n")
    config = _config(tmp_path, toml, model_path=model, detection_sigma_um=80.0)
    assert config.detection.smooth_sigma_um == 80.0  # the flag
    assert config.polygons.threshold == 0.7  # the file
    config = _config(tmp_path, toml, model_path=model, threshold=0.9)
    assert config.polygons.threshold == 0.9  # a flag beats the file


def test_a_model_without_tuned_settings_gets_the_generic_ones(tmp_path: Path) -> None:
    model = _model_with_settings(tmp_path, {})
    config = _config(tmp_path, model_path=model)
    assert config.detection == DetectionParams()
    assert config.slide_score == SlideScoreParams()
    assert config.polygons == PolygonParams()


def test_every_bundled_model_carries_tuned_settings_and_the_default_is_bundled() -> (
    None
):
    assert DEFAULT_MODEL in BUNDLED_MODELS
    for name in BUNDLED_MODELS:
        sections = tuned_sections(name)  # the card's values build valid params
        assert {"polygons", "detection", "slide_score"} <= set(tuned_settings(name))
        assert dataclasses.asdict(sections["detection"])  # not empty
        assert str(sections["scoring"].model_path) == name
    # The default scores each patch once: with flips its 160 px trunk did not find
    # more on the tune slides, at three times the time per slide (docs/MODELS.md).
    assert tuned_sections(DEFAULT_MODEL)["scoring"].tta == "none"
    assert read_card(resolve_model_path(DEFAULT_MODEL)).recipe["internal_px"] == 160
    default, named = tuned_sections(None), tuned_sections(DEFAULT_MODEL)
    assert default["scoring"].model_path is None  # the default model, by name later
    assert default["scoring"].tta == named["scoring"].tta
    assert {k: v for k, v in default.items() if k != "scoring"} == {
        k: v for k, v in named.items() if k != "scoring"
    }


def test_a_card_with_an_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="settings must map"):
        ModelCard(architecture="x", settings={"tiling": {"stride_px": 32}})
    # Of scoring, a card tunes the TTA only: workers and schedulers are the machine's.
    with pytest.raises(ValueError, match="only tta of scoring"):
        ModelCard(architecture="x", settings={"scoring": {"workers": 8}})


def test_the_model_tta_reaches_the_run_and_a_flag_overrides_it(tmp_path: Path) -> None:
    model = _model_with_settings(tmp_path, {"scoring": {"tta": "dihedral"}})
    assert _config(tmp_path, model_path=model).scoring.tta == "dihedral"
    assert _config(tmp_path, model_path=model, tta="none").scoring.tta == "none"


def test_a_wrong_model_fails_in_seconds_before_any_slide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slides = [str(FIXTURES / "cmu-1-small-region.svs"), str(FIXTURES / "small.svs")]
    with pytest.raises(SystemExit) as exit_info:
        main([*slides, "--out", str(tmp_path / "out"), "--model", "nonexistent"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "nonexistent" in err
    for name in BUNDLED_MODELS:
        assert name in err  # the error lists what can be chosen
    assert not (tmp_path / "out").exists()  # checked before any slide: no store


def test_a_model_for_other_patches_fails_before_any_slide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tiling at another scale than the model's is refused before tiling starts."""
    slides = [str(FIXTURES / "cmu-1-small-region.svs")]
    with pytest.raises(SystemExit) as exit_info:
        main([*slides, "--out", str(tmp_path / "out"), "--target-mpp", "0.5"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "trained at 0.972 um/px but the tiles are at 0.5 um/px" in err
    assert not (tmp_path / "out").exists()
