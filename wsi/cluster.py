"""Whole slides as tasks on an existing dask.distributed cluster.

`run_slides_on_cluster` submits one task per slide (tile, score, stitch, export on
one worker, with that worker's threads), follows them as they finish and returns
each slide's outcome in the order given. The submitting process does no slide work.
A slide whose worker dies is retried on another (``retries``; it resumes from its
store); a slide that fails is a one-line failure while the others go on; a scheduler
lost mid-run turns every unfinished slide into a one-line failure that says how to
resume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsi.progress import Progress, ensure_progress
from wsi.run_record import Failure, SlideResult

__all__ = ["SLIDE_RETRIES", "run_slides_on_cluster"]

logger = logging.getLogger(__name__)

#: How often a slide is resubmitted when the worker running it dies.
SLIDE_RETRIES = 2


def run_slides_on_cluster(
    address: str,
    slides: Sequence[Path],
    task: Callable[[Path], SlideResult | Failure],
    *,
    retries: int = SLIDE_RETRIES,
    progress: Progress | None = None,
) -> list[SlideResult | Failure]:
    """Run ``task(slide)`` for every slide on the cluster at ``address``.

    Parameters
    ----------
    address
        The dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    slides
        The slides, in the order the outcomes are returned.
    task
        Picklable; returns a result or a failure (it records its own errors).
    retries
        Resubmissions of a slide whose worker died.
    progress
        Receives one unit per finished slide.

    Raises
    ------
    WsiError
        The scheduler cannot be reached at all (before any slide is submitted).
    """
    from distributed import as_completed

    from wsi.scoring import _connect, _is_lost_connection

    outcomes: dict[int, SlideResult | Failure] = {}
    bar = ensure_progress(progress)
    bar.start(len(slides), "slides")
    client = _connect(address)
    try:
        with client:
            futures: dict[Any, int] = {
                client.submit(task, slide, retries=retries, pure=False): i
                for i, slide in enumerate(slides)
            }
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                i = futures[future]
                try:
                    outcomes[i] = future.result()
                except Exception as err:
                    if (
                        _is_lost_connection(err)
                        and type(err).__name__ != "KilledWorker"
                    ):
                        raise
                    outcomes[i] = Failure(
                        slide=slides[i],
                        stage="cluster",
                        message=f"{slides[i]}: failed on the cluster "
                        f"({type(err).__name__}: {err}); run the same command again "
                        "to resume it",
                    )
                bar.advance(1)
    except Exception as err:
        if not _is_lost_connection(err):
            raise
        logger.debug("lost the scheduler", exc_info=True)
        for i, slide in enumerate(slides):
            outcomes.setdefault(
                i,
                Failure(
                    slide=slide,
                    stage="cluster",
                    message=f"{slide}: lost the dask scheduler at {address} "
                    f"({type(err).__name__}); finished work is kept: run the same "
                    "command again to resume (locally without `scoring.scheduler`, or on a "
                    "new cluster)",
                ),
            )
    finally:
        bar.close()
    return [outcomes[i] for i in range(len(slides))]
