"""Target conditioning shared by every point-output model: locations are predicted in
standardised units, (x - origin) / scale, with ``origin`` (2,) m and ``scale`` (scalar, m) buffers
fitted on the training labels and stored in the checkpoint (``state_dict``), so inference applies
the same mapping. The paper recipe sets origin = 0 and scale = 1 (raw metres).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TargetNorm(nn.Module):
    """Location standardisation: (x - origin) / scale with buffers fitted on training xy."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("origin", torch.zeros(2))
        self.register_buffer("scale", torch.ones(()))

    def fit_targets(self, xy: np.ndarray) -> None:
        """origin = mean training (x, y); scale = the larger per-axis std (>= 1 m)."""
        xy = np.asarray(xy, np.float64)[:, :2]
        self.origin.copy_(torch.as_tensor(xy.mean(0)))
        self.scale.fill_(float(max(xy.std(0).max(), 1.0)))

    def to_metres(self, y: torch.Tensor) -> torch.Tensor:
        out = y * self.scale
        return torch.cat([out[:, :2] + self.origin, out[:, 2:]], dim=1)

    def normalise_xyz(self, xyz: torch.Tensor) -> torch.Tensor:
        """(..., 3) m -> (..., 3) standardised (z only scaled)."""
        shift = torch.cat([self.origin, self.origin.new_zeros(1)])
        return (xyz - shift) / self.scale

    def l2_loss(self, pred_m: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Mean Euclidean distance in standardised units (the paper's l2-norm loss)."""
        d = (pred_m[:, :2] - xy[:, :2]) / self.scale
        return torch.sqrt((d**2).sum(-1) + 1e-12).mean()
