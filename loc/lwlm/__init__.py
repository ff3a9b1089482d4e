"""LWLM, the Large Wireless Localization Model (arXiv 2505.10134; docs/lwlm.md): a transformer
encoder over one link's antenna x subcarrier grid, pretrained without labels on SF-MCM
(masked channel modelling), DTI (domain-transformation invariance) and PICL (position-invariant
contrastive learning), then fine-tuned with small decoders for ToA, AoA, single- and
multi-TRP position.

    model.py     the networks (encoder, SSL heads, task decoders) and their losses
    links.py     a store's links as encoder grids, read from the channel alone (no labels)
    pretrain.py  ``loc pretrain``: the self-supervised loop, checkpoints, resume
    tasks.py     labels, fine-tuning, evaluation beside each task's baselines
    suite.py     ``loc suite lwlm`` (``lwlm.yaml``): label budgets, unseen TRP, ablation
"""
