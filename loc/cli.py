"""The ``loc`` command line: ``loc train`` and ``loc eval``.

Library errors (``loc.errors.LocError``) become one line on stderr and exit code 2.

    loc train paris.zarr --group dry --model mateformer --n-train 40000 --n-test 20000 \\
        --trps 0 --budget short --out runs/mateformer_40k
    loc eval runs/mateformer_40k                       # same store, split and test set
    loc eval runs/mateformer_40k --store other.zarr    # cross-scenario reuse (no weight update)
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import typer

from loc.errors import ConfigError, DataError, LocError

app = typer.Typer(
    name="loc",
    help="Train and evaluate localization models on simgen CSI datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _one_line_errors(fn):
    """Turn LocError into 'error: <message>' on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LocError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", force=True
    )


def _open_store(path, group, selection, transform, frame, variable="csi"):
    from loc.data import CSIStore

    return CSIStore(
        path, group, selection=selection, transform=transform, frame=frame, variable=variable
    )


def _summary(report: dict) -> str:
    o = report["overall"]
    st = report["store"]
    noise = st.get("noise_label", "noiseless")
    return (
        f"{report['model']} on {st['group']} ({noise}): n={o['n']} mean {o['mean']:.4f} m, "
        f"median {o['median']:.4f} m, p90 {o['p90']:.4f} m, p95 {o['p95']:.4f} m"
    )


NOISE_HELP = (
    "receiver noise drawn at read time, a comma list: awgn:<dB> | awgn:<lo>..<hi> | "
    "link_budget[:<dB>] | mult:<sigma>[:complex] (queries only) | clock:<ns> | phase | noiseless"
)


@app.command()
@_one_line_errors
def train(
    store: Path = typer.Argument(..., help="simgen Zarr store"),
    group: list[str] = typer.Option(
        ["dry"], "--group", "-g", help="condition group(s); several = multi-scenario training"
    ),
    model: str = typer.Option(
        "mateformer",
        help="mateformer | iclloc_gen | iclloc_disc | cnn | ad_cnn | mfcnet | vinloc | "
        "vinloc_nopos | resnet_fp | dcnn | metaloc (DANN/MDA/HDA, MAML and the model-based "
        "baselines run in `loc suite` protocols: semantic_da, metaloc, vinloc)",
    ),
    model_kwargs: str = typer.Option("{}", help="JSON model options, e.g. '{\"depth\": 4}'"),
    n_train: int = typer.Option(40_000, help="training samples per group (also the database)"),
    n_test: int = typer.Option(20_000, help="test samples per group"),
    test_start: int | None = typer.Option(
        None, help="test = perm[test_start:+n_test] (default: the last n_test)"
    ),
    split_seed: int = typer.Option(1, help="seed of the sample permutation"),
    budget: str = typer.Option("paper", help="paper (300k steps, batch 500) | short"),
    steps: int | None = typer.Option(None, help="override the budget's step count"),
    batch_size: int | None = typer.Option(None, help="override the budget's batch size"),
    recipe: str = typer.Option(
        "conditioned",
        help="conditioned (standardised / anchor-relative targets, warm-up + cosine, tuned LR) "
        "| paper (the spec exactly: raw metres, absolute labels, step schedule, spec LR)",
    ),
    lr: float | None = typer.Option(None, help="peak LR (default: the recipe's for the model)"),
    trps: str = typer.Option("all", help="TRP indices, e.g. '0' or '0,2' or 'all'"),
    ue_ants: str = typer.Option("all", help="UE antenna indices"),
    trp_ants: str = typer.Option("all", help="TRP antenna indices, e.g. '0:32'"),
    subcarriers: str = typer.Option("all", help="subcarrier indices, e.g. '0:32'"),
    scale: str = typer.Option(
        "auto", help="CSI scale: a number (paper: 1e4) or 'auto' (1/RMS of the training CSI)"
    ),
    domain: str = typer.Option(
        "auto",
        help="auto | freq | angle_delay | ad_power (input transform; auto: ad_power for "
        "models that take plain features under the conditioned recipe, else freq)",
    ),
    frame: str = typer.Option("absolute", help="absolute | trp (locations relative to TRP)"),
    variable: str = typer.Option(
        "csi", help="csi | cir (stored CIR taps; VIn-Loc then needs domain 'taps')"
    ),
    sampling: str = typer.Option("neighbour", help="neighbour | random sequences (set models)"),
    k: int = typer.Option(64, help="embedded samples per sequence"),
    seed: int = typer.Option(1, help="training seed"),
    device: str = typer.Option("auto", help="cpu | cuda | auto"),
    precision: str = typer.Option("auto", help="auto | bf16 | fp32"),
    fused: bool = typer.Option(True, "--fused/--eager", help="SDPA (fused) or eager attention"),
    out: Path = typer.Option(Path("runs/loc"), help="output directory (checkpoint, report)"),
    resume: bool = typer.Option(False, help="continue from OUT/checkpoint.pt"),
    init_from: Path | None = typer.Option(
        None, help="initialise from a checkpoint (transfer learning); see also --constant-lr"
    ),
    constant_lr: bool = typer.Option(False, help="no LR decay (transfer-learning fine-tuning)"),
    log_every: int = typer.Option(100, help="log every N steps"),
    ckpt_every: int = typer.Option(5000, help="checkpoint every N steps"),
    evaluate_after: bool = typer.Option(
        True, "--eval/--no-eval", help="evaluate on the first group's test split"
    ),
    noise: str = typer.Option("noiseless", help=NOISE_HELP + " (training, database, test)"),
    test_noise: str | None = typer.Option(
        None, help="noise of the test queries only (default: --noise)"
    ),
    noise_seed: int = typer.Option(0, help="seed of the noise draws"),
    noise_redraw: bool = typer.Option(
        False, help="draw new training noise every epoch (augmentation)"
    ),
    encoder: Path | None = typer.Option(
        None, help="lwlm_<task> models: a `loc pretrain` output (default: random init)"
    ),
    freeze: bool = typer.Option(False, help="lwlm_<task> models: keep the encoder frozen"),
    quiet: bool = typer.Option(False, help="only errors and the final summary"),
) -> None:
    """Train one model on one or more condition groups of a store (``lwlm_toa``,
    ``lwlm_aoa``, ``lwlm_single``, ``lwlm_multi``: an LWLM decoder on a pretrained encoder)."""
    from loc.data import CSITransform, Selection, parse_index_list, split_indices
    from loc.evaluate import baseline_reports, evaluate, write_report
    from loc.fit.supervised import BUDGETS, TrainConfig, TrainSet
    from loc.fit.supervised import train as run_train
    from loc.models import default_domain
    from loc.noise import parse_noise

    _setup_logging(quiet)
    if model.startswith("lwlm_"):
        from loc.lwlm.tasks import train_task

        selection = Selection(parse_index_list(trps), parse_index_list(ue_ants))
        st = _open_store(store, group[0], selection, CSITransform(), frame)
        sp = split_indices(st.valid, n_train, n_test, seed=split_seed, test_start=test_start)
        st.set_noise(parse_noise(noise, noise_seed))
        for line in train_task(
            st, sp, model.removeprefix("lwlm_"), encoder, out,
            steps=steps or 1000, batch_size=batch_size or 32, lr=lr or 5e-4,
            freeze=freeze, seed=seed, device=device,
        ):  # fmt: skip
            typer.echo(line)
        return
    if encoder is not None:
        raise ConfigError("--encoder is for the lwlm_<task> models")
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r} ({' | '.join(BUDGETS)})")
    try:
        scale_v = None if scale == "auto" else float(scale)
    except ValueError:
        raise ConfigError(f"--scale must be a number or 'auto', got {scale!r}") from None
    try:
        mkw = json.loads(model_kwargs)
        assert isinstance(mkw, dict)
    except (ValueError, AssertionError):
        raise ConfigError(f"--model-kwargs must be a JSON object, got {model_kwargs!r}") from None
    selection = Selection(
        parse_index_list(trps),
        parse_index_list(ue_ants),
        parse_index_list(trp_ants),
        parse_index_list(subcarriers),
    )
    if domain == "auto":
        domain = default_domain([model], recipe, variable)
    transform = CSITransform(scale=scale_v, domain=domain)  # type: ignore[arg-type]
    cfg = TrainConfig(
        model=model,
        model_kwargs=mkw,
        steps=steps or BUDGETS[budget]["steps"],
        batch_size=batch_size or BUDGETS[budget]["batch_size"],
        recipe=recipe,
        lr=lr,
        n_neighbours=k,
        sampling=sampling,
        seed=seed,
        device=device,
        precision=precision,
        fused_attention=fused,
        log_every=log_every,
        ckpt_every=ckpt_every,
        init_from=None if init_from is None else str(init_from),
        schedule="constant" if constant_lr else None,
        noise_redraw=noise_redraw,
    )
    train_noise = parse_noise(noise, noise_seed)
    query_noise = None if test_noise is None else parse_noise(test_noise, noise_seed)
    sets, splits = [], []
    for g in group:
        st = _open_store(store, g, selection, transform, frame, variable)
        sp = split_indices(st.valid, n_train, n_test, seed=split_seed, test_start=test_start)
        st.set_noise(train_noise, queries=sp.test, query_noise=query_noise)
        if not sets:
            transform = st.fit_transform(sp.train)  # scale from the first group's training CSI
        else:
            st.set_transform(transform)
        meta = {
            "n_train": n_train,
            "n_test": n_test,
            "test_start": test_start,
            "split_seed": split_seed,
        }
        sets.append(TrainSet(store=st, train=sp.train, meta=meta))
        splits.append(sp)
    res = run_train(cfg, sets, out_dir=out, resume=resume)
    typer.echo(f"trained {model} for {cfg.steps} steps; checkpoint {res.checkpoint}")
    if evaluate_after and n_test > 0:
        st, sp = sets[0].store, splits[0]
        report, errors = evaluate(
            res.model, st, sp.test, sp.train, k=k, device=next(res.model.parameters()).device
        )
        base = baseline_reports(
            st,
            np.concatenate([s.store.xy[s.train] for s in sets]),
            sp.train,
            sp.test,
            coarse_error=report.get("coarse_error_l_m"),
            k=k,
        )
        report["baselines"] = {name: r["overall"] for name, r in base.items()}
        write_report(report, errors, out, label=f"eval_{st.group}")
        for r in base.values():
            typer.echo("  baseline " + _summary(r))
        typer.echo(_summary(report))


@app.command()
@_one_line_errors
def pretrain(
    stores: list[Path] = typer.Argument(..., help="simgen Zarr store(s): unlabelled CSI"),
    group: list[str] = typer.Option(["dry"], "--group", "-g", help="condition group(s)"),
    trps: str = typer.Option("all", help="TRP indices, e.g. '0,1,2' or 'all'"),
    out: Path = typer.Option(Path("runs/lwlm"), help="output directory (encoder.pt)"),
    width: str = typer.Option("cpu", help="cpu (d 64, depth 2) | paper (d 256, depth 4)"),
    steps: int = typer.Option(3000, help="pretraining steps"),
    batch_size: int = typer.Option(64, help="samples per step (two links each)"),
    lr: float = typer.Option(1e-3, help="peak AdamW LR (warm-up + cosine)"),
    weights: str = typer.Option(
        "dti=20,sfmcm=10,picl=1", help="objective weights; 0 leaves one out (ablation)"
    ),
    noise: str = typer.Option("noiseless", help=NOISE_HELP),
    noise_seed: int = typer.Option(0, help="seed of the noise draws"),
    seed: int = typer.Option(1, help="pretraining seed"),
    device: str = typer.Option("auto", help="cpu | cuda | auto"),
    resume: bool = typer.Option(True, "--resume/--fresh", help="continue from OUT/encoder.pt"),
    quiet: bool = typer.Option(False, help="only errors and the final line"),
) -> None:
    """Pretrain an LWLM encoder (SF-MCM + DTI + PICL) on the unlabelled CSI of stores: no
    label (position, ToA, link state) is read."""
    from loc.data import CSITransform, Selection, parse_index_list
    from loc.lwlm.pretrain import PretrainConfig
    from loc.lwlm.pretrain import pretrain as run_pretrain
    from loc.noise import parse_noise

    _setup_logging(quiet)
    w = {}
    for part in weights.split(","):
        name, _, val = part.partition("=")
        try:
            w[name.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"--weights: expected name=value pairs, got {part!r}") from None
    cfg = PretrainConfig(
        width=width, steps=steps, batch_size=batch_size, lr=lr, weights=w, seed=seed,
        device=device,
    )  # fmt: skip
    data = []
    for path in stores:
        for g in group:
            st = _open_store(path, g, Selection(parse_index_list(trps)), CSITransform(), "absolute")
            st.set_noise(parse_noise(noise, noise_seed))
            data.append((st, np.arange(len(st))))
    res = run_pretrain(cfg, data, out, resume=resume)
    last = res.history[-1] if res.history else {}
    parts = ", ".join(f"{k} {last[k]:.4g}" for k in cfg.objectives if k in last)
    typer.echo(f"pretrained {cfg.steps} steps in {res.seconds:.0f} s ({parts}); {res.checkpoint}")


@app.command("eval")
@_one_line_errors
def eval_cmd(
    checkpoint: Path = typer.Argument(..., help="checkpoint file or training output directory"),
    store: Path | None = typer.Option(None, help="store to evaluate (default: the training one)"),
    group: str | None = typer.Option(None, help="group (default: the first training group)"),
    n_train: int | None = typer.Option(None, help="database size (default: as trained)"),
    n_test: int | None = typer.Option(None, help="test samples (default: as trained)"),
    test_start: int | None = typer.Option(None, help="test = perm[test_start:+n_test]"),
    split_seed: int | None = typer.Option(None, help="permutation seed (default: as trained)"),
    mode: str = typer.Option("neighbour", help="neighbour | random | iterative"),
    coarse_checkpoint: Path | None = typer.Option(
        None, help="random-sampling model for iterative search"
    ),
    coarse_error: float = typer.Option(
        1.0, "--coarse-error", "--l", help="coarse-location error half-width l (m)"
    ),
    k: int | None = typer.Option(None, help="embedded samples (default: as trained)"),
    seed: int = typer.Option(0, help="seed of coarse-location noise / random sampling"),
    device: str = typer.Option("auto", help="cpu | cuda | auto"),
    out: Path | None = typer.Option(None, help="report directory (default: next to checkpoint)"),
    label: str = typer.Option("eval", help="report file prefix"),
    noise: str | None = typer.Option(
        None, help=NOISE_HELP + " of the test queries (default: as trained)"
    ),
    noise_seed: int = typer.Option(0, help="seed of the noise draws"),
    quiet: bool = typer.Option(False, help="only errors and the final summary"),
) -> None:
    """Evaluate a checkpoint: mean/median/p10/p90/p95 error, per link state, JSON + CDF PNG."""
    from loc.data import CSITransform, Selection, split_indices
    from loc.evaluate import evaluate, write_report
    from loc.fit.supervised import load_checkpoint, resolve_device
    from loc.noise import parse_noise

    _setup_logging(quiet)
    dev = resolve_device(device)
    model, ck = load_checkpoint(checkpoint, dev)
    meta = ck["data"][0]
    st = _open_store(
        store or meta["path"],
        group or meta["group"],
        Selection.from_dict(meta["selection"]),
        CSITransform(**{"array": "flat", **meta["transform"]}),  # older: the 1-D DFT
        meta["frame"],
        meta.get("variable", "csi"),
    )
    if list(st.shape) != list(model.hparams["in_shape"]):
        raise DataError(
            f"store CSI shape {st.shape} (after selection) differs from the model's "
            f"{tuple(model.hparams['in_shape'])}"
        )
    sp = split_indices(
        st.valid,
        n_train or meta["n_train"],
        meta["n_test"] if n_test is None else n_test,
        seed=meta["split_seed"] if split_seed is None else split_seed,
        test_start=test_start if test_start is not None else meta["test_start"],
    )
    trained = parse_noise(meta.get("noise"), noise_seed)  # the database as in training
    st.set_noise(trained, sp.test, None if noise is None else parse_noise(noise, noise_seed))
    coarse = load_checkpoint(coarse_checkpoint, dev)[0] if coarse_checkpoint else None
    report, errors = evaluate(
        model,
        st,
        sp.test,
        sp.train,
        mode=mode,
        coarse_error=coarse_error,
        k=k or ck["config"]["n_neighbours"],
        seed=seed,
        device=dev,
        coarse_model=coarse,
    )
    report["checkpoint"] = str(checkpoint)
    out_dir = out or (checkpoint if checkpoint.is_dir() else checkpoint.parent)
    path = write_report(report, errors, out_dir, label=label)
    typer.echo(_summary(report))
    if not quiet:
        typer.echo(json.dumps({"report": str(path)}))


@app.command("convert-checkpoint")
@_one_line_errors
def convert_checkpoint_cmd(
    src: Path = typer.Argument(..., help="a checkpoint written by older loc code"),
    out: Path | None = typer.Option(None, help="converted file (default: SRC, replaced)"),
) -> None:
    """Re-save an old checkpoint as tensors + plain data, which `loc eval` / `--init-from` /
    resume accept. This UNPICKLES the old file, running any code it holds: only for files you
    made yourself (re-train anything you were sent)."""
    from loc.fit.checkpoint import convert_checkpoint

    dst = convert_checkpoint(src, out or src)
    typer.echo(f"converted {src} -> {dst}")


@app.command()
@_one_line_errors
def suite(
    protocol: str = typer.Argument(
        ...,
        help="protocol name (loc/experiments/NAME.yaml), a protocol YAML path, or 'all': every "
        "protocol that has the budget, then the results page beside the papers (--results)",
    ),
    budget: str = typer.Option(
        "short",
        help="paper (300k steps, batch 500) | short | tiny, or another budget the protocol "
        "defines (vinloc and semantic_da: cpu)",
    ),
    device: str = typer.Option("auto", help="cpu | cuda | auto (training and rendering)"),
    out: Path | None = typer.Option(
        None,
        help="output directory (default: runs/suite/<protocol>_<budget>; for 'all' the parent "
        "of the protocols' directories, default runs/suite)",
    ),
    results: Path | None = typer.Option(
        None,
        help="'all' only: the results page (default <out>/results_<budget>.md; `make "
        "reproduce` writes docs/results.md)",
    ),
    cache: Path = typer.Option(
        Path("out/cache"), help="dataset cache: one store per scene + UE count, reused"
    ),
    models: str | None = typer.Option(None, help="comma-separated subset of the protocol's"),
    resume: bool = typer.Option(
        True, "--resume/--fresh", help="reuse / continue matching checkpoints"
    ),
    quiet: bool = typer.Option(False, help="only errors and the final table"),
    page_only: bool = typer.Option(
        False, help="'all' only: rewrite the results page from the finished runs in --out"
    ),
) -> None:
    """Run a protocol: render or reuse its datasets, train and evaluate every model, write one
    Markdown table, one CDF figure and one JSON of all numbers."""
    from loc.suite import load_protocol, markdown_table, run_suite

    _setup_logging(quiet)
    if protocol == "all":
        from loc.suite.results import run_all

        root = out or Path("runs/suite")
        page = results or root / f"results_{budget}.md"
        if models:
            raise ConfigError("--models selects models of one protocol, not of 'all'")
        run_all(budget, root, cache, page, device=device, resume=resume, page_only=page_only)
        typer.echo(json.dumps({"results": str(page)}))
        return
    from loc.suite.protocol import is_lwlm

    if is_lwlm(protocol):  # its own format and runner (imported only here)
        from loc.lwlm.suite import run_named

        page, table = run_named(protocol, budget, out, cache, device=device, resume=resume)
        typer.echo(page)
        typer.echo(json.dumps({"table": str(table)}))
        return
    proto = load_protocol(protocol, budget)
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    out_dir = out or Path("runs/suite") / f"{proto.name}_{budget}"
    result = run_suite(proto, out_dir, cache, device=device, models=chosen, resume=resume)
    typer.echo(markdown_table(result, chosen or proto.models))
    typer.echo(json.dumps({"table": str(out_dir / f"{proto.name}.md")}))


if __name__ == "__main__":
    app()
