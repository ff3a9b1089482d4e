"""MetaLoc: one MAML inner step lowers the query loss; centralized and distributed paradigms
agree on a single environment; MMD picks the right environment; meta-training + fast
adaptation fits the tiny store; fast adaptation (Adam to convergence, early stopping on held-out
support samples, the paper's SGD recipe) on the angle-delay fingerprint, with a shuffled-CSI
control that must not beat the mean of the K labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loc.data import CSIStore, Selection, split_indices
from loc.errors import ConfigError, DivergedError
from loc.fit.meta import (
    AdaptConfig,
    MetaConfig,
    _call_loss,
    adapt,
    adaptation_curve,
    inner_adapt,
    maml_loss,
    meta_train,
    mmd2,
    params_of,
    select_init,
)
from loc.fit.supervised import TrainConfig, TrainSet, train
from loc.models import build_model, count_parameters
from loc.models.metaloc import MetaLocNet


def _toy_net():
    torch.manual_seed(0)
    m = MetaLocNet((1, 2, 2), hidden=(16,), features="amplitude")
    m.fit_targets(np.zeros((2, 2)))  # origin 0, scale 1
    return m


def _toy_task(slope, n=20, seed=0):
    """Fingerprint (amplitudes of a (1, 2, 2) CSI) -> location = slope * fingerprint[:2]."""
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(n, 1, 2, 2, 2, generator=g)
    fp = (h**2).sum(-1).sqrt().flatten(1)
    return h, slope * fp[:, :2]


@pytest.mark.parametrize("first_order", [True, False])
def test_one_inner_step_lowers_query_loss(first_order):
    m = _toy_net()
    h_s, x_s = _toy_task(3.0, seed=0)
    h_q, x_q = _toy_task(3.0, seed=1)  # same function, new samples
    p0 = params_of(m)
    before = float(_call_loss(m, p0, h_q, x_q).detach())
    p1 = inner_adapt(m, p0, h_s, x_s, alpha=0.05, steps=1, first_order=first_order)
    after = float(_call_loss(m, p1, h_q, x_q).detach())
    assert after < before
    # second order keeps the graph to theta, first order treats the gradient as constant
    loss = _call_loss(m, p1, h_q, x_q)
    g = torch.autograd.grad(loss, m.net[0].weight)[0]
    g_direct = torch.autograd.grad(_call_loss(m, {**p0, **{}}, h_q, x_q), m.net[0].weight)[0]
    assert not torch.allclose(g, g_direct)
    assert float(maml_loss(m, p0, [(h_s, x_s, h_q, x_q)], 0.05, 1, first_order).detach()) == (
        pytest.approx(after, rel=1e-5)
    )


def _env(store_path, group, trps=None, n=128):
    st = CSIStore(store_path, group, Selection(trps=trps))
    sp = split_indices(st.valid, n, 100)
    st.fit_transform(sp.train)
    return TrainSet(st, sp.train), sp


# RSS fingerprints of the two TRPs (smooth in the location: the paper's simulation setting)
SMALL = dict(
    model_kwargs=dict(hidden=(32, 32, 16, 16), features="rss"),
    n_way=4,
    k_spt=2,
    k_qry=4,
    device="cpu",
)


def test_centralized_and_distributed_agree_on_one_environment(store_path):
    env, _ = _env(store_path, "dry")
    kw = dict(SMALL, meta_steps=6, meta_batch=2, inner_steps=2, alpha=0.01, beta=1e-3)
    central = meta_train(MetaConfig(paradigm="maml", **kw), [env]).model
    ts = meta_train(MetaConfig(paradigm="maml_ts", **kw), [env])
    dg = meta_train(MetaConfig(paradigm="maml_dg", dg_weight=0.0, **kw), [env]).model
    assert len(ts.models) == 1 and select_init(ts, torch.zeros(3, 2, 8, 8, 2)) == 0
    for (k, a), b, c in zip(
        central.state_dict().items(),
        ts.model.state_dict().values(),
        dg.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-7, msg=k)
    # with a weight on G the DG objective is a different one
    dg1 = meta_train(MetaConfig(paradigm="maml_dg", dg_weight=1.0, **kw), [env]).model
    assert not torch.equal(dg1.net[0].weight, central.net[0].weight)
    with pytest.raises(ConfigError, match="paradigm"):
        MetaConfig(paradigm="reptile")


def test_diverging_meta_training_is_a_one_line_error(store_path):
    env, _ = _env(store_path, "dry")
    kw = dict(SMALL, meta_steps=50, meta_batch=2, inner_steps=5, alpha=1e4, beta=1e-3)
    with pytest.raises(DivergedError, match="diverged at meta step .* lower alpha"):
        meta_train(MetaConfig(paradigm="maml", **kw), [env])


def test_mmd_selects_the_matching_environment():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 3.0
    assert mmd2(a[:100], a[100:]) < 0.1 * mmd2(a[:100], b[:100])
    from loc.fit.meta import MetaResult

    m = _toy_net()
    fp = lambda h: m.fingerprint(h)  # noqa: E731
    h_a = torch.rand(50, 1, 2, 2, 2, generator=g)
    h_b = torch.rand(50, 1, 2, 2, 2, generator=g) * 4
    res = MetaResult([m, m], [], [fp(h_a), fp(h_b)])
    assert select_init(res, h_b[:10] * 1.01) == 1 and select_init(res, h_a[:10]) == 0


def test_meta_training_and_fast_adaptation_fit_tiny_store(store_path):
    """Meta-train on dry + rain (two environments, MAML-DG alternates them), adapt with K
    samples: the error on held-out target samples beats predicting the support mean, and
    the meta-learned init adapts better than a random init with the same K and steps."""
    dry, _ = _env(store_path, "dry")
    rain, sp = _env(store_path, "rain_25mmh")
    kw = dict(SMALL, meta_steps=200, meta_batch=4, inner_steps=2, alpha=0.05, beta=1e-2)
    res = meta_train(MetaConfig(paradigm="maml_dg", log_every=20, **kw), [dry, rain])
    loss = [h["loss"] for h in res.history]
    assert loss[-1] < 0.3 * loss[0], loss
    ri = MetaLocNet(dry.store.shape, **SMALL["model_kwargs"])
    ri.fit_targets(dry.store.xy[dry.train])
    curve = adaptation_curve(
        {"maml_dg": res, "ri": ri},
        rain,
        sp.test[:60],
        ks=(32,),
        adapt_cfg=AdaptConfig(optimizer="sgd", steps=10, lr=0.05),
    )
    xy = rain.store.xy[sp.test[:60]]
    base = np.linalg.norm(xy - xy.mean(0), axis=1).mean()
    assert curve["maml_dg"][32]["mean"] < 0.5 * base
    assert curve["maml_dg"][32]["mean"] < 0.5 * curve["ri"][32]["mean"]
    m = adapt(res.model, *(_toy_inputs(rain)), AdaptConfig(steps=2))
    assert m is not res.model and m.training is False


def _toy_inputs(env):
    from loc.data import FeatureBank

    bank = FeatureBank(env.store)
    idx = env.train[:8]
    return bank(idx), bank.xy(idx)


def test_metaloc_net_in_registry_and_standard_loop(store_path):
    m = build_model("metaloc", (1, 32, 32))
    assert count_parameters(m) == 369_474  # 1024-256-256-128-64-2
    assert build_model("metaloc", (2, 8, 8), features="rss").net[0].in_features == 2
    env, _ = _env(store_path, "dry", n=64)
    cfg = TrainConfig(
        model="metaloc",
        model_kwargs=SMALL["model_kwargs"],
        steps=200,
        batch_size=32,
        lr=3e-3,
        log_every=1,
        device="cpu",
    )
    loss = np.array([h["loss"] for h in train(cfg, [env]).history])  # the TL / RI baseline
    assert loss[:5].mean() / loss[-20:].mean() >= 5


# ----------------------------------------------------------------------------- fast adaptation


def _target(store_path, k):
    """A fresh angle-delay MetaLocNet (targets fitted on the dry group: the "historical"
    environment) and K support + 100 test samples of the rain group (the new one)."""
    from loc.data import FeatureBank

    src, _ = _env(store_path, "dry", n=256)
    tgt, sp = _env(store_path, "rain_25mmh", n=256)
    torch.manual_seed(0)
    m = MetaLocNet(tgt.store.shape, hidden=(64, 64), features="angle_delay")
    m.fit_targets(src.store.xy[src.train])
    bank = FeatureBank(tgt.store)
    sup, test = sp.train[:k], sp.test
    return m, bank, bank(sup), bank.xy(sup), bank(test), tgt.store.xy[test]


def _err(model, h, xy) -> float:
    with torch.no_grad():
        return float(np.linalg.norm(model(h).numpy() - xy, axis=1).mean())


def test_adaptation_reduces_held_out_error(store_path):
    """Adam to convergence on K = 96 labelled samples of the new environment: the held-out
    error falls far below the unadapted init and the mean of the K labels, and below kNN on
    the same fingerprints with the K samples as the database."""
    from loc.models.fingerprint_knn import KNNFingerprint

    m, _, h_s, x_s, h_t, x_t = _target(store_path, 96)
    a = adapt(m, h_s, x_s, AdaptConfig(lr=3e-3, steps=300))
    mean_of_k = float(np.linalg.norm(x_s.numpy().mean(0) - x_t, axis=1).mean())
    with torch.no_grad():
        knn = KNNFingerprint(5).fit(m.fingerprint(h_s).numpy(), x_s.numpy())
        e_knn = float(np.linalg.norm(knn.predict(m.fingerprint(h_t).numpy()) - x_t, axis=1).mean())
    e0, e1 = _err(m, h_t, x_t), _err(a, h_t, x_t)
    assert e1 < 0.35 * e0 and e1 < 0.35 * mean_of_k and e1 < e_knn, (e0, e1, mean_of_k, e_knn)
    assert a.adapt_info["monitor"] == "holdout" and a is not m and not a.training
    assert _err(m, h_t, x_t) == e0  # the init is untouched


def test_early_stopping_restores_the_best_weights(store_path):
    """A large LR on K = 32 overfits: the run stops before ``steps`` and keeps the weights of
    its best held-out step, exactly those of a run cut at that step."""
    m, _, h_s, x_s, *_ = _target(store_path, 32)
    cfg = AdaptConfig(lr=3e-2, steps=400, patience=15)
    a = adapt(m, h_s, x_s, cfg)
    info = a.adapt_info
    assert info["monitor"] == "holdout" and 0 < info["best_step"] < info["steps"] < 400, info
    cut = AdaptConfig(lr=3e-2, steps=info["best_step"], patience=10**6)
    b = adapt(m, h_s, x_s, cut)
    assert b.adapt_info["best_step"] == info["best_step"]
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    # tiny K: no held-out part, the training loss picks the step
    assert adapt(m, h_s[:8], x_s[:8], cfg).adapt_info["monitor"] == "train"


def test_paper_recipe_runs_exactly_the_sgd_steps(store_path):
    m, _, h_s, x_s, *_ = _target(store_path, 16)
    a = adapt(m, h_s, x_s, AdaptConfig(optimizer="sgd", steps=3, lr=0.05))
    assert a.adapt_info == {"steps": 3, "best_step": 3, "monitor": "none"}
    params = {k: v.detach().clone() for k, v in m.named_parameters()}
    for _ in range(3):  # θ <- θ - α ∇L(θ; support), by hand
        loss = _call_loss(m, {k: v.requires_grad_() for k, v in params.items()}, h_s, x_s)
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {
            k: (v - 0.05 * g).detach() for (k, v), g in zip(params.items(), grads, strict=True)
        }
    for k, v in a.named_parameters():
        torch.testing.assert_close(v, params[k], rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(ConfigError, match="adapt.optimizer"):
        AdaptConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="unknown key"):
        AdaptConfig.from_dict({"step": 3})


def test_shuffled_csi_control_does_not_beat_the_mean_of_k(store_path):
    """Control: the same K = 96 labels with their CSI permuted across samples carry no
    location; adaptation must not beat predicting the mean of the K labels."""
    m, _, h_s, x_s, h_t, x_t = _target(store_path, 96)
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(h_s)))
    a = adapt(m, h_s[perm], x_s, AdaptConfig(lr=3e-3, steps=300))
    mean_of_k = float(np.linalg.norm(x_s.numpy().mean(0) - x_t, axis=1).mean())
    assert _err(a, h_t, x_t) > 0.9 * mean_of_k, (_err(a, h_t, x_t), mean_of_k)
