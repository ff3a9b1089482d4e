"""Target conditioning: the one place where models map locations to the numbers their networks
predict, and back. Both mappings are buffers fitted on the training labels, so they travel in
the checkpoint (``state_dict``) and inference applies exactly what training used.

- ``TargetNorm`` (every point-output model: CNN, AD_CNN, MFCNet, VIn-Loc, ResNet fingerprinting,
  the DA networks, MetaLoc's MLP): the network predicts z = (x - origin) / scale, origin (2,) m
  = the mean training location, scale (scalar, m) = the larger per-axis standard deviation.
- ``AnchorNorm`` (set models: Mateformer, ICLLoc): labels enter relative to the sequence's
  anchor a = the centroid of the embedded samples' locations (Mateformer's x_init), in units of
  a stored length L (m): z = (x - a) / L, and the output is a + L * net.

The paper recipe (``identity=True``) keeps raw metres: origin = 0, scale = 1, and for set models
absolute labels (anchor 0, L = 1), i.e. the networks of the specs unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TargetNorm(nn.Module):
    """Location standardisation: z = (x - origin) / scale with buffers fitted on training xy."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("origin", torch.zeros(2))
        self.register_buffer("scale", torch.ones(()))

    def fit_targets(self, xy: np.ndarray, identity: bool = False) -> None:
        """Fit on training locations xy (N, >= 2) m: origin = mean (x, y), scale = the larger
        per-axis std (>= 1 m). ``identity`` (the paper recipe): origin 0, scale 1 (raw metres)."""
        xy = np.asarray(xy, np.float64)[:, :2]
        if identity:
            self.origin.zero_()
            self.scale.fill_(1.0)
            return
        self.origin.copy_(torch.as_tensor(xy.mean(0)))
        self.scale.fill_(float(max(xy.std(0).max(), 1.0)))

    def standardise(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) m -> (..., 2) standardised."""
        return (xy[..., :2] - self.origin) / self.scale

    def to_metres(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 2 + extra) standardised -> metres (extra columns only scaled)."""
        out = y * self.scale
        return torch.cat([out[:, :2] + self.origin, out[:, 2:]], dim=1)

    def normalise_xyz(self, xyz: torch.Tensor) -> torch.Tensor:
        """(..., 3) m -> (..., 3) standardised (z only scaled)."""
        shift = torch.cat([self.origin, self.origin.new_zeros(1)])
        return (xyz - shift) / self.scale

    def std_mse(self, pred_std: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """MSE between standardised predictions (..., 2) and locations xy (..., 2) m, in
        standardised units (= MSE in m² under the paper recipe)."""
        return F.mse_loss(pred_std, self.standardise(xy.float()))

    def l2_loss(self, pred_m: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """Mean Euclidean distance in standardised units (the paper's l2-norm loss)."""
        d = (pred_m[:, :2] - xy[:, :2]) / self.scale
        return torch.sqrt((d**2).sum(-1) + 1e-12).mean()


class AnchorNorm(nn.Module):
    """Labels relative to the sequence anchor (centroid of the embedded samples' locations),
    in units of ``label_scale`` L (m). ``relative`` = False: absolute labels in metres."""

    def __init__(self, relative: bool = True) -> None:
        super().__init__()
        self.relative = relative
        self.register_buffer("label_scale", torch.ones(()))

    def fit_targets(self, seq_xy: np.ndarray, identity: bool = False) -> None:
        """Fit L on training sequences seq_xy (N, T, 2) m (T = k neighbours + the sample):
        the RMS distance of every item from its sequence's neighbour centroid (>= 0.01 m).
        ``identity`` (the paper recipe) keeps L = 1; it requires ``relative`` = False."""
        seq_xy = np.asarray(seq_xy, np.float64)[..., :2]
        if identity or not self.relative:
            self.label_scale.fill_(1.0)
            return
        centre = seq_xy[:, :-1].mean(axis=1, keepdims=True)
        rms = float(np.sqrt(((seq_xy - centre) ** 2).sum(-1).mean()))
        self.label_scale.fill_(max(rms, 0.01))

    def encode(self, nei_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded locations (B, P, 2) m -> (labels (B, P, 2) in network units, anchor (B, 1, 2)
        m). fp32."""
        nei_x = nei_x.float()
        if not self.relative:
            return nei_x, torch.zeros_like(nei_x[:, :1])
        anchor = nei_x.mean(dim=1, keepdim=True)
        return (nei_x - anchor) / self.label_scale, anchor

    def decode(self, z: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Network outputs (B, Q, 2) + anchor (B, 1, 2) m -> locations (B, Q, 2) m."""
        return anchor + self.label_scale * z.float()
