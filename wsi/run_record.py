"""What a run did: each slide's result or failure, the report, and ``run.json``.

``run.json`` is merged with what other runs on the folder recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi.provenance import git_commit, software_versions
from wsi.store.atomic import write_json_atomic
from wsi.store.layout import SlideOutputs

if TYPE_CHECKING:
    from wsi.pipeline import RunConfig

__all__ = ["Failure", "RunReport", "SlideResult", "read_run_json", "write_run_json"]


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A slide that failed, at which stage, and why (one line)."""

    slide: Path
    stage: str
    message: str
    busy: bool = False  # another process held the slide's lock


@dataclass(frozen=True, kw_only=True)
class SlideResult:
    """The headline numbers of one finished slide."""

    slide: Path
    outputs: SlideOutputs
    n_patches: int
    max_probability: float
    tumor_area_um2: float
    seconds: float
    skipped: bool = False
    slide_probability: float | None = None
    #: The node's size class (`wsi.regions.lesion_class.NodeClass` value) and its longest
    #: lesion, mm; None in summaries written before they existed.
    node_class: str | None = None
    largest_diameter_mm: float | None = None


@dataclass(kw_only=True)
class RunReport:
    """What a run did: results, failures, and where ``run.json`` is."""

    results: list[SlideResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    run_json: Path | None = None

    @property
    def ok(self) -> bool:
        """True when no slide failed."""
        return not self.failures


def write_run_json(config: RunConfig, report: RunReport, *, seconds: float) -> Path:
    """Write ``run.json``, merged with what other runs on the folder recorded.

    Runs on one output folder may overlap (each slide is locked by one of them): a
    slide keeps its latest state, a run's own results and failures replace older
    entries of the same slide, except that "busy" (another process had the slide)
    never replaces a result. The merge holds a lock on the folder.
    """
    path = Path(config.out_dir) / "run.json"
    results = [
        {
            "slide": str(r.slide),
            "n_patches": r.n_patches,
            "max_probability": r.max_probability,
            "slide_probability": r.slide_probability,
            "tumor_area_um2": r.tumor_area_um2,
            "seconds": r.seconds,
            "skipped": r.skipped,
        }
        for r in report.results
    ]
    failures = [asdict(f) | {"slide": str(f.slide)} for f in report.failures]
    with _folder_lock(path.parent):
        old = read_run_json(path)
        done = {r["slide"] for r in results}
        failed = {f["slide"] for f in failures if not f.get("busy")}
        kept = [
            r for r in old.get("results", []) if r.get("slide") not in done | failed
        ]
        busy = {f["slide"] for f in failures if f.get("busy")}
        finished_elsewhere = {r.get("slide") for r in kept} & busy
        new_failures = [f for f in failures if f["slide"] not in finished_elsewhere]
        kept_failures = [
            f
            for f in old.get("failures", [])
            if f.get("slide") not in done | failed | busy
        ]
        write_json_atomic(
            path,
            {
                "config": asdict(config),
                "versions": software_versions(),
                "git_commit": git_commit(),
                "seconds": seconds,
                "results": kept + results,
                "failures": kept_failures + new_failures,
            },
        )
    return path


def read_run_json(path: Path) -> dict[str, Any]:
    """A folder's ``run.json`` as a dict; empty when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive OS lock on ``folder`` (released when the holder dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
