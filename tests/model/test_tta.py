"""Test-time augmentation: the views, their group structure, and the combined mean."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from model.tta import TTA_MODES, combine, n_views, tta_views


def _fake_model(patches: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """A deterministic, deliberately not symmetric function of the pixels."""
    weights = np.linspace(0.0, 1.0, patches[0].size).reshape(patches.shape[1:])
    z = (patches.astype(np.float64) * weights).sum(axis=(1, 2, 3)) / patches[0].size
    return np.asarray(1 / (1 + np.exp(-(z - 60) / 10)), dtype=np.float64)


def _tta_predict(
    patches: npt.NDArray[np.uint8], mode: str, how: str = "arithmetic"
) -> npt.NDArray[np.float32]:
    return combine([_fake_model(v) for v in tta_views(patches, mode)], how)  # type: ignore[arg-type]


@pytest.fixture
def patches() -> npt.NDArray[np.uint8]:
    return np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)


def test_view_counts_and_identity_first(patches: npt.NDArray[np.uint8]) -> None:
    for mode, count in zip(TTA_MODES, (1, 4, 8), strict=True):
        views = tta_views(patches, mode)
        assert len(views) == n_views(mode) == count
        np.testing.assert_array_equal(views[0], patches)
        assert all(v.shape == patches.shape for v in views)


def test_dihedral_views_are_the_8_distinct_symmetries(
    patches: npt.NDArray[np.uint8],
) -> None:
    views = tta_views(patches, "dihedral")
    assert len({v.tobytes() for v in views}) == 8
    flips = tta_views(patches, "flips")
    assert {v.tobytes() for v in flips} <= {v.tobytes() for v in views}


def test_views_keep_the_centre_cell(patches: npt.NDArray[np.uint8]) -> None:
    centre = slice(32, 64)
    for view in tta_views(patches, "dihedral"):
        np.testing.assert_array_equal(
            np.sort(view[:, centre, centre], axis=None),
            np.sort(patches[:, centre, centre], axis=None),
        )


@pytest.mark.parametrize("how", ["arithmetic", "geometric"])
def test_tta_output_is_invariant_to_flipping_the_input(
    patches: npt.NDArray[np.uint8], how: str
) -> None:
    plain = _fake_model(patches)
    hflip, vflip = patches[:, :, ::-1], patches[:, ::-1]
    assert not np.allclose(_fake_model(hflip), plain)  # the model itself is not
    for mode in ("flips", "dihedral"):
        expected = _tta_predict(patches, mode, how)
        for flipped in (hflip, vflip, hflip[:, ::-1]):
            np.testing.assert_array_equal(_tta_predict(flipped, mode, how), expected)
    rotated = np.rot90(patches, 1, axes=(1, 2))
    np.testing.assert_array_equal(
        _tta_predict(rotated, "dihedral", how), _tta_predict(patches, "dihedral", how)
    )


def test_combine_means() -> None:
    probs = [np.array([0.1, 0.9]), np.array([0.4, 0.9])]
    np.testing.assert_allclose(combine(probs), [0.25, 0.9])
    np.testing.assert_allclose(combine(probs, "geometric"), [0.2, 0.9], rtol=1e-6)
    assert combine([np.array([0.0, 1.0])], "geometric").tolist() == pytest.approx(
        [1e-7, 1.0]
    )
    assert combine(probs).dtype == np.float32


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tta must be one of"):
        tta_views(np.zeros((1, 4, 4, 3)), "rot90")
    with pytest.raises(ValueError, match="tta_mean must be one of"):
        combine([np.zeros(2)], "harmonic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"H == W"):
        tta_views(np.zeros((1, 4, 5, 3)), "flips")
    with pytest.raises(ValueError, match="at least one"):
        combine([])
