"""Test-time augmentation: symmetric views of a batch of patches, and their mean.

Every view keeps the centre 32x32 of a patch in place, so each is scored for the
same label. ``flips`` is the set used by the reference PCam Kaggle kernels (the
patch, its horizontal and vertical mirror images, and both), ``dihedral`` all 8
symmetries of the square. Both sets are groups, so the combined probability of a
flipped patch equals that of the patch (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "TTA_MEANS",
    "TTA_MODES",
    "check_tta",
    "combine",
    "n_views",
    "score_views",
    "tta_views",
]

TTA_MODES: Final = ("none", "flips", "dihedral")
TTA_MEANS: Final = ("arithmetic", "geometric")
#: Floor of a probability before its logarithm (geometric mean).
_EPS: Final = 1e-7

_View = Callable[[npt.NDArray[np.generic]], npt.NDArray[np.generic]]


def _hflip(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    return x[:, :, ::-1]


def _vflip(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    return x[:, ::-1, :]


def _rot(k: int) -> _View:
    def view(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        return np.rot90(x, k, axes=(1, 2))

    return view


def _transpose(x: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    return np.swapaxes(x, 1, 2)


_VIEWS: Final[dict[str, tuple[_View, ...]]] = {
    "none": (lambda x: x,),
    "flips": (lambda x: x, _hflip, _vflip, lambda x: _vflip(_hflip(x))),
    "dihedral": (
        lambda x: x,
        _rot(1),
        _rot(2),
        _rot(3),
        _transpose,
        lambda x: _transpose(_rot(1)(x)),
        lambda x: _transpose(_rot(2)(x)),
        lambda x: _transpose(_rot(3)(x)),
    ),
}


def check_tta(mode: str, how: str = "arithmetic") -> None:
    """Raise ``ValueError`` naming the parameter if ``mode`` or ``how`` is unknown."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {mode!r}")
    if how not in TTA_MEANS:
        raise ValueError(f"tta_mean must be one of {TTA_MEANS}, got {how!r}")


def n_views(mode: str) -> int:
    """Number of views of a mode: 1, 4 or 8."""
    check_tta(mode)
    return len(_VIEWS[mode])


def tta_views(
    patches: npt.NDArray[np.generic], mode: str
) -> list[npt.NDArray[np.generic]]:
    """The views of a batch that test-time augmentation scores.

    Parameters
    ----------
    patches
        ``[N, H, W, C]`` square patches (any dtype), rows then columns.
    mode
        ``none`` (the batch itself), ``flips`` (identity, horizontal flip, vertical
        flip, both) or ``dihedral`` (the 4 rotations and their mirror images).

    Returns
    -------
    list of numpy.ndarray
        1, 4 or 8 arrays shaped like ``patches`` (views, not copies, where numpy
        allows), the identity first.

    Examples
    --------
    >>> x = np.arange(4).reshape(1, 2, 2, 1)
    >>> [v[0, :, :, 0].tolist() for v in tta_views(x, "flips")]
    [[[0, 1], [2, 3]], [[1, 0], [3, 2]], [[2, 3], [0, 1]], [[3, 2], [1, 0]]]
    >>> len(tta_views(x, "dihedral"))
    8
    """
    check_tta(mode)
    patches = np.asarray(patches)
    if patches.ndim != 4 or patches.shape[1] != patches.shape[2]:
        raise ValueError(
            f"patches must be [N, H, W, C] with H == W, got shape {patches.shape}"
        )
    return [view(patches) for view in _VIEWS[mode]]


def combine(
    probs: Sequence[npt.ArrayLike],
    how: Literal["arithmetic", "geometric"] = "arithmetic",
) -> npt.NDArray[np.float32]:
    """Combine the probabilities of the views of each patch into one.

    Parameters
    ----------
    probs
        One ``float[N]`` array of probabilities per view.
    how
        ``arithmetic`` mean, or ``geometric`` mean ``exp(mean(log p))`` (with ``p``
        floored at 1e-7), which one confident "no" pulls down harder.

    Returns
    -------
    numpy.ndarray
        ``float32[N]``. The values of each patch are sorted before summing, so the
        result does not depend on the order of the views.

    Examples
    --------
    >>> combine([np.array([0.2, 1.0]), np.array([0.8, 0.25])]).tolist()
    [0.5, 0.625]
    >>> [round(v, 3) for v in combine([[0.2, 1.0], [0.8, 0.25]], "geometric").tolist()]
    [0.4, 0.5]
    """
    check_tta("none", how)
    if len(probs) == 0:
        raise ValueError("probs must hold at least one array of probabilities")
    stack = np.sort(np.stack([np.asarray(p, dtype=np.float64) for p in probs]), axis=0)
    if stack.ndim != 2:
        raise ValueError(
            f"each array of probs must be 1-D, got shape {stack.shape[1:]}"
        )
    if how == "geometric":
        out = np.exp(np.log(np.clip(stack, _EPS, 1.0)).mean(axis=0))
    else:
        out = stack.mean(axis=0)
    return np.asarray(out, dtype=np.float32)


def score_views(
    patches: npt.NDArray[np.uint8],
    forward: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]],
    *,
    input_px: int,
    tta: str,
    tta_mean: str,
    images_per_pass: int,
) -> npt.NDArray[np.float32]:
    """Check a batch of patches, score all their TTA views, combine per patch.

    The one scoring loop of every runtime (Keras, OpenVINO): ``forward`` maps
    ``uint8[M, P, P, 3]`` images to ``float32[M]`` probabilities; each pass gets the
    views of ``images_per_pass`` patches at once.

    Raises
    ------
    TypeError
        ``patches`` is not a uint8 array.
    ValueError
        ``patches`` is not shaped ``[N, input_px, input_px, 3]``.
    """
    if not isinstance(patches, np.ndarray) or patches.dtype != np.uint8:
        kind = patches.dtype if isinstance(patches, np.ndarray) else type(patches)
        raise TypeError(f"patches must be a uint8 numpy array, got {kind}")
    size = input_px
    if patches.ndim != 4 or patches.shape[1:] != (size, size, 3):
        raise ValueError(
            f"patches must be shaped [N, {size}, {size}, 3], got {patches.shape}"
        )
    out = np.empty(len(patches), dtype=np.float32)
    views = n_views(tta)
    step = max(1, images_per_pass)
    for start in range(0, len(patches), step):
        chunk = patches[start : start + step]
        stacked = np.concatenate(tta_views(chunk, tta))
        probs = forward(stacked).reshape(views, len(chunk))
        out[start : start + len(chunk)] = combine(list(probs), tta_mean)  # type: ignore[arg-type]
    return out
