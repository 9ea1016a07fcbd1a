"""The networks F_theta that the parameterizations wrap (Eq. (5), App. C of Song et al.
2023): the toy MLP, the NCSN++-style U-Net and the noise-level embeddings they share; and
the small CIFAR-10 classifier of the offline yardstick (``cmedu.evaluation.classifier``)."""

from .classifier import CifarClassifier
from .embedding import FourierEmbedding, PositionalEmbedding
from .mlp import ToyMLP
from .unet import UNET_PRESETS, UNet, count_parameters, unet_preset

__all__ = ["FourierEmbedding", "PositionalEmbedding", "ToyMLP", "UNet", "UNET_PRESETS",
           "unet_preset", "count_parameters", "CifarClassifier"]  # fmt: skip
