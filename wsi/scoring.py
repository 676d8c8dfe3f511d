"""Score a tile store's patches through dask, chunk by chunk, resumably.

The ``patches`` array of a finished tile store becomes a dask array chunked like the
store. Each task scores one whole chunk with the classifier (loaded once per worker)
and writes its probabilities straight back into the store's ``scores`` array, then
marks the chunk done; a restarted run skips finished chunks. Without a scheduler
address the work runs on local threads (reading one chunk while the model scores
another); with one, on that dask.distributed cluster, whose workers must see the
store and the model file at the same paths.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from wsi.errors import WsiError
from wsi.geometry import check_model_matches
from wsi.progress import Progress, ensure_progress
from wsi.store.checks import chunks_to_score
from wsi.store.layout import Arrays, Attr
from wsi.store.locking import store_lock
from wsi.store.slide_store import (
    array,
    chunk_flags,
    create_chunk_flags,
    mark_chunk_done,
    open_store,
    open_tile_store,
)

__all__ = [
    "ClassifierSpec",
    "PatchClassifier",
    "ScoringParams",
    "ScoringResult",
    "score_store",
]

logger = logging.getLogger(__name__)

TtaMode = Literal["none", "flips", "dihedral"]


@runtime_checkable
class PatchClassifier(Protocol):
    """A callable from ``uint8[N, 96, 96, 3]`` patches to ``float32[N]`` probabilities."""

    @property
    def input_px(self) -> int:
        """Side of the square patches the model takes, in pixels."""
        ...

    @property
    def mpp(self) -> float:
        """Resolution the model was trained at, um/px."""
        ...

    @property
    def sha256(self) -> str:
        """Identity of the model (sha256 of its weights file)."""
        ...

    def __call__(self, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Probability of tumour in each patch's centre 32x32."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierSpec:
    """How a worker loads the classifier: a model file (None = bundled) and its TTA.

    Specs, not loaded models, travel to dask workers; each worker loads the model
    once and keeps it for every chunk it scores.
    """

    model_path: Path | None = None
    tta: TtaMode = "none"
    batch_size: int = 256
    #: ``auto`` (OpenVINO when installed and no GPU, else Keras), or a runtime
    #: decided once for a slide (``openvino`` or ``keras``) that every worker must
    #: use: a worker that cannot refuses the task instead of scoring differently.
    runtime: str = "auto"

    def load(self) -> PatchClassifier:
        """Load the classifier: OpenVINO when installed, else Keras.

        The OpenVINO model is derived from (and checked against) the ``.keras`` file
        at first use (:mod:`model.fast_runtime`); TensorFlow is imported only when
        Keras scores, never at module import.

        Raises
        ------
        ModelLoadError
            ``runtime="openvino"`` and this machine cannot score with OpenVINO.
        """
        from model.fast_runtime import load_fast_classifier

        fast = (
            None
            if self.runtime == "keras"
            else load_fast_classifier(
                self.model_path,
                tta=self.tta,
                batch_size=self.batch_size,
                runtime=None if self.runtime == "auto" else self.runtime,
            )
        )
        if fast is not None:
            return fast
        from model.predict import load_classifier

        return load_classifier(
            self.model_path, tta=self.tta, batch_size=self.batch_size
        )

    def identity(self) -> tuple[int, float, str]:
        """Patch size, um/px and sha256 from the model's sidecar, without TensorFlow."""
        from model.card import read_card
        from model.registry import resolve_model_path

        card = read_card(resolve_model_path(self.model_path))
        return card.input_px, card.mpp, card.weights_sha256


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringParams:
    """Scoring settings."""

    model_path: Path | None = None
    batch_size: int = 256
    tta: TtaMode = "none"
    scheduler: str | None = None
    workers: int = 2

    def spec(self) -> ClassifierSpec:
        """The classifier spec these settings describe."""
        return ClassifierSpec(
            model_path=self.model_path, tta=self.tta, batch_size=self.batch_size
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringResult:
    """What a scoring run did."""

    n_patches: int
    n_chunks: int
    chunks_scored: int
    seconds: float
    model_sha256: str
    runtime: str | None = None  # one per slide; recorded in the store and summary


_CACHE: dict[ClassifierSpec, PatchClassifier] = {}
_CACHE_LOCK = threading.Lock()


def _classifier_for(source: ClassifierSpec | PatchClassifier) -> PatchClassifier:
    if not isinstance(source, ClassifierSpec):
        return source
    with _CACHE_LOCK:
        if source not in _CACHE:
            _CACHE[source] = source.load()
        return _CACHE[source]


def score_store(
    store_path: Path,
    *,
    params: ScoringParams,
    classifier: PatchClassifier | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ScoringResult:
    """Score every patch of a finished tile store and write ``scores`` into it.

    Parameters
    ----------
    store_path
        A tile store written by :func:`wsi.tiles.tiler.tile_slide`.
    params
        Model, batch size, TTA and where to run.
    classifier
        Use this classifier instead of loading ``params.model_path`` (tests, notebooks).
        It must be picklable to run on a distributed scheduler.
    overwrite
        Rescore chunks already scored (by another model, say).
    progress
        Receives one unit per chunk scored.

    Raises
    ------
    WsiError
        The store is not a finished tile store, or the model does not match it.
    ModelLoadError
        The model cannot be loaded or does not match the tiles.
    """
    from dask.delayed import delayed

    start = time.perf_counter()
    with store_lock(store_path):
        tiles = open_tile_store(store_path)
        root = tiles.open(writable=True)
        n, chunk = tiles.n_patches, tiles.chunk_patches
        n_chunks = -(-n // chunk)
        source: ClassifierSpec | PatchClassifier = classifier or params.spec()
        runtime: str | None = None
        if classifier is None and params.scheduler:
            # The workers load the model; here its sidecar is enough to check it.
            # One runtime for the whole slide, decided here: every worker uses it.
            runtime = cluster_runtime()
            source = dataclasses.replace(params.spec(), runtime=runtime)
            model_px, model_mpp, sha256 = params.spec().identity()
        else:
            local = _classifier_for(source)
            model_px, model_mpp, sha256 = local.input_px, local.mpp, local.sha256
            default = "keras" if classifier is None else type(local).__name__
            runtime = str(getattr(local, "runtime", default))
        model_name = str(params.model_path or "bundled model")
        tiling = dict(tiles.tiling)
        check_model_matches(
            model_name=model_name,
            model_px=model_px,
            model_mpp=model_mpp,
            tile_px=int(tiling["tile_px"]),
            tiles_mpp=float(tiling["effective_mpp"]),
        )
        _prepare_scores(
            root,
            n=n,
            chunk=chunk,
            n_chunks=n_chunks,
            sha256=sha256,
            params=params,
            overwrite=overwrite,
            runtime=runtime,
            model=None if classifier is not None else _model_name(params),
        )
        todo = chunks_to_score(root)  # a flag whose chunk does not read back: redo
        logger.info("%s: %d of %d chunks to score", store_path, len(todo), n_chunks)
        report = ensure_progress(progress)
        report.start(len(todo), "score")
        if todo:
            store_str = str(store_path)
            tasks = [delayed(_score_chunk)(store_str, i, chunk, source) for i in todo]
            _run_tasks(tasks, params=params, on_done=report.advance)
        report.close()
        root = open_store(store_path, writable=True)
        if not chunk_flags(root, Arrays.SCORED).all():
            raise WsiError(
                f"{store_path}: some chunks were not scored; run the command again"
            )
        root.attrs[Attr.SCORING_COMPLETE] = True
        return ScoringResult(
            n_patches=n,
            n_chunks=n_chunks,
            chunks_scored=len(todo),
            seconds=time.perf_counter() - start,
            model_sha256=sha256,
            runtime=runtime,
        )


def cluster_runtime() -> str:
    """The runtime every worker of a cluster run uses for a slide.

    ``WSI_SCORING_RUNTIME`` when set; else OpenVINO when this (the submitting)
    machine has it, else Keras. Decided once per slide, so that workers that differ
    (one without OpenVINO, one with a GPU) cannot score parts of a slide differently.
    """
    from model.fast_runtime import openvino_available, requested_runtime

    wanted = requested_runtime()
    if wanted != "auto":
        return wanted
    return "openvino" if openvino_available() else "keras"


def _model_name(params: ScoringParams) -> str:
    """The ``--model`` value that scores: a bundled name or a file."""
    from model.registry import DEFAULT_MODEL

    return DEFAULT_MODEL if params.model_path is None else str(params.model_path)


def _prepare_scores(
    root: Any,
    *,
    n: int,
    chunk: int,
    n_chunks: int,
    sha256: str,
    params: ScoringParams,
    overwrite: bool,
    runtime: str | None,
    model: str | None,
) -> None:
    """Create ``scores`` and its chunk markers, or reset them for another model.

    ``model`` (the bundled name or file that scored; None for a classifier passed
    in) is recorded so that a later ``stitch`` uses that model's tuned settings.

    ``runtime`` (``keras``, ``openvino-int8``, ...; None: decided on the workers)
    is recorded, not compared: every runtime scores with the same weights.
    """
    settings = {"model_sha256": sha256, "tta": params.tta}
    previous = root.attrs.get(Attr.SCORING)
    fresh = (
        Arrays.SCORES not in root
        or overwrite
        or (previous is not None and {k: previous.get(k) for k in settings} != settings)
    )
    if fresh:
        if previous is not None and not overwrite and Arrays.SCORES in root:
            logger.info("model or TTA changed: rescoring every chunk")
        root.create_array(
            Arrays.SCORES,
            shape=(n,),
            chunks=(chunk,),
            dtype="float32",
            fill_value=np.nan,
            overwrite=True,
        )
        create_chunk_flags(root, Arrays.SCORED, n_chunks=n_chunks)
        root.attrs[Attr.SCORING_COMPLETE] = False
    root.attrs[Attr.SCORING] = settings | {
        "model": model,
        "batch_size": params.batch_size,
        "runtime": runtime,
    }


def _score_chunk(
    store: str,
    index: int,
    chunk: int,
    source: ClassifierSpec | PatchClassifier,
) -> int:
    """Read one chunk of patches, score it and write the scores back (on a worker)."""
    tiles = open_tile_store(Path(store))
    block = tiles.read_patches(index * chunk, (index + 1) * chunk)
    classifier = _classifier_for(source)
    probs = np.asarray(classifier(np.asarray(block)), dtype=np.float32).reshape(-1)
    if probs.shape[0] != block.shape[0]:
        raise WsiError(
            f"classifier returned {probs.shape[0]} scores for {block.shape[0]} patches"
        )
    root = open_store(Path(store), writable=True)
    array(root, Arrays.SCORES)[index * chunk : index * chunk + len(probs)] = probs
    mark_chunk_done(root, Arrays.SCORED, index)
    return index


#: Seconds to wait for a dask scheduler to answer before giving up.
SCHEDULER_TIMEOUT_S = 5.0


def check_scheduler(address: str, *, timeout_s: float = SCHEDULER_TIMEOUT_S) -> None:
    """Raise a one-line WsiError unless the dask scheduler at ``address`` answers.

    Called before any slide is touched, so that a typo or a stopped cluster costs
    seconds, not a tiled slide.
    """
    _connect(address, timeout_s=timeout_s).close()


def _connect(address: str, *, timeout_s: float = SCHEDULER_TIMEOUT_S) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as err:
        raise WsiError(
            f"cannot reach the dask scheduler at {address} ({type(err).__name__}: "
            f"{err}); check the address and that the scheduler runs, or leave "
            "`scoring.scheduler` out to run locally"
        ) from err


def _is_lost_connection(err: BaseException) -> bool:
    """Whether ``err`` says the scheduler or its connection went away."""
    import asyncio

    from distributed.comm.core import CommClosedError

    lost = (OSError, TimeoutError, CommClosedError, asyncio.CancelledError)
    names = {"FutureCancelledError", "CancelledError", "KilledWorker"}
    return isinstance(err, lost) or type(err).__name__ in names


def _run_tasks(
    tasks: list[Any], *, params: ScoringParams, on_done: Callable[[int], None]
) -> None:
    """Compute ``tasks`` locally (threads) or on a cluster, reporting each as it ends."""
    if params.scheduler:
        from distributed import as_completed

        client = _connect(params.scheduler)
        try:
            with client:
                futures = client.compute(tasks)
                for future in as_completed(futures):
                    future.result()  # a task's own error (a WsiError) passes as is
                    on_done(1)
        except WsiError:
            raise
        except Exception as err:
            if not _is_lost_connection(err):
                raise
            raise WsiError(
                f"lost the dask scheduler or its workers at {params.scheduler} "
                f"({type(err).__name__}: {err}); finished chunks are kept: run the "
                "same command again to resume (locally without `scoring.scheduler`, or on a "
                "new cluster)"
            ) from err
        return
    from dask.base import compute
    from dask.callbacks import Callback

    class _ChunkDone(Callback):
        def _posttask(
            self, key: Any, result: Any, dsk: Any, state: Any, id: Any
        ) -> None:
            name = key[0] if isinstance(key, tuple) else key
            if isinstance(name, str) and name.startswith(_score_chunk.__name__):
                on_done(1)

    # Threads: reading and decoding one chunk overlaps with the model scoring another.
    with _ChunkDone():
        compute(*tasks, scheduler="threads", num_workers=max(1, params.workers))
