"""MetaLoc's network (spec ``metaloc.md``): a fingerprint -> location MLP. Meta-training and
fast adaptation are in ``loc.fit.meta``.

``MetaLocNet`` = MLP with 4 hidden layers (256, 256, 128, 64; ReLU) on a fingerprint of the
CSI features (B, G, A, C, 2) (already multiplied by the store's CSI scale, so a bin of power 1
is the training RMS):

- ``"angle_delay"`` (default): log-power of the angle-delay CSI H_AD = F_angle H F_delay^H
  (``loc.data.dft_matrices``) per (link group, angle, delay) bin, in dB re the training RMS,
  clipped at ``floor_db`` and mapped to [0, ...): (max(10 log10 |H_AD|^2, floor) - floor) /
  |floor| (G*A*C values). It carries location where |h| does not: the carrier phase
  scrambles the CFR every few cm, while the power per (direction, delay) bin changes smoothly.
- ``"amplitude"``: |h| of every (link group, antenna, subcarrier) (G*A*C).
- ``"rss"``: per-link-group mean power in dB / 10 (G).

It is a plain "point" model, so the standard loop trains it on pooled environments (the TL
baseline) or on K target samples (RI). Losses are MSE on standardised locations (``TargetNorm``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from loc.errors import ConfigError
from loc.models.targets import TargetNorm
from loc.transforms import ArrayShape, array_hparams, dft_matrices

PARADIGMS = ("maml", "maml_ts", "maml_dg")
FINGERPRINTS = ("angle_delay", "amplitude", "rss")


class MetaLocNet(TargetNorm):
    """Fingerprint MLP: CSI features (B, G, A, C, 2) -> location (B, 2) m.

    floor_db: clip level (dB re the training RMS bin power) of the angle-delay fingerprint.
    """

    kind = "point"
    bf16_ok = False
    takes_array = True  # build_model passes the store's TRP array shape
    complex_input = True  # makes its fingerprint from the complex CSI

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        hidden: tuple[int, ...] = (256, 256, 128, 64),
        features: str = "angle_delay",
        floor_db: float = -40.0,
        array: ArrayShape | None = None,
    ) -> None:
        super().__init__()
        if features not in FINGERPRINTS:
            raise ConfigError(
                f"unknown MetaLoc fingerprint {features!r} ({' | '.join(FINGERPRINTS)})"
            )
        if not floor_db < 0:
            raise ConfigError(f"floor_db must be negative (dB re the training RMS), got {floor_db}")
        g, a, c = in_shape
        self.hparams = dict(
            in_shape=tuple(in_shape), hidden=tuple(hidden), features=features, floor_db=floor_db
        )
        if features == "angle_delay":  # (rows, cols, ports) of the TRP array: its 2-D angle DFT
            self.hparams.update(array_hparams(array))
        self.features, self.floor_db = features, float(floor_db)
        if features == "angle_delay":
            f_a, f_d = dft_matrices(a, c, array)
            self.register_buffer("f_angle", torch.from_numpy(f_a.astype(np.complex64)), False)
            self.register_buffer(
                "f_delay_h", torch.from_numpy(f_d.conj().T.astype(np.complex64)), False
            )
        d = g if features == "rss" else g * a * c
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(d, w), nn.ReLU()]
            d = w
        layers.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*layers)

    def fingerprint(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, D) fingerprint (see the module doc)."""
        if self.features == "angle_delay":
            hc = torch.view_as_complex(h.float().contiguous())
            p = (self.f_angle @ hc @ self.f_delay_h).abs() ** 2  # (B, G, A, C)
            db = 10 * torch.log10(p + 1e-30)
            return ((db.clamp(min=self.floor_db) - self.floor_db) / -self.floor_db).flatten(1)
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
        return self.std_mse(self.forward_std(h), xy)
