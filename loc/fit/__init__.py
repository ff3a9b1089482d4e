"""How each model family is fitted (``loc.models`` holds only the networks):

- ``supervised``: the one loop for point, set and TRP-token models (conditioned targets and
  labels, LR schedules sized to the step count, checkpoints, exact resume);
- ``da``: semantic domain adaptation (labelled source + unlabelled target);
- ``meta``: MetaLoc's MAML meta-training and fast adaptation;
- ``finetune``: transfer-learning curves.
"""
