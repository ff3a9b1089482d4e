"""Fine-tuning (transfer learning, spec §6.2): every parameter of a trained model updated on
n samples of a new scenario, for a curve over n."""

from __future__ import annotations

import dataclasses

from loc.evaluate import evaluate
from loc.fit.supervised import TrainSet, train

# Fine-tuning LR = this x the training peak LR. The paper fine-tunes at its training LR (1e-4
# for ALLoc); our conditioned recipe trains at 10x that (loc.models.PEAK_LR). At the full peak,
# 200 steps on 100 samples undid a trained Mateformer (multi_cell cpu: 1.93 -> 14.4 m).
FINETUNE_LR_FACTOR = 0.1


def transfer_curve(cfg, checkpoint, test, device, run_dir, sizes, steps) -> dict:
    """Transfer-learning curve of a model trained by the shared loop: for each n in ``sizes``,
    fine-tune every parameter from ``checkpoint`` on the first n database samples of the test
    scenario (constant LR, ``FINETUNE_LR_FACTOR`` x the training peak, ``steps`` steps) and
    evaluate on its test samples with that scenario's database. Returns {n: {"mean",
    "median"}} (m); sizes above the database are skipped. Fine-tuned checkpoints go to
    ``run_dir/finetune_<n>``."""
    st, db, te = test
    curve = {}
    for n in sorted(sizes):
        if n > len(db):
            continue
        ft = dataclasses.replace(
            cfg,
            steps=steps,
            batch_size=min(cfg.batch_size, n),
            n_neighbours=min(cfg.n_neighbours, n - 1),
            schedule="constant",
            lr=FINETUNE_LR_FACTOR * cfg.peak_lr(cfg.model),
            init_from=str(checkpoint),
            log_every=max(1, min(1000, steps // 5)),
            ckpt_every=steps,
        )
        res = train(
            ft, [TrainSet(st, db[:n], meta={"finetune": n})], run_dir / f"finetune_{n}", resume=True
        )
        report, _ = evaluate(res.model, st, te, db, k=cfg.n_neighbours, device=device)
        curve[n] = {"mean": report["overall"]["mean"], "median": report["overall"]["median"]}
    return curve
