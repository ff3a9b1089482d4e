"""CNN and AD_CNN localization baselines (spec §6.2; same network, AD_CNN adds the DFT).

    (B, G, A, C, 2) -> channels (G*2) x A x C
    Conv(2G->w) [no act] -> 3 x {[Conv(w->w) + LeakyReLU(0.3)] x 2, MaxPool 2x2}
    -> Conv(w->2) -> flatten (2 * A/8 * C/8) -> Linear(->w) -> LeakyReLU -> Linear(w->2)

57,796 parameters for (1, 32, 32) CSI with w = 32. AD_CNN maps each link group's CSI to the
angle-delay domain with the unitary DFT of ``loc.data.dft_matrices`` before the convolutions.
The head predicts standardised locations (``loc.models.targets.TargetNorm``; raw metres under
the paper recipe).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from loc.errors import ConfigError
from loc.models.targets import TargetNorm
from loc.transforms import ArrayShape, array_hparams, dft_matrices


class CNN(TargetNorm):
    """Plain CNN baseline: CSI (B, G, A, C, 2) -> location (B, 2) in metres."""

    kind = "point"
    bf16_ok = False  # the paper recipe regresses raw metres through a 32-feature bottleneck
    angle_delay = False

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 32, 32),
        width: int = 32,
        slope: float = 0.3,
        array: ArrayShape | None = None,
    ) -> None:
        super().__init__()
        g, a, c = in_shape
        if a % 8 or c % 8:
            raise ConfigError(f"CNN needs antennas and subcarriers divisible by 8, got {a}x{c}")
        self.hparams = dict(in_shape=tuple(in_shape), width=width, slope=slope)
        if self.angle_delay:  # (rows, cols, ports) of the TRP array: its 2-D angle DFT
            self.hparams.update(array_hparams(array))
        layers: list[nn.Module] = [nn.Conv2d(2 * g, width, 3, padding=1)]
        for _ in range(3):
            layers += [
                nn.Conv2d(width, width, 3, padding=1),
                nn.LeakyReLU(slope),
                nn.Conv2d(width, width, 3, padding=1),
                nn.LeakyReLU(slope),
                nn.MaxPool2d(2),
            ]
        layers += [nn.Conv2d(width, 2, 3, padding=1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * (a // 8) * (c // 8), width), nn.LeakyReLU(slope), nn.Linear(width, 2)
        )
        if self.angle_delay:
            f_a, f_d = dft_matrices(a, c, array)
            self.register_buffer("f_angle", torch.from_numpy(f_a.astype(np.complex64)), False)
            self.register_buffer(
                "f_delay_h", torch.from_numpy(f_d.conj().T.astype(np.complex64)), False
            )

    def preprocess(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> (B, 2G, A, C); AD_CNN first applies F_angle @ H @ F_delay^H."""
        if self.angle_delay:
            hc = torch.view_as_complex(h.float().contiguous())
            h = torch.view_as_real(self.f_angle @ hc @ self.f_delay_h)
        b, g, a, c, _ = h.shape
        return h.permute(0, 1, 4, 2, 3).reshape(b, 2 * g, a, c)

    def forward_std(self, h: torch.Tensor) -> torch.Tensor:
        """(B, G, A, C, 2) -> standardised location (B, 2)."""
        return self.head(self.features(self.preprocess(h)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.to_metres(self.forward_std(h))

    def training_loss(
        self, h: torch.Tensor, xy: torch.Tensor, rng: np.random.Generator
    ) -> torch.Tensor:
        """MSE on standardised (x, y). h: (B, G, A, C, 2); xy: (B, 2) m."""
        return self.std_mse(self.forward_std(h), xy)


class ADCNN(CNN):
    """AD_CNN: the CNN on angle-delay CSI (2-D DFT, spec §6.2)."""

    angle_delay = True
    takes_array = True  # build_model passes the store's TRP array shape
    complex_input = True  # its own DFT needs the complex CFR (domain freq)
