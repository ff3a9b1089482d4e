"""How ``loc suite`` fits and evaluates the model families that the shared training loop
(``loc.fit.supervised.train``) does not cover, on one experiment's scenarios.

Every runner gets the same inputs as the shared loop: the experiment's training scenarios
(``TrainSet`` list: store + training indices) and, per test column, the test scenario's store,
its *database* indices (the head of that scenario's sample order) and its *test* indices (the
tail, disjoint). Each returns, per test column, the location estimates (M, 2) m of the test
samples plus extra numbers for the JSON.

- ``"da"`` (DCNN, DANN, MDA, HDA): one model per test column, trained by ``loc.fit.da.train_da``
  on the labelled first training scenario (source) and the test scenario's database samples as
  the *unlabelled* target (their labels are never read; DCNN ignores them: the source-only
  baseline, on the same recipe), once per seed of the protocol's ``seeds``. Extra: per-seed
  numbers and their spread, link-state (PCP) accuracy overall and per link state.
- ``"meta"`` (MAML, MAML-TS, MAML-DG and the TL / RI baselines of the MetaLoc paper): the
  training scenarios are the environments; per test column the initialisation is adapted on K
  labelled samples of the test scenario's database, for every K in ``data.k_shots`` (the same
  K samples for every model); the table shows the largest K, the JSON the whole curve.
  TL = MetaLoc's MLP trained on the pooled environments; RI = the MLP from a random init.
- ``"model_based"``: ToA multilateration over the selected TRPs and kNN fingerprinting with the
  database as reference (``knn_fp``). Nothing is trained. ``multilat`` is the fair baseline:
  ToAs estimated from the stored CIR (or CSI), robust weights from the residuals, the UE height
  and service area from the database's labels; ``multilat_oracle`` reads the exact ``toa`` and
  the true link states (an upper bound, see ``loc.models.multilateration``).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from loc.errors import ConfigError, DataError

log = logging.getLogger("loc.suite")

META = {
    "maml": "maml",
    "maml_ts": "maml_ts",
    "maml_dg": "maml_dg",
    "metaloc_tl": None,
    "metaloc_ri": None,
}  # suite name -> MAML paradigm (None: a baseline init)
MODEL_BASED = ("multilat", "multilat_oracle", "knn_fp")
MULTILAT_ORACLE = "ToA multilateration (oracle, upper bound: true LoS ranges of >= 3 LoS links)"
SITE = ("site_resnet_fp",)  # per test environment, on its own survey (loc.suite.site)
SUITE_ONLY = (*META, *MODEL_BASED, *SITE)  # suite model names not in loc.models.MODELS
KNN_K = 5  # neighbours of kNN fingerprinting (WKNN off)
DA_BASELINES = ("dcnn",)  # no target loss, but fitted by loc.fit.da.train_da like the DA models
PCP_CLASSES = ("LOS", "BLOCKED (vehicle)", "NLOS/OLOS (static)")  # loc.models.da.semantic_labels
# a baseline row that reads the column's database labels, which the DA models never see (their
# unlabelled target): an oracle (benchmark-fairness rule 6)
DA_ORACLE = " (oracle: the target database's labels)"


def base_model(name: str) -> str:
    """A suite model name may carry a variant tag, ``name@tag`` (own row, own
    ``model_kwargs`` entry, e.g. ``vinloc@subsets: {train_subset: 4}``); this strips it."""
    return name.split("@", 1)[0]


def trp_subset_mask(store, idx: np.ndarray, s: int, seed: int) -> np.ndarray:
    """(M, T) bool: a seeded random subset of ``s`` TRPs among each sample's present ones
    (links with a path), the variable-TRP test condition."""
    from loc.models.vinloc import random_subset

    present = torch.as_tensor(store.has_path[np.asarray(idx)])
    return random_subset(present, s, np.random.default_rng([seed, s])).numpy()


def _no_masks(name: str, masks: dict | None) -> None:
    if masks and any(v is not None for v in masks.values()):
        raise ConfigError(f"{name}: trp_subset test columns need a TRP-token or model-based model")


def family(name: str) -> str:
    """ "train" (shared loop), "da", "meta" or "model_based" for a suite model name."""
    from loc.models import MODELS

    name = base_model(name)
    if name in META:
        return "meta"
    if name in MODEL_BASED:
        return "model_based"
    if name in SITE:
        return "site"
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}")
    # DCNN (the source-only baseline) trains in the DA loop too: the same optimiser, LR, weight
    # decay, schedule and steps as DANN / MDA / HDA (benchmark-fairness rule 3)
    da = getattr(MODELS[name][0], "trainer", None) or name in DA_BASELINES
    return "da" if da else "train"


def known_models() -> list[str]:
    from loc.models import MODELS

    return [*MODELS, *SUITE_ONLY]


@dataclasses.dataclass
class Fitted:
    """Per test column: estimates (M, 2) m and extra numbers; plus training numbers."""

    predictions: dict[str, np.ndarray]
    extra: dict[str, dict]
    training: dict
    # per test column, the test indices the predictions are for where not the column's test
    # samples (DA: the test samples once per seed, the seeds' estimates pooled)
    index: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------- DA


def _spread(values: list[float]) -> dict[str, float]:
    """mean, std (population), min and max of per-seed numbers."""
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "max": float(v.max())}  # fmt: skip


def pcp_prior(source, store, te: np.ndarray, label_trp: int = 0) -> dict:
    """The CSI-free link-state classifier: the source's most frequent PCP class for every
    target test link; its accuracy is what a PCP head must beat."""
    from loc.models.da import semantic_labels

    src = semantic_labels(source.store.link_state[source.train, label_trp])
    cls = int(np.bincount(src[src >= 0], minlength=len(PCP_CLASSES)).argmax())
    lab = semantic_labels(store.link_state[te, label_trp])
    ok = lab >= 0
    acc = float((lab[ok] == cls).mean()) if ok.any() else None
    return {"class": PCP_CLASSES[cls], "accuracy": acc}


def run_da(name, proto, train_sets, tests, device, run_dir, masks=None) -> Fitted:
    """One fit per test column and per seed of ``proto.seeds`` (else ``proto.seed``), in
    ``run_dir/<column>/seed_<s>``. The row pools the seeds' estimates (``Fitted.index``: the
    test samples once per seed); ``seeds`` keeps each seed's RMSE, mean and median error (m)
    and PCP accuracy, ``seed_spread`` their mean / std / min / max."""
    from loc.evaluate import predict
    from loc.fit.da import DAConfig, evaluate_da, train_da
    from loc.fit.supervised import TrainSet, load_checkpoint

    _no_masks(name, masks)
    if len(train_sets) != 1:
        raise ConfigError(f"{name}: domain adaptation needs exactly one (source) training scenario")
    source = train_sets[0]
    seeds = proto.seeds or (proto.seed,)
    preds, extra, training, index = {}, {}, {}, {}
    for tname, (st, db, te) in tests.items():
        per_seed, pooled, ckpts = {}, [], []
        for seed in seeds:
            cfg = DAConfig(
                model=base_model(name),
                model_kwargs=proto.model_kwargs.get(name, {}),
                steps=proto.steps,
                batch_size=min(proto.batch_size, len(db)),
                lr=proto.data["lr"] or DAConfig.lr,
                schedule="constant" if proto.budget == "paper" else "cosine",
                seed=seed,
                device=str(device),
                log_every=proto.log_every,
            )
            out = run_dir / tname / f"seed_{seed}"
            ckpt = out / "checkpoint.pt"
            if ckpt.exists():
                model, _ = load_checkpoint(ckpt, device)
            else:
                target = TrainSet(st, db, meta={"role": "unlabelled target"})
                model = train_da(cfg, source, target, out_dir=out).model
            p = predict(model, st, te, device=device)
            ev = evaluate_da(model, st, te, device=device)
            err = np.linalg.norm(p - st.xy[te], axis=1)
            per_seed[str(seed)] = {
                "rmse": float(np.sqrt(np.mean(err**2))),
                "mean": float(err.mean()),
                "median": float(np.median(err)),
                **{k: ev[k] for k in ("pcp_accuracy", "pcp_by_state") if k in ev},
            }
            pooled.append(p)
            ckpts.append(str(ckpt))
        preds[tname], index[tname] = np.concatenate(pooled), np.tile(te, len(seeds))
        runs = list(per_seed.values())
        ex: dict = {"seeds": per_seed, "seed_spread": {"rmse": _spread([r["rmse"] for r in runs])}}
        if all(r.get("pcp_accuracy") is not None for r in runs):  # DCNN: no link-state head
            ex["seed_spread"]["pcp_accuracy"] = _spread([r["pcp_accuracy"] for r in runs])
            ex["pcp_accuracy"] = ex["seed_spread"]["pcp_accuracy"]["mean"]
            states = dict.fromkeys(k for r in runs for k in r["pcp_by_state"])
            ex["pcp_by_state"] = {  # mean over the seeds
                k: float(np.mean([r["pcp_by_state"][k] for r in runs])) for k in states
            }
            ex["pcp_prior"] = pcp_prior(source, st, te)
        extra[tname] = ex
        training[tname] = {"checkpoints": ckpts, "seeds": list(seeds), "target_samples": len(db)}
    return Fitted(preds, extra, training, index)


# ----------------------------------------------------------------------------- meta


def _err_stats(pred: np.ndarray, xy: np.ndarray) -> dict[str, float]:
    """Mean / median 2-D error (m) of estimates (M, 2) (or one (2,) for all) against xy (M, 2)."""
    e = np.linalg.norm(np.asarray(pred)[..., :2] - xy[:, :2], axis=1)
    return {"mean": float(e.mean()), "median": float(np.median(e))}


def run_meta(name, proto, train_sets, tests, device, run_dir, masks=None) -> Fitted:
    from loc.data import FeatureBank
    from loc.evaluate import predict
    from loc.fit.checkpoint import load_plain, save_checkpoint
    from loc.fit.meta import AdaptConfig, MetaConfig, MetaResult, adapt, meta_train, select_init
    from loc.fit.supervised import TrainConfig, train
    from loc.models.fingerprint_knn import KNNFingerprint
    from loc.models.metaloc import MetaLocNet

    data = proto.data
    kw = dict(proto.model_kwargs.get(name, {}))
    meta_kw = kw.pop("meta", {})
    _no_masks(name, masks)
    paradigm = META[base_model(name)]
    acfg, sweep = AdaptConfig.from_dict(data["adapt"]), None
    if data.get("alpha_sweep"):  # α from the meta-training environments (loc.suite.meta_sweep)
        from loc.suite.meta_sweep import chosen_alpha

        sweep = chosen_alpha(proto, train_sets, device, run_dir.parent)
        meta_kw = {**meta_kw, "alpha": sweep["alpha"]}  # the meta-test: that inner loop
        acfg = AdaptConfig(optimizer="sgd", steps=sweep["inner_steps"], lr=sweep["alpha"])
    if paradigm is not None:
        cfg = MetaConfig(
            paradigm=paradigm,
            model_kwargs=kw,
            meta_steps=proto.steps,
            seed=proto.seed,
            device=str(device),
            log_every=proto.log_every,
            **meta_kw,
        )
        cached = run_dir / "meta_init.pt"  # the run folder is cleared when its signature changes
        if cached.exists():
            init = MetaResult.from_payload(load_plain(cached, device), device)
        else:
            init = meta_train(cfg, train_sets)
            save_checkpoint(cached, init.to_payload())
    elif base_model(name) == "metaloc_tl":
        cfg = TrainConfig(
            model="metaloc",
            model_kwargs=kw,
            steps=proto.steps,
            batch_size=proto.batch_size,
            lr=data["lr"],
            seed=proto.seed,
            device=str(device),
            log_every=proto.log_every,
            ckpt_every=proto.steps,
        )
        init = train(cfg, train_sets, out_dir=run_dir, resume=True).model
    else:  # metaloc_ri: a fresh network, targets normalised on the pooled environments
        torch.manual_seed(proto.seed)
        arr = train_sets[0].store.array_shape  # its TRP array: the 2-D angle DFT
        init = MetaLocNet(train_sets[0].store.shape, **{"array": arr, **kw})
        init.fit_targets(np.concatenate([s.store.xy[s.train] for s in train_sets]))
    ks = sorted(data["k_shots"])
    fp_net = init.models[0] if hasattr(init, "models") else init  # fingerprints: weight-free
    preds, extra = {}, {}
    for tname, (st, db, te) in tests.items():
        if ks[-1] > len(db):
            raise DataError(f"{tname}: K = {ks[-1]} exceeds the {len(db)} database samples")
        bank = FeatureBank(st, device)
        with torch.no_grad():
            fp_test = fp_net.to(device).fingerprint(bank(te)).cpu().numpy()
        curve, baselines = {}, {"mean of K": {}, f"kNN (k={KNN_K}) on K": {}}
        for k in ks:  # the same K samples for every model: seeded by (split seed, K)
            sup = np.random.default_rng([data["split_seed"], k]).choice(db, k, replace=False)
            h, xy = bank(sup), bank.xy(sup)
            base = init
            if hasattr(init, "models"):  # MetaResult: MAML-TS picks its env by MMD
                base = init.models[select_init(init, h)]
            m = adapt(base.to(device), h, xy, acfg)
            p = predict(m, st, te, device=device)
            curve[k] = {**_err_stats(p, st.xy[te]), **m.adapt_info}
            knn = KNNFingerprint(min(KNN_K, k))
            with torch.no_grad():
                knn.fit(fp_net.fingerprint(h).cpu().numpy(), st.xy[sup])
            baselines["mean of K"][k] = _err_stats(st.xy[sup].mean(0), st.xy[te])
            baselines[f"kNN (k={KNN_K}) on K"][k] = _err_stats(knn.predict(fp_test), st.xy[te])
        preds[tname] = p  # the largest K
        extra[tname] = {
            "k_shot": ks[-1],
            "adaptation_curve": curve,
            "adaptation_baselines": baselines,
        }
    training = {"paradigm": paradigm or name}
    if sweep is not None:
        training["alpha_sweep"] = {k: v for k, v in sweep.items() if k != "signature"}
    return Fitted(preds, extra, training)


# ----------------------------------------------------------------------------- model-based


def run_model_based(name, proto, train_sets, tests, device, run_dir, masks=None) -> Fitted:
    from loc.evaluate import zero_absent_trps
    from loc.models.fingerprint_knn import KNNFingerprint, fingerprints
    from loc.models.multilateration import estimated_multilateration, toa_multilateration

    preds, extra = {}, {}
    for tname, (st, db, te) in tests.items():
        mask = (masks or {}).get(tname)
        if base_model(name) == "knn_fp":
            k = min(KNN_K, len(db))
            query = zero_absent_trps(st.read(te), mask)
            knn = KNNFingerprint(k).fit(fingerprints(st.read(db)), st.xy[db])
            preds[tname] = knn.predict(fingerprints(query))
            extra[tname] = {"k": k, "reference_samples": int(len(db))}
            continue
        if len(st.selection.trps) < 3:
            raise ConfigError(f"{name} needs >= 3 TRPs, the selection has {st.selection.trps}")
        if base_model(name) == "multilat_oracle":
            res = toa_multilateration(st, te, present=mask)
            info = {"method": MULTILAT_ORACLE, "bound_fraction": float(res.los_oracle.mean())}
        else:  # UE height and service area from the labelled database, not the test UEs
            res, est = estimated_multilateration(st, te, db, present=mask)
            info = {
                "method": f"ToA multilateration (ToA estimated from {est.source.upper()})",
                "links_detected": float(np.isfinite(est.toa).mean()),
            }
        p, failed = res.xy_or(st.xy[db].mean(axis=0))  # no usable ToA: the database centroid
        preds[tname] = p
        extra[tname] = {**info, "no_toa": int(failed.sum()), "fallback": "database centroid"}
    return Fitted(preds, extra, {})


def run_site(name, proto, train_sets, tests, device, run_dir, masks=None) -> Fitted:
    from loc.suite.site import run_site as run

    return run(name, proto, train_sets, tests, device, run_dir, masks)


RUNNERS = {"da": run_da, "meta": run_meta, "model_based": run_model_based, "site": run_site}


# ----------------------------------------------------------------------------- transfer
