"""loc: localization models trained and evaluated on simgen CSI datasets.

Modules (read them in this order):

- ``loc.data``      store access, CSI transforms, splits, neighbour sequences
- ``loc.models``    Mateformer/ALLoc, ICLLoc, CNN, AD_CNN, MFCNet
- ``loc.fit.supervised``     one training loop for every model
- ``loc.evaluate``  error metrics, per-link-state breakdown, JSON report, CDF plot
- ``loc.cli``       the ``loc`` command line (typer)
"""

from loc.errors import CheckpointError, ConfigError, DataError, LocError

__all__ = ["CheckpointError", "ConfigError", "DataError", "LocError"]
