"""The image network F_theta: a U-Net of the NCSN++ / DDPM++ family.

Consistency Models [1] train on CIFAR-10 with the NCSN++ architecture of Score-SDE [2]
as configured by EDM [3] (reference sheet, section 7): 128 channels, channel multipliers
(2, 2, 2), four residual blocks per resolution, self-attention at 16x16, BigGAN-style
residual up/down-sampling with the FIR filter [1, 3, 3, 1], skip connections rescaled by
1/sqrt(2), a "residual" progressive input path, Gaussian Fourier noise embedding with
scale 16, GroupNorm and SiLU (swish). iCT [4] keeps the architecture but cuts the Fourier
scale to 0.02 and raises dropout to 0.3.

This module is only the raw network F_theta(x; c_noise). It has no preconditioning:
the EDM denoiser D = c_skip x + c_out F(c_in x; c_noise) (EDM Eq. (7)) and the consistency
function f = c_skip(t) x + c_out(t) F(x, t) (CM Eq. (5)) wrap it elsewhere in cmedu.

The structure follows the description of EDM's ``SongUNet`` [3], written afresh::

    stem conv -> encoder levels (ResBlocks, a down-sampling ResBlock between levels)
              -> middle (ResBlock with attention, ResBlock)
              -> decoder levels (ResBlocks that take a concatenated skip, an
                 up-sampling ResBlock between levels) -> GroupNorm, SiLU, conv.

References
----------
.. [1] Song, Dhariwal, Chen, Sutskever. "Consistency Models." ICML 2023.
.. [2] Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. "Score-Based Generative
       Modeling through Stochastic Differential Equations." ICLR 2021.
.. [3] Karras, Aittala, Aila, Laine. "Elucidating the Design Space of Diffusion-Based
       Generative Models." NeurIPS 2022 (code: NVlabs/edm, training/networks.py).
.. [4] Song, Dhariwal. "Improved Techniques for Training Consistency Models." ICLR 2024.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import CM_FOURIER_SCALE
from .embedding import FourierEmbedding, PositionalEmbedding

# Skip connections are rescaled by 1/sqrt(2) ("skip_rescale" of NCSN++ [2]).
SKIP_SCALE = math.sqrt(0.5)
# FIR resampling filters: [1, 3, 3, 1] for NCSN++ (StyleGAN2-style), [1, 1] (box) for DDPM++ [3].
NCSNPP_FILTER = (1, 3, 3, 1)
DDPMPP_FILTER = (1, 1)
# Initialisation as in EDM [3]: Xavier-uniform everywhere; the last conv of each residual
# branch and of the network are scaled down to 1e-5 (near-zero, so each block starts close
# to the identity but gradients still reach every layer); attention qkv scaled by sqrt(0.2).
ZERO_INIT_SCALE = 1e-5
ATTN_INIT_SCALE = math.sqrt(0.2)
# GroupNorm: at most 32 groups and at least 4 channels per group, eps 1e-6 [3].
GROUPNORM_MAX_GROUPS = 32
GROUPNORM_MIN_CHANNELS_PER_GROUP = 4
GROUPNORM_EPS = 1e-6


# ----------------------------------------------------------------------------------------
# Small building blocks


def _init_(layer: nn.Conv2d | nn.Linear, scale: float = 1.0) -> nn.Module:
    """Xavier-uniform weights times ``scale`` and zero bias (EDM's init), in place."""
    nn.init.xavier_uniform_(layer.weight)
    with torch.no_grad():
        layer.weight.mul_(scale)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(c_in: int, c_out: int, kernel: int, scale: float = 1.0) -> nn.Conv2d:
    """A same-padding 2D convolution with EDM initialisation."""
    return _init_(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), scale)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(32, C/4) groups, as in NCSN++ / EDM."""
    groups = min(GROUPNORM_MAX_GROUPS, channels // GROUPNORM_MIN_CHANNELS_PER_GROUP)
    return nn.GroupNorm(groups, channels, eps=GROUPNORM_EPS)


class Resample(nn.Module):
    """Up- or down-sampling by 2 with a fixed separable FIR filter (no parameters).

    Down-sampling low-pass filters then strides; up-sampling is a strided transposed
    convolution with the same filter times 4 (so a constant image stays constant). With
    ``fir=(1, 3, 3, 1)`` this is the anti-aliased resampling of NCSN++ [2]; with
    ``(1, 1)`` it is average pooling / nearest up-sampling (DDPM++).

    Parameters
    ----------
    mode : {"down", "up"}
        Direction.
    fir : tuple of int
        1D filter taps, even length; the 2D filter is their outer product, normalised.
    """

    def __init__(self, mode: str, fir: tuple[int, ...] = NCSNPP_FILTER):
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', got {mode!r}")
        if len(fir) % 2:
            raise ValueError(f"the FIR filter needs an even number of taps, got {fir}")
        f = torch.as_tensor(fir, dtype=torch.float32)
        kernel = torch.outer(f, f) / f.sum() ** 2
        self.mode = mode
        self.pad = (len(fir) - 1) // 2
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x : (B, C, H, W) -> (B, C, H/2, W/2) for "down", (B, C, 2H, 2W) for "up"."""
        c = x.shape[1]
        w = self.kernel.to(x.dtype).repeat(c, 1, 1, 1)  # depthwise: one filter per channel
        if self.mode == "down":
            return F.conv2d(x, w, stride=2, padding=self.pad, groups=c)
        return F.conv_transpose2d(x, w * 4, stride=2, padding=self.pad, groups=c)


class NoiseEmbedding(nn.Module):
    """c_noise -> (Fourier or positional features) -> Linear, SiLU, Linear, SiLU.

    Parameters
    ----------
    kind : {"fourier", "positional"}
        Feature map of c_noise.
    noise_channels : int
        Width of the feature map.
    emb_channels : int
        Width of the embedding fed to every residual block.
    fourier_scale : float
        Frequency scale of the Fourier features (ignored for "positional").
    time_inputs : int
        1, or 2 for MeanFlow's (t, t - r) (Geng et al. 2025): c_noise of shape (B, 2), each
        column with its own feature map, the features summed.
    """

    def __init__(self, kind: str, noise_channels: int, emb_channels: int, fourier_scale: float,
                 time_inputs: int = 1):  # fmt: skip
        super().__init__()
        if kind not in ("fourier", "positional"):
            raise ValueError(f"embedding must be 'fourier' or 'positional', got {kind!r}")
        make = (lambda: FourierEmbedding(noise_channels, fourier_scale)) if kind == "fourier" \
            else (lambda: PositionalEmbedding(noise_channels))  # fmt: skip
        self.features = make()
        self.extra_features = nn.ModuleList([make() for _ in range(time_inputs - 1)])
        self.linear0 = _init_(nn.Linear(noise_channels, emb_channels))
        self.linear1 = _init_(nn.Linear(emb_channels, emb_channels))

    def forward(self, c_noise: Tensor) -> Tensor:
        """c_noise : (B,) or (B, time_inputs) -> emb : (B, emb_channels)."""
        c = c_noise.float().reshape(len(c_noise), -1)  # phases in float32 even under autocast
        emb = self.features(c[:, 0])
        for i, features in enumerate(self.extra_features, 1):
            emb = emb + features(c[:, i])
        return F.silu(self.linear1(F.silu(self.linear0(emb))))


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over the H*W positions, residual, rescaled.

    ``x <- (x + proj(attn(qkv(GroupNorm(x))))) / sqrt(2)``; NCSN++ uses one head [2, 3].
    """

    def __init__(self, channels: int, num_heads: int = 1):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = conv(channels, 3 * channels, 1, scale=ATTN_INIT_SCALE)
        self.proj = conv(channels, channels, 1, scale=ZERO_INIT_SCALE)

    def forward(self, x: Tensor) -> Tensor:
        """x : (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, C/heads)
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        a = a.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(a)) * SKIP_SCALE


class ResBlock(nn.Module):
    """BigGAN-style residual block conditioned on the noise embedding (NCSN++ [2]).

    ``h = conv0(resample(SiLU(GN(x))))``; ``h = SiLU(GN(h + Linear(emb)))``;
    ``h = conv1(dropout(h))``; ``x <- (h + skip(resample(x))) / sqrt(2)``; then optional
    self-attention. ``skip`` is a 1x1 conv when the shape changes, else the identity.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    emb_channels : int
        Width of the noise embedding.
    resample : {None, "down", "up"}
        Down/up-sample by 2 inside the block (both branches).
    attention : bool
        Append a SelfAttention layer.
    dropout : float
        Dropout probability before the second conv.
    fir : tuple of int
        FIR filter for the resampling.
    num_heads : int
        Attention heads.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_channels: int,
        resample: str | None = None,
        attention: bool = False,
        dropout: float = 0.0,
        fir: tuple[int, ...] = NCSNPP_FILTER,
        num_heads: int = 1,
    ):
        super().__init__()
        self.in_channels, self.out_channels = c_in, c_out
        self.norm0 = group_norm(c_in)
        self.resample = Resample(resample, fir) if resample else nn.Identity()
        self.conv0 = conv(c_in, c_out, 3)
        self.affine = _init_(nn.Linear(emb_channels, c_out))
        self.norm1 = group_norm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv(c_out, c_out, 3, scale=ZERO_INIT_SCALE)
        reshape = c_in != c_out or resample is not None
        self.skip = conv(c_in, c_out, 1) if reshape else nn.Identity()
        self.attn = SelfAttention(c_out, num_heads) if attention else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x : (B, c_in, H, W), emb : (B, emb_channels) -> (B, c_out, H', W')."""
        h = self.conv0(self.resample(F.silu(self.norm0(x))))
        h = F.silu(self.norm1(h + self.affine(emb)[:, :, None, None]))
        h = self.conv1(self.dropout(h))
        x = (h + self.skip(self.resample(x))) * SKIP_SCALE
        return self.attn(x)


class ProgressiveInput(nn.Module):
    """NCSN++'s "residual" progressive input: re-inject the down-sampled image.

    ``aux <- conv3x3(down(aux))``; ``x <- (x + aux) / sqrt(2)`` and the result becomes both
    the next ``x`` and the next ``aux`` [2] (EDM's ``encoder_type="residual"``).
    """

    def __init__(self, c_aux: int, c_out: int, fir: tuple[int, ...] = NCSNPP_FILTER):
        super().__init__()
        self.down = Resample("down", fir)
        self.conv = conv(c_aux, c_out, 3)

    def forward(self, x: Tensor, aux: Tensor) -> Tensor:
        """x : (B, c_out, H/2, W/2), aux : (B, c_aux, H, W) -> (B, c_out, H/2, W/2)."""
        return (x + self.conv(self.down(aux))) * SKIP_SCALE


class EncoderLevel(nn.Module):
    """One resolution of the encoder: [down ResBlock + progressive input], ResBlocks.

    Every output (after the down-sampling step and after each ResBlock) is kept as a skip.
    """

    def __init__(self, c_in: int, c_out: int, c_aux: int, num_blocks: int, first: bool, **block_kw):
        super().__init__()
        attention = block_kw.pop("attention")
        fir = block_kw.setdefault("fir", NCSNPP_FILTER)
        self.down = None if first else ResBlock(c_in, c_in, resample="down", **block_kw)
        self.progressive = None if first else ProgressiveInput(c_aux, c_in, fir)
        channels = [c_in] + [c_out] * num_blocks
        self.blocks = nn.ModuleList(
            ResBlock(a, b, attention=attention, **block_kw) for a, b in zip(channels, channels[1:])
        )

    def forward(self, x: Tensor, aux: Tensor, emb: Tensor, skips: list[Tensor]):
        """Run the level, appending skips; returns the new (x, aux)."""
        if self.down is not None:
            x = aux = self.progressive(self.down(x, emb), aux)
            skips.append(x)
        for block in self.blocks:
            x = block(x, emb)
            skips.append(x)
        return x, aux


class DecoderLevel(nn.Module):
    """One resolution of the decoder: num_blocks + 1 ResBlocks, each eating one skip,
    attention on the last one at attention resolutions, then an up ResBlock (unless last).
    """

    def __init__(self, c_in: int, skip_channels: list[int], c_out: int, last: bool, **block_kw):
        super().__init__()
        attention = block_kw.pop("attention")
        blocks, c = [], c_in
        for i, c_skip in enumerate(skip_channels):
            attn = attention and i == len(skip_channels) - 1
            blocks.append(ResBlock(c + c_skip, c_out, attention=attn, **block_kw))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.up = None if last else ResBlock(c_out, c_out, resample="up", **block_kw)

    def forward(self, x: Tensor, emb: Tensor, skips: list[Tensor]) -> Tensor:
        """Run the level, popping skips (last in, first out)."""
        for block in self.blocks:
            x = block(torch.cat([x, skips.pop()], dim=1), emb)
        return x if self.up is None else self.up(x, emb)


# ----------------------------------------------------------------------------------------
# The network


class UNet(nn.Module):
    """NCSN++ / DDPM++ U-Net, ``F_theta(x; c_noise)``, with no preconditioning.

    Parameters
    ----------
    img_resolution : int
        Image side at which ``attn_resolutions`` are read (level l has side res / 2^l).
    in_channels : int
        Channels of the input image (3 for RGB).
    out_channels : int
        Channels of the output (3 for RGB).
    model_channels : int
        Base width (NCSN++ "nf"); level l has ``model_channels * channel_mult[l]`` channels.
    channel_mult : tuple of int
        Width multiplier per resolution; the net down-samples len(channel_mult) - 1 times.
    num_blocks : int
        Residual blocks per resolution in the encoder (the decoder has one more).
    attn_resolutions : tuple of int
        Sides at which the ResBlocks carry self-attention.
    dropout : float
        Dropout probability in every ResBlock (CM: 0; EDM teacher: 0.13; iCT: 0.3).
    embedding : {"fourier", "positional"}
        Noise-level features: Gaussian Fourier (NCSN++) or sinusoidal (DDPM++).
    fourier_scale : float
        Std of the Fourier frequencies: 16 in CM, 0.02 in iCT.
    channel_mult_noise : int
        Width of the noise features, times model_channels (NCSN++: 2, DDPM++: 1).
    channel_mult_emb : int
        Width of the embedding MLP, times model_channels (4 in both).
    resample_filter : tuple of int
        FIR taps for up/down-sampling: (1, 3, 3, 1) for NCSN++, (1, 1) for DDPM++.
    num_heads : int
        Attention heads (NCSN++ uses 1).

    Notes
    -----
    ``forward(x, c_noise)`` takes x : (B, in_channels, H, W), H and W divisible by
    ``2 ** (len(channel_mult) - 1)``, and c_noise : (B,) (or a scalar), already
    preconditioned (e.g. ``c_noise = ln(sigma) / 4``, EDM Eq. (7)). Returns
    (B, out_channels, H, W).
    """

    def __init__(
        self,
        img_resolution: int = 32,  # side of the training images
        in_channels: int = 3,  # input image channels
        out_channels: int = 3,  # output channels
        model_channels: int = 128,  # base width "nf"
        channel_mult: tuple[int, ...] = (2, 2, 2),  # width multiplier per resolution
        num_blocks: int = 4,  # ResBlocks per resolution (encoder)
        attn_resolutions: tuple[int, ...] = (16,),  # sides with self-attention
        dropout: float = 0.0,  # dropout probability in the ResBlocks
        embedding: str = "fourier",  # "fourier" (NCSN++) or "positional" (DDPM++)
        fourier_scale: float = CM_FOURIER_SCALE,  # CM: 16, iCT: 0.02
        channel_mult_noise: int = 2,  # noise-feature width / model_channels
        channel_mult_emb: int = 4,  # embedding width / model_channels
        resample_filter: tuple[int, ...] = NCSNPP_FILTER,  # FIR taps for up/down
        num_heads: int = 1,  # attention heads
        time_inputs: int = 1,  # 2: MeanFlow's (t, t - r), c_noise of shape (B, 2)
    ):
        super().__init__()
        self.img_resolution = img_resolution
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_levels = len(channel_mult)
        emb_channels = model_channels * channel_mult_emb
        self.embed = NoiseEmbedding(
            embedding, model_channels * channel_mult_noise, emb_channels, fourier_scale,
            time_inputs,
        )  # fmt: skip
        block_kw = dict(
            emb_channels=emb_channels,
            dropout=dropout,
            fir=tuple(resample_filter),
            num_heads=num_heads,
        )
        widths = [model_channels * m for m in channel_mult]
        sides = [img_resolution >> level for level in range(self.num_levels)]
        attn = [side in attn_resolutions for side in sides]

        self.stem = conv(in_channels, model_channels, 3)
        self.encoder = nn.ModuleList()
        skip_channels, c, c_aux = [model_channels], model_channels, in_channels
        for level, (width, a) in enumerate(zip(widths, attn)):
            first = level == 0
            self.encoder.append(
                EncoderLevel(c, width, c_aux, num_blocks, first, attention=a, **block_kw)
            )
            skip_channels += [c] * (not first) + [width] * num_blocks
            c_aux = c_aux if first else c  # after level 1, aux carries the trunk's width
            c = width

        self.middle = nn.ModuleList(
            [ResBlock(c, c, attention=True, **block_kw), ResBlock(c, c, **block_kw)]
        )

        self.decoder = nn.ModuleList()
        for level in reversed(range(self.num_levels)):
            skips = [skip_channels.pop() for _ in range(num_blocks + 1)]
            self.decoder.append(
                DecoderLevel(c, skips, widths[level], level == 0, attention=attn[level], **block_kw)
            )
            c = widths[level]

        self.head_norm = group_norm(c)
        self.head_conv = conv(c, out_channels, 3, scale=ZERO_INIT_SCALE)

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        """F_theta(x; c_noise).

        Parameters
        ----------
        x : Tensor, shape (B, in_channels, H, W)
            Network input (already scaled by c_in by the caller).
        c_noise : Tensor, shape (B,) or (), or (B, time_inputs)
            Preconditioned noise level, e.g. ln(sigma) / 4 (EDM Eq. (7)).

        Returns
        -------
        Tensor, shape (B, out_channels, H, W)
        """
        self._check_shape(x)
        c = c_noise.reshape(-1, c_noise.shape[-1]) if c_noise.ndim == 2 else c_noise.reshape(-1)
        emb = self.embed(c.expand(x.shape[0], *c.shape[1:]))
        aux = x  # the progressive-input path starts from the image itself
        x = self.stem(x)
        skips = [x]
        for level in self.encoder:
            x, aux = level(x, aux, emb, skips)
        for block in self.middle:
            x = block(x, emb)
        for level in self.decoder:
            x = level(x, emb, skips)
        return self.head_conv(F.silu(self.head_norm(x)))

    def _check_shape(self, x: Tensor) -> None:
        """Raise a clear error for wrong channels or sides not divisible by 2^(levels-1)."""
        factor = 2 ** (self.num_levels - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected x of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"H and W must be divisible by {factor}, got {tuple(x.shape[2:])}")


# ----------------------------------------------------------------------------------------
# Presets

UNET_PRESETS: dict[str, dict] = {
    # CPU tests and notebooks: 2 resolutions, 32/64 channels; 754,883 parameters.
    "tiny": dict(model_channels=32, channel_mult=(1, 2), num_blocks=1),
    # Short GPU runs on CIFAR-10: the paper network at half width; 14,123,907 parameters.
    "small": dict(model_channels=64, channel_mult=(2, 2, 2), num_blocks=4),
    # CM's CIFAR-10 NCSN++ (ref. sheet §7; EDM's NCSN++ config): 56,395,523 parameters
    # (the "56.4M" quoted for it).
    # For iCT pass fourier_scale=ICT_FOURIER_SCALE, dropout=0.3.
    "paper": dict(model_channels=128, channel_mult=(2, 2, 2), num_blocks=4),
}


def unet_preset(name: str, **overrides) -> UNet:
    """Build a UNet from a named preset of ``UNET_PRESETS``, with keyword overrides.

    Every preset is NCSN++-style (Fourier embedding, FIR (1, 3, 3, 1), residual progressive
    input, attention at 16x16) for 32x32 RGB images unless overridden, e.g.
    ``unet_preset("paper", fourier_scale=ICT_FOURIER_SCALE, dropout=0.3)`` for iCT.
    """
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; choose from {sorted(UNET_PRESETS)}")
    return UNet(**{**UNET_PRESETS[name], **overrides})


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (buffers such as Fourier frequencies excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
