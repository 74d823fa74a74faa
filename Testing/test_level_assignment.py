"""Level assignment of the step-1 centre peaks, on hand-built peak sets with known levels."""
import torch

from spine_analysis.xray.landmark_model.config import LandmarkConfig
from spine_analysis.xray.landmark_model.level_assignment import assign_levels

CONFIG = LandmarkConfig()


def test_levels_follow_the_spine_past_extra_peaks():
    gaps = torch.tensor([30.0] * 8 + [38.0] * 8)                   # lumbar levels lie farther apart
    ys = torch.cat([torch.tensor([40.0]), 40.0 + torch.cumsum(gaps, 0)])
    expected = torch.stack([torch.full((17,), 150.0), ys], dim=1)
    truth = (expected - expected[0]) * 1.1 + torch.tensor([162.0, 52.0])   # a larger spine, lower
    extra = torch.tensor([[160.0, 20.0],                             # C7 above T1
                          [185.0, 230.0],                            # a rib crossing, beside T7
                          [150.0, 720.0]])                           # the pelvis, far below
    points = torch.cat([truth, extra])
    values = torch.cat([torch.full((17,), 0.8), torch.tensor([0.4, 0.3, 0.4])])
    centres, matched = assign_levels(points, values, expected, CONFIG)
    assert matched.all()
    torch.testing.assert_close(centres, truth)


def test_a_missing_vertebra_is_left_to_the_shape_model():
    expected = torch.stack([torch.full((17,), 150.0), 40.0 + 32.0 * torch.arange(17.0)], dim=1)
    keep = [k for k in range(17) if k != 8]
    centres, matched = assign_levels(expected[keep] + 3.0, torch.full((16,), 0.8), expected, CONFIG)
    assert matched.tolist() == [k != 8 for k in range(17)]
    torch.testing.assert_close(centres[matched], expected[keep] + 3.0)


def test_a_second_peak_on_one_vertebra_does_not_shift_the_levels_below():
    """A spurious peak a third of a spacing below T9, a faint L5 and a sacrum peak below it:
    taking the spurious peak as T10 would push every level below down by one."""
    expected = torch.stack([torch.full((17,), 150.0), 40.0 + 32.0 * torch.arange(17.0)], dim=1)
    truth = expected + 3.0
    extra = torch.tensor([[156.0, truth[8, 1] + 11.0],               # second peak on T9
                          [153.0, truth[16, 1] + 32.0]])             # sacrum below L5
    values = torch.cat([torch.full((16,), 0.8), torch.tensor([0.3]), torch.tensor([0.7, 0.5])])
    centres, matched = assign_levels(torch.cat([truth, extra]), values, expected, CONFIG)
    assert matched.all()
    torch.testing.assert_close(centres, truth)
