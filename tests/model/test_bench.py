"""benchmarks/bench_model.py runs end to end on the fixtures (one tiny variant)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"


def test_benchmark_writes_the_comparison_table(
    pcam_dir: Path, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("bench_model", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_model", bench)  # dataclasses need it
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    assert (
        bench.main(
            [
                "--train",
                str(pcam_dir),
                "--valid",
                str(pcam_dir),
                "--out",
                str(out),
                "--archs",
                "logreg",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "1",
                "--batch-size",
                "8",
                "--add-run",
                f"tiny={tiny_run}",
            ]
        )
        == 0
    )
    rows = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["init"]) for r in rows] == [
        ("logreg", "random"),
        ("tiny", "existing run"),
    ]
    assert all(0 <= r["val_auc"] <= 1 and r["n_valid"] == 24 for r in rows)
    table = (out / "results.md").read_text()
    assert table.startswith("| model | init | params |")
