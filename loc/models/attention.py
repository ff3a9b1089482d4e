"""Multi-head attention with ``torch.nn.MultiheadAttention``'s parameters, computed with
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).

Parameter names and shapes equal ``nn.MultiheadAttention(d, h, bias=True, batch_first=True)``
(``in_proj_weight`` (3d, d), ``in_proj_bias`` (3d,), ``out_proj``), so a state dict loads into
either; the tests use that to check exactness against PyTorch's reference module.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiheadAttention(nn.Module):
    """Batch-first MHA without dropout. ``fused=False`` selects an eager softmax path
    (used to benchmark fused vs. eager attention; numerically the same function)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} not divisible by n_heads {n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        self.fused = True
        nn.init.xavier_uniform_(self.in_proj_weight)  # same init as nn.MultiheadAttention
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.n_heads, self.d_model // self.n_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """query (B, Lq, d), key/value (B, Lk, d) -> (B, Lq, d)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            if is_causal:
                lq, lk = s.shape[-2:]
                s = s.masked_fill(
                    torch.ones(lq, lk, dtype=torch.bool, device=s.device).triu(1), float("-inf")
                )
            y = s.softmax(-1) @ v
        y = y.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.d_model)
        return self.out_proj(y)


def set_fused_attention(model: nn.Module, fused: bool) -> None:
    """Switch every MultiheadAttention in ``model`` between SDPA and the eager path."""
    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            m.fused = fused
