"""CLI wiring and exit codes (numbers are checked in the library tests)."""

from __future__ import annotations

import subprocess
import sys
import unittest.mock
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsi.cli import cli, main

FIXTURES = Path(__file__).parent / "fixtures" / "slides"


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.err


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "tile",
        "score",
        "stitch",
        "train",
        "eval-patches",
        "view",
        "doctor",
    ):
        assert command in result.output


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from wsi.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'dask' not in sys.modules, 'dask imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing.svs", "missing.svs"),
        ("broken.svs", "broken.svs"),
        ("small.svs", "small.svs"),
    ],
)
def test_bad_slide_is_one_line_and_exit_1(
    name: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(["tile", str(FIXTURES / name), "--out", str(tmp_path)], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert expected in lines[0]
    assert "Traceback" not in err


def test_missing_mpp_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide = FIXTURES / "tcga-cr-7395-01a-01-ts1.svs"
    code, err = _main(["tile", str(slide), "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "--mpp" in err
    assert "Traceback" not in err


def test_default_command_is_the_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main([str(FIXTURES / "broken.svs"), "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "broken.svs" in err
    assert (tmp_path / "run.json").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"broken\.svs"):
        main(["--debug", "tile", str(FIXTURES / "broken.svs"), "--out", str(tmp_path)])


def test_config_file_fills_settings_and_flags_win(tmp_path: Path) -> None:
    import click

    from wsi.cli.commands import build_config, run_command

    toml = tmp_path / "run.toml"
    toml.write_text("[tiling]\nstride_px = 32\n[polygons]\nthreshold = 0.7\n")
    with click.Context(run_command) as ctx:
        config = build_config(ctx, (Path("s.tif"),), tmp_path, toml, threshold=0.9)
    assert config.tiling.stride_px == 32
    assert config.polygons.threshold == 0.9


def test_config_file_with_unknown_section_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "s.tif", "--config", str(_toml(tmp_path))])
    assert result.exit_code == 2
    assert "unknown section [bogus]" in result.output


def _toml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("[bogus]\nx = 1\n")
    return path


def test_issue_11_missing_slide_is_one_line_and_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing.svs"), "--out", str(out)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 1
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert lines[0].count("missing.svs") == 1
    assert not (out / "missing").exists()
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]


def test_issue_11_tile_failure_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(
        ["tile", str(tmp_path / "missing.svs"), "--out", str(tmp_path)], capsys
    )
    assert code == 1
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "missing").exists()


def test_issue_11_help_has_no_stray_markers() -> None:
    text = CliRunner().invoke(cli, ["--help"]).output
    assert "\\b" not in text
    assert "\b" not in text
    # The command list keeps one command per line.
    listed = [
        line for line in text.splitlines() if line.strip().startswith("wsi-heatmap ")
    ]
    assert len(listed) >= 5, text
    assert any(line.strip().startswith("wsi-heatmap view OUT") for line in listed)


def test_issue_11_quiet_hides_progress_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsi.progress import TqdmProgress

    seen: list[object] = []
    original = TqdmProgress.__init__

    def spy(self: TqdmProgress, **kwargs: object) -> None:
        seen.append(kwargs.get("disable"))
        original(self, **kwargs)

    with unittest.mock.patch.object(TqdmProgress, "__init__", spy):
        _main(
            ["-q", "tile", str(tmp_path / "missing.svs"), "--out", str(tmp_path)],
            capsys,
        )
        _main(["tile", str(tmp_path / "missing.svs"), "--out", str(tmp_path)], capsys)
    # -q: no bars at all; otherwise tqdm decides (None: no bars unless a terminal).
    assert seen == [True, None]


def test_the_library_names_settings_and_the_cli_spells_them_as_flags() -> None:
    """One place for an option's meaning: the click options and their table."""
    import logging

    from wsi.cli.flags import FlagFormatter, spell_flags
    from wsi.errors import OutputError

    err = OutputError.unwritable("/x", OSError(13, "Permission denied"))
    assert "`out_dir`" in str(err)  # what a Python caller reads
    assert spell_flags(str(err)).endswith("choose a writable --out")
    assert spell_flags("`tiling.mpp` and `pretrained=False`") == (
        "--target-mpp and --no-pretrained"
    )
    record = logging.LogRecord(
        "wsi", logging.WARNING, __file__, 1, "using `mpp` %s", ("0.25",), None
    )
    assert FlagFormatter("%(message)s").format(record) == "using --mpp 0.25"
