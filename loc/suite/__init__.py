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

from loc.suite.datasets import dataset_store, head_tail, ordered_samples, snapshot_mask, ue_ids
from loc.suite.protocol import (
    BUDGET_NAMES,
    DATA_DEFAULTS,
    EXPERIMENTS_DIR,
    DatasetSpec,
    Experiment,
    Protocol,
    Scenario,
    deep_merge,
    find_protocol,
    list_protocols,
    load_protocol,
)
from loc.suite.report import markdown_table, plot_suite_cdf
from loc.suite.run import column_labels, run_suite

__all__ = [
    "BUDGET_NAMES",
    "DATA_DEFAULTS",
    "EXPERIMENTS_DIR",
    "DatasetSpec",
    "Experiment",
    "Protocol",
    "Scenario",
    "column_labels",
    "dataset_store",
    "deep_merge",
    "find_protocol",
    "head_tail",
    "list_protocols",
    "load_protocol",
    "markdown_table",
    "ordered_samples",
    "plot_suite_cdf",
    "run_suite",
    "snapshot_mask",
    "ue_ids",
]
