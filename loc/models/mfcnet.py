"""MFCNet baseline (spec §6.2): an LSTM over subcarriers accumulates multi-carrier evidence.

    step k (one per subcarrier) input = the G*A antennas' (Re, Im) = [ant0 Re, ant0 Im, ...]
    LSTM(2GA -> 128, 2 layers) -> per-step head Linear(128,128) LReLU(0.3) Linear(128,128)
    LReLU(0.3) Linear(128,2)

Training loss: MSE(pred_k * w_k, x * w_k) over all C steps, w_k = k / sum_{k=1..C} k * C (later
subcarriers weigh more), on standardised locations (``loc.models.targets.TargetNorm``; raw
metres under the paper recipe). Inference reads the last step. 264,706 parameters for
(1, 32, 32).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from loc.models.targets import TargetNorm


class MFCNet(TargetNorm):
    """CSI (B, G, A, C, 2) -> location (B, 2) in metres."""

    kind = "point"
    bf16_ok = False

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        hidden: int = 128,
        num_layers: int = 2,
        slope: float = 0.3,
    ) -> None:
        super().__init__()
        g, a, c = in_shape
        self.hparams = dict(
            in_shape=tuple(in_shape), hidden=hidden, num_layers=num_layers, slope=slope
        )
        self.lstm = nn.LSTM(2 * g * a, hidden, num_layers, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(slope),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(slope),
            nn.Linear(hidden, 2),
        )
        k = torch.arange(1, c + 1, dtype=torch.float32)
        self.register_buffer("step_weights", k / k.sum() * c, persistent=False)

    def forward_steps(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> per-subcarrier standardised estimates (B, C, 2)."""
        b, g, a, c, _ = h.shape
        z = h.permute(0, 3, 1, 2, 4).reshape(b, c, g * a * 2)
        y, _ = self.lstm(z)
        return self.head(y)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.to_metres(self.forward_steps(h)[:, -1])

    def training_loss(
        self, h: torch.Tensor, xy: torch.Tensor, rng: np.random.Generator
    ) -> torch.Tensor:
        w = self.step_weights[None, :, None]
        pred = self.forward_steps(h)
        return F.mse_loss(pred * w, self.standardise(xy.float())[:, None, :].expand_as(pred) * w)
