"""VIn-Loc: TRP-order invariance, 1..N TRPs with padding masks, subsets, the ablation and the
ResNet fingerprinting baseline; each overfits the tiny store through the one training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loc.data import CSIStore, FeatureBank, Selection, split_indices
from loc.errors import ConfigError
from loc.evaluate import evaluate, predict_subsets
from loc.fit.supervised import TrainConfig, TrainSet, load_checkpoint, train
from loc.models import build_model, count_parameters
from loc.models.vinloc import ALIGN_DELAY_UNIT, ALIGN_PRE, aligned_taps, cir_features, random_subset

TINY = dict(
    d_emb=16, depth=2, n_heads=2, d_ff=32, head_hidden=32, head_layers=2, enc_channels=(4, 8)
)


def _model(**kw):
    torch.manual_seed(0)
    m = build_model("vinloc", (4, 2, 16), **{**TINY, **kw}).eval()
    m.fit_targets(np.array([[0.0, 0.0], [20.0, 10.0]]))
    return m


def _inputs(b=3, t=4):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, t, 2, 16, 2, generator=g), 30 * torch.randn(b, t, 3, generator=g)


def test_paper_sizes_and_registry():
    m = build_model("vinloc", (12, 1, 256))
    assert m.hparams["d_emb"] * 2 == m.loc_token.shape[-1] == 512
    assert len(m.encoder.layers) == 4 and m.encoder.layers[0].self_attn.num_heads == 4
    assert m.encoder.layers[0].linear1.out_features == 1024
    assert sum(isinstance(x, torch.nn.Linear) for x in m.head) == 4
    assert count_parameters(m) == 8_932_472
    # the per-TRP peak normalisation option adds one input feature: 16 x 3 more conv weights
    assert count_parameters(build_model("vinloc", (12, 1, 256), tap_norm="peak")) == 8_932_472 + 48
    assert not build_model("vinloc_nopos", (12, 1, 256)).use_positions
    with pytest.raises(ConfigError, match="do not split"):
        build_model("vinloc", (12, 1, 256), n_trp=5)


def test_output_invariant_to_trp_order():
    m, (h, xyz) = _model(), _inputs()
    present = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        ref = m(h, xyz, present)
        for seed in range(3):
            perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(
                m(h[:, perm], xyz[:, perm], present[:, perm]), ref, atol=1e-4, rtol=1e-5
            )
        # the position of each TRP matters: moving one TRP changes the estimate
        xyz2 = xyz.clone()
        xyz2[:, 0] += 50.0
        assert (m(h, xyz2, present)[0] - ref[0]).abs().max() > 1e-3


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_handles_1_to_n_trps_with_masks(n):
    m, (h, xyz) = _model(), _inputs()
    present = torch.zeros(3, 4, dtype=torch.bool)
    present[:, :n] = True
    with torch.no_grad():
        masked = m(h, xyz, present)
        direct = m(h[:, :n], xyz[:, :n])  # only the n tokens, no padding
        torch.testing.assert_close(masked, direct, atol=1e-4, rtol=1e-5)
        junk_h, junk_x = h.clone(), xyz.clone()
        junk_h[:, n:] = 1e3 * torch.randn_like(junk_h[:, n:])
        junk_x[:, n:] = -1e4
        torch.testing.assert_close(m(junk_h, junk_x, present), masked, atol=1e-4, rtol=1e-5)
    assert torch.isfinite(masked).all() and masked.shape == (3, 2)


def test_ablation_ignores_positions_and_fingerprint_ignores_order_of_nothing():
    torch.manual_seed(0)
    m = build_model("vinloc_nopos", (4, 2, 16), **TINY).eval()
    h, xyz = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(m(h, xyz), m(h, xyz + 100.0))
    fp = build_model("resnet_fp", (4, 2, 16), widths=(8, 16)).eval()
    present = torch.ones(3, 4, dtype=torch.bool)
    present[:, 3] = False
    with torch.no_grad():
        out = fp(h, xyz, present)
        h2 = h.clone()
        h2[:, 3] += 5.0
        torch.testing.assert_close(fp(h2, xyz, present), out)  # absent TRP = zero input
        assert (fp(h[:, [1, 0, 2, 3]], xyz, present) - out).abs().max() > 1e-6  # fixed slots


def test_cir_features_and_random_subset():
    h, _ = _inputs(b=2, t=4)
    f = cir_features(h.reshape(2, 4, 2, 16, 2), 2, tap_norm="global")  # 2 TRPs x 2 UE ants
    assert f.shape == (2, 2, 3, 4, 16)
    hc = torch.view_as_complex(h.contiguous())
    energy_in = (hc.abs() ** 2).sum()
    torch.testing.assert_close((f[:, :, 2] ** 2).sum(), energy_in)  # orthonormal IDFT
    torch.testing.assert_close(f[:, :, 2], torch.hypot(f[:, :, 0], f[:, :, 1]))
    # a single path at delay tau = n / B lands on tap n (absolute delays kept)
    k = torch.arange(16)
    one = torch.exp(-2j * torch.pi * k * 5 / 16).to(torch.complex64)
    h1 = torch.view_as_real(one.expand(1, 1, 1, 16).contiguous())
    assert int(cir_features(h1, 1, tap_norm="global")[0, 0, 2, 0].argmax()) == 5
    # our default: per-TRP peak normalisation makes a TRP 40 dB weaker look the same, except
    # for its level channel; an absent (all-zero) TRP stays all zero
    two = torch.stack([h1[0, 0], 0.01 * h1[0, 0], 0 * h1[0, 0]])[None]  # (1, 3 TRPs, 1, 16, 2)
    pk = cir_features(two, 3, tap_norm="peak")
    assert pk.shape == (1, 3, 4, 1, 16)
    torch.testing.assert_close(pk[0, 0, :3], pk[0, 1, :3])
    assert int(pk[0, 0, 2, 0].argmax()) == 5 and float(pk[0, 0, 2, 0].max()) == 1.0
    torch.testing.assert_close(pk[0, 0, 3] - pk[0, 1, 3], torch.full_like(pk[0, 0, 3], 2.0))
    assert float(pk[0, 2].abs().max()) == 0.0
    present = torch.tensor([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 1]], dtype=torch.bool)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        sub = random_subset(present, 2, rng)
        assert (sub <= present).all()
        assert sub.sum(1).tolist() == [2, 1, 2]
        seen.add(tuple(sub[0].tolist()))
    assert len(seen) == 6  # every 2-of-4 subset of row 0 occurs


def test_aligned_taps_find_the_first_arrival_and_normalise():
    """A weak first arrival at tap 7 (-12 dB) before the strongest path at tap 12: the window
    starts ALIGN_PRE taps before tap 7, de-rotated to a real positive first tap, over the peak
    amplitude; a 30 dB weaker copy differs only in its level; a path 30 dB below the peak does
    not count as the first arrival; an absent TRP stays zero."""
    c = 64
    taps = torch.zeros(c, dtype=torch.complex64)
    taps[3] = 0.03 * torch.exp(torch.tensor(0.3j))  # -30 dB re the peak: below ALIGN_REL_DB
    taps[7] = 0.25 * torch.exp(torch.tensor(2.0j))
    taps[12] = 1.0 * torch.exp(torch.tensor(-1.0j))
    cfr = torch.fft.fft(taps, norm="ortho")  # "delay" domain: the input is a CFR
    one = torch.view_as_real(cfr).reshape(1, 1, 1, c, 2)
    h = torch.cat([one, 10 ** (-30 / 20) * one, 0 * one], dim=1)  # (1, 3 TRPs, 1, C, 2)
    win, sc = aligned_taps(h, 3, window=16)
    assert win.shape == (1, 3, 3, 1, 16) and sc.shape == (1, 3, 2)
    torch.testing.assert_close(sc[0, 0, 0], torch.tensor(7 / ALIGN_DELAY_UNIT))
    torch.testing.assert_close(win[0, 0, 0, 0, ALIGN_PRE], torch.tensor(0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(win[0, 0, 1, 0, ALIGN_PRE], torch.tensor(0.0), atol=1e-5, rtol=0)
    strongest = ALIGN_PRE + 5
    torch.testing.assert_close(win[0, 0, 2, 0, strongest], torch.tensor(1.0))
    torch.testing.assert_close(win[0, 0], win[0, 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sc[0, 0, 1] - sc[0, 1, 1], torch.tensor(1.5))  # 30 dB / 20
    assert float(win[0, 2].abs().max()) == 0.0 and float(sc[0, 2].abs().max()) == 0.0
    m = build_model("vinloc", (3, 1, c), tap_norm="aligned", window=16, **TINY).eval()
    m.fit_targets(np.array([[0.0, 0.0], [20.0, 10.0]]))
    with torch.no_grad():
        assert m(h, torch.randn(1, 3, 3)).shape == (1, 2)
    with pytest.raises(ConfigError, match="window"):
        build_model("vinloc", (3, 1, c), tap_norm="aligned", window=c + 1, **TINY)
    # ResNet reads the same aligned input (tests/loc/test_fair_protocols.py), same window check
    with pytest.raises(ConfigError, match="window"):
        build_model("resnet_fp", (3, 1, c), tap_norm="aligned", window=c + 1)
    with pytest.raises(ConfigError, match="ResNet"):
        build_model("resnet_fp", (3, 1, c), tap_norm="bogus")


def _set(store_path, n_train=64, trps=None):
    st = CSIStore(store_path, "dry", Selection(trps=trps))
    sp = split_indices(st.valid, n_train, 100)
    st.fit_transform(sp.train)
    meta = {"n_train": n_train, "n_test": 100, "test_start": None, "split_seed": 1}
    return TrainSet(st, sp.train, meta=meta), sp


@pytest.mark.parametrize(
    "name,kw,lr,steps",
    [
        ("vinloc", dict(TINY, train_subset=2), 2e-3, 250),
        # no TRP identity without positions (the tiny store's TRPs are near mirror images):
        # slower to fit, so a lower LR and more steps
        ("vinloc_nopos", dict(TINY, head_layers=3), 1e-3, 600),
        ("resnet_fp", dict(widths=(8, 16), hidden=32), 2e-3, 250),
    ],
)
def test_overfits_tiny_dataset(store_path, tmp_path, name, kw, lr, steps):
    ts, sp = _set(store_path)
    bank = FeatureBank(ts.store)
    xyz, present = bank.trp_context(ts.train[:3])
    assert xyz.shape == (3, 2, 3) and present.dtype == torch.bool
    np.testing.assert_allclose(xyz[0].numpy(), ts.store.trp_xyz, rtol=1e-6)
    cfg = TrainConfig(
        model=name,
        model_kwargs=kw,
        steps=steps,
        batch_size=32,
        lr=lr,
        schedule="step",  # memorisation check at a fixed LR budget (held-out: test_learning.py)
        log_every=1,
        ckpt_every=1000,
        device="cpu",
    )
    res = train(cfg, [ts], out_dir=tmp_path)
    loss = np.array([h["loss"] for h in res.history])
    assert loss[:5].mean() / loss[-20:].mean() >= 4, (loss[:5], loss[-20:])
    model, _ = load_checkpoint(tmp_path)
    report, err = evaluate(model, ts.store, ts.train)  # training samples: memorised
    assert (
        report["mode"] == "direct"
        and err.mean()
        < 0.3 * np.linalg.norm(ts.store.xy[ts.train] - ts.store.xy[ts.train].mean(0), axis=1).mean()
    )
    pred = predict_subsets(model, ts.store, ts.train[:8], subset=1, seed=0)
    assert pred.shape == (8, 2) and np.isfinite(pred).all()


@pytest.mark.parametrize("name", ["vinloc", "resnet_fp"])
def test_angle_delay_tokens_use_the_planar_array(name):
    """``domain="angle_delay"``: every on-grid plane wave of a half-wavelength 4 x 8 UPA puts
    >= 99 % of its tap energy in one angle bin of the model's input (the store's array shape
    reaches it through build_model); the old 1-D DFT over the flattened rows does not."""
    from tests.loc.test_data import _on_grid_upa_waves

    s = _on_grid_upa_waves(4, 8)  # (n, 32)
    h = torch.from_numpy(np.repeat(s[:, None, :, None], 16, axis=3))  # (n, G=1, A, C): flat CFR
    h = torch.view_as_real(h.to(torch.complex64))
    kw = {} if name == "resnet_fp" else TINY
    for array, ok in (((4, 8, 1), True), (None, False)):
        m = build_model(name, (1, 32, 16), array=array, domain="angle_delay", n_trp=1, **kw)
        assert m.hparams.get("array") == array
        p = cir_features(h, 1, "angle_delay", f_angle=m.f_angle)[:, 0, 2, :, 0] ** 2  # tap 0
        frac = (p.max(dim=1).values / p.sum(dim=1)).numpy()
        assert frac.min() >= 0.99 if ok else frac.min() < 0.90, frac.min()
    # the delay domain is untouched: no angle DFT, no array in the hparams
    m = build_model(name, (1, 32, 16), array=(4, 8, 1), n_trp=1, **kw)
    assert m.f_angle is None and "array" not in m.hparams
