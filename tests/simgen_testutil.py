"""Helpers for simgen tests: small scene configs written to tmp dirs."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import yaml

SCENES = Path(__file__).resolve().parent.parent / "scenes"


def write_config(tmp: Path, base: str | dict, **changes) -> Path:
    """Copy a shipped scene YAML (or a dict) into ``tmp`` with top-level keys replaced.

    A key such as ``solver__max_depth`` replaces one nested value.
    """
    # a deep copy: ``solver__batch_ues=...`` must not change the shared dict (e.g. OPEN_SCENE)
    # for every later test
    cfg = yaml.safe_load((SCENES / base).read_text()) if isinstance(base, str) else deepcopy(base)
    for key, value in changes.items():
        node = cfg
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    cfg.setdefault("output", {})["path"] = str(tmp / "out.zarr")
    path = tmp / "scene.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


OPEN_SCENE = {
    "name": "open",
    "scene": "empty",
    "frequency_hz": 3.5e9,
    "ofdm": {"num_subcarriers": 16, "subcarrier_spacing_hz": 1.0e6},
    "trp_array": {"rows": 1, "cols": 2, "pattern": "iso", "polarization": "V"},
    "trps": [
        {"name": "t0", "position": [0.0, 0.0, 10.0]},
        {"name": "t1", "position": [40.0, -30.0, 25.0]},
    ],
    "ue": {
        "regions": [{"x": [-200.0, 200.0], "y": [-200.0, 200.0]}],
        "sampling": {"count": 12},
        "min_distance_to_trp_m": 5.0,
        "seed": 3,
    },
    "solver": {"max_depth": 0, "samples_per_src": 1000, "batch_ues": 12},
    "output": {"path": "unused", "chunk_samples": 6, "paths": True, "max_paths": 4},
}
