"""LPIPS plumbing. Offline, only a random backbone is available: these tests check shapes,
resizing and error messages, never the perceptual quality of the distance."""

import pytest
import torch
import torch.nn.functional as F

from cmedu.distances import LPIPSDistance


@pytest.fixture(scope="module")
def random_lpips():
    torch.manual_seed(0)
    return LPIPSDistance(net="alex", random_backbone=True)


def test_lpips_plumbing_random_backbone_gives_one_distance_per_image(random_lpips):
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = torch.rand(3, 3, 32, 32) * 2 - 1
    d = random_lpips(x, y)
    assert d.shape == (3,)
    assert torch.all(d > 0)
    assert torch.allclose(random_lpips(x, x), torch.zeros(3), atol=1e-6)


def test_lpips_plumbing_random_backbone_upsamples_small_images_to_224(random_lpips, monkeypatch):
    seen = []
    inner = random_lpips.lpips.forward

    def spy(a, b, **kw):
        seen.append(tuple(a.shape[-2:]))
        return inner(a, b, **kw)

    monkeypatch.setattr(random_lpips.lpips, "forward", spy)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    random_lpips(x, x.flip(-1))
    assert seen == [(224, 224)]
    # the upsampling is bilinear, as in the paper's CIFAR-10 set-up
    expected = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    assert expected.shape == (2, 3, 224, 224)


def test_missing_lpips_backbone_weights_raise_a_clear_error(monkeypatch):
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tvm.AlexNet_Weights.IMAGENET1K_V1, "get_state_dict", offline)
    with pytest.raises(FileNotFoundError, match=r"LPIPS \(alex backbone\) needs.*checkpoints"):
        LPIPSDistance(net="alex")
