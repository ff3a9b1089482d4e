"""LWLM downstream tasks: labels, fine-tuning of an encoder + decoder, evaluation beside the
model-based and trivial baselines (spec §5, §6).

Tasks and labels (per *link* = (sample, link group g), see ``loc.lwlm.links``):

    toa     the stored ``toa`` of the link's TRP, ns (first arrival on the common clock)
    aoa     the geometric line-of-sight azimuth of the UE in the TRP's array frame, degrees in
            (-180, 180] (x = boresight; from ``trp_orientation``)
    single  the UE (x, y), m, from one link of the task's TRP(s)
    multi   the UE (x, y), m, from every link of the sample (variable TRP sets in training)

Baselines: ToA: the CIR/CSI first-peak estimator (``loc.models.multilateration.estimate_toa``);
AoA: a beam scan (Bartlett) over the TRP array; both: the training-label mean. Positions: the
training mean and kNN on the links' grids here; CNN, Mateformer, VIn-Loc, ResNet and
multilateration rows are added by ``loc suite lwlm`` from the project's own trainers.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from loc.device import resolve_device
from loc.errors import ConfigError, DataError
from loc.evaluate import error_metrics
from loc.fit.checkpoint import read_checkpoint, save_checkpoint
from loc.fit.schedule import lr_factor
from loc.lwlm.links import GridMaker, link_config, read_links, usable, with_level
from loc.lwlm.model import TASKS, TaskModel
from loc.lwlm.pretrain import load_encoder

log = logging.getLogger("loc.lwlm")

UNITS = {"toa": "ns", "aoa": "deg", "single": "m", "multi": "m"}
CHECKPOINT = "task.pt"
FORMAT = "loc-lwlm-task-2"  # 2: the link level in the config (N_CFG 5)
AOA_SCALE_DEG = 90.0


def wrap_deg(d: np.ndarray | torch.Tensor):
    """Angle differences wrapped to [-180, 180) degrees."""
    return (d + 180.0) % 360.0 - 180.0


def los_azimuth(store, idx: np.ndarray) -> np.ndarray:
    """(N, T) degrees: azimuth of each UE seen from each selected TRP in the TRP's array frame
    (``loc.peb.rotation`` of ``trp_orientation``; x = boresight, y = the array's horizontal)."""
    from loc.peb import frame_xyz, rotation

    if "trp_orientation" not in store.ds.variables:
        raise DataError(f"{store.path} has no trp_orientation: the AoA label needs it")
    rot = rotation(np.asarray(store.ds["trp_orientation"].values, np.float64))
    rot = rot[list(store.selection.trps)]  # (T, 3, 3) array -> scene
    d = frame_xyz(store, idx)[:, None, :] - store.trp_xyz[None]  # (N, T, 3)
    local = np.einsum("tji,ntj->nti", rot, d)  # R^T d
    return np.degrees(np.arctan2(local[..., 1], local[..., 0]))


def beam_scan_azimuth(
    store, idx: np.ndarray, az_step: float = 1.0, el_step: float = 5.0, block: int = 128
) -> np.ndarray | None:
    """(N, T) degrees: the azimuth (array frame) of the strongest direction of a Bartlett scan,
    P(az, el) = sum_k |a(az, el)^H h_k|^2, over the front half-space az in [-90, 90] and
    elevations -85..0 deg (0 only for a one-row array, which cannot tell elevation), of each
    link's (noisy) channel; None without a multi-element array. ``block`` samples at a time
    (memory ~ block x A x directions: a 4 x 8 UPA scans 3,258 directions, 13 MB per sample)
    Steering: a_m = exp(j 2 pi / lambda r_m . u) (r_m the element position, u the departure
    direction, both in the array frame; the sign of simgen's downlink CSI)."""
    from loc.peb import trp_arrays

    arrays = trp_arrays(store, list(store.selection.trps))
    if arrays is None:
        return None
    r, _, lam = arrays
    az = np.radians(np.arange(-90.0, 90.0 + 1e-9, az_step))
    el = np.radians(np.arange(-85.0, 1e-9, el_step))
    if np.ptp(r[:, 2]) == 0:  # one row: elevation is not observable, scan the horizon only
        el = np.zeros(1)
    a_g, e_g = np.meshgrid(az, el, indexing="ij")
    u = np.stack([np.cos(e_g) * np.cos(a_g), np.cos(e_g) * np.sin(a_g), np.sin(e_g)], -1)
    u = u.reshape(-1, 3)
    steer = np.exp(2j * np.pi / lam * u @ r.T)  # (D, A)
    h = store.read_channel(np.asarray(idx))  # (N, T, U, A, K)
    out = np.full(h.shape[:2], np.nan)
    for t in range(h.shape[1]):
        x = np.moveaxis(h[:, t], 2, 1).reshape(len(h), h.shape[3], -1)  # (N, A, U K)
        cov = x @ x.conj().transpose(0, 2, 1)  # (N, A, A)
        for i in range(0, len(h), block):
            c = cov[i : i + block]
            p = (steer.T.conj()[None] * (c @ steer.T)).sum(1).real  # a^H R a, (n, D)
            out[i : i + block, t] = np.degrees(a_g.reshape(-1)[p.argmax(1)])
    return out


# ----------------------------------------------------------------------------- task data


class TaskData:
    """Links and labels of samples ``idx`` for one task, on ``device``.

    rows: toa / aoa / single: one row per usable link (with a path, and a finite label) of the
    link groups ``groups`` (default all); multi: one row per sample with >= 1 such link.
    grid (R, L, 2, K, A), cfg (R, L, N_CFG), present (R, L), y (R, n_out) labels (ns, deg,
    m), sample (R,) the store index of each row, group (R, L) its link groups.
    """

    def __init__(self, store, idx: np.ndarray, task: str, groups=None, device="cpu") -> None:
        if task not in TASKS:
            raise ConfigError(f"unknown LWLM task {task!r} ({' | '.join(TASKS)})")
        idx = np.asarray(idx, np.int64)
        self.store, self.task = store, task
        n_t, n_u = len(store.selection.trps), len(store.selection.ue_ants)
        g_all = np.arange(n_t * n_u)
        groups = g_all if groups is None else np.asarray(groups, np.int64)
        h = read_links(store, idx)  # (N, G, A, K)
        trp_of = g_all // n_u
        ok = usable(h) & store.has_path[idx][:, trp_of]
        if task == "toa":
            lab = np.asarray(store.ds["toa"].isel(trp=list(store.selection.trps)).values)
            lab = lab[idx][:, trp_of] * 1e9
        elif task == "aoa":
            lab = los_azimuth(store, idx)[:, trp_of]
        else:
            lab = np.repeat(store.xy[idx][:, None, :], len(g_all), axis=1)
        lab = lab.reshape(len(idx), len(g_all), -1)
        ok &= np.isfinite(lab).all(-1)
        keep = np.zeros_like(ok)
        keep[:, groups] = ok[:, groups]
        cfg = link_config(store)
        maker = GridMaker(h.shape[2], h.shape[3], device)
        if task == "multi":
            rows = np.flatnonzero(keep.any(1))
            sel_g = np.broadcast_to(groups, (len(rows), len(groups)))
            self.present = torch.as_tensor(keep[rows][:, groups], device=device)
            y = lab[rows, groups[0]]
        else:
            rows, g = np.nonzero(keep)
            sel_g = g[:, None]
            self.present = torch.ones(len(rows), 1, dtype=torch.bool, device=device)
            y = lab[rows, g]
        if not len(rows):
            raise DataError(f"no usable links for task {task!r} in the selected samples")
        hh = torch.from_numpy(h[rows[:, None], sel_g]).to(device)  # (R, L, A, K)
        self.grid = maker.grid(hh.flatten(0, 1)).view(*hh.shape[:2], 2, h.shape[3], h.shape[2])
        cfg_g = torch.from_numpy(cfg[sel_g]).to(device).flatten(0, 1)
        self.cfg = with_level(cfg_g, hh.flatten(0, 1)).view(*hh.shape[:2], -1)
        self.y = torch.as_tensor(np.asarray(y, np.float64), dtype=torch.float32, device=device)
        self.sample, self.group = idx[rows], np.asarray(sel_g)
        self.model_based: np.ndarray | None = None  # baseline_rows' label-free estimates

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TaskData:
        """The same rows with their tensors on ``device``."""
        out = copy.copy(self)
        out.grid, out.cfg, out.present, out.y = (
            t.to(device) for t in (self.grid, self.cfg, self.present, self.y)
        )
        return out

    def subset(self, rows: np.ndarray) -> TaskData:
        out = copy.copy(self)
        t = torch.as_tensor(rows, device=self.y.device)
        out.grid, out.cfg, out.present, out.y = (
            self.grid[t],
            self.cfg[t],
            self.present[t],
            self.y[t],
        )
        out.sample, out.group = self.sample[rows], self.group[rows]
        out.model_based = None
        return out


# ----------------------------------------------------------------------------- model + loss


class Labels(torch.nn.Module):
    """Label standardisation (buffers, so they travel in the checkpoint): y = mean + scale z.
    AoA keeps mean 0 (angles wrap) and a fixed scale; positions share one scale for x and y."""

    def __init__(self, task: str, n_out: int) -> None:
        super().__init__()
        self.task = task
        self.register_buffer("mean", torch.zeros(n_out))
        self.register_buffer("scale", torch.ones(()))

    def fit(self, y: torch.Tensor) -> None:
        if self.task == "aoa":
            self.scale.fill_(AOA_SCALE_DEG)
            return
        self.mean.copy_(y.mean(0))
        self.scale.fill_(float(max(y.std(0).max(), 1e-6)))


def task_loss(task: str, z, p_links, y_std, present) -> torch.Tensor:
    """Spec §5's losses on standardised outputs: L1 (ToA; AoA on the wrapped difference), mean
    Euclidean distance (single), and for multi + 0.1 x the per-link distances' mean."""
    if task == "toa":
        return (z[:, 0] - y_std[:, 0]).abs().mean()
    if task == "aoa":
        return wrap_deg(AOA_SCALE_DEG * (z[:, 0] - y_std[:, 0])).abs().mean() / AOA_SCALE_DEG
    loss = (z - y_std).norm(dim=-1).mean()
    if task == "multi":
        d = (p_links - y_std[:, None]).norm(dim=-1)
        loss = loss + 0.1 * (d * present).sum(1).div(present.sum(1).clamp_min(1)).mean()
    return loss


@dataclasses.dataclass
class FinetuneConfig:
    """Fine-tuning options. ``steps`` fixed; the weights of the best validation loss (on
    ``val_fraction`` of the labelled rows, evaluated every ``eval_every`` steps) are kept, as
    the authors keep the best ``val/ave_loss`` checkpoint."""

    task: str = "single"
    steps: int = 1000
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: float = 0.05
    freeze: bool = False
    encoder_lr: float = 1.0  # a pretrained encoder's LR as a fraction of ``lr`` (scratch: 1)
    val_fraction: float = 0.1
    eval_every: int = 100
    min_links: int = 2  # multi: fewest links of a training sample's random TRP subset
    seed: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown LWLM task {self.task!r} ({' | '.join(TASKS)})")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("fine-tuning needs steps >= 1 and batch_size >= 1")


class Fitted(torch.nn.Module):
    """A task model and its label standardisation."""

    def __init__(self, model: TaskModel, labels: Labels) -> None:
        super().__init__()
        self.model, self.labels = model, labels

    @torch.no_grad()
    def predict(self, data: TaskData, batch: int = 256) -> np.ndarray:
        """(R, n_out) predictions in label units (ns, deg, m)."""
        self.eval()
        dev = self.labels.mean.device
        out = []
        for a in range(0, len(data), batch):
            s = slice(a, a + batch)
            z, _ = self.model(data.grid[s].to(dev), data.cfg[s].to(dev), data.present[s].to(dev))
            out.append(self.labels.mean + self.labels.scale * z)
        y = torch.cat(out).double().cpu().numpy()
        return wrap_deg(y) if self.labels.task == "aoa" else y


def _subset_present(present: torch.Tensor, min_links: int, rng: np.random.Generator):
    """A random subset of each row's present links, of a random size in [min_links, n]."""
    p = present.cpu().numpy()
    out = np.zeros_like(p)
    for i, row in enumerate(p):
        on = np.flatnonzero(row)
        s = rng.integers(min(min_links, len(on)), len(on) + 1)
        out[i, rng.choice(on, s, replace=False)] = True
    return torch.as_tensor(out, device=present.device)


def finetune(
    cfg: FinetuneConfig,
    train: TaskData,
    encoder: str | Path | dict,
    out_dir: str | Path | None = None,
) -> tuple[Fitted, dict]:
    """Fit a task model on ``train``: from a pretrained encoder (``encoder`` = a ``loc
    pretrain`` output) or from random init (``encoder`` = its hyper-parameters, the scratch
    baseline). Returns (model, info: steps, best validation loss, seconds, ...)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if isinstance(encoder, dict):
        hp, state = dict(encoder), None
    else:
        pre, _ = load_encoder(encoder)
        hp, state = pre.hparams, pre.encoder.state_dict()
    model = TaskModel(hp, cfg.task)
    if state is not None:
        model.encoder.load_state_dict(state)
    labels = Labels(cfg.task, train.y.shape[1])
    rng = np.random.default_rng([cfg.seed, 21])
    perm = rng.permutation(len(train))
    n_val = max(1, round(cfg.val_fraction * len(train))) if len(train) >= 10 else 0
    val, fit = perm[:n_val], perm[n_val:]
    labels.fit(train.y[torch.as_tensor(fit, device=train.y.device)].cpu())
    fitted = Fitted(model, labels).to(device)
    if cfg.freeze:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    enc_ids = {id(p) for p in model.encoder.parameters()}
    groups = [
        {"params": [p for p in fitted.parameters() if p.requires_grad and id(p) not in enc_ids],
         "scale": 1.0},
        {"params": [p for p in model.encoder.parameters() if p.requires_grad],
         "scale": cfg.encoder_lr if state is not None else 1.0},
    ]  # fmt: skip
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)  # fmt: skip
    tr, va = train.subset(fit).to(device), train.subset(val).to(device) if n_val else None
    std = lambda y: (y - labels.mean) / labels.scale  # noqa: E731
    best, best_state, t0 = float("inf"), None, time.perf_counter()
    b = min(cfg.batch_size, len(tr))
    for step in range(cfg.steps):
        lr = cfg.lr * lr_factor(step, cfg.steps, "cosine", cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        srng = np.random.default_rng([cfg.seed, 22, step])
        torch.manual_seed(int(srng.integers(2**62)))
        rows = torch.as_tensor(srng.choice(len(tr), b, replace=False), device=device)
        present = tr.present[rows]
        if cfg.task == "multi":
            present = _subset_present(present, cfg.min_links, srng)
        model.train()
        if cfg.freeze:
            model.encoder.eval()
        z, pl = model(tr.grid[rows], tr.cfg[rows], present)
        loss = task_loss(cfg.task, z, pl, std(tr.y[rows]), present)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if va is not None and (done % cfg.eval_every == 0 or done == cfg.steps):
            v = validation_loss(fitted, va)
            if v < best:
                best, best_state = v, copy.deepcopy(fitted.state_dict())
    if best_state is not None:
        fitted.load_state_dict(best_state)
    fitted.eval()
    info = {"steps": cfg.steps, "val_loss": best, "seconds": time.perf_counter() - t0,
            "n_train": len(tr), "n_val": n_val, "pretrained": state is not None}  # fmt: skip
    if out_dir is not None:
        save_checkpoint(
            Path(out_dir) / CHECKPOINT,
            {"format": FORMAT, "task": cfg.task, "encoder_hparams": hp,
             "state_dict": fitted.state_dict(), "config": dataclasses.asdict(cfg), "info": info},
        )  # fmt: skip
    return fitted, info


@torch.no_grad()
def validation_loss(fitted: Fitted, data: TaskData) -> float:
    fitted.eval()
    z, pl = fitted.model(data.grid, data.cfg, data.present)
    y = (data.y - fitted.labels.mean) / fitted.labels.scale
    return float(task_loss(fitted.labels.task, z, pl, y, data.present))


def load_task(path: str | Path, device="cpu") -> Fitted:
    """A fine-tuned task model from ``DIR`` or ``DIR/task.pt``."""
    ck = read_checkpoint(path, FORMAT, CHECKPOINT, "LWLM task checkpoint")
    n_out = 1 if ck["task"] in ("toa", "aoa") else 2
    fitted = Fitted(TaskModel(ck["encoder_hparams"], ck["task"]), Labels(ck["task"], n_out))
    fitted.load_state_dict(ck["state_dict"])
    return fitted.to(device)


# ----------------------------------------------------------------------------- evaluation


def errors(task: str, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(R,) absolute errors in the task's unit: |Δ| ns, |wrapped Δ| deg, Euclidean m."""
    pred, y = np.asarray(pred, np.float64), np.asarray(y, np.float64)
    if task == "toa":
        return np.abs(pred[:, 0] - y[:, 0])
    if task == "aoa":
        return np.abs(wrap_deg(pred[:, 0] - y[:, 0]))
    return np.linalg.norm(pred[:, :2] - y[:, :2], axis=1)


def baseline_rows(task: str, train: TaskData, test: TaskData, knn_k: int = 5) -> dict:
    """{row name: (R,) errors} of the trivial and model-based estimates on ``test``'s rows (the
    model-based ones, which need no label, computed once per test set)."""
    y_tr, y = train.y.cpu().numpy(), test.y.cpu().numpy()
    rows = {}
    mean = np.zeros(y.shape[1]) if task == "aoa" else y_tr.mean(0)
    if task == "aoa":  # circular mean of the training azimuths
        r = np.radians(y_tr[:, 0])
        mean[0] = np.degrees(np.arctan2(np.sin(r).mean(), np.cos(r).mean()))
    rows["training mean"] = errors(task, np.broadcast_to(mean, y.shape), y)
    from loc.models.fingerprint_knn import KNNFingerprint

    kk = min(knn_k, len(train))
    flat = lambda d: d.grid[:, :, 0].flatten(1).cpu().numpy()  # |H| of every link  # noqa: E731
    fit = KNNFingerprint(kk).fit(flat(train), y_tr)
    pred = fit.predict(flat(test))
    rows[f"kNN (k={kk}) on the link amplitudes"] = errors(task, pred, y)
    n_u = len(test.store.selection.ue_ants)
    t_idx = test.group[:, 0] // n_u
    if task == "toa" and "subcarrier" in test.store.ds.variables:
        from loc.models.multilateration import estimate_toa

        if test.model_based is None:
            test.model_based = estimate_toa(test.store, test.sample).toa * 1e9  # (R, T) ns
        est = test.model_based[np.arange(len(test)), t_idx][:, None].copy()
        est[~np.isfinite(est)] = mean[0]  # no peak detected: the training mean
        source = "CIR" if "cir" in test.store.ds else "CSI"
        rows[f"first-peak ToA from the {source}"] = errors(task, est, y)
    if task == "aoa":
        if test.model_based is None:
            test.model_based = beam_scan_azimuth(test.store, test.sample)
        if test.model_based is not None:
            est = test.model_based[np.arange(len(test)), t_idx][:, None]
            rows["beam scan (Bartlett) on the TRP array"] = errors(task, est, y)
    return rows


def summary(err: np.ndarray) -> dict:
    """mean / median / p90 ... of errors (``loc.evaluate.error_metrics``)."""
    return error_metrics(np.asarray(err, np.float64))


def train_task(st, split, task, encoder, out_dir, **cfg_kw):
    """``loc train --model lwlm_<task>``: fine-tune on ``split.train``, evaluate on
    ``split.test`` beside the baselines, write ``out_dir/task.pt`` and ``report.json``; yields
    the printed lines. ``encoder`` None: random init at the cpu width (the scratch baseline)."""
    from loc.lwlm.links import check_grid
    from loc.lwlm.model import WIDTHS

    train = TaskData(st, split.train, task)
    test = TaskData(st, split.test, task)
    if encoder is None:
        n_ant, n_sc = check_grid(st)
        encoder = {"n_sc": n_sc, "n_ant": n_ant, **WIDTHS["cpu"]}
    cfg = FinetuneConfig(task=task, **cfg_kw)
    fitted, info = finetune(cfg, train, encoder, out_dir)
    unit = UNITS[task]
    rows = {"lwlm_" + task: errors(task, fitted.predict(test), test.y.cpu().numpy())}
    rows.update(baseline_rows(task, train, test))
    report = {"task": task, "unit": unit, "noise": st.noise_label(), "info": info,
              "rows": {k: summary(v) for k, v in rows.items()}}  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    yield (f"trained lwlm_{task} ({'pretrained' if info['pretrained'] else 'random init'}) "
           f"on {info['n_train']} links for {cfg.steps} steps; {out / CHECKPOINT}")  # fmt: skip
    for name, r in report["rows"].items():
        yield (f"  {name} at {st.noise_label()}: n={r['n']} mean {r['mean']:.4g} {unit}, "
               f"median {r['median']:.4g} {unit}, p90 {r['p90']:.4g} {unit}")  # fmt: skip
