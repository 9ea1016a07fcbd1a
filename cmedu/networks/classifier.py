"""A small, fast CIFAR-10 classifier: the network behind cmedu's offline yardstick.

FID [1] needs the Inception network's weights, which cannot always be fetched. The course
ships instead a classifier trained on CIFAR-10 (JPEG copy) in a CPU hour, and measures
samples in its penultimate features (``cmedu.evaluation.classifier``). The architecture is
the small VGG-like net of Jordan's fast CIFAR-10 trainers [2] (after Page's ResNet-9 [3]):
a 3x3 stem, then three blocks of conv - max-pool - BN - GELU - conv - BN - GELU, global max
pooling and one linear layer (without [2]'s fixed 1/9 logit scale). Its features are the
pooled vector of the last block; with ``mirror=True`` (the shipped classifier) they are the
mean of that vector over the image and its left-right mirror image, the flip test-time
augmentation of [2], which makes features and logits blind to mirroring.

References
----------
.. [1] Heusel et al. "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
   Equilibrium." NeurIPS 2017.
.. [2] Jordan. "94% on CIFAR-10 in 3.29 Seconds on a Single GPU." arXiv:2404.00498, 2024.
.. [3] Page. "How to Train Your ResNet." myrtle.ai blog, 2018.
"""

from __future__ import annotations

from torch import Tensor, nn

CLASSIFIER_WIDTHS = (32, 64, 128, 256)  # stem, then the three blocks


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> list[nn.Module]:
    """conv 3x3 [- max-pool 2x2] - BatchNorm - GELU, as a list of layers."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(c_out), nn.GELU()]


class CifarClassifier(nn.Module):
    """x (B, 3, H, W) in [-1, 1] -> logits (B, classes); ``features(x)`` -> (B, widths[-1]).

    Parameters
    ----------
    widths : tuple of int
        Channels of the stem and of each block; each block halves the resolution.
    classes : int
        Number of classes (10 for CIFAR-10).
    mirror : bool
        Average the features over x and its mirror image x.flip(-1) (two passes of the body).
        Training uses single images (its augmentation flips them at random); the shipped
        classifier is exported with ``mirror=True``.
    """

    def __init__(
        self, widths: tuple[int, ...] = CLASSIFIER_WIDTHS, classes: int = 10, mirror: bool = False
    ):
        super().__init__()
        self.widths, self.classes, self.mirror = tuple(widths), classes, mirror
        layers = conv_bn(3, widths[0])
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += conv_bn(c_in, c_out, pool=True) + conv_bn(c_out, c_out)
        self.body = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], classes, bias=False)

    @property
    def config(self) -> dict:
        """The constructor's arguments, as saved beside the weights (``mirror`` as set now)."""
        return dict(widths=list(self.widths), classes=self.classes, mirror=self.mirror)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate features: the globally max-pooled last block, (B, widths[-1]);
        with ``mirror``, its mean over x and x.flip(-1)."""
        if self.mirror:
            return 0.5 * (self.body(x) + self.body(x.flip(-1)))
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
