#!/usr/bin/python3
"""The 3D-CVAE of lib/nn/cvae.h as a PyTorch module: the oracle of
tests/test_reference.c (see make_reference.py and README.md).

Everything here follows lib/nn/cvae.h and lib/nn/layers.h literally:
  x [B][1][T][T][E] -> enc (Conv3d + ReLU, every layer) -> flatten
    -> fc_enc + ReLU -> fc_mulv = (mu, logvar)  (mu first, then log sigma^2)
  z = mu + exp(logvar / 2) * eps
    -> fc_dec + ReLU -> fc_unflat + ReLU -> reshape [B][c_{n-1}][Y][X][E]
    -> dec (ConvTranspose3d mirroring the encoder in reverse, ReLU between
       layers, none after the last) -> logits [B][1][T][T][E]
  loss = (sum of rec(logit, x) over all items and elements
          + beta * sum_items KL_item) / B,
  KL_item = -1/2 sum_l (1 + logvar - mu^2 - exp(logvar)).

The state_dict keys, in order, are cvae.h's parameter names:
  enc.<2i>.weight/bias, fc_enc, fc_mulv, fc_dec, fc_unflat, dec.<2j>.weight/bias.
"""
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

LOSS_BERNOULLI, LOSS_GAUSSIAN, LOSS_POISSON = 0, 1, 2
LOSS_NAMES = {LOSS_BERNOULLI: "bernoulli", LOSS_GAUSSIAN: "gaussian", LOSS_POISSON: "poisson"}


@dataclass
class ConvSpec:
    """One encoder convolution (eelsvae_conv_spec): axes (y, x, E)."""
    channels: int
    kernel: Tuple[int, int, int]
    stride: Tuple[int, int, int]
    padding: Tuple[int, int, int]


@dataclass
class Arch:
    """The part of eelsvae_model_options the network depends on."""
    tile: int
    energy: int
    convs: List[ConvSpec]
    hidden: int
    latent: int
    beta: float
    loss: int


@dataclass
class Layout:
    """cvae.h's evae_cvae_layout: stage 0 is the input, stage i+1 enc i's output."""
    stage_dims: List[Tuple[int, int, int]] = field(default_factory=list)
    stage_channels: List[int] = field(default_factory=list)
    output_padding: List[Tuple[int, int, int]] = field(default_factory=list)  # of the convT mirroring enc i
    flat: int = 0


def layout_of(arch: Arch) -> Layout:
    """Stage sizes and the output padding of every transposed conv, derived
    as cvae.h says: op makes the convT's output exactly the size of the
    matching encoder stage's input, and must lie in [0, stride)."""
    lay = Layout(stage_dims=[(arch.tile, arch.tile, arch.energy)], stage_channels=[1])
    for i, c in enumerate(arch.convs):
        dims = []
        for a in range(3):
            n = lay.stage_dims[-1][a] + 2 * c.padding[a] - c.kernel[a]
            if n < 0:
                raise ValueError(f"conv {i}: axis {a} shrinks to nothing")
            dims.append(n // c.stride[a] + 1)
        lay.stage_dims.append(tuple(dims))
        lay.stage_channels.append(c.channels)
    for i, c in enumerate(arch.convs):
        op = []
        for a in range(3):
            natural = (lay.stage_dims[i + 1][a] - 1) * c.stride[a] - 2 * c.padding[a] + c.kernel[a]
            pad = lay.stage_dims[i][a] - natural
            if not 0 <= pad < c.stride[a]:
                raise ValueError(f"conv {i}: axis {a} needs output padding {pad}, outside [0, {c.stride[a]})")
            op.append(pad)
        lay.output_padding.append(tuple(op))
    last = lay.stage_dims[-1]
    lay.flat = lay.stage_channels[-1] * last[0] * last[1] * last[2]
    return lay


class CVAE(nn.Module):
    """The network; construct under torch.manual_seed(seed) for PyTorch's
    default initialisation (cvae.h's evae_cvae_init_params mirrors it)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.layout = layout_of(arch)
        lay, n = self.layout, len(arch.convs)
        enc = []
        for i, c in enumerate(arch.convs):
            enc += [nn.Conv3d(lay.stage_channels[i], c.channels, c.kernel, c.stride, c.padding), nn.ReLU()]
        # Registration order is state_dict order: keep it as cvae.h lists it.
        self.enc = nn.Sequential(*enc)
        self.fc_enc = nn.Linear(lay.flat, arch.hidden)
        self.fc_mulv = nn.Linear(arch.hidden, 2 * arch.latent)
        self.fc_dec = nn.Linear(arch.latent, arch.hidden)
        self.fc_unflat = nn.Linear(arch.hidden, lay.flat)
        dec = []
        for j in range(n):
            i = n - 1 - j  # the encoder layer this one mirrors
            c = arch.convs[i]
            dec.append(nn.ConvTranspose3d(lay.stage_channels[i + 1], lay.stage_channels[i], c.kernel, c.stride,
                                          c.padding, output_padding=lay.output_padding[i]))
            if j < n - 1:
                dec.append(nn.ReLU())
        self.dec = nn.Sequential(*dec)

    def forward(self, x, eps):
        """x [B][T][T][E], eps [B][L] -> (logits [B][T][T][E], mulv [B][2L])."""
        b, L = x.shape[0], self.arch.latent
        h = self.enc(x.unsqueeze(1)).flatten(1)
        mulv = self.fc_mulv(torch.relu(self.fc_enc(h)))
        mu, logvar = mulv[:, :L], mulv[:, L:]
        z = mu + torch.exp(0.5 * logvar) * eps
        d = torch.relu(self.fc_unflat(torch.relu(self.fc_dec(z))))
        d = d.reshape(b, self.layout.stage_channels[-1], *self.layout.stage_dims[-1])
        return self.dec(d).squeeze(1), mulv


def reconstruction_sum(kind: int, logits, target):
    """Sum over every element of layers.h's per-element loss."""
    if kind == LOSS_BERNOULLI:  # max(l, 0) - l*t + log1p(exp(-|l|))
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    if kind == LOSS_GAUSSIAN:   # 1/2 (sigmoid(l) - t)^2
        return 0.5 * ((torch.sigmoid(logits) - target) ** 2).sum()
    if kind == LOSS_POISSON:    # sigmoid(l) - t * log sigmoid(l), log sigmoid(l) = -softplus(-l)
        return (torch.sigmoid(logits) - target * F.logsigmoid(logits)).sum()
    raise ValueError(f"unknown loss kind {kind}")


def loss_terms(arch: Arch, logits, target, mulv):
    """(loss, reconstruction, kl), each already divided by the batch size B."""
    b, L = target.shape[0], arch.latent
    mu, logvar = mulv[:, :L], mulv[:, L:]
    rec = reconstruction_sum(arch.loss, logits, target) / b
    kl = -0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar)).sum() / b
    return rec + arch.beta * kl, rec, kl


def relu_inputs(model: CVAE, x, eps):
    """Every tensor a ReLU is applied to, in forward order (for the script's
    check that no pre-activation sits so near 0 that rounding could flip it)."""
    out = []
    L = model.arch.latent
    a = x.unsqueeze(1)
    for m in model.enc:
        if isinstance(m, nn.ReLU):
            out.append(a)
        a = m(a)
    pre = model.fc_enc(a.flatten(1))
    out.append(pre)
    mulv = model.fc_mulv(torch.relu(pre))
    z = mulv[:, :L] + torch.exp(0.5 * mulv[:, L:]) * eps
    pre = model.fc_dec(z)
    out.append(pre)
    pre = model.fc_unflat(torch.relu(pre))
    out.append(pre)
    a = torch.relu(pre).reshape(x.shape[0], model.layout.stage_channels[-1], *model.layout.stage_dims[-1])
    for m in model.dec:
        if isinstance(m, nn.ReLU):
            out.append(a)
        a = m(a)
    return out
