"""Protocol YAMLs (``loc/experiments/``): loading, budgets, validation."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from pathlib import Path

import yaml

from loc.data import CSITransform, parse_index_list
from loc.errors import ConfigError
from loc.fit.supervised import RECIPES
from loc.noise import parse_noise

log = logging.getLogger("loc.suite")

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BUDGET_NAMES = ("paper", "short", "tiny")
TOP_KEYS = {
    "name",
    "description",
    "models",
    "model_kwargs",
    "seed",
    "seeds",
    "datasets",
    "data",
    "experiments",
    "budgets",
    "declared_differences",
}
SPLITS = ("sample", "ue", "blocks")
DATA_DEFAULTS = {
    "selection": {"trps": "all", "ue_ants": "all", "trp_ants": "all", "subcarriers": "all"},
    "scale": "auto",
    "recipe": "conditioned",  # conditioned | paper (loc.fit.supervised.TrainConfig.recipe)
    "domain": "auto",  # auto (see resolve_domain) | freq | angle_delay | ad_power
    "frame": "absolute",
    "k": 64,
    "coarse_error": 1.0,
    "lr": None,
    # how test samples are kept from training (loc.suite.datasets): "sample" (a seeded sample
    # permutation; samples at one position are kept together when a store repeats positions),
    # "ue" (a seeded permutation of UE positions), "blocks" (whole square blocks of side
    # block_m held out, training positions within gap_m of a held-out block dropped: test
    # positions nobody trained near). An experiment may set its own `split`.
    "split": "sample",
    "split_seed": 1,
    "block_m": 10.0,
    "gap_m": 2.0,
    "variable": "csi",  # csi | cir (simgen's stored CIR taps, output.cir_taps)
    "finetune_sizes": [],  # transfer-learning curve: fine-tune on n test-scenario samples
    "finetune_steps": 1000,  # steps of each fine-tuning run (constant LR)
    "k_shots": [8, 32, 128],  # MetaLoc models: target samples K for fast adaptation
    "adapt": {},  # MetaLoc: fast-adaptation options (loc.fit.meta.AdaptConfig)
    # MetaLoc: inner-loop α values to choose from on the meta-training environments only; the
    # choice replaces every MAML model's meta.alpha and `adapt` (its inner loop: SGD, α,
    # inner_steps) for every model (loc.suite.meta_sweep)
    "alpha_sweep": [],
    # receiver noise (loc.noise spec) of every scenario without its own `noise`: a training
    # scenario's applies to its store's training and database samples, a test scenario's to
    # its queries; noise_redraw: new training noise every epoch (augmentation)
    "noise": "noiseless",
    "database_noise": None,  # the database's noise at evaluation (kNN reference, neighbours);
    # None: the training noise (the training samples are the database)
    "noise_redraw": False,
    "noise_seed": 0,
    # training length in passes over each experiment's training samples: its steps are
    # ceil(epochs * n / batch_size), at most the budget's `steps` (None: always `steps`)
    "epochs": None,
    # early stopping of trained models (loc.fit.supervised.TrainConfig): hold out this
    # fraction of the training samples, validate ~20 times per run, stop after `patience`
    # validations without improvement and keep the best weights (0: none)
    "val_fraction": 0.0,
    "patience": 0,
}
SCENARIO_KEYS = {"dataset", "group", "trps", "snapshots", "n", "db", "trp_subset", "noise"}


# ----------------------------------------------------------------------------- protocol


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset to render or reuse: a scene YAML, a UE count (None: the scene's own) and
    optional nested changes to the scene YAML (e.g. ``{traffic: null}``)."""

    name: str
    scene: Path
    ue_count: int | None = None
    scene_overrides: dict = dataclasses.field(default_factory=dict)
    # one environment of a pool YAML (``scene``; loc.suite.envs), and its seen / unseen split
    environment: str | None = None
    split: str | None = None


@dataclasses.dataclass(frozen=True)
class Scenario:
    dataset: str
    n: int
    group: str = "dry"
    trps: tuple[int, ...] | None = None
    snapshots: tuple[int, ...] | None = None
    db: int | None = None
    trp_subset: int | None = None  # test only: a seeded random subset of S present TRPs/sample
    noise: str | None = None  # loc.noise spec; None: the protocol's data.noise

    @property
    def key(self) -> tuple:
        """Identity of the sample population (not the sizes)."""
        return (self.dataset, self.group, self.trps, self.snapshots)

    def describe(self) -> str:
        s = f"{self.dataset}/{self.group}"
        if self.trps is not None:
            s += f" TRP {','.join(map(str, self.trps))}"
        if self.snapshots is not None:
            s += f" snapshots {ranges_text(self.snapshots)}"
        if self.trp_subset is not None:
            s += f", {self.trp_subset} random TRPs per sample"
        return s


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    train: tuple[Scenario, ...]
    test: dict[str, Scenario]
    split: str = "sample"  # data.split unless the experiment sets its own


def log_interval(steps: int) -> int:
    """Training log interval: ~10 records per run of ``steps`` steps, at most every 1,000."""
    return max(1, min(1000, steps // 10))


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
    # recipe keys (loc.suite.recipes.RECIPE_KEYS) on which compared models may differ, each
    # with the reason it is the point of the comparison
    declared_differences: dict[str, str] = dataclasses.field(default_factory=dict)
    # training seeds of the DA family (``loc.suite.runners.run_da``: one fit per seed, the row
    # pools them, the JSON keeps each); () = (seed,)
    seeds: tuple[int, ...] = ()

    @property
    def log_every(self) -> int:
        """Training log interval of a ``steps``-long run (``log_interval``)."""
        return log_interval(self.steps)

    def steps_for(self, exp: Experiment) -> int:
        """Training steps of experiment ``exp``: ``data.epochs`` passes over its training
        samples (less the validation hold-out) in batches of ``batch_size``, at most ``steps``;
        ``steps`` when no epochs are set."""
        ep = self.data.get("epochs")
        if ep is None:
            return self.steps
        n = sum(sc.n for sc in exp.train) * (1 - self.data.get("val_fraction", 0.0))
        return max(1, min(self.steps, math.ceil(ep * n / self.batch_size)))


def ranges_text(idx: tuple[int, ...]) -> str:
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
        noise=_noise_spec(d.get("noise"), f"{where}.noise"),
    )


def _noise_spec(value, where: str) -> str | None:
    """A scenario's / the protocol's noise spec, validated (``loc.noise.parse_noise``)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a noise spec like 'awgn:10', got {value!r}")
    try:
        return parse_noise(value).spec()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_protocol(name: str | Path, budget: str = "short") -> Protocol:
    """Read, merge the budget's overrides into, and validate a protocol. ConfigError on any
    inconsistency (one line, naming the key)."""
    from loc.suite.envs import expand_experiment, pool_datasets
    from loc.suite.runners import base_model, known_models

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
    if isinstance(b.get("experiments"), dict) and isinstance(cfg.get("experiments"), dict):
        # a budget lists its experiments first (column order); `name: null` drops one
        exps = cfg["experiments"]
        order = [*b["experiments"], *(k for k in exps if k not in b["experiments"])]
        cfg["experiments"] = {k: exps[k] for k in order if exps[k] is not None}

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
        if isinstance(d, dict) and "pool" in d:  # one dataset per environment (loc.suite.envs)
            datasets.update(pool_datasets(dname, d, path))
            continue
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
    if data["split"] not in SPLITS:
        raise ConfigError(f"data.split must be {' | '.join(SPLITS)}, got {data['split']!r}")
    for key in ("block_m", "gap_m"):
        v = data[key]
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or v < 0
            or (key == "block_m" and v == 0)
        ):
            raise ConfigError(f"data.{key} must be a number of metres (block_m > 0), got {v!r}")
    _count(data["k"], "data.k")
    data["noise"] = _noise_spec(data["noise"], "data.noise")
    data["database_noise"] = _noise_spec(data["database_noise"], "data.database_noise")
    if not isinstance(data["noise_redraw"], bool):
        raise ConfigError("data.noise_redraw must be true or false")
    _count(data["noise_seed"], "data.noise_seed", 0)
    ep = data["epochs"]
    if ep is not None and (isinstance(ep, bool) or not isinstance(ep, int | float) or ep <= 0):
        raise ConfigError(f"data.epochs must be a positive number, got {ep!r}")
    vf = data["val_fraction"]
    if isinstance(vf, bool) or not isinstance(vf, int | float) or not 0 <= vf < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {vf!r}")
    _count(data["patience"], "data.patience", 0)
    shots = data["k_shots"]
    if not isinstance(shots, list) or not shots:
        raise ConfigError("data.k_shots must be a non-empty list of sample counts")
    data["k_shots"] = [_count(v, "data.k_shots[]") for v in shots]
    from loc.fit.meta import AdaptConfig

    if not isinstance(data["adapt"], dict):
        raise ConfigError("data.adapt must be a mapping (optimizer, steps, lr, ...)")
    AdaptConfig.from_dict(data["adapt"])  # validates
    sweep = data["alpha_sweep"]
    if not isinstance(sweep, list) or any(
        isinstance(a, bool) or not isinstance(a, int | float) or a <= 0 for a in sweep
    ):
        raise ConfigError(f"data.alpha_sweep must be a list of positive step sizes, got {sweep!r}")
    _count(data["finetune_steps"], "data.finetune_steps")
    if not isinstance(data["finetune_sizes"], list):
        raise ConfigError("data.finetune_sizes must be a list of sample counts")
    data["finetune_sizes"] = [_count(v, "data.finetune_sizes[]", 2) for v in data["finetune_sizes"]]
    sel = data["selection"]
    if set(sel) - set(DATA_DEFAULTS["selection"]):
        raise ConfigError(f"data.selection: unknown key(s) in {sorted(sel)}")
    data["selection"] = {k: _index_tuple(v, f"data.selection.{k}") for k, v in sel.items()}
    if data["recipe"] not in RECIPES:
        raise ConfigError(f"data.recipe must be {' | '.join(RECIPES)}, got {data['recipe']!r}")
    if budget == "paper" and "recipe" not in (b.get("data") or {}):
        data["recipe"] = "paper"  # the paper budget is the specs' recipe unless it says otherwise
    data["domain"] = resolve_domain(data, models)
    csi_transform(data, None)  # validates scale / domain

    experiments = {}
    for ename, e in (cfg.get("experiments") or {}).items():
        where = f"experiments.{ename}"
        e = expand_experiment(e, datasets, where)  # `environments:` scenarios of a pool
        if not isinstance(e, dict) or not {"train", "test"} <= set(e) <= {"train", "test", "split"}:
            raise ConfigError(f"{where}: needs the keys train and test (and optionally split)")
        split = e.get("split", data["split"])
        if split not in SPLITS:
            raise ConfigError(f"{where}.split must be {' | '.join(SPLITS)}, got {split!r}")
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
        experiments[str(ename)] = Experiment(str(ename), train, test, split)
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
        declared_differences=_declared(cfg.get("declared_differences"), path.name),
        seeds=_seeds(cfg.get("seeds"), models, path.name),
    )


def _seeds(value, models: list[str], where: str) -> tuple[int, ...]:
    """``seeds``: a list of distinct training seeds; only the DA family trains once per seed."""
    from loc.suite.runners import family

    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: seeds must be a non-empty list of integers")
    seeds = tuple(_count(v, "seeds[]", 0) for v in value)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds lists a seed twice")
    other = [m for m in models if family(m) != "da"]
    if other:
        raise ConfigError(f"{where}: seeds: only DA models train per seed, not {', '.join(other)}")
    return seeds


def _declared(value, where: str) -> dict[str, str]:
    """``declared_differences``: {recipe key: why it differs between compared models}."""
    from loc.suite.recipes import RECIPE_KEYS

    if value is None:
        return {}
    if not isinstance(value, dict) or any(
        not isinstance(v, str) or not v.strip() for v in value.values()
    ):
        raise ConfigError(f"{where}: declared_differences must map recipe keys to a reason")
    bad = set(value) - set(RECIPE_KEYS)
    if bad:
        raise ConfigError(
            f"{where}: declared_differences: unknown key(s) {', '.join(sorted(bad))} "
            f"({' | '.join(RECIPE_KEYS)})"
        )
    return {str(k): " ".join(str(v).split()) for k, v in value.items()}


def resolve_domain(data: dict, models: list[str]) -> str:
    """``data.domain: auto`` -> ``loc.models.default_domain`` of the protocol's models."""
    if data["domain"] != "auto":
        return data["domain"]
    from loc.models import default_domain
    from loc.suite.runners import base_model

    return default_domain([base_model(m) for m in models], data["recipe"], data["variable"])


def csi_transform(data: dict, scale: float | None) -> CSITransform:
    s = data["scale"]
    if s != "auto" and (isinstance(s, bool) or not isinstance(s, int | float)):
        raise ConfigError(f"data.scale must be a number or 'auto', got {s!r}")
    return CSITransform(scale=scale if s == "auto" else float(s), domain=data["domain"])


LWLM_DIR = Path(__file__).resolve().parent.parent / "lwlm"  # LWLM protocols: their own format


def is_lwlm(name: str | Path) -> bool:
    """Whether ``loc suite NAME`` means an LWLM protocol (``loc.lwlm.suite``): a shipped
    ``loc/lwlm/<NAME>.yaml``, or a YAML file whose ``name`` starts with 'lwlm'."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            return False
        raw = yaml.safe_load(p.read_text())
        return isinstance(raw, dict) and str(raw.get("name", "")).startswith("lwlm")
    return "/" not in str(name) and (LWLM_DIR / f"{name}.yaml").is_file()
