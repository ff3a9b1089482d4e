"""The training recipe each model of a protocol gets, resolved as ``loc suite`` runs it, and the
differences between compared models (benchmark-fairness rule 3: same optimiser, learning rate,
weight decay, schedule, steps, batch, early stopping, training subsets and input information).

Compared models are the trained rows of one experiment with the same variant tag
(``name@tag``: ``vinloc@variable`` is compared with ``resnet_fp@variable``, ``vinloc`` with
``resnet_fp``); model-based rows (multilateration, kNN fingerprinting) train nothing. A protocol
states, in ``declared_differences``, each recipe key on which its compared models may differ and
why; ``undeclared_differences`` lists the rest (a test fails on any).
"""

from __future__ import annotations

import functools
import inspect
import types

import torch
from torch import nn

from loc.suite.protocol import Experiment, Protocol

RECIPE_KEYS = (
    "optimizer",  # optimiser class and its fixed settings (betas)
    "lr",  # peak learning rate
    "weight_decay",
    "schedule",  # LR schedule over the run
    "steps",  # optimiser steps of the (pre)training
    "batch_size",
    "early_stopping",  # validation hold-out and patience, or none
    "train_subset",  # TRP subsets per training example (VIn-Loc's variable case), or none
    "input",  # what the model reads: CSI transform, channel domain, hand-made features
    "prior",  # location information handed to the model at test time
)


def train_config(
    proto: Protocol, name: str, model: str, steps: int, device, early_stopping: bool = True
):
    """The ``loc.fit.supervised.TrainConfig`` of suite row ``name`` (network ``model``, the
    row's ``model_kwargs``) from ``proto``: its data section's recipe, LR, neighbours, noise
    redraw, coarse error and (``early_stopping``) validation hold-out; one place, so the pooled
    and the per-site rows cannot drift apart."""
    from loc.fit.supervised import TrainConfig
    from loc.suite.protocol import log_interval

    data = proto.data
    return TrainConfig(
        model=model,
        model_kwargs=proto.model_kwargs.get(name, {}),
        steps=steps,
        batch_size=proto.batch_size,
        recipe=data["recipe"],
        lr=data["lr"],
        n_neighbours=data["k"],
        seed=proto.seed,
        device=str(device),
        log_every=log_interval(steps),
        ckpt_every=min(5000, steps),
        noise_redraw=data["noise_redraw"],
        val_fraction=data["val_fraction"] if early_stopping else 0.0,
        patience=data["patience"],
        coarse_error=data["coarse_error"],
    )


def _tag(name: str) -> str:
    return name.split("@", 1)[1] if "@" in name else ""


@functools.lru_cache(maxsize=64)
def _model_optimizer(base: str, lr: float) -> tuple[str, float]:
    """(description, weight decay) of the optimiser the shared loop builds for ``base``: its own
    ``make_optimizer`` (e.g. VIn-Loc's AdamW) or Adam (``loc.fit.supervised.train``)."""
    from loc.models import MODELS

    cls = MODELS[base][0]
    if hasattr(cls, "make_optimizer"):  # the model's method, on one stand-in parameter
        holder = types.SimpleNamespace(parameters=lambda: [nn.Parameter(torch.zeros(1))])
        opt = cls.make_optimizer(holder, lr)
    else:
        opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    d = opt.defaults
    return f"{type(opt).__name__} betas {tuple(d['betas'])}", float(d.get("weight_decay", 0.0))


def model_recipe(proto: Protocol, exp: Experiment, name: str) -> dict | None:
    """The recipe of suite model ``name`` in experiment ``exp`` (one value per
    ``RECIPE_KEYS``), as ``loc.suite.run.run_suite`` and its runners train it; None for a
    model-based row (nothing trained)."""
    from loc.fit.da import DAConfig
    from loc.fit.meta import MetaConfig
    from loc.models import MODELS, default_lr
    from loc.suite.runners import base_model, family

    fam, base = family(name), base_model(name)
    if fam == "site":  # loc.suite.site: the shared loop, on each test column's own survey
        fam, base = "train", "resnet_fp"
    if fam == "model_based":
        return None
    data, kw = proto.data, dict(proto.model_kwargs.get(name, {}))
    cls = MODELS[base][0] if base in MODELS else None
    tap_norm = kw.get("tap_norm", "global") if getattr(cls, "kind", "") == "trp" else None
    out = {
        "batch_size": proto.batch_size,
        "train_subset": kw.get("train_subset"),
        "input": (
            f"{data['variable']} {data['domain']}, selection {data['selection']}, model domain "
            f"{kw.get('domain')}, tap features {tap_norm}"
            + (", first arrival (delay, level) per TRP" if tap_norm == "aligned" else "")
        ),
        "prior": (
            f"coarse location (l = {data['coarse_error']:g} m) + {data['k']} labelled neighbours"
            if getattr(cls, "kind", "") == "set"
            else "none"
        ),
    }
    if fam == "train":
        lr = data["lr"] or default_lr(base, data["recipe"])
        opt, wd = _model_optimizer(base, lr)
        vf, pat = data["val_fraction"], data["patience"]
        out.update(
            optimizer=opt,
            lr=lr,
            weight_decay=wd,
            schedule="step" if data["recipe"] == "paper" else "cosine",
            steps=proto.steps_for(exp),
            early_stopping=f"hold-out {vf:g}, patience {pat}" if vf > 0 else "none",
        )
    elif fam == "da":  # loc.suite.runners.run_da -> loc.fit.da.train_da (Adam)
        from loc.models.da import DCNN  # (DANN passes norm on to DCNN)

        own = inspect.signature(cls).parameters
        own = own if "norm" in own else inspect.signature(DCNN).parameters
        norm = kw.get("norm", own["norm"].default)
        out["input"] += f", angle-delay profile normalisation {norm}"
        out.update(
            optimizer="Adam betas (0.9, 0.999)",
            lr=data["lr"] or DAConfig.lr,
            weight_decay=DAConfig.weight_decay,
            schedule="constant" if proto.budget == "paper" else "cosine",
            steps=proto.steps,
            early_stopping="none",
        )
    else:  # meta: loc.suite.runners.run_meta (then the same data.adapt for every model)
        meta = {**dataclasses_dict(MetaConfig), **kw.get("meta", {})}
        paradigm = {"metaloc_tl": "pooled supervised", "metaloc_ri": "none"}.get(base, base)
        out.update(
            optimizer=f"pretraining {paradigm}",
            lr=None
            if base == "metaloc_ri"
            else (data["lr"] or default_lr("metaloc") if base == "metaloc_tl" else meta["beta"]),
            weight_decay=0.0,
            schedule="cosine" if base == "metaloc_tl" else "constant",
            steps=0 if base == "metaloc_ri" else proto.steps,
            early_stopping="none",
        )
    return out


def dataclasses_dict(cls) -> dict:
    """Field defaults of a dataclass type."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(cls)}


def recipe_differences(proto: Protocol) -> list[tuple[str, str, str, dict]]:
    """(experiment, variant tag, recipe key, {model: value}) for every key on which the compared
    models of an experiment differ."""
    out = []
    for ename, exp in proto.experiments.items():
        groups: dict[str, dict[str, dict]] = {}
        for m in proto.models:
            r = model_recipe(proto, exp, m)
            if r is not None:
                groups.setdefault(_tag(m), {})[m] = r
        for tag, rows in groups.items():
            for key in RECIPE_KEYS:
                vals = {m: r[key] for m, r in rows.items()}
                if len({repr(v) for v in vals.values()}) > 1:
                    out.append((ename, tag, key, vals))
    return out


def undeclared_differences(proto: Protocol) -> list[tuple[str, str, str, dict]]:
    """``recipe_differences`` less the keys the protocol declares."""
    return [d for d in recipe_differences(proto) if d[2] not in proto.declared_differences]
