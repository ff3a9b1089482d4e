"""ResNet RF fingerprinting (``loc.models.vinloc.ResNetFingerprint``) that can also read
VIn-Loc's hand-made first-arrival input (``tap_norm="aligned"``), so that the two are compared
on the same input information (benchmark-fairness rule 3).

``tap_norm="aligned"``: per TRP, the peak-aligned, power-normalised CIR window from its first
arrival (``loc.models.vinloc.aligned_taps``: (Re, Im, log-power), ``window`` taps) stacked as
channels in the fixed TRP order, through the same ResNet; the first arrival's (delay, level) of
every TRP, (B, 2 T), joins the pooled features before the MLP head. Absent TRPs are zeros in
both. Any other ``tap_norm`` is ``ResNetFingerprint`` unchanged (same parameters, checkpoints).
"""

from __future__ import annotations

import torch
from torch import nn

from loc.errors import ConfigError
from loc.models.vinloc import ALIGN_PRE, ResNetFingerprint, aligned_taps
from loc.transforms import ArrayShape


class AlignedResNetFingerprint(ResNetFingerprint):
    """``ResNetFingerprint`` plus ``tap_norm="aligned"`` (module docstring)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        n_trp: int | None = None,
        widths: tuple[int, ...] = (32, 64, 128),
        pool_taps: int = 4,
        hidden: int = 256,
        train_subset: int | None = None,
        domain: str = "delay",
        tap_norm: str = "global",
        window: int = 32,
        array: ArrayShape | None = None,
    ) -> None:
        aligned = tap_norm == "aligned"
        if aligned and not ALIGN_PRE < window <= in_shape[2]:
            raise ConfigError(f"window must be in ({ALIGN_PRE}, {in_shape[2]}], got {window}")
        super().__init__(
            in_shape, n_trp, widths, pool_taps, hidden, train_subset, domain,
            "global" if aligned else tap_norm, array,
        )  # fmt: skip
        self.tap_norm, self.window = tap_norm, window
        self.hparams.update(tap_norm=tap_norm)
        if aligned:  # the (delay, level) of every TRP joins the pooled ResNet features
            self.hparams["window"] = window
            self.head = nn.Sequential(
                nn.Linear(widths[-1] * pool_taps + 2 * self.n_trp, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 2),
            )

    def forward(
        self, h: torch.Tensor, trp_xyz: torch.Tensor | None = None, present=None
    ) -> torch.Tensor:
        """Location (B, 2) m from h (B, G, A, C, 2); ``trp_xyz`` is ignored (fingerprinting)."""
        if self.tap_norm != "aligned":
            return super().forward(h, trp_xyz, present)
        x, arrival = aligned_taps(h, self.n_trp, self.window, self.domain, self.f_angle)
        if present is not None:
            keep = present.to(x.dtype)
            x, arrival = x * keep[:, :, None, None, None], arrival * keep[..., None]
        f = self.features(x.flatten(1, 2))
        return self.to_metres(self.head(torch.cat([f, arrival.flatten(1)], dim=1)))
