"""Mateformer, the network of ALLoc (analogical-learning localization), exactly as spec §3.3.

Two coupled streams over a set of T = P + Q tokens (P embedded "neighbour" samples with known
locations, then Q to-be-inferred queries):

    H stream:  h = Linear(F -> d)(CSI) ,      self-attention over the H features
    x stream:  x = Linear(2 -> d)(location) + type embedding (neighbour / x_init),
               mixed by attention whose Q and K come from the H features of the same layer and
               whose V comes from the x features ("relativity" weights applied to labels)

x_init (the queries' location input) is the mean of the neighbours' locations. With
``relative`` (our default, ``loc.models.targets.AnchorNorm``) the neighbour labels enter relative
to x_init in units of a stored length L, so x_init enters as 0 and the output is
x_init + L * net; ``relative=False`` is the paper's absolute metres. Every token
attends only to the P embedded samples (the spec's additive mask ``mask[:, P:] = -inf``); we
implement that mask by giving attention only the first P keys/values, which is the same
function and lets SDPA use its flash kernel. Pre-norm, GELU, no dropout, no final LayerNorm,
no positional encoding (the model is permutation-equivariant over the embedded set).

Precision: the x stream carries absolute coordinates in metres (hundreds of metres, cm-level
differences), which bf16 cannot represent. With ``x_fp32`` (default) the x stream always runs in
fp32, while under bf16 autocast the H stream (most of the FLOPs) runs in bf16. "The output
never receives absolute features from H but only relative weights", so this is safe.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.models.attention import MultiheadAttention
from loc.models.targets import AnchorNorm


def _fp32(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Context that disables autocast on ``t``'s device."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def _ffn(d_model: int, d_ff: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))


class MateLayer(nn.Module):
    """One pre-norm layer of both streams (spec §3.3 ``MateLayer``)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, x_fp32: bool = True) -> None:
        super().__init__()
        self.ln1_h, self.ln1_x = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn_h = MultiheadAttention(d_model, n_heads)  # Transformer_H
        self.attn_hx = MultiheadAttention(d_model, n_heads)  # Transformer_Hx
        self.ln2_h, self.ln2_x = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn_h, self.ffn_x = _ffn(d_model, d_ff), _ffn(d_model, d_ff)
        self.x_fp32 = x_fp32

    def forward(self, h: torch.Tensor, x: torch.Tensor, n_known: int) -> tuple[torch.Tensor, ...]:
        """h, x: (B, T, d); the first ``n_known`` tokens are the embedded samples."""
        p = n_known
        nh = self.ln1_h(h)
        a_h = self.attn_h(nh, nh[:, :p], nh[:, :p])
        with _fp32(x) if self.x_fp32 else contextlib.nullcontext():
            nhx = nh.float() if self.x_fp32 else nh
            nx = self.ln1_x(x)
            a_x = self.attn_hx(nhx, nhx[:, :p], nx[:, :p])
            x = x + a_x
            x = x + self.ffn_x(self.ln2_x(x))
        h = h + a_h
        h = h + self.ffn_h(self.ln2_h(h))
        return h, x


class Mateformer(nn.Module):
    """ALLoc's Mateformer. 6,859,266 parameters for (1, 32, 32) CSI with the defaults
    (6,858,754 trainable + the two frozen zero H-stream type embeddings).

    Args:
        in_shape: (G, A, C) of one CSI sample; features are (G, A, C, 2) and are flattened
            in (group, ant, car, re/im) order.
        p_range, q_range: inclusive ranges for the number of embedded / to-be-inferred
            samples drawn per training step (spec §2.5).
    """

    kind = "set"
    bf16_ok = True
    paper_kwargs = {"relative": False}  # the recipe: paper (loc.fit.supervised)

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        d_model: int = 256,
        depth: int = 8,
        n_heads: int = 4,
        d_ff: int = 256,
        p_range: tuple[int, int] = (16, 64),
        q_range: tuple[int, int] = (1, 64),
        x_fp32: bool = True,
        relative: bool = True,
    ) -> None:
        super().__init__()
        self.hparams = dict(
            in_shape=tuple(in_shape),
            d_model=d_model,
            depth=depth,
            n_heads=n_heads,
            d_ff=d_ff,
            p_range=tuple(p_range),
            q_range=tuple(q_range),
            x_fp32=x_fp32,
            relative=relative,
        )
        self.labels = AnchorNorm(relative)
        self.in_shape = tuple(in_shape)
        self.p_range, self.q_range = tuple(p_range), tuple(q_range)
        self.input_fc_h = nn.Linear(math.prod(in_shape) * 2, d_model)
        self.input_fc_x = nn.Linear(2, d_model)
        self.nei_embed_h = nn.Parameter(torch.zeros(d_model), requires_grad=False)
        self.cur_embed_h = nn.Parameter(torch.zeros(d_model), requires_grad=False)
        self.nei_embed_x = nn.Parameter(torch.zeros(d_model))
        self.cur_embed_x = nn.Parameter(torch.zeros(d_model))
        self.layers = nn.ModuleList(MateLayer(d_model, n_heads, d_ff, x_fp32) for _ in range(depth))
        self.output_fc_x = nn.Linear(d_model, 2)
        self.x_fp32 = x_fp32

    def fit_targets(self, seq_xy: np.ndarray, identity: bool = False) -> None:
        """Fit the label length L on the training sequences' locations (N, k + 1, 2) m."""
        self.labels.fit_targets(seq_xy, identity)

    def forward(
        self, nei_h: torch.Tensor, nei_x: torch.Tensor, cur_h: torch.Tensor
    ) -> torch.Tensor:
        """Infer query locations.

        Args:
            nei_h: (B, P, G, A, C, 2) scaled CSI of the embedded samples.
            nei_x: (B, P, 2) their locations, metres.
            cur_h: (B, Q, G, A, C, 2) scaled CSI of the queries.
        Returns: (B, Q, 2) locations, metres (fp32).
        """
        b, p = nei_x.shape[:2]
        q = cur_h.shape[1]
        h = torch.cat([nei_h, cur_h], dim=1).flatten(2)
        h = self.input_fc_h(h) + torch.cat(
            [self.nei_embed_h.expand(p, -1), self.cur_embed_h.expand(q, -1)]
        )
        with _fp32(nei_x) if self.x_fp32 else contextlib.nullcontext():
            z_nei, anchor = self.labels.encode(nei_x)
            x_init = z_nei.mean(dim=1, keepdim=True).expand(b, q, 2)
            x = self.input_fc_x(torch.cat([z_nei, x_init], dim=1)) + torch.cat(
                [self.nei_embed_x.expand(p, -1), self.cur_embed_x.expand(q, -1)]
            )
        for layer in self.layers:
            h, x = layer(h, x, p)
        with _fp32(x) if self.x_fp32 else contextlib.nullcontext():
            return self.labels.decode(self.output_fc_x(x[:, p:]), anchor)

    def training_loss(
        self, seq_h: torch.Tensor, seq_x: torch.Tensor, rng: np.random.Generator
    ) -> torch.Tensor:
        """MSE on one training step (spec §2.5) from sequences of T = k + 1 items, in units of
        the label length L (m², L = 1, under the paper recipe).

        p ~ U{p_range}, q ~ U{q_range} (clipped to T) and the two index sets are drawn once
        per step, shared across the batch, independently (they may overlap).
        seq_h: (B, T, G, A, C, 2); seq_x: (B, T, 2) metres.
        """
        t = seq_x.shape[1]
        p = _draw(rng, self.p_range, t)
        q = _draw(rng, self.q_range, t)
        dev = seq_x.device
        i_nei = torch.from_numpy(rng.choice(t, p, replace=False)).to(dev)
        i_cur = torch.from_numpy(rng.choice(t, q, replace=False)).to(dev)
        pred = self(seq_h[:, i_nei], seq_x[:, i_nei], seq_h[:, i_cur])
        return F.mse_loss(pred, seq_x[:, i_cur].float()) / self.labels.label_scale**2


def _draw(rng: np.random.Generator, lo_hi: tuple[int, int], t: int) -> int:
    """Uniform integer in [lo, hi] with both ends clipped to the sequence length t."""
    hi = min(lo_hi[1], t)
    lo = min(lo_hi[0], hi)
    return int(rng.integers(lo, hi + 1))
