"""Environment pools (``simgen.pool``) as suite datasets: a protocol names a pool like a scene,
``datasets: {envs: {pool: scenes/envs_tiny.yaml, ue_count: 48}}``; the pool is rendered once
into the suite's cache (``pool_store``; a finished environment is never rendered again) and
every environment becomes a dataset of its own, ``envs/<environment>`` (its store is the
pool's folder ``<pool>/<environment>``, ``loc.pools``), with the pool's seen / unseen split.

A scenario selects environments with ``environments:`` instead of naming one dataset:
``seen`` / ``unseen`` (the pool's recorded split), ``all``, or a list of names, e.g.

    train: {dataset: envs, environments: seen, n: 40}        # one training set per env
    test:
      unseen: {dataset: envs, environments: unseen, n: 16, db: 24}

A training scenario expands into one training set per environment (``n`` each; the shared
loop never mixes environments in a batch). A test column expands into one column per
environment, ``<column>/<environment>``, and ``add_pooled_columns`` adds the column
``<column>`` itself: every model's errors over all of its environments together.

Environments have their own local frames: a test position is checked against the training
positions of its own environment only (``same_frame``), and the training-mean row is the
mean over every training environment (what a CSI-free model of the pool would learn).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import yaml

from loc.errors import ConfigError, DataError

log = logging.getLogger("loc.suite")

SEP = "/"  # <pool dataset>/<environment>
SELECTORS = ("seen", "unseen", "all")


def _resolve(scene: str, protocol_path: Path) -> Path:
    from loc.suite.protocol import _resolve_scene

    return _resolve_scene(scene, protocol_path)


def load_pool_spec(scene: Path, ue_count: int | None, overrides: dict, cache: Path | None):
    """The expanded ``simgen.pool.Pool`` of a pool YAML with the protocol's ``scene_overrides``
    merged in (written next to the cache when there are any) and ``ue_count`` per
    environment. ConfigError naming the pool on a bad pool YAML."""
    from loc.suite.protocol import deep_merge
    from simgen.errors import SimgenError
    from simgen.pool import load_pool

    path = scene
    if overrides:
        d = deep_merge(yaml.safe_load(scene.read_text()), overrides)
        text = yaml.safe_dump({k: v for k, v in d.items() if v is not None}, sort_keys=False)
        tag = hashlib.sha256(text.encode()).hexdigest()[:8]
        folder = cache if cache is not None else scene.parent
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{scene.stem}_{tag}.yaml"
        if not path.exists():
            path.write_text(text)
    try:
        return load_pool(path, ue_count=ue_count)
    except SimgenError as e:
        raise ConfigError(f"pool {scene}: {e}") from None


def pool_datasets(dname: str, d: dict, protocol_path: Path) -> dict:
    """``datasets.<dname>: {pool, ue_count?, scene_overrides?}`` -> one ``DatasetSpec`` per
    environment, named ``<dname>/<environment>``, in the pool's order."""
    from loc.suite.protocol import DatasetSpec, _count

    bad = set(d) - {"pool", "ue_count", "scene_overrides"}
    if bad:
        raise ConfigError(f"datasets.{dname}: unknown key(s) {', '.join(sorted(bad))}")
    scene = _resolve(str(d["pool"]), protocol_path)
    ue = d.get("ue_count")
    ue = None if ue is None else _count(ue, f"datasets.{dname}.ue_count")
    over = dict(d.get("scene_overrides") or {})
    pool = load_pool_spec(scene, ue, over, None) if not over else None
    if pool is None:  # overrides: read them from a temporary copy (the cache writes its own)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pool = load_pool_spec(scene, ue, over, Path(tmp))
    return {
        f"{dname}{SEP}{e.name}": DatasetSpec(
            f"{dname}{SEP}{e.name}", scene, ue, over, environment=e.name, split=e.split
        )
        for e in pool.environments
    }


def _select(value, pool: str, datasets: dict, where: str) -> list[str]:
    envs = {n.split(SEP, 1)[1]: s for n, s in datasets.items() if n.startswith(pool + SEP)}
    if not envs:
        raise ConfigError(f"{where}: dataset {pool!r} is not an environment pool")
    if value in SELECTORS:
        names = [n for n, s in envs.items() if value == "all" or s.split == value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        unknown = [v for v in value if v not in envs]
        if unknown:
            raise ConfigError(
                f"{where}: unknown environment(s) {', '.join(unknown)} of {pool} "
                f"({', '.join(envs)})"
            )
        names = list(value)
    else:
        raise ConfigError(
            f"{where}.environments: expected seen | unseen | all or a list of names, got {value!r}"
        )
    if not names:
        raise ConfigError(f"{where}: no {value} environment in {pool}")
    return names


def _expand(sc: dict, datasets: dict, where: str) -> list[tuple[str | None, dict]]:
    """A raw scenario -> [(environment or None, scenario naming one dataset)]."""
    if not isinstance(sc, dict) or "environments" not in sc:
        return [(None, sc)]
    pool = sc.get("dataset")
    names = _select(sc["environments"], str(pool), datasets, where)
    rest = {k: v for k, v in sc.items() if k != "environments"}
    return [(n, {**rest, "dataset": f"{pool}{SEP}{n}"}) for n in names]


def expand_experiment(e, datasets: dict, where: str):
    """A raw experiment with ``environments:`` scenarios -> one with a training scenario per
    environment and a test column ``<column>/<environment>`` per environment (others as is)."""
    if not isinstance(e, dict) or "train" not in e or "test" not in e:
        return e
    tr = e["train"] if isinstance(e["train"], list) else [e["train"]]
    train = [s for i, t in enumerate(tr) for _, s in _expand(t, datasets, f"{where}.train[{i}]")]
    test = e["test"]
    if isinstance(test, dict):
        out = {}
        for name, sc in test.items():
            for env, s in _expand(sc, datasets, f"{where}.test.{name}"):
                out[str(name) if env is None else f"{name}{SEP}{env}"] = s
        test = out
    return {**e, "train": train, "test": test}


def same_frame(a: str, b: str) -> bool:
    """Whether datasets ``a`` and ``b`` share one coordinate frame: every environment of a
    pool has its own; the other datasets of a protocol share one (one scene's conditions)."""
    return a == b if SEP in a or SEP in b else True


# ----------------------------------------------------------------------------- rendering


def pool_store(spec, cache_dir: str | Path, device: str = "auto") -> Path:
    """The pool store of a pool dataset in ``cache_dir`` (``<pool>_ue<n>_<hash8>.zarr``):
    reused when complete, else rendered (finished environments skipped, others resumed)."""
    import zarr

    from simgen.errors import SimgenError
    from simgen.pool_render import Options, render_pool

    cache = Path(cache_dir)
    pool = load_pool_spec(spec.scene, spec.ue_count, spec.scene_overrides, cache)
    n = spec.ue_count or "scene"
    out = cache / f"{pool.name}_ue{n}_{pool.content_hash()[:8]}.zarr"
    if out.exists() and zarr.open_group(str(out), mode="r").attrs.get("complete"):
        return out
    dev = "cpu" if device == "cpu" else ("auto" if device == "auto" else "gpu")
    log.info("pool %s: rendering %d environments into %s", pool.name, len(pool.environments), out)
    try:
        summaries = render_pool(pool, Options(out=out, device=dev))
    except SimgenError as e:
        raise DataError(f"pool {spec.scene}: {e}") from None
    path = Path(str(out) + ".json")  # read by loc.suite.results.render_seconds
    old = json.loads(path.read_text()).get("environments", {}) if path.exists() else {}
    envs = {  # an environment a resumed render skipped keeps its recorded time
        s["name"]: old.get(s["name"]) if s.get("skipped") else s["seconds"] for s in summaries
    }
    secs = sum(v for v in envs.values() if v is not None)
    path.write_text(json.dumps({"render_seconds": secs, "device": device, "environments": envs}))
    return out


def pool_render_seconds(store: str | Path) -> float | None:
    """Render time (s) of one environment's store ``<pool>/<env>`` from the pool's record
    (``pool_store``); None when ``store`` is not an environment of a recorded pool."""
    store = Path(store)
    side = Path(str(store.parent) + ".json")
    if not side.exists():
        return None
    return json.loads(side.read_text()).get("environments", {}).get(store.name)


def environment_store(spec, cache_dir: str | Path, device: str = "auto") -> Path:
    """The store of one environment (``spec.environment``) of the rendered pool."""
    from loc.pools import environment_path

    return environment_path(pool_store(spec, cache_dir, device), spec.environment)


# ----------------------------------------------------------------------------- pooled columns


def add_pooled_columns(result: dict, errors: dict, proto) -> None:
    """For every test column expanded over environments (``<column>/<env>``), the column
    ``<column>``: each model's errors over all of them (n-weighted), placed before them; and
    ``result["environments"]``: the pool split and which environments each column holds."""
    from loc.evaluate import error_metrics

    groups: dict[tuple[str, str], list[dict]] = {}
    for c in result["columns"]:
        if SEP in c["test"]:
            groups.setdefault((c["experiment"], c["test"].split(SEP, 1)[0]), []).append(c)
    if not groups:
        return
    single = len(proto.experiments) == 1
    new_cols = list(result["columns"])
    for (ename, tname), cols in groups.items():
        label = tname if single else f"{ename}: {tname}"
        models = set.intersection(*(set(errors[c["label"]]) for c in cols))
        result["results"][label], errors[label] = {}, {}
        for m in sorted(models, key=list(errors[cols[0]["label"]]).index):
            err = np.concatenate([np.asarray(errors[c["label"]][m]) for c in cols])
            errors[label][m] = err
            result["results"][label][m] = {
                "overall": error_metrics(err),
                "pooled": len(cols),
                **_pooled_curves([result["results"][c["label"]][m] for c in cols], cols),
            }
        pooled = {
            **{k: v for k, v in cols[0].items() if k not in ("label", "test", "test_scenario")},
            "label": label,
            "test": tname,
            "test_scenario": f"{len(cols)} environments: "
            + ", ".join(c["test"].split(SEP, 1)[1] for c in cols),
            "environments": [c["test"].split(SEP, 1)[1] for c in cols],
            "n_test": sum(c["n_test"] for c in cols),
            "min_train_distance_m": min(c["min_train_distance_m"] for c in cols),
        }
        new_cols.insert(new_cols.index(cols[0]), pooled)
    result["columns"] = new_cols
    splits: dict[str, dict[str, list[str]]] = {}
    for name, spec in proto.datasets.items():
        if getattr(spec, "environment", None) is not None:
            pool = name.split(SEP, 1)[0]
            splits.setdefault(pool, {"seen": [], "unseen": []})[spec.split].append(spec.environment)
    result["environments"] = splits


def _pooled_curves(rows: list[dict], cols: list[dict]) -> dict:
    """MetaLoc's per-K curves (``adaptation_curve``: {K: {mean, ...}}, ``adaptation_baselines``:
    {row: {K: {mean, ...}}}) over the environments of a pooled column: the n-weighted mean of
    each environment's mean error (medians are not pooled)."""
    n = np.array([c["n_test"] for c in cols], float)

    def pool(curves: list[dict]) -> dict:
        ks = set.intersection(*(set(c) for c in curves))
        return {
            k: {"mean": float(np.dot(n, [c[k]["mean"] for c in curves]) / n.sum())}
            for k in sorted(ks, key=int)
        }

    out: dict = {}
    if all("adaptation_curve" in r for r in rows):
        out["adaptation_curve"] = pool([r["adaptation_curve"] for r in rows])
        out["k_shot"] = rows[0].get("k_shot")
    if all("adaptation_baselines" in r for r in rows):
        names = set.intersection(*(set(r["adaptation_baselines"]) for r in rows))
        out["adaptation_baselines"] = {
            b: pool([r["adaptation_baselines"][b] for r in rows]) for b in sorted(names)
        }
    return out
