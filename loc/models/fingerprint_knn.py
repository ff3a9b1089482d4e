"""kNN fingerprinting, the model-free row beside every learned model: the k nearest training
fingerprints in signal space, location = their (optionally inverse-distance weighted) mean
(MetaLoc's KNN / WKNN baselines, K = 5)."""

from __future__ import annotations

import numpy as np
import torch

from loc.errors import ConfigError, DataError


def fingerprints(features: np.ndarray | torch.Tensor, kind: str = "amplitude") -> np.ndarray:
    """(N, G, A, C, 2) CSI features -> (N, D) float32 fingerprints.

    "amplitude": |h| per (link group, antenna, subcarrier); "rss": per link group mean power
    in dB (-200 dB floor for no signal).
    """
    f = np.asarray(features, np.float32)
    p = (f**2).sum(-1)
    if kind == "amplitude":
        return np.sqrt(p).reshape(len(f), -1)
    if kind == "rss":
        return (10 * np.log10(p.mean(axis=(2, 3)) + 1e-20)).clip(-200).astype(np.float32)
    raise ConfigError(f"unknown fingerprint {kind!r} (amplitude | rss)")


class KNNFingerprint:
    """kNN / WKNN in signal space: fit(fp (N, D), xy (N, 2) m); predict(fp (M, D)) -> (M, 2)."""

    def __init__(self, k: int = 5, weighted: bool = False) -> None:
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k, self.weighted = k, weighted

    def fit(self, fp: np.ndarray, xy: np.ndarray) -> KNNFingerprint:
        self.db = torch.as_tensor(np.asarray(fp, np.float32))
        self.xy = np.asarray(xy, np.float64)
        if self.k > len(self.xy):
            raise DataError(f"k = {self.k} exceeds the {len(self.xy)} reference fingerprints")
        return self

    def predict(self, fp: np.ndarray, block: int = 1024) -> np.ndarray:
        q = torch.as_tensor(np.asarray(fp, np.float32))
        out = np.empty((len(q), self.xy.shape[1]))
        for a in range(0, len(q), block):
            dist = torch.cdist(q[a : a + block], self.db)
            dk, ik = torch.topk(dist, self.k, dim=1, largest=False)
            w = 1.0 / (dk.double().numpy() + 1e-9) if self.weighted else np.ones(dk.shape)
            nb = self.xy[ik.numpy()]  # (b, k, 2)
            out[a : a + len(dk)] = (w[..., None] * nb).sum(1) / w.sum(1, keepdims=True)
        return out


def knn_localize(
    store,
    train: np.ndarray,
    test: np.ndarray,
    k: int = 5,
    kind: str = "amplitude",
    weighted: bool = False,
) -> np.ndarray:
    """kNN fingerprinting on a ``CSIStore``: database = ``train`` samples; (M, 2) m for
    ``test``."""
    knn = KNNFingerprint(k, weighted).fit(fingerprints(store.read(train), kind), store.xy[train])
    return knn.predict(fingerprints(store.read(test), kind))
