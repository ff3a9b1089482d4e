"""Running a protocol: every (experiment, model) pair trained and evaluated on the same splits."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from loc.data import CSIStore, CSITransform, Selection
from loc.errors import ConfigError, DataError
from loc.noise import Noise, parse_noise
from loc.suite.datasets import (
    blocks_order,
    check_disjoint,
    choose_test_blocks,
    dataset_store,
    head_tail,
    in_blocks,
    ordered_samples,
    snapshot_mask,
    ue_ids,
)
from loc.suite.papers import POSITION_KNN
from loc.suite.protocol import Experiment, Protocol, Scenario, csi_transform
from loc.suite.report import write_outputs
from simgen.errors import UnsafePathError
from simgen.safety import remove_if_ours
from simgen.schema import LinkState

log = logging.getLogger("loc.suite")

# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class _Pop:
    """One scenario's sample population in one experiment."""

    store: CSIStore
    order: np.ndarray
    ue: np.ndarray
    free: int  # leading samples of ``order`` outside the held-out blocks (all: other splits)


class _Prepared:
    """Every store, split and size check of one experiment, done before any training."""

    def __init__(self, proto: Protocol, exp: Experiment, paths: dict[str, Path]) -> None:
        data = proto.data
        self.exp = exp
        self._stores: dict[tuple, CSIStore] = {}
        self._pops: dict[tuple, _Pop] = {}
        seed, by = data["split_seed"], exp.split
        block_m, gap_m = float(data["block_m"]), float(data["gap_m"])

        def store(sc: Scenario) -> CSIStore:
            skey = (sc.dataset, sc.group, sc.trps)
            if skey not in self._stores:
                sel = dict(data["selection"])
                if sc.trps is not None:
                    sel["trps"] = sc.trps
                self._stores[skey] = CSIStore(
                    paths[sc.dataset],
                    sc.group,
                    Selection(**sel),
                    csi_transform(data, None),
                    data["frame"],
                    variable=data["variable"],
                )
            return self._stores[skey]

        held = None  # blocks split: the held-out blocks, chosen once for every test column
        if by == "blocks":
            need = [
                (store(sc).xyz[snapshot_mask(store(sc), sc.snapshots), :2], sc.n)
                for sc in exp.test.values()
            ]
            held = choose_test_blocks(need, block_m, seed)
        self.held_blocks = held

        def pop(sc: Scenario) -> _Pop:
            if sc.key not in self._pops:
                st = store(sc)
                mask = snapshot_mask(st, sc.snapshots)
                ue = ue_ids(st)
                if held is not None:
                    order = blocks_order(mask, st.xyz[:, :2], ue, held, block_m, gap_m, seed)
                    free = int((~in_blocks(st.xyz[order, :2], held, block_m)).sum())
                else:  # a sample split keeps the samples of one position together where a
                    # store repeats positions (traffic snapshots / conditions)
                    repeats = np.unique(ue[mask]).size < mask.sum()
                    order = ordered_samples(mask, seed, "ue" if repeats else by, ue)
                    free = len(order)
                self._pops[sc.key] = _Pop(st, order, ue, free)
            return self._pops[sc.key]

        def outside(p: _Pop, n: int, what: str) -> None:
            if n > p.free:
                raise DataError(
                    f"too few samples: {what} needs {n} outside the held-out blocks and their "
                    f"{gap_m:g} m gap, {p.free} are"
                )

        k, b = data["k"], proto.batch_size
        self.train: list[tuple[CSIStore, np.ndarray]] = []
        for sc in exp.train:
            p = pop(sc)
            what = f"{exp.name} train {sc.describe()}"
            outside(p, sc.n, what)
            tr, _ = head_tail(p.order, sc.n, 0, what)
            if b > sc.n:
                raise DataError(f"{exp.name}: batch size {b} exceeds the {sc.n} training samples")
            self.train.append((p.store, tr))

        def train_xy(ds: str) -> np.ndarray:  # training positions in the frame of ``ds``
            from loc.suite.envs import same_frame

            xy = [st.xyz[tr, :2] for sc, (st, tr) in zip(exp.train, self.train, strict=True)
                  if same_frame(sc.dataset, ds)]  # fmt: skip
            return np.concatenate(xy) if xy else np.zeros((0, 2))

        self.test: dict[str, tuple[CSIStore, np.ndarray, np.ndarray]] = {}
        self.min_distance: dict[str, float] = {}  # test position to the nearest training one (m)
        for name, sc in exp.test.items():
            p = pop(sc)
            what = f"{exp.name} test {name} ({sc.describe()})"
            outside(p, sc.db, f"{what} database")
            db, te = head_tail(p.order, sc.db, sc.n, what, p.ue)
            if k > sc.db:
                raise DataError(f"{what}: need {k} neighbours but the database has {sc.db}")
            for tsc, (_, tr) in zip(exp.train, self.train, strict=True):
                if tsc.key == sc.key and np.intersect1d(tr, te).size:
                    raise DataError(f"too few samples: {what} overlaps the training samples")
            # no test position is a training position (of any training scenario, in any
            # traffic snapshot or weather condition); a blocks split keeps them gap_m apart
            self.min_distance[name] = check_disjoint(
                p.store.xyz[te, :2], train_xy(sc.dataset), gap_m if held is not None else 0.0, what
            )
            self.test[name] = (p.store, db, te)
        shapes = {st.shape for st in self._stores.values()}
        if len(shapes) > 1:
            raise DataError(f"{exp.name}: scenarios differ in CSI shape {sorted(shapes)}")
        # receiver noise: a store's training / database samples get the noise of the training
        # scenario drawn from it (else the protocol's), each test column's queries its own
        # (data.database_noise, when set, replaces the training noise at evaluation)
        self._data = data
        self.base_noise: dict[int, Noise] = {}
        self.db_noise: dict[int, Noise] = {}
        for st in self._stores.values():
            own = [sc for sc, (s2, _) in zip(exp.train, self.train, strict=True) if s2 is st]
            self.base_noise[id(st)] = self.noise(own[0] if own else None)
            self.db_noise[id(st)] = self.base_noise[id(st)]
            if data["database_noise"] is not None:
                self.db_noise[id(st)] = parse_noise(data["database_noise"], data["noise_seed"])
        self.use_training()

    def state_mix(self) -> dict[str, dict[str, float]]:
        """Share of each ``simgen.schema.LinkState`` among the selected TRP links of the
        training samples (per training scenario), of each test column's queries and of its
        database (DA: the unlabelled target)."""

        def mix(st: CSIStore, idx: np.ndarray) -> dict[str, float]:
            ls = st.link_state[idx].ravel()
            return {s.name: float(np.mean(ls == s)) for s in LinkState}

        out = {
            f"train {sc.describe()}": mix(st, tr)
            for sc, (st, tr) in zip(self.exp.train, self.train, strict=True)
        }
        out.update({f"test {t}": mix(st, te) for t, (st, _, te) in self.test.items()})
        out.update({f"database {t}": mix(st, db) for t, (st, db, _) in self.test.items()})
        return out

    def use_training(self) -> None:
        """Every store's samples at their training noise (what the training loop reads)."""
        for st in self._stores.values():
            st.set_noise(self.base_noise[id(st)])

    def noise(self, sc: Scenario | None) -> Noise:
        """The noise of a scenario (its own ``noise``, else the protocol's ``data.noise``)."""
        spec = sc.noise if sc is not None and sc.noise is not None else self._data["noise"]
        return parse_noise(spec, seed=self._data["noise_seed"])

    def use_column(self, tname: str) -> Noise:
        """Set test column ``tname``'s noise on its queries (the database keeps the store's
        base noise); returns the query noise."""
        st, _, te = self.test[tname]
        q = self.noise(self.exp.test[tname])
        st.set_noise(self.db_noise[id(st)], queries=te, query_noise=q)
        return q

    def fit_transform(self) -> CSITransform:
        """Scale from the first training scenario's samples, applied to every store."""
        st0, tr0 = self.train[0]
        tf = st0.fit_transform(tr0)
        for st in self._stores.values():
            if st is not st0:
                st.set_transform(tf)
        return tf


def column_labels(proto: Protocol) -> list[tuple[str, str, str]]:
    """(label, experiment, test) per table column."""
    out = []
    single = len(proto.experiments) == 1
    for e in proto.experiments.values():
        for t in e.test:
            if single:
                label = t
            elif len(e.test) == 1:
                label = e.name
            else:
                label = f"{e.name}: {t}"
            out.append((label, e.name, t))
    return out


def _run_signature(cfg, prep: _Prepared, tf: CSITransform) -> dict:
    return {
        "config": dataclasses.asdict(cfg),
        "transform": dataclasses.asdict(tf),
        "train": [  # the training reads: not the evaluation's query noise
            {
                **{
                    k: v
                    for k, v in st.describe().items()
                    if k not in ("query_noise", "noise_label")
                },
                "n": len(tr),
                "first": int(tr[0]),
                "last": int(tr[-1]),
            }
            for st, tr in prep.train
        ],
    }


def _fit_record(run_dir: Path, t0: float, code: str, files: dict[str, str]) -> dict:
    """How one model was fitted, kept in ``run_dir/fit_seconds.json`` by the runs that did the
    work, so that a rerun reusing finished checkpoints reports the original fit: ``seconds``
    (wall, every run that fitted it), ``code_hashes`` (``loc.suite.stamp.code_hash`` of each
    such run), ``commit`` and ``files`` (the sha256 of each module imported, as of the first
    such run) and ``changed_files``: those modules whose sha256 differs in this run's ``files``
    (``code_files()``, the whole tree; None where the fit predates the record)."""
    from loc.suite.stamp import git_commit, imported_files

    path = run_dir / "fit_seconds.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    codes = old.get("code_hashes", ["unknown"] if old else [])  # "unknown": before the hashes
    first = old.get("files") if old else imported_files(files)
    rec = {
        "seconds": time.perf_counter() - t0 + old.get("seconds", 0.0),
        "code_hashes": codes if code in codes else [*codes, code],
        "commit": old.get("commit") if old else git_commit(),
        "files": first,
    }
    path.write_text(json.dumps(rec))
    changed = None  # every module the fit imported, against this run's tree
    if first is not None:
        changed = sorted(f for f in first if files.get(f) != first[f])
    return {**{k: rec[k] for k in ("seconds", "code_hashes", "commit")}, "changed_files": changed}


def position_knn(store, database: np.ndarray, coarse_xy: np.ndarray, k: int = 5) -> np.ndarray:
    """The CSI-free "kNN on positions" control (``loc.suite.controls``): for each query, the
    mean position (M, 2) m of the ``k`` database samples nearest its coarse location
    ``coarse_xy`` (M, 2) m. It reads no CSI and not the test position, only what a set model
    is given beside the CSI (x′ and the database's positions)."""
    from loc.data import knn

    database = np.asarray(database, np.int64)
    nb = database[knn(coarse_xy, store.xy[database], min(k, len(database)))]
    return store.xy[nb].mean(axis=1)


def add_baselines(result, errors, proto: Protocol, prep: _Prepared, models, masks, labels):
    """The baseline rows of every test column of one experiment (``loc.evaluate.
    baseline_predictions``): training mean, kNN on the input features with the column's
    database, and, when a set model is compared, the coarse location and x_init it is given
    and the kNN on positions from that coarse location (``position_knn``). Records each set
    model's prior row (x′) in ``result["priors"]``."""
    from loc.evaluate import baseline_predictions, coarse_query_xy, summarize
    from loc.models import MODELS
    from loc.peb import peb_summary, store_peb
    from loc.suite.runners import DA_ORACLE, base_model, family

    data = proto.data
    has_set = any(
        base_model(m) in MODELS and MODELS[base_model(m)][0].kind == "set" for m in models
    )
    train_xy = np.concatenate([st.xy[tr] for st, tr in prep.train])
    for tname, (st, db, te) in prep.test.items():
        label = labels[(prep.exp.name, tname)]
        noise = prep.use_column(tname)
        bound = store_peb(st, te, noise)
        if bound is not None:
            result["peb"][label] = peb_summary(bound)
            # the multipath-aware bound (noise-and-peb §5): the snr check's reference
            mp = store_peb(st, te, noise, multipath=True)
            if mp is not None:
                result.setdefault("peb_multipath", {})[label] = peb_summary(mp)
        rows = baseline_predictions(
            st,
            train_xy,
            db,
            te,
            coarse_error=data["coarse_error"] if has_set else None,
            k=data["k"],
            present=masks[tname],
        )
        if models and all(family(m) == "da" for m in models):  # an unlabelled database
            rows = {(n + DA_ORACLE if n.startswith("kNN") else n): p for n, p in rows.items()}
        if has_set:  # the same x′ draw as the coarse-location row (seed 0)
            q = coarse_query_xy(st, te, data["coarse_error"], 0)
            rows[f"{POSITION_KNN} (from x′)"] = position_knn(st, db, q)
            xprime = next(n for n in rows if n.startswith("coarse location"))
            for m in models:
                if base_model(m) in MODELS and MODELS[base_model(m)][0].kind == "set":
                    result.setdefault("priors", {})[m] = xprime
        for name, pred in rows.items():
            report, err = summarize(name, st, te, pred)
            result["results"][label][name] = {
                k: v for k, v in report.items() if k not in ("model", "store")
            }
            errors[label][name] = err
            if name not in result["baselines"]:
                result["baselines"].append(name)


def run_suite(
    proto: Protocol,
    out_dir: str | Path,
    cache_dir: str | Path,
    device: str = "auto",
    models: list[str] | None = None,
    resume: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Render/reuse datasets, train and evaluate every model of every experiment, and write
    ``<name>.md``, ``<name>_cdf.png`` and ``<name>.json`` to ``out_dir``. Returns the JSON dict."""
    from loc.evaluate import evaluate, summarize
    from loc.fit.finetune import transfer_curve
    from loc.fit.supervised import TrainSet, resolve_device, train
    from loc.suite.recipes import train_config
    from loc.suite.runners import RUNNERS, Fitted, base_model, family, trp_subset_mask
    from loc.suite.stamp import code_files, code_hash, make_stamp, protocol_hash

    say = on_progress or log.info
    t_start = time.perf_counter()
    files, proto_hash = code_files(), protocol_hash(proto)
    code = code_hash(files)  # the run's code (fits record it: ``_fit_record``)
    models = models or proto.models
    unknown = [m for m in models if m not in proto.models]
    if unknown:
        raise ConfigError(f"model(s) {', '.join(unknown)} not in protocol {proto.name}")
    dev = resolve_device(device)
    out = Path(out_dir)
    used = {sc.dataset for e in proto.experiments.values() for sc in (*e.train, *e.test.values())}
    paths = {d: dataset_store(proto.datasets[d], cache_dir, device) for d in sorted(used)}
    prepared = {name: _Prepared(proto, e, paths) for name, e in proto.experiments.items()}
    data = proto.data
    result: dict = {
        "protocol": proto.name,
        "description": proto.description,
        "budget": proto.budget,
        "steps": proto.steps,
        "batch_size": proto.batch_size,
        "epochs": data["epochs"],
        "val_fraction": data["val_fraction"],
        "patience": data["patience"],
        "k": data["k"],
        "coarse_error_l_m": data["coarse_error"],
        "device": str(dev),
        "datasets": {d: str(p) for d, p in paths.items()},
        "columns": [],
        "baselines": [],
        "results": {},
        "state_mix": {e: p.state_mix() for e, p in prepared.items()},  # LinkState shares
        "peb": {},  # per column: the position error bound of its test samples at its noise
        "training": {},
    }
    errors: dict[str, dict[str, np.ndarray]] = {}
    for label, ename, tname in column_labels(proto):
        e, sc = proto.experiments[ename], proto.experiments[ename].test[tname]
        result["columns"].append(
            {
                "label": label,
                "experiment": ename,
                "test": tname,
                "train": [t.describe() + f" n={t.n}" for t in e.train],
                "test_scenario": sc.describe(),
                "n_test": sc.n,
                "n_database": sc.db,
                "split": e.split,  # loc.suite.datasets: sample | ue | blocks
                "min_train_distance_m": prepared[ename].min_distance[tname],
                "noise": prepared[ename].noise(sc).label(),
                "database_noise": prepared[ename]
                .db_noise[id(prepared[ename].test[tname][0])]
                .label(),
                "training_noise": prepared[ename]
                .base_noise[id(prepared[ename].test[tname][0])]
                .label(),
            }
        )
        result["results"][label] = {}
        errors[label] = {}
    labels = {(c["experiment"], c["test"]): c["label"] for c in result["columns"]}
    for ename, prep in prepared.items():
        tf = prep.fit_transform()
        masks = {  # the same random TRP subsets for every model of a column
            t: None
            if prep.exp.test[t].trp_subset is None
            else trp_subset_mask(st, te, prep.exp.test[t].trp_subset, proto.seed)
            for t, (st, db, te) in prep.test.items()
        }
        add_baselines(result, errors, proto, prep, models, masks, labels)
        result["training"][ename] = {}
        for m in models:
            run_dir = out / "runs" / ename / m
            fam = family(m)
            steps = proto.steps_for(prep.exp)
            net = base_model(m) if fam == "train" else "metaloc"  # others: signature only
            cfg = train_config(proto, m, net, steps, dev, early_stopping=fam == "train")
            prep.use_training()  # (the database noise does not change a fit: not in sig)
            fit_data = {k: v for k, v in data.items() if k != "database_noise"}
            sig = {"family": fam, "name": m, "data": fit_data, **_run_signature(cfg, prep, tf)}
            sig = json.loads(json.dumps(sig, default=str))
            sig_path = run_dir / "suite_run.json"
            same = sig_path.exists() and json.loads(sig_path.read_text()) == sig
            if not (resume and same) and run_dir.exists():
                try:  # stale checkpoints of another configuration, only in a run folder of ours
                    remove_if_ours(run_dir, marker="suite_run.json")
                except UnsafePathError as exc:
                    raise ConfigError(str(exc)) from None
            run_dir.mkdir(parents=True, exist_ok=True)
            sig_path.write_text(json.dumps(sig, indent=1))
            sets = [
                TrainSet(st, tr, meta={"suite": proto.name, "experiment": ename})
                for st, tr in prep.train
            ]
            say(f"{proto.name}: {ename}: fitting {m} ({fam}, {steps} steps) on {dev}")
            t0 = time.perf_counter()
            if fam == "train":
                res = train(cfg, sets, out_dir=run_dir, resume=True)
                fitted = None
                hist = res.history
                training = {
                    "final_loss": hist[-1]["loss"] if hist else None,
                    "samples_per_s": hist[-1]["samples_per_s"] if hist else None,
                    "peak_memory_bytes": res.peak_memory_bytes,
                    "checkpoint": str(res.checkpoint),
                    "steps": steps,
                    "best_step": res.best_step,
                    "stopped": res.stopped,
                    "validation": res.validation,
                }
            else:  # one column at a time: each with its own query noise
                fitted, training = Fitted({}, {}, {}), {}
                for tname, test in prep.test.items():
                    prep.use_column(tname)
                    f = RUNNERS[fam](m, proto, sets, {tname: test}, dev, run_dir, masks=masks)
                    fitted.predictions.update(f.predictions)
                    fitted.extra.update(f.extra)
                    fitted.index.update(f.index)
                    training.update(f.training)
            result["training"][ename][m] = {**_fit_record(run_dir, t0, code, files), **training}
            for tname, (st, db, te) in prep.test.items():
                if fitted is None:
                    prep.use_column(tname)
                    report, err = evaluate(
                        res.model,
                        st,
                        te,
                        db,
                        k=data["k"],
                        coarse_error=data["coarse_error"],
                        device=dev,
                        present=masks[tname],
                    )
                else:  # (DA: the seeds' estimates pooled, Fitted.index)
                    idx = fitted.index.get(tname, te)
                    report, err = summarize(m, st, idx, fitted.predictions[tname])
                    report.update(fitted.extra.get(tname, {}))
                if fitted is None and data["finetune_sizes"]:
                    report["transfer_curve"] = transfer_curve(
                        cfg,
                        res.checkpoint,
                        (st, db, te),
                        dev,
                        run_dir / tname,
                        data["finetune_sizes"],
                        data["finetune_steps"],
                    )
                label = labels[(ename, tname)]
                result["results"][label][m] = {
                    k: v for k, v in report.items() if k not in ("model", "store")
                }
                errors[label][m] = err
                o = report["overall"]
                say(f"  {label}: {m} mean {o['mean']:.3f} m, median {o['median']:.3f} m")
            write_outputs(result, errors, out, proto, models, final=False)
    from loc.suite.envs import add_pooled_columns

    add_pooled_columns(result, errors, proto)  # environment pools: one column per test group
    result["wall_seconds"] = time.perf_counter() - t_start  # this call: renders, fits, evals
    result["stamp"] = make_stamp(proto_hash, files, str(dev), result["wall_seconds"])
    write_outputs(result, errors, out, proto, models, final=True)
    return result
