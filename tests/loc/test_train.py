"""Training loop: schedule, determinism/resume, scenario separation, every model overfits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loc.data import CSIStore, Selection, split_indices
from loc.errors import CheckpointError, ConfigError, DataError
from loc.fit.supervised import (
    TrainConfig,
    TrainSet,
    _Batches,
    _scenario_for,
    load_checkpoint,
    lr_at,
    resolve_device,
    train,
)
from loc.models import PEAK_LR

TINY = {  # small widths so CPU tests are fast; the code path is the full model's
    "mateformer": dict(d_model=32, depth=2, n_heads=4, d_ff=32, p_range=(4, 8), q_range=(1, 8)),
    "cnn": dict(),
    "ad_cnn": dict(width=16),
    "mfcnet": dict(hidden=64),
    "iclloc_gen": dict(d_model=32, depth=2, d_ff=64, max_context=8, min_context=2),
    "iclloc_disc": dict(d_model=32, depth=2, d_ff=64, max_context=8, min_context=2),
}


def _set(store_path, group="dry", n_train=64):
    st = CSIStore(store_path, group, Selection(trps=(0,)))
    sp = split_indices(st.valid, n_train, 100)
    st.fit_transform(sp.train)
    return TrainSet(
        st, sp.train, meta={"n_train": n_train, "n_test": 100, "test_start": None, "split_seed": 1}
    )


def test_lr_schedule_matches_spec():
    """recipe: paper keeps the spec's step schedule and LRs exactly."""
    cfg = TrainConfig(steps=300_000, recipe="paper")
    assert cfg.schedule == "step" and cfg.peak_lr("mateformer") == 1e-4
    assert cfg.peak_lr("cnn") == 1e-3
    assert lr_at(0, cfg, 1e-4) == 1e-4
    assert lr_at(149_999, cfg, 1e-4) == 1e-4  # step 150,000 still at 1e-4
    assert lr_at(150_000, cfg, 1e-4) == pytest.approx(2e-5)
    assert lr_at(200_000, cfg, 1e-4) == pytest.approx(4e-6)
    assert lr_at(250_000, cfg, 1e-4) == pytest.approx(8e-7)
    assert lr_at(299_999, cfg, 1e-4) == pytest.approx(8e-7)
    short = TrainConfig(steps=600, recipe="paper")
    assert lr_at(299, short, 1.0) == 1.0 and lr_at(300, short, 1.0) == pytest.approx(0.2)


def test_paper_recipe_trains_the_specs_networks_and_ours_conditions_them(store_path):
    """recipe: paper -> raw metres (point), absolute labels (set), the spec LR and step
    schedule; the default -> standardised targets, anchor-relative labels, cosine."""
    ts = _set(store_path)
    spans = ts.store.xy[ts.train].std(0).max()
    for recipe in ("paper", "conditioned"):
        paper = recipe == "paper"
        kw = dict(steps=1, batch_size=8, n_neighbours=8, device="cpu", recipe=recipe)
        cnn = train(TrainConfig(model="cnn", **kw), [ts]).model
        assert float(cnn.scale) == pytest.approx(1.0 if paper else spans)
        assert float(cnn.origin.abs().max()) == 0.0 if paper else float(cnn.origin.abs().max()) > 0
        mate = train(TrainConfig(model="mateformer", model_kwargs=TINY["mateformer"], **kw), [ts])
        assert mate.model.labels.relative is not paper
        assert (float(mate.model.labels.label_scale) == 1.0) is paper
        cfg = TrainConfig(model="cnn", **kw)
        assert cfg.peak_lr("cnn") == (1e-3 if paper else PEAK_LR["point"])
        assert cfg.schedule == ("step" if paper else "cosine")


def test_default_schedule_is_warmup_then_cosine_sized_to_the_steps():
    cfg = TrainConfig(steps=1000)  # conditioned recipe: 5 % warm-up, cosine to 1 % of the peak
    assert cfg.schedule == "cosine"
    lrs = [lr_at(s, cfg, 1.0) for s in range(1000)]
    assert lrs[0] == pytest.approx(1 / 50) and lrs[49] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[49:], lrs[50:], strict=False))  # decays
    assert lrs[524] == pytest.approx(0.505, abs=0.01)  # half-way through the decay
    assert lrs[-1] == pytest.approx(0.01)
    # the last third of a short run is no longer ~0 (the paper schedule's 8e-7 / 1e-4)
    assert lrs[800] > 0.05


def test_config_and_device_errors():
    with pytest.raises(ConfigError):
        TrainConfig(sampling="knn")
    with pytest.raises(ConfigError):
        TrainConfig(precision="fp8")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_batches_are_epochwise_permutations():
    b = _Batches(10, 3, seed=0, scenario=0)
    epoch0 = np.concatenate([b.rows(k) for k in range(3)])
    assert len(set(epoch0)) == 9  # drop_last: 3 batches of 3 from 10, no repeats
    assert not np.array_equal(epoch0, np.concatenate([b.rows(k) for k in range(3, 6)]))
    np.testing.assert_array_equal(b.rows(4), _Batches(10, 3, 0, 0).rows(4))  # stateless
    with pytest.raises(DataError, match="exceeds"):
        _Batches(10, 11, 0, 0)


def test_multi_scenario_rounds_use_each_scenario_once():
    for rnd in range(5):
        got = [_scenario_for(rnd * 3 + i, 3, seed=0) for i in range(3)]
        assert sorted(s for s, _ in got) == [0, 1, 2]
        assert {k for _, k in got} == {rnd}


def test_multi_scenario_batches_never_mix(store_path, monkeypatch):
    a, b = _set(store_path, "dry"), _set(store_path, "rain_25mmh")
    b.store.set_transform(a.store.transform)
    seen = []
    from loc.data import FeatureBank

    orig = FeatureBank.__call__

    def spy(self, idx):
        seen.append(self.store.group)
        return orig(self, idx)

    monkeypatch.setattr(FeatureBank, "__call__", spy)
    cfg = TrainConfig(model="cnn", steps=6, batch_size=16, log_every=3, device="cpu")
    train(cfg, [a, b])
    assert sorted(seen) == ["dry"] * 3 + ["rain_25mmh"] * 3


def test_resume_is_exact(store_path, tmp_path):
    ts = _set(store_path)
    kw = dict(
        model="mateformer",
        model_kwargs=TINY["mateformer"],
        batch_size=8,
        n_neighbours=8,
        log_every=2,
        ckpt_every=2,
        device="cpu",
    )
    straight = train(TrainConfig(steps=6, **kw), [ts], tmp_path / "a")

    class Interrupt(Exception):
        pass

    def stop_at_4(rec):
        if rec["step"] == 4:
            raise Interrupt  # killed after step 4's update, before its checkpoint

    with pytest.raises(Interrupt):
        train(TrainConfig(steps=6, **kw), [_set(store_path)], tmp_path / "b", on_log=stop_at_4)
    assert load_checkpoint(tmp_path / "b")[1]["step"] == 2
    resumed = train(TrainConfig(steps=6, **kw), [_set(store_path)], tmp_path / "b", resume=True)
    for (k, v), w in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(v, w, msg=k, rtol=0, atol=0)
    assert [h["step"] for h in resumed.history] == [2, 4, 6]
    model, ck = load_checkpoint(tmp_path / "b")
    assert ck["step"] == 6 and ck["data"][0]["group"] == "dry"
    assert ck["data"][0]["transform"]["scale"] == ts.store.transform.scale
    with pytest.raises(CheckpointError, match="different model"):
        train(
            TrainConfig(steps=8, **{**kw, "model": "cnn", "model_kwargs": {}}),
            [_set(store_path)],
            tmp_path / "b",
            resume=True,
        )
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")


def test_init_from_checkpoint_for_transfer_learning(store_path, tmp_path):
    kw = dict(model="cnn", batch_size=32, lr=3e-3, log_every=1, device="cpu")
    train(TrainConfig(steps=300, **kw), [_set(store_path)], tmp_path / "src")
    rain = _set(store_path, "rain_25mmh")
    scratch = train(TrainConfig(steps=1, **kw), [rain])
    tuned = train(
        TrainConfig(steps=1, init_from=str(tmp_path / "src"), lr_milestones=(), **kw), [rain]
    )
    assert tuned.history[0]["loss"] < 0.2 * scratch.history[0]["loss"]
    with pytest.raises(CheckpointError, match="different model"):
        train(
            TrainConfig(steps=1, **{**kw, "model": "mfcnet"}, init_from=str(tmp_path / "src")),
            [rain],
        )


def test_too_few_samples_for_neighbours(store_path):
    ts = _set(store_path, n_train=20)
    with pytest.raises(DataError, match="need 64 neighbours"):
        train(
            TrainConfig(
                model="mateformer",
                model_kwargs=TINY["mateformer"],
                steps=1,
                batch_size=4,
                device="cpu",
            ),
            [ts],
        )


@pytest.mark.parametrize("name", list(TINY))
def test_every_model_overfits_a_tiny_dataset(store_path, name):
    """Paper recipe (raw metres): training loss falls >= 10x (first 5 steps vs. last 20) on 64
    samples in 300 steps. Locations span +-10 m, so predicting the mean alone cannot get there.
    (Held-out learning under the default recipe: tests/loc/test_learning.py.)"""
    ts = _set(store_path)
    cfg = TrainConfig(
        recipe="paper",
        model=name,
        model_kwargs=TINY[name],
        steps=300,
        batch_size=32,
        lr=3e-3,
        n_neighbours=8,
        log_every=1,
        device="cpu",
    )
    res = train(cfg, [ts])
    loss = np.array([h["loss"] for h in res.history])
    assert len(loss) == 300 and all(h["samples_per_s"] > 0 for h in res.history)
    assert loss[:5].mean() / loss[-20:].mean() >= 10, (loss[:5], loss[-20:])


def test_lazy_and_preloaded_training_are_identical(store_path):
    cfg = dict(model="mfcnet", model_kwargs=dict(hidden=16), steps=4, batch_size=16, device="cpu")
    a = train(TrainConfig(preload=True, **cfg), [_set(store_path)]).model.state_dict()
    b = train(TrainConfig(preload=False, **cfg), [_set(store_path)]).model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_early_stopping_keeps_the_best_validation_weights(store_path, tmp_path):
    """val_fraction holds out training samples; with patience 1 a noisy constant-LR run stops
    at its first validation in the second half of its steps that is not better than the best,
    and the result (and the checkpoint) are the weights of the best validation, re-scored
    exactly; a resume does not train again."""
    from loc.evaluate import evaluate
    from loc.fit.supervised import hold_out

    ts = _set(store_path)
    cfg = TrainConfig(
        model="cnn",
        steps=400,
        batch_size=8,
        lr=3e-2,
        schedule="constant",
        device="cpu",
        val_fraction=0.25,
        val_every=5,
        patience=1,
        log_every=5,
        ckpt_every=1000,
    )
    res = train(cfg, [ts], tmp_path / "r")
    assert res.stopped is not None and 200 <= res.stopped < 400
    scores = [v["val_mean_m"] for v in res.validation]
    best_so_far = np.minimum.accumulate(scores)
    first = next(i for i, v in enumerate(res.validation) if v["step"] >= 200 and i > 0
                 and scores[i] > best_so_far[i - 1])  # fmt: skip
    assert res.validation[first]["step"] == res.stopped
    assert res.stopped == res.validation[-1]["step"] and scores[-1] >= min(scores)
    assert res.best_step == res.validation[int(np.argmin(scores))]["step"] < res.stopped
    ((fit, val),) = hold_out([ts], 0.25, cfg.seed)
    assert len(val) == 16 and len(fit.train) == 48 and not set(val) & set(fit.train)
    assert len(ts.train) == 64  # the caller's set is unchanged
    again = evaluate(res.model, ts.store, val, fit.train)[0]["overall"]["mean"]
    assert again == pytest.approx(min(scores), rel=1e-5)
    model, ck = load_checkpoint(tmp_path / "r")
    assert ck["best_step"] == res.best_step and ck["stopped"] == res.stopped
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    resumed = train(cfg, [_set(store_path)], tmp_path / "r", resume=True)
    assert resumed.history == res.history and resumed.stopped == res.stopped
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainConfig(val_fraction=1.0)
