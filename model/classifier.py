"""What every runtime's patch classifier shares: its card, TTA and batching.

`KerasPatchClassifier` (model.predict) and `OpenVinoPatchClassifier`
(model.fast_runtime) differ only in their forward pass (`_forward_pass`) and in how
many images one pass takes; identity, scale, input checks and test-time
augmentation are here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.card import ModelCard
from model.tta import check_tta, n_views, score_views

__all__ = ["CardClassifier"]


@dataclass(frozen=True, eq=False, kw_only=True)
class CardClassifier:
    """A patch classifier described by its card: ``uint8[N, 96, 96, 3]`` -> ``float32[N]``.

    Subclasses implement ``_forward_pass`` (one batch of images, no TTA).
    """

    card: ModelCard
    path: Path
    tta: str = "none"
    tta_mean: str = "arithmetic"
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_tta(self.tta, self.tta_mean)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    @property
    def sha256(self) -> str:
        """sha256 of the ``.keras`` file (verified against the card at load)."""
        return self.card.weights_sha256

    @property
    def input_px(self) -> int:
        """Patch side the model takes, in pixels."""
        return self.card.input_px

    @property
    def mpp(self) -> float:
        """Resolution the model was trained at, in micrometres per pixel."""
        return float(self.card.mpp)

    def __call__(self, patches: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Probability of tumour in the centre 32x32 of each patch (TTA combined).

        Parameters
        ----------
        patches
            ``uint8[N, 96, 96, 3]`` RGB patches.

        Returns
        -------
        numpy.ndarray
            ``float32[N]`` probabilities in [0, 1], combined over the TTA views.

        Raises
        ------
        TypeError
            ``patches`` is not a uint8 array.
        ValueError
            ``patches`` is not shaped ``[N, 96, 96, 3]``.
        """
        return score_views(
            patches,
            self._forward_pass,
            input_px=self.input_px,
            tta=self.tta,
            tta_mean=self.tta_mean,
            images_per_pass=self._images_per_pass(),
        )

    def _images_per_pass(self) -> int:
        """Images of one forward pass: the batch shared by the TTA views."""
        return self.batch_size // n_views(self.tta)

    def _forward_pass(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        raise NotImplementedError  # pragma: no cover - every runtime has its own
