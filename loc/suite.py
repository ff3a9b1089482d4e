"""``loc suite``: the paper's protocols as YAML files under ``loc/experiments/``.

A protocol names the datasets it needs (a simgen scene YAML + a UE count), the models to
compare, and a set of *experiments*: each trains every model on one or more training
scenarios (several = multi-scenario training, never mixed in a batch) and evaluates it, without
a weight update, on one or more test scenarios, each with the neighbour database of its own
scenario. One run of ``run_suite`` renders or reuses the datasets, trains and evaluates every
(experiment, model) pair on the same splits and writes, under the output directory,

    <protocol>.md       one Markdown table: models x columns (mean / median / p90 error, m)
    <protocol>_cdf.png  one figure: the error CDF of every model, one panel per column
    <protocol>.json     every number (overall + per link state), the columns, the budget
    runs/<experiment>/<model>/   checkpoints (a rerun resumes / reuses finished ones)

Protocol YAML::

    name: single_scenario
    description: ...
    models: [mateformer, cnn, ...]           # keys of loc.models.MODELS
    model_kwargs: {mateformer: {depth: 8}}   # optional, per model
    seed: 1                                  # training seed
    datasets:
      paris: {scene: scenes/paris.yaml, ue_count: 66000, scene_overrides: {...}}
    data:                                    # all optional
      selection: {trps: "0", ue_ants: all, trp_ants: all, subcarriers: "0:32"}
      scale: auto | <number>    domain: freq | angle_delay    frame: absolute | trp
      k: 64                     coarse_error: 1.0 (l, metres)  lr: null (model default)
      split: sample | ue        split_seed: 1
    experiments:
      40k:
        train: [{dataset: paris, group: dry, n: 40000}]        # a list, or one mapping
        test: {paris: {dataset: paris, group: dry, n: 20000, db: 40000}}
    budgets:                      # paper, short and tiny; any other key overrides the
      paper: {steps: 300000, batch_size: 500}          # protocol (deep merge, lists replaced)
      short: {steps: 20000, batch_size: 500}
      tiny: {steps: 50, batch_size: 16, data: {k: 8}, datasets: {...}, experiments: {...}}

A scenario (train or test entry) is ``dataset`` + ``group`` (condition, default ``dry``) +
optional ``trps`` (replaces the selection's TRPs: one "cell") + optional ``snapshots`` (a sample
filter on the store's ``snapshot`` variable, e.g. ``"0:10"``) + ``n`` samples; a test entry
also has ``db`` (database size, default the experiment's first training size).

Splits: every scenario's usable samples (valid, and in the selected snapshots) are ordered once
by a seeded permutation; training sets and databases are its head, test sets its tail, so the
test set is the same for every training size and never overlaps the training samples of the
same scenario. ``split: sample`` is ``loc.data.split_indices`` (the same split as ``loc train``);
``split: ue`` orders samples by a seeded permutation of the *UEs* (positions) of the whole store,
so a UE seen in training (in any snapshot or cell) is never a test UE when sizes allow — needed
for traffic stores, where every snapshot repeats the same UE positions.

Datasets are rendered with simgen's Python API into a cache directory, one store per scene +
UE count (+ a hash of the scene config); a complete store there is reused as is, an incomplete
one is resumed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from loc.data import CSIStore, CSITransform, Selection, parse_index_list
from loc.errors import ConfigError, DataError
from simgen.errors import UnsafePathError
from simgen.safety import remove_if_ours

log = logging.getLogger("loc.suite")

EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
REPO_ROOT = Path(__file__).resolve().parent.parent
BUDGET_NAMES = ("paper", "short", "tiny")
TOP_KEYS = {
    "name",
    "description",
    "models",
    "model_kwargs",
    "seed",
    "datasets",
    "data",
    "experiments",
    "budgets",
}
DATA_DEFAULTS = {
    "selection": {"trps": "all", "ue_ants": "all", "trp_ants": "all", "subcarriers": "all"},
    "scale": "auto",
    "domain": "freq",
    "frame": "absolute",
    "k": 64,
    "coarse_error": 1.0,
    "lr": None,
    "split": "sample",
    "split_seed": 1,
    "variable": "csi",  # csi | cir (simgen's stored CIR taps, output.cir_taps)
    "finetune_sizes": [],  # transfer-learning curve: fine-tune on n test-scenario samples
    "finetune_steps": 1000,  # steps of each fine-tuning run (constant LR)
    "k_shots": [8, 32, 128],  # MetaLoc models: target samples K for fast adaptation
    "adapt_steps": 20,  # MetaLoc: SGD steps of fast adaptation
    "adapt_lr": 0.01,  # MetaLoc: step size alpha of fast adaptation
}
SCENARIO_KEYS = {"dataset", "group", "trps", "snapshots", "n", "db", "trp_subset"}


# ----------------------------------------------------------------------------- protocol


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset to render or reuse: a scene YAML, a UE count (None: the scene's own) and
    optional nested changes to the scene YAML (e.g. ``{traffic: null}``)."""

    name: str
    scene: Path
    ue_count: int | None = None
    scene_overrides: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Scenario:
    dataset: str
    n: int
    group: str = "dry"
    trps: tuple[int, ...] | None = None
    snapshots: tuple[int, ...] | None = None
    db: int | None = None
    trp_subset: int | None = None  # test only: a seeded random subset of S present TRPs/sample

    @property
    def key(self) -> tuple:
        """Identity of the sample population (not the sizes)."""
        return (self.dataset, self.group, self.trps, self.snapshots)

    def describe(self) -> str:
        s = f"{self.dataset}/{self.group}"
        if self.trps is not None:
            s += f" TRP {','.join(map(str, self.trps))}"
        if self.snapshots is not None:
            s += f" snapshots {_ranges(self.snapshots)}"
        if self.trp_subset is not None:
            s += f", {self.trp_subset} random TRPs per sample"
        return s


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    train: tuple[Scenario, ...]
    test: dict[str, Scenario]


@dataclasses.dataclass
class Protocol:
    name: str
    description: str
    budget: str
    steps: int
    batch_size: int
    models: list[str]
    model_kwargs: dict[str, dict]
    seed: int
    datasets: dict[str, DatasetSpec]
    data: dict
    experiments: dict[str, Experiment]
    path: Path

    @property
    def log_every(self) -> int:
        """Training log interval: ~10 records per run, at most every 1,000 steps."""
        return max(1, min(1000, self.steps // 10))


def _ranges(idx: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    out, start = [], None
    for i, v in enumerate(idx):
        if start is None:
            start = v
        if i + 1 == len(idx) or idx[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(out)


def deep_merge(base: dict, over: dict) -> dict:
    """Recursive dict merge: mappings merge, anything else (lists included) replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def list_protocols() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def find_protocol(name: str | Path) -> Path:
    """A protocol YAML path, or the name of one under ``loc/experiments/``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    q = EXPERIMENTS_DIR / f"{p.name}.yaml"
    if q.is_file() and p.suffix == "":
        return q
    raise ConfigError(f"unknown protocol {str(name)!r} (shipped: {', '.join(list_protocols())})")


def _index_tuple(value, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected indices, got {value!r}")
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    if isinstance(value, str):
        return parse_index_list(value)
    raise ConfigError(f"{what}: expected an index, a list or a string like '0:32', got {value!r}")


def _count(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _resolve_scene(scene: str, protocol_path: Path) -> Path:
    p = Path(scene)
    for base in (Path.cwd(), REPO_ROOT, protocol_path.parent):
        if (base / p).is_file():
            return (base / p).resolve()
    raise ConfigError(f"datasets: scene file {scene!r} not found (relative to CWD or the repo)")


def _scenario(d, where: str, datasets: dict, default_db: int | None = None) -> Scenario:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {d!r}")
    bad = set(d) - SCENARIO_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
    ds = d.get("dataset")
    if ds not in datasets:
        raise ConfigError(f"{where}: unknown dataset {ds!r} (protocol has: {', '.join(datasets)})")
    group = d.get("group", "dry")
    if not isinstance(group, str):
        raise ConfigError(f"{where}: group must be a string, got {group!r}")
    db = d.get("db", default_db)
    return Scenario(
        dataset=ds,
        n=_count(d.get("n"), f"{where}.n"),
        group=group,
        trps=_index_tuple(d.get("trps"), f"{where}.trps"),
        snapshots=_index_tuple(d.get("snapshots"), f"{where}.snapshots"),
        db=None if db is None else _count(db, f"{where}.db"),
        trp_subset=None if d.get("trp_subset") is None else _count(d["trp_subset"], where),
    )


def load_protocol(name: str | Path, budget: str = "short") -> Protocol:
    """Read, merge the budget's overrides into, and validate a protocol. ConfigError on any
    inconsistency (one line, naming the key)."""
    from loc.runners import base_model, known_models

    path = find_protocol(name)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a protocol must be a YAML mapping")
    bad = set(raw) - TOP_KEYS
    if bad:
        raise ConfigError(f"{path.name}: unknown key(s) {', '.join(sorted(bad))}")
    budgets = raw.get("budgets") or {}
    missing = [b for b in BUDGET_NAMES if b not in budgets]
    if missing:
        raise ConfigError(f"{path.name}: budgets lack {', '.join(missing)}")
    if budget not in budgets:
        raise ConfigError(f"unknown budget {budget!r} ({' | '.join(budgets)})")
    b = dict(budgets[budget] or {})
    steps = _count(b.pop("steps", None), f"budgets.{budget}.steps")
    batch = _count(b.pop("batch_size", None), f"budgets.{budget}.batch_size")
    bad = set(b) - (TOP_KEYS - {"name", "budgets"})
    if bad:
        raise ConfigError(f"budgets.{budget}: unknown key(s) {', '.join(sorted(bad))}")
    cfg = deep_merge({k: v for k, v in raw.items() if k != "budgets"}, b)

    models = cfg.get("models")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{path.name}: models must be a non-empty list")
    for m in models:
        if base_model(m) not in known_models():
            raise ConfigError(
                f"unknown model {m!r} in {path.name} (choose from {', '.join(known_models())})"
            )
    if len(set(models)) != len(models):
        raise ConfigError(f"{path.name}: a model is listed twice")
    mkw = cfg.get("model_kwargs") or {}
    if not isinstance(mkw, dict) or any(not isinstance(v, dict) for v in mkw.values()):
        raise ConfigError("model_kwargs must map model names to mappings")

    datasets = {}
    for dname, d in (cfg.get("datasets") or {}).items():
        if not isinstance(d, dict) or "scene" not in d:
            raise ConfigError(f"datasets.{dname}: needs a scene")
        bad = set(d) - {"scene", "ue_count", "scene_overrides"}
        if bad:
            raise ConfigError(f"datasets.{dname}: unknown key(s) {', '.join(sorted(bad))}")
        ue = d.get("ue_count")
        datasets[dname] = DatasetSpec(
            dname,
            _resolve_scene(d["scene"], path),
            None if ue is None else _count(ue, f"datasets.{dname}.ue_count"),
            dict(d.get("scene_overrides") or {}),
        )
    if not datasets:
        raise ConfigError(f"{path.name}: no datasets")

    data = deep_merge(DATA_DEFAULTS, cfg.get("data") or {})
    bad = set(data) - set(DATA_DEFAULTS)
    if bad:
        raise ConfigError(f"data: unknown key(s) {', '.join(sorted(bad))}")
    if data["split"] not in ("sample", "ue"):
        raise ConfigError(f"data.split must be sample | ue, got {data['split']!r}")
    _count(data["k"], "data.k")
    shots = data["k_shots"]
    if not isinstance(shots, list) or not shots:
        raise ConfigError("data.k_shots must be a non-empty list of sample counts")
    data["k_shots"] = [_count(v, "data.k_shots[]") for v in shots]
    _count(data["adapt_steps"], "data.adapt_steps", 0)
    _count(data["finetune_steps"], "data.finetune_steps")
    if not isinstance(data["finetune_sizes"], list):
        raise ConfigError("data.finetune_sizes must be a list of sample counts")
    data["finetune_sizes"] = [_count(v, "data.finetune_sizes[]", 2) for v in data["finetune_sizes"]]
    sel = data["selection"]
    if set(sel) - set(DATA_DEFAULTS["selection"]):
        raise ConfigError(f"data.selection: unknown key(s) in {sorted(sel)}")
    data["selection"] = {k: _index_tuple(v, f"data.selection.{k}") for k, v in sel.items()}
    _transform(data, None)  # validates scale / domain

    experiments = {}
    for ename, e in (cfg.get("experiments") or {}).items():
        where = f"experiments.{ename}"
        if not isinstance(e, dict) or set(e) != {"train", "test"}:
            raise ConfigError(f"{where}: needs exactly the keys train and test")
        tr = e["train"] if isinstance(e["train"], list) else [e["train"]]
        if not tr:
            raise ConfigError(f"{where}.train: empty")
        train = tuple(_scenario(t, f"{where}.train[{i}]", datasets) for i, t in enumerate(tr))
        if any(t.trp_subset is not None for t in train):
            raise ConfigError(
                f"{where}.train: trp_subset is a test condition (use the model's "
                "train_subset option for training)"
            )
        if not isinstance(e["test"], dict) or not e["test"]:
            raise ConfigError(f"{where}.test: expected a non-empty mapping name -> scenario")
        test = {
            str(t): _scenario(s, f"{where}.test.{t}", datasets, default_db=train[0].n)
            for t, s in e["test"].items()
        }
        experiments[str(ename)] = Experiment(str(ename), train, test)
    if not experiments:
        raise ConfigError(f"{path.name}: no experiments")
    return Protocol(
        name=str(cfg.get("name") or path.stem),
        description=str(cfg.get("description") or "").strip(),
        budget=budget,
        steps=steps,
        batch_size=batch,
        models=list(models),
        model_kwargs={m: dict(mkw.get(m) or {}) for m in models},
        seed=_count(cfg.get("seed", 1), "seed", 0),
        datasets=datasets,
        data=data,
        experiments=experiments,
        path=path,
    )


def _transform(data: dict, scale: float | None) -> CSITransform:
    s = data["scale"]
    if s != "auto" and (isinstance(s, bool) or not isinstance(s, int | float)):
        raise ConfigError(f"data.scale must be a number or 'auto', got {s!r}")
    return CSITransform(scale=scale if s == "auto" else float(s), domain=data["domain"])


# ----------------------------------------------------------------------------- datasets


def _render_device(device: str) -> str:
    return "cpu" if device == "cpu" else ("auto" if device == "auto" else "gpu")


def dataset_store(spec: DatasetSpec, cache_dir: str | Path, device: str = "auto") -> Path:
    """Path of a complete store for ``spec`` in ``cache_dir``: reused when already complete,
    else rendered (or resumed) with simgen. Store name: <scene name>_ue<count>_<config hash>."""
    from simgen.errors import SimgenError
    from simgen.render import Renderer, plan

    cache = Path(cache_dir)
    scene = spec.scene
    try:
        if spec.scene_overrides:
            d = yaml.safe_load(scene.read_text())
            if Path(str(d.get("scene", ""))).suffix.lower() == ".xml":
                d["scene"] = str((scene.parent / d["scene"]).resolve())
            d = deep_merge(d, spec.scene_overrides)
            d = {k: v for k, v in d.items() if v is not None}
            cache.mkdir(parents=True, exist_ok=True)
            text = yaml.safe_dump(d, sort_keys=False)
            tag = hashlib.sha256(text.encode()).hexdigest()[:8]
            scene = cache / f"{spec.scene.stem}_{tag}.yaml"
            scene.write_text(text)
        p = plan(scene, ue_count=spec.ue_count)
        n = p.cfg.ue.sampling.count or "grid"
        out = cache / f"{p.cfg.name}_ue{n}_{p.cfg.content_hash()[:8]}.zarr"
        p.out = out
        if out.exists():
            import zarr

            if zarr.open_group(str(out), mode="r").attrs.get("complete"):
                log.info("dataset %s: reusing %s", spec.name, out)
                return out
        log.info("dataset %s: rendering %s (%s UEs) into %s", spec.name, scene, n, out)
        t0 = time.perf_counter()
        r = Renderer(p, _render_device(device))
        r.render(r.open_store())
        log.info("dataset %s: rendered in %.1f s", spec.name, time.perf_counter() - t0)
        return out
    except SimgenError as e:
        raise DataError(f"dataset {spec.name}: {e}") from None


# ----------------------------------------------------------------------------- splits


def snapshot_mask(store: CSIStore, snapshots: tuple[int, ...] | None) -> np.ndarray:
    """Usable samples of ``store`` (``store.valid``) restricted to the given traffic snapshots
    (None: all). DataError when the store has no ``snapshot`` variable or none is selected."""
    mask = store.valid.copy()
    if snapshots is None:
        return mask
    if "snapshot" not in store.ds.variables:
        raise DataError(f"{store.path} has no snapshot variable to filter by")
    snap = np.asarray(store.ds["snapshot"].values)
    have = np.unique(snap)
    missing = sorted(set(snapshots) - set(have.tolist()))
    if missing:
        raise DataError(
            f"snapshot(s) {_ranges(tuple(missing))} not in {store.path} "
            f"(it has {_ranges(tuple(have.tolist()))})"
        )
    return mask & np.isin(snap, snapshots)


def ue_ids(store: CSIStore) -> np.ndarray:
    """Per-sample UE id: samples at the same position (the same UE in another traffic
    snapshot) share an id. int64 (N,)."""
    _, inv = np.unique(np.nan_to_num(store.xyz, nan=1e30), axis=0, return_inverse=True)
    return np.asarray(inv, np.int64).reshape(-1)


def ordered_samples(
    mask: np.ndarray, seed: int, by: str = "sample", ue: np.ndarray | None = None
) -> np.ndarray:
    """The seeded order of the usable samples: heads are training sets / databases, tails test
    sets. ``by="sample"`` matches ``loc.data.split_indices``; ``by="ue"`` groups the samples of
    each UE together in the order of a seeded UE permutation of the whole store (independent
    of the mask, so two filters of one store agree on which UEs come first)."""
    mask = np.asarray(mask, bool)
    if by == "sample":
        cand = np.flatnonzero(mask)
        return cand[np.random.default_rng(seed).permutation(len(cand))]
    if ue is None or len(ue) != len(mask):
        raise ConfigError("a UE split needs one UE id per sample")
    rng = np.random.default_rng([seed, 7])
    n_ue = int(ue.max()) + 1 if len(ue) else 0
    rank = np.empty(n_ue, np.int64)
    rank[rng.permutation(n_ue)] = np.arange(n_ue)
    tie = rng.random(len(mask))
    cand = np.flatnonzero(mask)
    return cand[np.lexsort((tie[cand], rank[ue[cand]]))]


def head_tail(
    order: np.ndarray, n_head: int, n_tail: int, what: str, ue: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(order[:n_head], order[-n_tail:]); DataError when they would overlap (too few samples)
    or, with UE ids, share a UE."""
    n = len(order)
    if n_head + n_tail > n:
        raise DataError(f"too few samples: {what} has {n} usable, needs {n_head} + {n_tail}")
    head, tail = order[:n_head], order[n - n_tail :]
    if ue is not None and np.intersect1d(ue[head], ue[tail]).size:
        raise DataError(f"too few UEs: {what} cannot split {n_head} + {n_tail} without sharing")
    return head, tail


# ----------------------------------------------------------------------------- running


@dataclasses.dataclass
class _Pop:
    """One scenario's sample population in one experiment."""

    store: CSIStore
    order: np.ndarray
    ue: np.ndarray | None


class _Prepared:
    """Every store, split and size check of one experiment, done before any training."""

    def __init__(self, proto: Protocol, exp: Experiment, paths: dict[str, Path]) -> None:
        data = proto.data
        self.exp = exp
        self._stores: dict[tuple, CSIStore] = {}
        self._pops: dict[tuple, _Pop] = {}
        seed, by = data["split_seed"], data["split"]

        def pop(sc: Scenario) -> _Pop:
            if sc.key not in self._pops:
                skey = (sc.dataset, sc.group, sc.trps)
                if skey not in self._stores:
                    sel = dict(data["selection"])
                    if sc.trps is not None:
                        sel["trps"] = sc.trps
                    self._stores[skey] = CSIStore(
                        paths[sc.dataset],
                        sc.group,
                        Selection(**sel),
                        _transform(data, None),
                        data["frame"],
                        variable=data["variable"],
                    )
                st = self._stores[skey]
                mask = snapshot_mask(st, sc.snapshots)
                ue = ue_ids(st) if by == "ue" else None
                self._pops[sc.key] = _Pop(st, ordered_samples(mask, seed, by, ue), ue)
            return self._pops[sc.key]

        k, b = data["k"], proto.batch_size
        self.train: list[tuple[CSIStore, np.ndarray]] = []
        for sc in exp.train:
            p = pop(sc)
            tr, _ = head_tail(p.order, sc.n, 0, f"{exp.name} train {sc.describe()}")
            if b > sc.n:
                raise DataError(f"{exp.name}: batch size {b} exceeds the {sc.n} training samples")
            self.train.append((p.store, tr))
        self.test: dict[str, tuple[CSIStore, np.ndarray, np.ndarray]] = {}
        for name, sc in exp.test.items():
            p = pop(sc)
            what = f"{exp.name} test {name} ({sc.describe()})"
            db, te = head_tail(p.order, sc.db, sc.n, what, p.ue)
            if k > sc.db:
                raise DataError(f"{what}: need {k} neighbours but the database has {sc.db}")
            for tsc, (_, tr) in zip(exp.train, self.train, strict=True):
                if tsc.key == sc.key and np.intersect1d(tr, te).size:
                    raise DataError(f"too few samples: {what} overlaps the training samples")
                if p.ue is not None and tsc.dataset == sc.dataset and tsc.group == sc.group:
                    if np.intersect1d(p.ue[tr], p.ue[te]).size:
                        raise DataError(f"too few UEs: {what} shares UEs with training")
            self.test[name] = (p.store, db, te)
        shapes = {st.shape for st in self._stores.values()}
        if len(shapes) > 1:
            raise DataError(f"{exp.name}: scenarios differ in CSI shape {sorted(shapes)}")

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
        "train": [
            {**st.describe(), "n": len(tr), "first": int(tr[0]), "last": int(tr[-1])}
            for st, tr in prep.train
        ],
    }


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
    from loc.runners import RUNNERS, base_model, family, transfer_curve, trp_subset_mask
    from loc.train import TrainConfig, TrainSet, resolve_device, train

    say = on_progress or log.info
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
        "k": data["k"],
        "coarse_error_l_m": data["coarse_error"],
        "device": str(dev),
        "datasets": {d: str(p) for d, p in paths.items()},
        "columns": [],
        "results": {},
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
        result["training"][ename] = {}
        for m in models:
            run_dir = out / "runs" / ename / m
            fam = family(m)
            cfg = TrainConfig(
                model=base_model(m) if fam == "train" else "metaloc",  # others: signature only
                model_kwargs=proto.model_kwargs.get(m, {}),
                steps=proto.steps,
                batch_size=proto.batch_size,
                lr=data["lr"],
                n_neighbours=data["k"],
                seed=proto.seed,
                device=str(dev),
                log_every=proto.log_every,
                ckpt_every=min(5000, proto.steps),
            )
            sig = {"family": fam, "name": m, "data": data, **_run_signature(cfg, prep, tf)}
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
            say(f"{proto.name}: {ename}: fitting {m} ({fam}, {proto.steps} steps) on {dev}")
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
                }
            else:
                fitted = RUNNERS[fam](m, proto, sets, prep.test, dev, run_dir, masks=masks)
                training = dict(fitted.training)
            result["training"][ename][m] = {"seconds": time.perf_counter() - t0, **training}
            for tname, (st, db, te) in prep.test.items():
                if fitted is None:
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
                else:
                    report, err = summarize(m, st, te, fitted.predictions[tname])
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
            _write(result, errors, out, proto, models, final=False)
    _write(result, errors, out, proto, models, final=True)
    return result


# ----------------------------------------------------------------------------- outputs


def _cell(r: dict | None) -> str:
    if not r or r["overall"].get("n", 0) == 0:
        return "–"
    o = r["overall"]
    return f"{o['mean']:.2f} / {o['median']:.2f} / {o['p90']:.2f}"


def markdown_table(result: dict, models: list[str]) -> str:
    """The suite table: one row per model, one column per (experiment, test)."""
    cols = result["columns"]
    lines = [
        f"# Localization suite: {result['protocol']} (budget {result['budget']})",
        "",
    ]
    if result.get("description"):
        lines += [result["description"].splitlines()[0], ""]
    lines += [
        f"{result['steps']} steps, batch {result['batch_size']}, k = {result['k']} neighbours, "
        f"coarse location error l = {result['coarse_error_l_m']} m, {result['device']}. "
        "Cells: 2-D error mean / median / p90 in metres.",
        "",
        "| model | " + " | ".join(c["label"] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for m in models:
        cells = [_cell(result["results"][c["label"]].get(m)) for c in cols]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += _extra_tables(result, models)
    lines.append("")
    for c in cols:
        lines.append(
            f"- {c['label']}: train {' + '.join(c['train'])}; test {c['test_scenario']} "
            f"n={c['n_test']}, database {c['n_database']}"
        )
    return "\n".join(lines) + "\n"


def _extra_tables(result: dict, models: list[str]) -> list[str]:
    """RMSE and link-state (PCP) accuracy of DA models; error vs K of MetaLoc models; error
    vs fine-tuning samples (transfer-learning curves)."""
    cols, res = result["columns"], result["results"]
    lines = []
    if any("pcp_accuracy" in (res[c["label"]].get(m) or {}) for c in cols for m in models):
        lines += [
            "",
            "Domain adaptation: RMSE (m) / link-state (PCP) accuracy (%).",
            "",
            "| model | " + " | ".join(c["label"] for c in cols) + " |",
            "|---|" + "---|" * len(cols),
        ]
        for m in models:
            cells = []
            for c in cols:
                r = res[c["label"]].get(m)
                acc = (r or {}).get("pcp_accuracy")
                cells.append(
                    "–"
                    if not r
                    else f"{r['overall']['rmse']:.2f} / "
                    + ("–" if acc is None else f"{100 * acc:.1f}")
                )
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += _curve_table(
        res,
        cols,
        models,
        "adaptation_curve",
        "Fast adaptation: mean error (m) vs K labelled target samples.",
    )
    lines += _curve_table(
        res,
        cols,
        models,
        "transfer_curve",
        "Transfer learning: mean error (m) after "
        "fine-tuning on n samples of the test scenario (n = 0: direct reuse).",
    )
    return lines


def _curve_table(res: dict, cols: list, models: list[str], key: str, title: str) -> list[str]:
    """Models x (column, size) table of the mean errors in each result's ``key`` curve; a
    transfer curve also gets n = 0 (the model as trained, no fine-tuning)."""
    rows = [m for m in models if any(key in (res[c["label"]].get(m) or {}) for c in cols)]
    if not rows:
        return []
    direct = key == "transfer_curve"
    heads = []
    for c in cols:
        sizes = sorted({n for m in rows for n in (res[c["label"]].get(m) or {}).get(key, {})})
        heads += [(c["label"], n) for n in ([0] if direct else []) + sizes]
    sym = "n" if direct else "K"
    lines = [
        "",
        title,
        "",
        "| model | " + " | ".join(f"{lab} {sym}={n}" for lab, n in heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for m in rows:
        cells = []
        for lab, n in heads:
            r = res[lab].get(m) or {}
            curve = {0: r["overall"], **r.get(key, {})} if direct and r else r.get(key, {})
            cells.append(f"{curve[n]['mean']:.2f}" if n in curve else "–")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def plot_suite_cdf(errors: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> Path:
    """One panel per column, one CDF curve per model (log error axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n = max(1, len(errors))
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, (label, curves) in zip(axes.flat, errors.items(), strict=False):
        for m, e in curves.items():
            e = np.sort(np.asarray(e, np.float64))
            if len(e):
                ax.plot(np.maximum(e, 1e-3), np.arange(1, len(e) + 1) / len(e), label=m)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("2-D error (m)")
        ax.set_ylabel("CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write(result, errors, out: Path, proto: Protocol, models, final: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result["complete"] = final
    (out / f"{proto.name}.json").write_text(json.dumps(result, indent=2))
    (out / f"{proto.name}.md").write_text(markdown_table(result, models))
    if final:
        plot_suite_cdf(errors, out / f"{proto.name}_cdf.png", f"{proto.name} ({proto.budget})")
