"""MetaLoc (spec ``metaloc.md``): MAML meta-training of a fingerprint -> location MLP over
environments, centralized (vanilla MAML) and distributed (MAML-TS, MAML-DG), and fast
adaptation with K target samples.

Environments are ``loc.fit.supervised.TrainSet`` objects (a store / condition group / TRP layout and
its training indices). A task is N reference points ("ways") with ``k_spt`` support and
``k_qry`` query samples each: samples that share a UE position (e.g. several traffic snapshots)
form one reference point; when an environment has too few repeated positions a task is
N * (k_spt + k_qry) distinct random samples (support and query disjoint).

Model: ``MetaLocNet`` = MLP with 4 hidden layers (256, 256, 128, 64; ReLU) on a fingerprint of
the CSI features: ``"amplitude"`` = |h| of every (link group, antenna, subcarrier) (G*A*C) or
``"rss"`` = per-link-group mean power in dB / 10 (G). It is a plain "point" model, so the
standard loop trains it on pooled environments (the TL baseline) or on K target samples (RI).
Losses are MSE on standardised locations (``TargetNorm``).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from loc.errors import ConfigError
from loc.models.targets import TargetNorm

log = logging.getLogger("loc.metaloc")

PARADIGMS = ("maml", "maml_ts", "maml_dg")


class MetaLocNet(TargetNorm):
    """Fingerprint MLP: CSI features (B, G, A, C, 2) -> location (B, 2) m."""

    kind = "point"
    bf16_ok = False
    complex_input = True  # makes its fingerprint from the complex CSI

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        hidden: tuple[int, ...] = (256, 256, 128, 64),
        features: str = "amplitude",
    ) -> None:
        super().__init__()
        if features not in ("amplitude", "rss"):
            raise ConfigError(f"unknown MetaLoc fingerprint {features!r} (amplitude | rss)")
        g, a, c = in_shape
        self.hparams = dict(in_shape=tuple(in_shape), hidden=tuple(hidden), features=features)
        self.features = features
        d = g * a * c if features == "amplitude" else g
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(d, w), nn.ReLU()]
            d = w
        layers.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*layers)

    def fingerprint(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, D) fingerprint."""
        p = (h.float() ** 2).sum(-1)  # |h|^2 (B, G, A, C)
        if self.features == "amplitude":
            return p.sqrt().flatten(1)
        return torch.log10(p.mean(dim=(2, 3)) + 1e-12)

    def forward_std(self, h: torch.Tensor) -> torch.Tensor:
        """Standardised location (B, 2)."""
        return self.net(self.fingerprint(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.to_metres(self.forward_std(h))

    def training_loss(self, h, xy, rng=None) -> torch.Tensor:
        return F.mse_loss(self.forward_std(h), (xy - self.origin) / self.scale)
