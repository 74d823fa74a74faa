"""Shared inference helpers (spine_analysis.ml.inference)."""
import torch

from spine_analysis.ml.inference import pad_to_multiple, sliding_window


def test_padding_reaches_the_multiple_at_the_far_end_only():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 2, 8, 8)
    torch.testing.assert_close(padded[..., :5, :7], x)
    assert padded[..., 5:, :].abs().sum() == 0 and padded[..., :, 7:].abs().sum() == 0
    volume = torch.ones(1, 1, 16, 17, 3)
    assert pad_to_multiple(volume, 16, dims=3).shape == (1, 1, 16, 32, 16)


def test_sliding_window_equals_the_whole_volume_pass_of_a_voxelwise_network():
    """A 1x1x1 convolution sees one voxel at a time, so tiling must not change its output,
    whatever the blending, including a side shorter than the window."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.Sigmoid()).eval()
    volume = torch.randn(1, 1, 40, 23, 9)
    with torch.no_grad():
        whole = net(volume)
    for mode in ("gaussian", "constant"):
        tiled = sliding_window(volume, net, (16, 16, 16), overlap=0.5, mode=mode)
        assert tiled.shape == whole.shape
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
