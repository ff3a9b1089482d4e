"""Metrics against hand-computed values; predict/evaluate modes; report files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from loc.data import CSIStore, Selection, split_indices
from loc.errors import ConfigError, DataError
from loc.evaluate import (
    error_metrics,
    evaluate,
    link_states,
    localization_errors,
    predict,
    write_report,
)
from loc.fit.supervised import TrainConfig, TrainSet, train
from loc.models import build_model


def test_error_metrics_hand_computed():
    e = np.arange(20, 0, -1, dtype=float)  # 20..1, unsorted on purpose
    m = error_metrics(e)
    # sorted = 1..20; convention sorted[int(r * N)]; RMSE = sqrt(sum k^2 / 20) = sqrt(143.5)
    assert m.pop("rmse") == pytest.approx(np.sqrt(143.5))
    assert m == {
        "n": 20,
        "mean": 10.5,
        "p10": 3.0,
        "median": 11.0,
        "p90": 19.0,
        "p95": 20.0,
        "max": 20.0,
    }
    assert error_metrics(np.array([0.5]))["p95"] == 0.5
    assert error_metrics(np.array([]))["n"] == 0


def test_localization_error_is_2d_euclidean():
    pred = np.array([[3.0, 4.0], [1.0, 1.0]])
    true = np.array([[0.0, 0.0, 100.0], [1.0, 1.0, -5.0]])  # z is ignored
    np.testing.assert_allclose(localization_errors(pred, true), [5.0, 0.0])


def test_link_state_is_best_over_selected_trps(store_path):
    both = CSIStore(store_path, "dry")
    trp1 = CSIStore(store_path, "dry", Selection(trps=(1,)))
    idx = np.arange(len(both))
    assert (link_states(both, idx) == 0).all()  # TRP 0 is LOS everywhere in the fixture
    s1 = link_states(trp1, idx)
    np.testing.assert_array_equal(s1 == 2, trp1.xy[:, 0] >= 5.0)  # NLOS region of TRP 1


@pytest.fixture(scope="module")
def trained(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(1,)))
    sp = split_indices(st.valid, 256, 100)
    st.fit_transform(sp.train)
    cfg = TrainConfig(
        model="mateformer",
        steps=300,
        batch_size=32,
        lr=3e-3,
        n_neighbours=8,
        log_every=50,
        device="cpu",
        model_kwargs=dict(d_model=32, depth=2, d_ff=32, p_range=(4, 8), q_range=(1, 8)),
    )
    torch.set_num_threads(1)
    return train(cfg, [TrainSet(st, sp.train)]).model, st, sp


def test_evaluate_set_model_modes(trained, tmp_path):
    model, st, sp = trained
    report, err = evaluate(model, st, sp.test, sp.train, mode="neighbour", coarse_error=0.0, k=8)
    baseline = localization_errors(
        np.broadcast_to(st.xy[sp.train].mean(0), (100, 2)), st.xy[sp.test]
    ).mean()
    assert report["overall"]["n"] == 100 and err.shape == (100,)
    assert report["overall"]["mean"] < 0.4 * baseline  # learned, not just the mean location
    assert set(report["by_link_state"]) == {"LOS", "NLOS"}
    assert sum(v["n"] for v in report["by_link_state"].values()) == 100
    noisy, _ = evaluate(model, st, sp.test, sp.train, mode="neighbour", coarse_error=1.0, k=8)
    assert noisy["overall"]["mean"] != report["overall"]["mean"]
    rnd, _ = evaluate(model, st, sp.test, sp.train, mode="random", k=8)
    it, _ = evaluate(model, st, sp.test, sp.train, mode="iterative", k=8, coarse_model=model)
    assert rnd["mode"] == "random" and it["mode"] == "iterative"
    with pytest.raises(ConfigError, match="coarse model"):
        evaluate(model, st, sp.test, sp.train, mode="iterative", k=8)
    with pytest.raises(DataError, match="need 300 neighbours"):
        predict(model, st, sp.test, sp.train, k=300)
    path = write_report(report, err, tmp_path, label="dry")
    assert json.loads(path.read_text())["overall"]["mean"] == report["overall"]["mean"]
    png = tmp_path / "dry_cdf.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.load(tmp_path / "dry_errors.npy").shape == (100,)


def test_cross_scenario_reuse_uses_target_database(trained, store_path):
    """Model from 'dry', database and test set from 'rain_25mmh', same transform, no update."""
    model, st, sp = trained
    rain = CSIStore(store_path, "rain_25mmh", Selection(trps=(1,)), transform=st.transform)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rep, _ = evaluate(model, rain, sp.test, sp.train, coarse_error=0.0, k=8)
    assert rep["store"]["group"] == "rain_25mmh" and rep["overall"]["n"] == 100
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_point_model_predict(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(0,)))
    st.fit_transform(np.arange(64))
    m = build_model("cnn", st.shape)
    pred = predict(m, st, np.arange(10), batch_size=4)
    with torch.no_grad():
        want = m(torch.from_numpy(st.read(np.arange(10)))).numpy()
    np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-5)
    rep, _ = evaluate(m, st, np.arange(10))
    assert rep["mode"] == "direct" and rep["n_neighbours"] is None
