"""A volume with no bone in it is refused as not a CT of the spine, by every command that reads a CT."""
import numpy as np
import pytest
import SimpleITK as sitk

from spine_analysis import cli
from spine_analysis.ct.vertebral_body import check_spine_ct
from spine_analysis.errors import SpineAnalysisError


def _volume(values: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values.astype(np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    return image


def _water(rng):
    """A water phantom in air: 0 HU with CT noise, no bone."""
    values = np.full((40, 80, 80), -1000.0)
    values[:, 10:70, 10:70] = rng.normal(0.0, 15.0, (40, 60, 60))
    return values


def _mr_like(rng):
    """Soft tissue at an MR's arbitrary levels (300-900), dark background, no HU anywhere."""
    values = np.zeros((40, 80, 80))
    values[:, 10:70, 10:70] = rng.normal(600.0, 120.0, (40, 60, 60))
    return values


def _spine_like(rng):
    """Soft tissue at 40 HU around a bone cylinder (trabecular 150 HU, a 2 mm cortex at 700 HU)."""
    values = np.full((40, 80, 80), -1000.0)
    values[:, 10:70, 10:70] = rng.normal(40.0, 15.0, (40, 60, 60))
    y, x = np.mgrid[:80, :80]
    radius = np.hypot(y - 40, x - 40)
    values[:, radius < 16] = 700.0
    values[:, radius < 14] = 150.0
    return values


@pytest.mark.parametrize("make, reason", [(_water, "no bone"), (_mr_like, "not the -250 to 400 HU")])
def test_a_volume_without_bone_is_refused(make, reason):
    with pytest.raises(SpineAnalysisError, match=reason):
        check_spine_ct(_volume(make(np.random.default_rng(0))))


def test_a_spine_like_volume_passes_also_calibrated_or_with_zeroed_surroundings():
    values = _spine_like(np.random.default_rng(0))
    check_spine_ct(_volume(values))
    check_spine_ct(_volume(values * 0.8 + 5))                       # density-calibrated
    check_spine_ct(_volume(np.where(values > 100, values / 3, 0)))  # low density, surroundings zeroed


@pytest.mark.parametrize("command", [["segment", "--seed", "0,0,0", "--method", "classical", "--out", "{out}/m.nii.gz"],
                                     ["fracture", "--out-dir", "{out}/f"]])
def test_commands_refuse_a_water_phantom_in_one_line(tmp_path, capsys, command):
    path = tmp_path / "water.nii.gz"
    sitk.WriteImage(_volume(_water(np.random.default_rng(1))), str(path))
    args = [command[0], str(path), *(a.format(out=tmp_path) for a in command[1:])]
    assert cli.main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no bone in this volume" in error[0], error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["water.nii.gz"]
