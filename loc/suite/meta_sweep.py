"""MetaLoc's inner-loop step α chosen on the meta-training environments only (issue #32): for
each α of ``data.alpha_sweep``, MAML is meta-trained on every meta-training environment but
the last, then adapted with that α's inner loop (SGD, ``inner_steps`` steps) on K labelled
samples (the smallest of ``data.k_shots``) of the last one and scored on its other samples.
The best α is used for meta-training every MAML model and for every model's meta-test (TL
and RI adapt with the same inner loop). No test environment is read. The choice is kept in
``<experiment run folder>/alpha_sweep.json`` so every model of the experiment reads one α.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from loc.errors import ConfigError, DivergedError

log = logging.getLogger("loc.suite")


def meta_kwargs(proto) -> dict:
    """The ``meta`` options of the protocol's first MAML-family model (the sweep's MAML)."""
    from loc.suite.runners import META, base_model

    for m in proto.models:
        if META.get(base_model(m)) is not None:
            return dict(proto.model_kwargs.get(m, {}))
    return {}


def chosen_alpha(proto, train_sets, device, folder: Path) -> dict:
    """{"alpha": the chosen α, "inner_steps", "scores": {α: mean error (m)}, ...}; computed
    once per experiment (``folder/alpha_sweep.json``, reused while its signature matches)."""
    from loc.data import FeatureBank
    from loc.evaluate import predict
    from loc.fit.meta import AdaptConfig, MetaConfig, adapt, meta_train

    grid = [float(a) for a in proto.data["alpha_sweep"]]
    if len(train_sets) < 2:
        raise ConfigError("data.alpha_sweep needs >= 2 meta-training environments")
    kw = meta_kwargs(proto)
    meta_kw = {k: v for k, v in kw.pop("meta", {}).items() if k != "alpha"}
    inner = int(meta_kw.get("inner_steps", MetaConfig.inner_steps))
    k = min(proto.data["k_shots"])
    val = train_sets[-1]
    sig = {
        "grid": grid,
        "steps": proto.steps,
        "meta": meta_kw,
        "model_kwargs": kw,
        "k": k,
        "seed": proto.seed,
        "environments": [str(s.store.path) for s in train_sets],
        "n": [int(len(s.train)) for s in train_sets],
    }
    path = Path(folder) / "alpha_sweep.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("signature") == json.loads(json.dumps(sig)):
            return old
    idx = np.asarray(val.train)
    if len(idx) <= k:
        raise ConfigError(f"alpha sweep: the validation environment has {len(idx)} <= K = {k}")
    sup = np.random.default_rng([proto.seed, k]).choice(idx, k, replace=False)
    query = np.setdiff1d(idx, sup)
    bank = FeatureBank(val.store, device)
    h, xy = bank(sup), bank.xy(sup)
    scores = {}
    for a in grid:
        cfg = MetaConfig(
            paradigm="maml",
            model_kwargs=kw,
            meta_steps=proto.steps,
            seed=proto.seed,
            device=str(device),
            log_every=proto.log_every,
            **{**meta_kw, "alpha": a},
        )
        try:
            init = meta_train(cfg, train_sets[:-1]).model
        except DivergedError as e:  # meta-training diverged at this alpha: a losing candidate
            scores[a] = float("inf")
            log.info("alpha sweep: alpha %g diverged (%s)", a, e)
            continue
        m = adapt(init.to(device), h, xy, AdaptConfig(optimizer="sgd", steps=inner, lr=a))
        p = predict(m, val.store, query, device=device)
        scores[a] = float(np.linalg.norm(p[:, :2] - val.store.xy[query, :2], axis=1).mean())
        log.info("alpha sweep: alpha %g -> %.3f m on the validation environment", a, scores[a])
    if not any(np.isfinite(list(scores.values()))):
        raise ConfigError(f"alpha sweep: meta-training diverged at every alpha of {grid}")
    best = min(scores, key=scores.get)
    out = {
        "alpha": best,
        "inner_steps": inner,
        "scores": {str(a): s for a, s in scores.items()},
        "validation_environment": str(val.store.path),
        "k": k,
        "signature": sig,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out
