"""``loc suite lwlm``: pretrain once, fine-tune every task at every label budget from the
pretrained encoder and from scratch, beside each task's baselines; an unseen-TRP experiment
and a leave-one-objective-out ablation. Protocol: ``loc/lwlm/lwlm.yaml`` (budgets tiny / cpu /
short / paper). Writes ``lwlm.md``, ``lwlm.json`` and ``lwlm.png`` in the output folder;
pretrained encoders are kept (and resumed) under ``pretrain*/``.

Splits (``split_samples``): the test set lies in held-out blocks of the survey (or, with
``split: random``, is the tail of a seeded order), never pretrained or trained on; labelled
sets are the head of the rest (n labels = the first n samples, so smaller sets are subsets of
larger ones), and pretraining takes every sample outside the test set without its labels.

Environment pools (``loc/lwlm/lwlm_envs.yaml``, issue #32): ``dataset: {pool: POOL.yaml}``
pretrains on every sample of the pool's *seen* environments (all their TRPs, no label) and
fine-tunes and tests on one *unseen* environment (``data.target``, default the first unseen):
its city and its TRP layout were never pretrained on. The unseen-TRP experiment is then moot
(every TRP of the target is unseen) and is skipped. ``data.seen_target`` (a seen environment)
adds the seen column: held-out blocks of that city (``data.n_test_seen`` samples) are left out
of pretraining, and every task is fine-tuned on its other samples and tested on those blocks,
so the page reads one encoder's error on a city it pretrained on beside one it never saw.

The check's control (benchmark-fairness rules §1.1): the training mean, which reads no CSI, in
the pretrained encoder's place; the finding holds only if the check passes and it fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import yaml

from loc.data import CSIStore, CSITransform, Selection
from loc.errors import ConfigError
from loc.lwlm.model import OBJECTIVES, TASKS
from loc.lwlm.pretrain import PretrainConfig, pretrain
from loc.lwlm.tasks import UNITS, FinetuneConfig, TaskData, baseline_rows, errors, finetune
from loc.lwlm.tasks import summary as err_summary
from loc.noise import parse_noise
from loc.suite.controls import Finding
from loc.suite.datasets import (
    blocks_order,
    check_disjoint,
    choose_test_blocks,
    dataset_store,
    in_blocks,
    ordered_samples,
    ue_ids,
)
from loc.suite.papers import Verdict
from loc.suite.protocol import REPO_ROOT, DatasetSpec, deep_merge

log = logging.getLogger("loc.lwlm")

PROTOCOL = Path(__file__).resolve().parent / "lwlm.yaml"
BUDGETS = ("paper", "short", "cpu", "tiny")
KEYS = {"name", "description", "dataset", "data", "pretrain", "finetune", "baselines",
        "unseen_trp", "ablation", "budgets"}  # fmt: skip
GAIN_GOAL = 0.26  # the paper's smallest gain over the transformer without pretraining
SCRATCH, PRETRAINED = "LWLM from scratch", "LWLM pretrained"
LOG_POINTS = 40  # log intervals of a pretraining (the held-out loss is read at each)
CONTROL = "training mean"  # the CSI-free row of every task (``tasks.baseline_rows``)


def protocol_path(name: str | Path) -> Path:
    """The YAML of LWLM protocol ``name`` (``loc/lwlm/<name>.yaml``) or the YAML path given."""
    p = Path(name)
    return p if p.suffix in (".yaml", ".yml") else PROTOCOL.parent / f"{name}.yaml"


def run_named(
    name: str | Path, budget: str, out: Path | None, cache: Path, device: str, resume: bool
) -> tuple[str, Path]:
    """``loc suite <lwlm protocol>``: run it at ``budget`` into ``out`` (default
    ``runs/suite/<name>_<budget>``); returns (its page section, the table's path)."""
    p = load(budget, protocol_path(name))
    out = out or Path("runs/suite") / f"{p['name']}_{budget}"
    res = run(p, out, cache, device=device, resume=resume)
    return "\n".join(page(res)), out / f"{p['name']}.md"


def budgets(path: Path = PROTOCOL) -> list[str]:
    """The budgets the protocol defines."""
    return list((yaml.safe_load(Path(path).read_text()) or {}).get("budgets") or {})


def load(budget: str, path: Path = PROTOCOL) -> dict:
    """The protocol with ``budget``'s overrides merged in; ConfigError naming a bad key."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    bad = set(raw) - KEYS
    if bad:
        raise ConfigError(f"{Path(path).name}: unknown key(s) {', '.join(sorted(bad))}")
    budgets = raw.get("budgets") or {}
    if budget not in budgets:
        raise ConfigError(f"unknown budget {budget!r} for lwlm ({' | '.join(budgets)})")
    over = budgets[budget] or {}
    bad = set(over) - (KEYS - {"name", "budgets"})
    if bad:
        raise ConfigError(f"budgets.{budget}: unknown key(s) {', '.join(sorted(bad))}")
    p = deep_merge({k: v for k, v in raw.items() if k != "budgets"}, over)
    p["budget"] = budget
    p["path"] = str(Path(path).resolve())  # scene / pool files resolve beside it
    bad = [t for t in p["finetune"]["tasks"] if t not in TASKS]
    if bad:
        raise ConfigError(f"finetune.tasks: unknown task(s) {bad} ({' | '.join(TASKS)})")
    PretrainConfig(**p["pretrain"])  # validates
    return p


def _scene(p: dict) -> DatasetSpec:
    d = p["dataset"]
    scene = Path(d["scene"])
    for base in (Path.cwd(), REPO_ROOT, PROTOCOL.parent.parent / "experiments"):
        if (base / scene).is_file():
            scene = (base / scene).resolve()
            break
    else:
        raise ConfigError(f"lwlm: scene file {d['scene']!r} not found")
    return DatasetSpec("lwlm", scene, d.get("ue_count"), dict(d.get("scene_overrides") or {}))


def datasets(p: dict, cache: Path, device: str) -> tuple[Path, list[Path], dict]:
    """(the store fine-tuned and tested on, the stores pretrained on besides it, what they
    are), rendered into ``cache`` once. A scene: one store, pretrained on itself. A pool
    (``dataset.pool``): the target environment ``data.target`` (default the pool's first
    unseen one), pretrained on the seen environments only."""
    d = p["dataset"]
    if "pool" not in d:
        return dataset_store(_scene(p), cache, device), [], {}
    from loc.suite.envs import pool_datasets

    specs = pool_datasets("envs", d, Path(p.get("path", PROTOCOL)))
    split = {s.environment: s.split for s in specs.values()}
    seen = [e for e, sp in split.items() if sp != "unseen"]
    unseen = [e for e, sp in split.items() if sp == "unseen"]
    target = p["data"].get("target") or (unseen[0] if unseen else None)
    if target not in unseen:
        raise ConfigError(
            f"lwlm: data.target {target!r} is not an unseen environment of the pool "
            f"({', '.join(unseen) or 'none'})"
        )
    if not seen:
        raise ConfigError("lwlm: the pool has no seen environment to pretrain on")
    paths = {s.environment: dataset_store(s, cache, device) for s in specs.values()}
    info = {"pool": str(paths[target].parent), "target": target, "pretrain": seen,
            "unseen": unseen}  # fmt: skip
    seen_target = p["data"].get("seen_target")
    if seen_target is not None and seen_target not in seen:
        raise ConfigError(
            f"lwlm: data.seen_target {seen_target!r} is not a seen environment of the pool "
            f"({', '.join(seen)})"
        )
    return paths[target], [paths[e] for e in seen], info


def _store(path: Path, p: dict, trps=None) -> CSIStore:
    st = CSIStore(path, p["data"]["group"], Selection(trps=trps), CSITransform())
    st.set_noise(parse_noise(p["data"]["noise"], p["data"]["noise_seed"]))
    return st


def groups_of(store: CSIStore, trps) -> np.ndarray:
    """The link groups (TRP-major, ``loc.lwlm.links``) of the store's TRPs at positions ``trps``
    of its selection."""
    n_u = len(store.selection.ue_ants)
    return np.flatnonzero(np.isin(np.arange(len(store.selection.trps) * n_u) // n_u, trps))


def split_samples(st: CSIStore, data: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """(test samples (sorted), the pretraining / labelled pool in its seeded order (labelled
    sets are its heads), the split's description) of ``data``.

    ``split: blocks`` (default; LWLM's claim is generalisation, benchmark-fairness rule 6):
    the test samples lie in whole held-out squares of ``block_m`` m, and no pool sample lies
    within ``gap_m`` of one (checked). ``split: random``: the tail of the seeded sample order.
    Samples of one UE position (traffic snapshots) never straddle the two."""
    seed, n_test = data["split_seed"], int(data["n_test"])
    kind = data.get("split", "blocks")
    if kind == "random":
        order = ordered_samples(st.valid, seed)
        if n_test >= len(order):
            raise ConfigError(f"lwlm: {len(order)} usable samples, n_test {n_test}")
        return np.sort(order[-n_test:]), order[:-n_test], {"kind": "random"}
    if kind != "blocks":
        raise ConfigError(f"lwlm: unknown data.split {kind!r} (blocks | random)")
    block_m, gap_m = float(data["block_m"]), float(data["gap_m"])
    xy = st.xyz[:, :2]
    held = choose_test_blocks([(xy[st.valid], n_test)], block_m, seed)
    order = blocks_order(st.valid, xy, ue_ids(st), held, block_m, gap_m, seed)
    n_pool = int((~in_blocks(xy[order], held, block_m)).sum())
    test, pool = np.sort(order[n_pool:][:n_test]), order[:n_pool]
    d = check_disjoint(xy[test], xy[pool], gap_m, "lwlm blocks split")
    info = {"kind": "blocks", "block_m": block_m, "gap_m": gap_m, "held_blocks": len(held),
            "min_distance_m": round(d, 3)}  # fmt: skip
    return test, pool, info


def _rows(name: str, err: np.ndarray, **extra) -> dict:
    return {"name": name, **err_summary(err), **extra}


def _task_table(task, st, labelled, test_idx, p, enc_dir, hp, device, groups=None, test_groups=None,
                sizes=None) -> dict:  # fmt: skip
    """{n: [rows]}: pretrained, scratch and the baselines of ``task`` at each label budget."""
    ft = p["finetune"]
    test = TaskData(st, test_idx, task, groups=test_groups if test_groups is not None else groups)
    out = {}
    for n in sizes or ft["labels"]:
        train = TaskData(st, labelled[:n], task, groups=groups)
        rows = []
        for name, enc in ((PRETRAINED, enc_dir), (SCRATCH, hp)):
            cfg = FinetuneConfig(
                task=task, steps=ft["steps"], batch_size=ft["batch_size"], lr=ft["lr"],
                freeze=bool(ft.get("freeze", False)), seed=1, device=device,
            )  # fmt: skip
            fitted, info = finetune(cfg, train, enc)
            e = errors(task, fitted.predict(test), test.y.cpu().numpy())
            rows.append(_rows(name, e, fit_seconds=info["seconds"], n_rows=len(train)))
        for name, e in baseline_rows(task, train, test).items():
            rows.append(_rows(name, e))
        out[n] = rows
        log.info("lwlm %s, %d labels: %s", task, n, _brief(rows))
    return out


def _all_tasks(st, labelled, test_idx, p, enc_dir, hp, device, sizes=None) -> dict:
    """{task: {str(n): rows}}: ``_task_table`` of every fine-tuning task (the single-TRP task
    on ``data.single_trp``'s links)."""
    single = groups_of(st, [p["data"]["single_trp"]])
    return {
        task: {str(n): rows for n, rows in _task_table(
            task, st, labelled, test_idx, p, enc_dir, hp, device,
            groups=single if task == "single" else None, sizes=sizes).items()}
        for task in p["finetune"]["tasks"]
    }  # fmt: skip


def _seen_column(seen, p, enc, hp, device) -> dict:
    """Every task fine-tuned (pretrained and scratch, beside the model-free rows) and tested on
    a city the encoder pretrained on, at the label budgets its samples outside the test
    blocks allow."""
    name, st, test_idx, pool, split = seen
    sizes = [n for n in p["finetune"]["labels"] if n <= len(pool)]
    return {"target": name, "n_test": len(test_idx), "n_labelled": len(pool), "split": split,
            "tasks": _all_tasks(st, pool, test_idx, p, enc, hp, device, sizes)}  # fmt: skip


def hold_out(pre_data: list, data: dict, skip: int | None) -> tuple[list, list]:
    """(pretraining data, held-out data), each [(store, sample indices)]: ``data.n_held_out``
    samples of every pretraining store but ``skip`` (the seen city, whose test blocks are out
    already) in held-out blocks of it (``split_samples``, its block size and gap), never
    pretrained on. Their loss, logged through pretraining, shows its plateau."""
    n = int(data.get("n_held_out") or 0)
    if not n:
        return pre_data, []
    kept, held = [], []
    for i, (st, idx) in enumerate(pre_data):
        if i == skip:
            kept.append((st, idx))
            continue
        val, rest, _ = split_samples(st, {**data, "n_test": n})
        kept.append((st, np.sort(rest)))
        held.append((st, val))
    return kept, held


def _brief(rows: list[dict]) -> str:
    return "; ".join(f"{r['name']} {r['mean']:.3g}" for r in rows)


def _project_baselines(st_path, p, labelled, test_idx, device, run_dir) -> dict:
    """{task: {n: [rows]}}: the project's models (``baselines``) on the same labelled samples:
    single-TRP CNN / Mateformer on the task's TRP, multi-TRP VIn-Loc / ResNet and CIR/CSI
    multilateration on every TRP."""
    from loc.evaluate import evaluate
    from loc.fit.supervised import TrainConfig, TrainSet, train
    from loc.models import default_domain
    from loc.models.multilateration import estimated_multilateration

    b, data = p["baselines"], p["data"]
    out: dict[str, dict] = {}
    for task, trps in (("single", (data["single_trp"],)), ("multi", None)):
        names = b.get(task) or []
        if task not in p["finetune"]["tasks"] or not names:
            continue
        learned = [m for m in names if m != "multilat"]
        out[task] = {}
        stores = {}  # one store per model (its input domain), reused at every label budget
        for m in names:
            domain = default_domain([m])  # complex-input models: the CSI as stored
            stores[m] = CSIStore(st_path, data["group"], Selection(trps=trps),
                                 CSITransform(domain=domain))  # fmt: skip
            stores[m].set_noise(parse_noise(data["noise"], data["noise_seed"]))
        for n in p["finetune"]["labels"]:
            rows = []
            for m in names:
                st = stores[m]
                tr = labelled[:n][st.has_path[labelled[:n]].any(1)]
                te = test_idx[st.has_path[test_idx].any(1)]
                if m == "multilat":
                    res, _ = estimated_multilateration(st, te, reference=tr)
                    xy, _ = res.xy_or(st.xy[tr].mean(axis=0))  # no ToA at all: the centroid
                    e = np.linalg.norm(xy - st.xy[te], axis=1)
                    rows.append(_rows("ToA multilateration (first peak)", e))
                    continue
                st.set_transform(CSITransform(domain=st.transform.domain))  # this n's scale
                st.fit_transform(tr)
                cfg = TrainConfig(
                    model=m, model_kwargs=dict(b.get("model_kwargs", {}).get(m) or {}),
                    steps=b["steps"], batch_size=min(b["batch_size"], len(tr)),
                    n_neighbours=min(64, len(tr) - 1), device=device,
                    log_every=max(1, b["steps"] // 5), ckpt_every=b["steps"],
                )  # fmt: skip
                t0 = time.perf_counter()
                res = train(cfg, [TrainSet(st, tr)], run_dir / f"{m}_{n}", resume=True)
                dev = next(res.model.parameters()).device
                _, e = evaluate(res.model, st, te, tr, k=cfg.n_neighbours, device=dev)
                rows.append(_rows(m, e, fit_seconds=time.perf_counter() - t0))
            out[task][n] = rows
            log.info("lwlm %s baselines, %d labels: %s (%s)", task, n, _brief(rows), learned)
    return out


def run(p: dict, out_dir: Path, cache: Path, device: str = "auto", resume: bool = True) -> dict:
    """Run the protocol ``p`` (``load``); returns the result JSON (also written), stamped
    (``loc.suite.stamp``)."""
    from loc.suite.stamp import code_files, make_stamp, protocol_hash

    t_start = time.perf_counter()
    files, proto_hash = code_files(), protocol_hash(p)
    out_dir.mkdir(parents=True, exist_ok=True)
    path, others, envs = datasets(p, cache, device)
    st = _store(path, p)
    data = p["data"]
    test_idx, pool, split = split_samples(st, data)
    n_test = len(test_idx)
    biggest = max(p["finetune"]["labels"])
    if biggest > len(pool):
        raise ConfigError(f"lwlm: {len(pool)} samples outside the test set < {biggest} labels")
    labelled = pool  # heads of the order are the labelled sets
    # pretraining data: the store's own samples outside the test set, or (a pool) every usable
    # sample of the seen environments and none of the target's
    pre_stores = [_store(q, p) for q in others]
    pre_data = [(o, np.flatnonzero(o.valid)) for o in pre_stores] or [(st, np.sort(pool))]
    seen = None  # the seen column: (name, store, test samples, labelled pool, split)
    if data.get("seen_target"):
        if not envs:
            raise ConfigError("lwlm: data.seen_target needs an environment pool (dataset.pool)")
        i = envs["pretrain"].index(data["seen_target"])
        s_test, s_pool, s_split = split_samples(
            pre_stores[i], {**data, "n_test": data.get("n_test_seen", data["n_test"])}
        )
        pre_data[i] = (pre_stores[i], np.sort(s_pool))  # its test blocks never pretrained on
        seen = (data["seen_target"], pre_stores[i], s_test, s_pool, s_split)
    if data.get("n_held_out") and not envs:
        raise ConfigError("lwlm: data.n_held_out needs an environment pool (dataset.pool)")
    pre_data, held_out = hold_out(pre_data, data, i if seen else None)
    res: dict = {
        "protocol": p["name"], "budget": p["budget"], "description": p["description"],
        "store": str(path), "noise": st.noise_label(), "n_test": int(n_test), "split": split,
        "n_pretrain_samples": int(sum(len(i) for _, i in pre_data)),
        "n_held_out_samples": int(sum(len(i) for _, i in held_out)), "device": device,
        "units": UNITS, **({"environments": envs} if envs else {}),
    }  # fmt: skip

    def pre(name, store, weights=None, steps=None) -> tuple[Path, dict, dict]:
        """Pretrain into ``out_dir/name`` on ``store``'s samples outside the test set, or (None)
        on ``pre_data``."""
        kw = dict(p["pretrain"])
        if weights is not None:
            kw["weights"] = weights
        if steps is not None:
            kw["steps"] = steps
        cfg = PretrainConfig(**kw, device=device, log_every=max(1, kw["steps"] // LOG_POINTS),
                             ckpt_every=max(1, kw["steps"] // 4))  # fmt: skip
        data_, val = (pre_data, held_out) if store is None else ([(store, np.sort(pool))], [])
        r = pretrain(cfg, data_, out_dir / name, resume=resume, held_out=val)
        hist = r.history
        info = {"seconds": r.seconds, "steps": cfg.steps, "batch_size": cfg.batch_size,
                "weights": cfg.weights,
                "first": hist[0] if hist else None, "last": hist[-1] if hist else None,
                "history": [{k: h[k] for k in ("step", "loss", "picl", "held_out") if k in h}
                            for h in hist]}  # fmt: skip
        return out_dir / name, r.model.hparams, info

    enc, hp, info = pre("pretrain", None)
    res["pretrain"] = info
    res["tasks"] = _all_tasks(st, labelled, test_idx, p, enc, hp, device)
    project = _project_baselines(path, p, labelled, test_idx, device, out_dir / "runs")
    for task, tbl in project.items():
        for n, rows in tbl.items():
            res["tasks"][task][str(n)] += rows
    if seen:
        res["seen"] = _seen_column(seen, p, enc, hp, device)
    # unseen TRP: pretrain + fine-tune on the other TRPs, test on the held-out one
    u = p.get("unseen_trp") if not envs else None  # a pool's target: every TRP is unseen
    if u:
        st_u = _store(path, p, trps=tuple(u["pretrain_trps"]))
        enc_u, hp_u, info_u = pre("pretrain_unseen", st_u, steps=u.get("steps"))
        res["unseen_trp"] = {"pretrain": info_u, **{k: u[k] for k in ("pretrain_trps", "test_trp")},
                             "labels": u["labels"], "tasks": {}}  # fmt: skip
        for task in u.get("tasks", ["toa", "single"]):
            tbl = _task_table(task, st, labelled, test_idx, p, enc_u, hp_u, device,
                              groups=groups_of(st, u["pretrain_trps"]),
                              test_groups=groups_of(st, [u["test_trp"]]),
                              sizes=[u["labels"]])  # fmt: skip
            res["unseen_trp"]["tasks"][task] = tbl[u["labels"]]
    a = p.get("ablation")
    if a:
        res["ablation"] = {"steps": a["steps"], "labels": a["labels"], "rows": {}}
        base_w = PretrainConfig(**p["pretrain"]).weights
        variants = {"all three": base_w}
        single = groups_of(st, [data["single_trp"]])
        for o in OBJECTIVES:
            variants[f"without {o}"] = {**base_w, o: 0.0}
        for task in a.get("tasks", ["single"]):
            rows = []
            for label, w in variants.items():
                tag = f"ablation_{label.replace(' ', '_')}"
                e_dir, e_hp, e_info = pre(tag, None, w, a["steps"])
                tbl = _task_table(task, st, labelled, test_idx, p, e_dir, e_hp, device,
                                  groups=single if task == "single" else None,
                                  sizes=[a["labels"]])  # fmt: skip
                r0 = next(r for r in tbl[a["labels"]] if r["name"] == PRETRAINED)
                rows.append({**r0, "name": label, "pretrain_seconds": e_info["seconds"]})
            scratch = next(r for r in tbl[a["labels"]] if r["name"] == SCRATCH)
            res["ablation"]["rows"][task] = [*rows, scratch]
    res["wall_seconds"] = time.perf_counter() - t_start
    res["stamp"] = make_stamp(proto_hash, files, device, res["wall_seconds"])
    res["finding"] = dataclasses.asdict(finding(res))
    res["complete"] = True
    name = p["name"]
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=1, default=float))
    plot(res, out_dir / f"{name}.png")
    (out_dir / f"{name}.md").write_text("\n".join(page(res, f"{name}.png")) + "\n")
    return res


# ----------------------------------------------------------------------------- report


def _mean(rows: list[dict], name: str) -> float:
    return next((r["mean"] for r in rows if r["name"] == name), float("nan"))


def gains(res: dict) -> dict[str, dict[str, float]]:
    """{task: {n: 1 - pretrained / scratch mean error}}."""
    return {
        t: {n: 1 - _mean(rows, PRETRAINED) / _mean(rows, SCRATCH) for n, rows in tbl.items()}
        for t, tbl in res["tasks"].items()
    }


def check(res: dict) -> Verdict:
    """The paper's finding: pretraining beats the same transformer from scratch by >= 26 % at
    every label budget <= 2,000, on every task."""
    g = gains(res)
    parts, ok = [], True
    for t, by_n in g.items():
        for n, v in by_n.items():
            if int(n) <= 2000:
                ok &= bool(v >= GAIN_GOAL)
        parts.append(f"{t}: " + ", ".join(f"{n} labels {100 * v:+.0f} %" for n, v in by_n.items()))
    text = (
        "gain of pretraining over scratch (1 - pretrained / scratch mean error): "
        + "; ".join(parts)
        + f"; goal >= {100 * GAIN_GOAL:.0f} % at every budget <= 2,000"
    )
    return Verdict(ok if g else None, text)


def controls(res: dict) -> dict[str, bool | None]:
    """{control: the check passes with it in the pretrained encoder's place}: the training mean
    (no CSI). A control that passes says the scratch model, not pretraining, decides the gain."""
    sub = {
        t: {n: [r for r in rows if r["name"] != PRETRAINED]
            + [{**r, "name": PRETRAINED} for r in rows if r["name"] == CONTROL]
            for n, rows in tbl.items()}
        for t, tbl in res["tasks"].items()
    }  # fmt: skip
    return {CONTROL: check({**res, "tasks": sub}).holds}


def finding(res: dict) -> Finding:
    """The check and its control: holds only if the check passes and the control fails."""
    v, c = check(res), controls(res)
    said = {True: "passes", False: "fails", None: "–"}
    text = v.text + "; control " + ", ".join(f"{k}: {said[ok]}" for k, ok in c.items())
    return Finding(None if v.holds is None else v.holds and not any(c.values()), text, v, c)


def _shown(name: str) -> str:
    """A row's name on the page; a model handed a prior says so (rules §1.2): Mateformer gets
    a coarse location x′ (l = 1 m, ``loc.evaluate.evaluate``'s default) and the labelled
    samples nearest it (``_project_baselines``), which no LWLM row has."""
    if name == "mateformer":
        return "mateformer (given x′ with l = 1 m and up to 64 labelled neighbours)"
    return name


def _split_text(split: dict) -> str:
    if split["kind"] == "random":
        return "a random split (interpolation inside the survey)"
    return (
        f"in {split['held_blocks']} held-out {split['block_m']:g} m squares, no pretraining or "
        f"labelled sample within {split['gap_m']:g} m (nearest {split['min_distance_m']:g} m)"
    )


def page(res: dict, fig: str | None = None) -> list[str]:
    """Markdown section: setup, per task error vs labels (mean / median / p90), the unseen
    TRP, the ablation, and the finding."""
    pt = res["pretrain"]
    lines = [
        f"LWLM at budget `{res['budget']}`, {res['noise']} on every read. Pretraining: "
        f"{res['n_pretrain_samples']} unlabelled samples (every usable link), {pt['steps']} "
        f"steps in {pt['seconds'] / 60:.1f} min, weights {pt['weights']}; loss "
        + (f"{pt['first']['loss']:.3g} -> {pt['last']['loss']:.3g}" if pt["first"] else "–")
        + f". Test: {res['n_test']} samples never pretrained or trained on, "
        + _split_text(res.get("split", {"kind": "random"}))
        + ".",
        "",
    ]
    env = res.get("environments")
    if env:
        lines[-1:-1] = [
            f"Environments (pool `{Path(env['pool']).name}`): pretrained on the "
            f"{len(env['pretrain'])} seen ones ({', '.join(env['pretrain'])}), without labels; "
            f"fine-tuned and tested on the unseen `{env['target']}` (its city and its TRP "
            "layout were never pretrained on; no sample of it was).",
        ]
    for task, tbl in res["tasks"].items():
        unit = res["units"][task]
        sizes = list(tbl)
        lines += [f"**{task}** (error in {unit}: mean / median / p90)", "",
                  "| model | " + " | ".join(f"{n} labels" for n in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]  # fmt: skip
        names = list(dict.fromkeys(r["name"] for n in sizes for r in tbl[n]))
        for name in names:
            cells = []
            for n in sizes:
                r = next((r for r in tbl[n] if r["name"] == name), None)
                cells.append("–" if r is None else
                             f"{r['mean']:.3g} / {r['median']:.3g} / {r['p90']:.3g}")  # fmt: skip
            lines.append(f"| {_shown(name)} | " + " | ".join(cells) + " |")
        lines.append("")
    u = res.get("unseen_trp")
    if u:
        names = list(dict.fromkeys(r["name"] for rows in u["tasks"].values() for r in rows))
        lines += [
            f"**Unseen TRP**: pretrained and fine-tuned ({u['labels']} labels) on TRPs "
            f"{u['pretrain_trps']}, tested on TRP {u['test_trp']} (mean error).",
            "",
            "| task | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for task, rows in u["tasks"].items():
            cells = [f"{_mean(rows, n):.3g}" if any(r["name"] == n for r in rows) else "–"
                     for n in names]  # fmt: skip
            lines.append(f"| {task} ({res['units'][task]}) | " + " | ".join(cells) + " |")
        lines.append("")
    a = res.get("ablation")
    if a:
        for task, rows in a["rows"].items():
            lines += [f"**Ablation** ({task}, {a['labels']} labels, pretraining {a['steps']} "
                      f"steps; mean / median {res['units'][task]})", "",
                      "| objectives | error |", "|---|---|",
                      *(f"| {r['name']} | {r['mean']:.3g} / {r['median']:.3g} |" for r in rows),
                      ""]  # fmt: skip
    lines += _seen_table(res)
    lines += _pretrain_table(res)
    if fig:
        lines += [f"![lwlm]({fig})", ""]
    v = finding(res)
    status = {True: "holds", False: "does not hold", None: "not measured"}[v.holds]
    lines.append(f"**The finding {status} on our data.** {v.text}")
    return lines


def _seen_table(res: dict) -> list[str]:
    """Seen vs unseen city: one pretrained encoder (and scratch) fine-tuned on the same number
    of labels of each; mean errors, the gain of pretraining on each city and the training
    mean (the cities differ in size, so their raw errors are not comparable; the gains are)."""
    s = res.get("seen")
    if not s:
        return []
    env = res["environments"]
    lines = [
        f"**Seen vs unseen city** (mean error; gain = 1 - pretrained / scratch): the seen city "
        f"`{s['target']}` was pretrained on except its {s['n_test']} test samples, "
        + _split_text(s["split"])
        + f"; its {s['n_labelled']} other samples give the labels. The unseen city "
        f"`{env['target']}` as above.",
        "",
        "| task | labels | pretrained: seen / unseen | scratch: seen / unseen | gain: seen / "
        "unseen | training mean: seen / unseen |",
        "|---|---|---|---|---|---|",
    ]
    for task, tbl in s["tasks"].items():
        for n, rows in tbl.items():
            other = res["tasks"][task].get(n)
            if other is None:
                continue
            (ps, ss, ms), (pu, su, mu) = (
                [_mean(r, name) for name in (PRETRAINED, SCRATCH, CONTROL)] for r in (rows, other)
            )
            lines.append(
                f"| {task} ({res['units'][task]}) | {n} | {ps:.3g} / {pu:.3g} | {ss:.3g} / "
                f"{su:.3g} | {100 * (1 - ps / ss):+.0f} % / {100 * (1 - pu / su):+.0f} % | "
                f"{ms:.3g} / {mu:.3g} |"
            )
    return [*lines, ""]


def _pretrain_table(res: dict, rows: int = 8) -> list[str]:
    """The pretraining log at ``rows`` evenly spaced log points: training loss, held-out loss
    and held-out PICL (its chance level log(2B - 1)), and the held-out loss's fall over each
    half of the schedule: the plateau, or its absence, as the log shows it."""
    hist = [h for h in res["pretrain"].get("history", []) if "held_out" in h]
    if len(hist) < 2:
        return []
    b = res["pretrain"].get("batch_size")
    pick = sorted({round(i * (len(hist) - 1) / (rows - 1)) for i in range(rows)})
    first, mid, last = hist[0]["held_out"], hist[(len(hist) - 1) // 2]["held_out"], hist[-1]
    best = min(hist, key=lambda h: h["held_out"]["loss"])
    fall = lambda a, z: 100 * (a["loss"] - z["loss"]) / a["loss"]  # noqa: E731
    chance = f" (chance {np.log(2 * b - 1):.2f})" if b else ""
    return [
        f"**Pretraining log** (held out: {res['n_held_out_samples']} samples in held-out blocks "
        "of the seen cities but the seen column's, never pretrained on). The held-out loss fell "
        f"{fall(first, mid):.1f} % over the first half of the schedule and "
        f"{fall(mid, last['held_out']):.1f} % over the second; its lowest is at step "
        f"{best['step']} of {last['step']}.",
        "",
        f"| step | loss | held-out loss | held-out PICL{chance} |",
        "|---|---|---|---|",
        *(f"| {hist[i]['step']} | {hist[i]['loss']:.3g} | {hist[i]['held_out']['loss']:.3g} | "
          f"{hist[i]['held_out'].get('picl', float('nan')):.3g} |" for i in pick),
        "",
    ]  # fmt: skip


def plot(res: dict, path: Path) -> Path:
    """Error vs labels per task: pretrained, scratch, every baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(res["tasks"])
    hist = [h for h in res["pretrain"].get("history", []) if "held_out" in h]
    n = len(tasks) + bool(hist)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    if hist:
        ax = axes[0][-1]
        steps = [h["step"] for h in hist]
        ax.plot(steps, [h["loss"] for h in hist], "-", label="training loss")
        ax.plot(steps, [h["held_out"]["loss"] for h in hist], "-o", ms=3, label="held-out loss")
        ax.set(xlabel="pretraining step", ylabel="weighted loss", title="pretraining")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax, task in zip(axes[0][: len(tasks)], tasks, strict=True):
        tbl = res["tasks"][task]
        sizes = [int(n) for n in tbl]
        names = list(dict.fromkeys(r["name"] for n in tbl for r in tbl[n]))
        for name in names:
            ys = [_mean(tbl[str(n)], name) for n in sizes]
            style = "-o" if name in (PRETRAINED, SCRATCH) else "--."
            ax.plot(sizes, ys, style, label=name, lw=2 if name == PRETRAINED else 1)
        ax.set(xscale="log", yscale="log", xlabel="labelled samples",
               ylabel=f"mean error ({res['units'][task]})", title=task)  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
