"""Vertebrae found without centroids are kept only where they form a spine (``ct.spine_chain``)."""
import numpy as np
import pytest
import SimpleITK as sitk

from spine_analysis.ct.fracture_model.config import FractureConfig
from spine_analysis.ct.fracture_model.inference import ProbabilityMaps
from spine_analysis.ct.spine_chain import find_vertebrae, longest_chain, vertebrae_in_view
from spine_analysis.errors import SpineAnalysisError


def _config(**changes):
    return FractureConfig(**{**FractureConfig().to_dict(), **changes})


def _maps(blobs, shape=(200, 200, 200)):
    """Probability maps on a 1 mm grid (origin 0; LPS z = array z), body probability 1 in each blob
    ((z, y, x) centre, (z, y, x) half-sides), with bone (its cortex) around it."""
    body = np.zeros(shape, np.float32)
    for centre, half in blobs:
        body[tuple(slice(c - h, c + h) for c, h in zip(centre, half))] = 1.0
    grid = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkUInt8)
    return ProbabilityMaps(grid, body, np.zeros_like(body), 0.0, bone=body > 0)


BODY = (11, 14, 16)   # a lumbar body: 22 mm tall, 28 deep, 32 wide (about 20 ml)


def _spine(curve_mm=8.0):
    """Five bodies 32 mm apart from z 180 down, their AP position bending by up to ``curve_mm`` (a lordosis)."""
    zs = [180 - 32 * k for k in range(5)]
    return [((z, int(100 + curve_mm * np.sin(np.pi * k / 4)), 100), BODY) for k, z in enumerate(zs)]


def test_the_spine_is_kept_and_body_like_parts_off_it_are_not_vertebrae():
    spine = _spine()
    ribs = [((175 - 30 * k, 90, 20), (8, 10, 8)) for k in range(4)]         # a row of rib-like parts, laterally
    lonely = [((100, 170, 100), BODY)]                                         # a body-like blob behind the spine
    pelvis = [((22, 100, 160), (15, 40, 38))]                                  # bone far too large for a body
    found = find_vertebrae(_maps(spine + ribs + lonely + pelvis), FractureConfig())
    assert [c.level for c in found.centroids] == [f"vertebra {k}" for k in range(1, 6)]   # numbered from the top
    centres = np.array([c.lps for c in found.centroids])
    np.testing.assert_allclose(centres[:, 2], [c[0][0] - 0.5 for c in spine], atol=0.6)
    np.testing.assert_allclose(centres[:, 0], 99.5, atol=0.6)
    assert len(found.off_spine) == len(ribs) + len(lonely)                   # the pelvis is not even a candidate


def test_steps_too_long_too_short_or_kinked_break_the_chain():
    config = FractureConfig()
    straight = np.array([[0.0, 0.0, -30.0 * k] for k in range(5)])
    weights = np.ones(5)
    assert longest_chain(straight, weights, config) == [0, 1, 2, 3, 4]
    gap = straight.copy()
    gap[3:, 2] -= 30.0                                       # a missed vertebra: 60 mm to the next one
    assert longest_chain(gap, weights, config) == [0, 1, 2]
    close = np.vstack([straight[:1], [[0.0, 0.0, -10.0]], straight[1:]])   # 10 mm below the first: not a vertebra
    assert longest_chain(close, np.ones(6), config) == [0, 2, 3, 4, 5]
    sideways = straight.copy()
    sideways[2, 0] = 25.0                                    # 25 mm off the line through its neighbours
    assert len(longest_chain(sideways, weights, config)) == 3
    assert len(longest_chain(sideways, weights, _config(chain_max_offset_mm=30.0))) == 5
    flat = np.array([[40.0 * k, 0.0, -10.0 * k] for k in range(4)])   # along a rib, not down the body
    assert len(longest_chain(flat, np.ones(4), config)) == 1


def test_of_equally_long_chains_the_one_holding_more_bone_is_the_spine():
    spine = np.array([[0.0, 0.0, -30.0 * k] for k in range(3)])
    sternum = spine + [0.0, -120.0, 0.0]
    points = np.vstack([spine, sternum])[np.argsort(-np.r_[spine[:, 2], sternum[:, 2]], kind="stable")]
    heavy_spine = np.where(points[:, 1] == 0.0, 10.0, 3.0)
    assert all(points[i, 1] == 0.0 for i in longest_chain(points, heavy_spine, FractureConfig()))
    assert longest_chain(np.zeros((0, 3)), np.zeros(0), FractureConfig()) == []
    assert longest_chain(np.array([[0.0, 0.0, 0.0], [90.0, 0.0, 0.0]]), np.array([1.0, 2.0]),
                         FractureConfig()) == [1]   # no step anywhere: the heaviest part alone


@pytest.mark.parametrize("curve", [0.0, 12.0])
def test_a_lordotic_or_straight_spine_stays_one_chain(curve):
    found = find_vertebrae(_maps(_spine(curve)), FractureConfig())
    assert len(found.centroids) == 5 and found.off_spine == []


def test_a_ct_with_no_vertebra_in_view_is_refused_and_one_with_a_spine_is_not():
    with pytest.raises(SpineAnalysisError, match="no vertebral bodies found in this CT"):
        vertebrae_in_view(_maps([((100, 100, 100), (3, 3, 3))]), FractureConfig())   # a speck, no body
    assert len(vertebrae_in_view(_maps(_spine()), FractureConfig()).centroids) == 5
