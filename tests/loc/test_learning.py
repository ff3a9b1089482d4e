"""Every model family learns location from the CSI: on HELD-OUT samples of a real ray-traced
store it beats the trivial estimates it is compared with (training mean, kNN on its own input
features, and for set models the neighbour centroid x_init they are given) by a margin, and
the same check with the CSI shuffled across samples FAILS (so the check measures learning from
the CSI, not from the labels or the prior).

The store: ``scenes/learning_canyon.yaml`` (Sionna's street canyon, 2 TRPs x 8 antennas, 32
subcarriers over 61 MHz, 600 UEs), rendered once per session with real Sionna RT on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loc.data import CSIStore, CSITransform, split_indices
from loc.evaluate import baseline_predictions, evaluate, localization_errors
from loc.fit.supervised import TrainConfig, TrainSet, train

SCENE = Path(__file__).parent / "scenes" / "learning_canyon.yaml"
MARGIN = 0.9  # the model's mean error must be below 0.9 x every baseline's
N_TRAIN, N_TEST, K = 450, 140, 16

# family -> (model, model kwargs, input domain, steps); sized for ~10-20 s each on 2 cores
FAMILIES = {
    "point: cnn": ("cnn", {"width": 32}, "ad_power", 1200),
    "set: mateformer": (
        "mateformer",
        dict(d_model=32, depth=2, n_heads=4, d_ff=64, p_range=(8, 16), q_range=(1, 16)),
        "ad_power",
        400,
    ),
    "trp: resnet_fp": ("resnet_fp", dict(widths=(8, 16), hidden=32), "freq", 400),
    "trp: vinloc": (
        "vinloc",
        dict(
            d_emb=16,
            depth=2,
            n_heads=2,
            d_ff=32,
            head_hidden=32,
            head_layers=2,
            enc_channels=(4, 8),
        ),
        "freq",
        400,
    ),
}


class ShuffledCSI(CSIStore):
    """The same store with every sample's CSI taken from another (seeded) sample: locations,
    link states and TRPs unchanged, so only the CSI <-> location link is broken."""

    def __init__(self, *args, seed: int = 0, **kw) -> None:
        super().__init__(*args, **kw)
        self.perm = np.random.default_rng(seed).permutation(len(self))

    def read(self, idx):
        return super().read(self.perm[np.asarray(idx, np.int64)])

    def read_raw(self, idx):
        return super().read_raw(self.perm[np.asarray(idx, np.int64)])


@pytest.fixture(scope="module")
def canyon(tmp_path_factory) -> Path:
    from simgen.render import Renderer, plan

    p = plan(SCENE)
    p.out = tmp_path_factory.mktemp("learning") / "learning_canyon.zarr"
    r = Renderer(p, "cpu")
    r.render(r.open_store())
    return p.out


def held_out(path: Path, family: str, shuffled: bool) -> tuple[float, dict[str, float]]:
    """Train ``family`` on N_TRAIN samples; (its held-out mean error, each baseline's) in m."""
    name, kw, domain, steps = FAMILIES[family]
    cls = ShuffledCSI if shuffled else CSIStore
    st = cls(path, "dry", transform=CSITransform(domain=domain))
    sp = split_indices(st.valid, N_TRAIN, N_TEST, seed=1)
    st.fit_transform(sp.train)
    cfg = TrainConfig(
        model=name, model_kwargs=kw, steps=steps, batch_size=32, n_neighbours=K, device="cpu"
    )
    model = train(cfg, [TrainSet(st, sp.train)]).model
    _, err = evaluate(model, st, sp.test, sp.train, k=K)
    coarse = 1.0 if model.kind == "set" else None
    rows = baseline_predictions(st, st.xy[sp.train], sp.train, sp.test, coarse_error=coarse, k=K)
    rows.pop("coarse location (l = 1 m)", None)  # the set models' input, not an estimate
    base = {n: float(localization_errors(p, st.xy[sp.test]).mean()) for n, p in rows.items()}
    return float(err.mean()), base


def beats(err: float, base: dict[str, float]) -> bool:
    return all(err < MARGIN * b for b in base.values())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_learns_from_the_csi_and_the_shuffled_control_does_not(canyon, family):
    err, base = held_out(canyon, family, shuffled=False)
    assert beats(err, base), (family, err, base)
    err_s, base_s = held_out(canyon, family, shuffled=True)
    assert not beats(err_s, base_s), ("shuffled CSI passed", family, err_s, base_s)
    assert err < err_s
