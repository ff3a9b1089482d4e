"""ICLLoc: in-context-learning localization with a decoder-only Transformer (spec §6.2, App.).

Tokens [H_1, x_1, H_2, x_2, ..., H_n, x_n, H_query] (length 2n + 1 <= 2 * max_context + 1):
H tokens = Linear(F -> d)(CSI), x tokens = Linear(2 -> d)(location), plus a learnable absolute
positional embedding (zero-initialised) aligned to the end of the table, so the query always
gets the last positional embedding whatever the context length (as the authors' code does).
Causal mask, 8 pre-norm layers (d 256, 4 heads, d_ff 512, ReLU, no dropout, no final norm),
head Linear(d -> 2) read at H-token positions.
4,775,682 parameters for (1, 32, 32) CSI.

Two training schemes over the shuffled k + 1 items of a sequence (order shared by the batch):
- ``generative``: context = first k items as pairs, then the last H; loss = MSE of the
  predictions at every H token j >= min_context (x_j from the preceding pairs and H_j).
- ``discriminative``: context length c ~ U{min_context..max_context}; loss on the last token.

Locations (``loc.models.targets.AnchorNorm``): with ``relative`` (our default) every x token
and every prediction is relative to the centroid of the context locations, in units of a
stored length L; ``relative=False`` is the paper's absolute metres.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.errors import ConfigError
from loc.models.attention import MultiheadAttention
from loc.models.targets import AnchorNorm

SCHEMES = ("generative", "discriminative")


class EncoderLayer(nn.Module):
    """Pre-norm causal Transformer layer; parameter names equal
    ``nn.TransformerEncoderLayer(norm_first=True, activation=relu)``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, n_heads)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n = self.norm1(t)
        t = t + self.self_attn(n, n, n, is_causal=True)
        return t + self.linear2(F.relu(self.linear1(self.norm2(t))))


class ICLLoc(nn.Module):
    """Set model interface like Mateformer: forward(nei_h, nei_x, cur_h) -> (B, Q, 2)."""

    kind = "set"
    bf16_ok = False  # location tokens share the residual stream with CSI tokens
    paper_kwargs = {"relative": False}  # the recipe: paper (loc.fit.supervised)

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        d_model: int = 256,
        depth: int = 8,
        n_heads: int = 4,
        d_ff: int = 512,
        max_context: int = 64,
        min_context: int = 16,
        scheme: str = "generative",
        relative: bool = True,
    ) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ConfigError(f"unknown ICLLoc scheme {scheme!r} ({' | '.join(SCHEMES)})")
        self.hparams = dict(
            in_shape=tuple(in_shape),
            d_model=d_model,
            depth=depth,
            n_heads=n_heads,
            d_ff=d_ff,
            max_context=max_context,
            min_context=min_context,
            scheme=scheme,
            relative=relative,
        )
        self.labels = AnchorNorm(relative)  # context labels relative to their centroid
        self.scheme, self.max_context, self.min_context = scheme, max_context, min_context
        self.embed_h = nn.Linear(math.prod(in_shape) * 2, d_model)
        self.embed_x = nn.Linear(2, d_model)
        self.pos_embed = nn.Parameter(torch.zeros(2 * max_context + 1, d_model))
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff) for _ in range(depth))
        self.head = nn.Linear(d_model, 2)

    def fit_targets(self, seq_xy: np.ndarray, identity: bool = False) -> None:
        """Fit the label length L on the training sequences' locations (N, k + 1, 2) m."""
        self.labels.fit_targets(seq_xy, identity)

    def tokens(self, ctx_h: torch.Tensor, ctx_x: torch.Tensor, cur_h: torch.Tensor) -> torch.Tensor:
        """ctx_h (B, n, G, A, C, 2), ctx_x (B, n, 2) labels in network units (see
        ``AnchorNorm.encode``), cur_h (B, 1, ...) -> (B, 2n + 1, d)."""
        b, n = ctx_x.shape[:2]
        if n > self.max_context:
            raise ConfigError(f"ICLLoc takes at most {self.max_context} context pairs, got {n}")
        eh = self.embed_h(torch.cat([ctx_h, cur_h], dim=1).flatten(2))
        ex = self.embed_x(ctx_x.float()).to(eh.dtype)
        pairs = torch.stack([eh[:, :n], ex], dim=2).reshape(b, 2 * n, -1)
        t = torch.cat([pairs, eh[:, n:]], dim=1)
        return t + self.pos_embed[-(2 * n + 1) :]  # right-aligned: query = last embedding

    def run(self, t: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L, d) -> predictions at every position (B, L, 2)."""
        for layer in self.layers:
            t = layer(t)
        return self.head(t).float()

    def forward(
        self, nei_h: torch.Tensor, nei_x: torch.Tensor, cur_h: torch.Tensor
    ) -> torch.Tensor:
        """Each of the Q queries is read after the same P context pairs (one sequence each)."""
        b, p = nei_x.shape[:2]
        q = cur_h.shape[1]

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.unsqueeze(1).expand(b, q, *t.shape[1:]).reshape(b * q, *t.shape[1:])

        z, anchor = self.labels.encode(nei_x)
        t = self.tokens(rep(nei_h), rep(z), cur_h.reshape(b * q, 1, *cur_h.shape[2:]))
        return self.labels.decode(self.run(t)[:, -1].reshape(b, q, 2), anchor)

    def training_loss(
        self, seq_h: torch.Tensor, seq_x: torch.Tensor, rng: np.random.Generator
    ) -> torch.Tensor:
        """seq_h (B, T, G, A, C, 2), seq_x (B, T, 2): one step of the chosen scheme."""
        t = seq_x.shape[1]
        perm = torch.from_numpy(rng.permutation(t)).to(seq_x.device)
        h, x = seq_h[:, perm], seq_x[:, perm].float()
        if self.scheme == "generative":
            n = min(t - 1, self.max_context)
        else:
            hi = min(self.max_context, t - 1)
            n = int(rng.integers(min(self.min_context, hi), hi + 1))
        z_ctx, anchor = self.labels.encode(x[:, :n])
        target = (x[:, : n + 1] - anchor) / self.labels.label_scale  # network units
        if self.scheme == "generative":
            pred = self.run(self.tokens(h[:, :n], z_ctx, h[:, n : n + 1]))[:, 0::2]
            m = min(self.min_context, n)  # pred: (B, n + 1, 2) at the H tokens
            return F.mse_loss(pred[:, m:], target[:, m:])
        pred = self.run(self.tokens(h[:, :n], z_ctx, h[:, n : n + 1]))[:, -1]
        return F.mse_loss(pred, target[:, n])
