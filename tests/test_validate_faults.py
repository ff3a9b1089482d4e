"""``simgen validate`` against faults planted in a real small store (issue 14, item 15):
unreadable chunks, deleted chunks, scaled CSI / power, NaN in any variable, a missing array.
Each must be a finding (exit 1, no traceback); the untouched store must stay clean."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from simgen_testutil import write_config
from typer.testing import CliRunner

from simgen.cli import app
from simgen.release.validate import validate

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """street canyon, 12 UEs in 3 shards, depth 2 (reflections), paths and CIR taps stored,
    one rain condition; the UEs move (ue_velocity != 0)."""
    from simgen.render import Renderer, plan

    tmp = tmp_path_factory.mktemp("vf")
    cfg = write_config(
        tmp,
        "street_canyon.yaml",
        ue__sampling={"count": 12},
        ue__speed_mps=1.0,
        solver={"max_depth": 2, "samples_per_src": 10000, "batch_ues": 12},
        weather={"rain_rates_mm_h": [0.0, 25.0]},
        output={"path": "x", "chunk_samples": 4, "paths": True, "max_paths": 64, "cir_taps": 8},
    )
    r = Renderer(plan(cfg, out=tmp / "s.zarr"), "cpu")
    r.render(r.open_store(overwrite=True))
    return tmp / "s.zarr"


def _copy(store: Path, tmp: Path) -> Path:
    out = tmp / "s.zarr"
    shutil.copytree(store, out)
    return out


def _chunk(path: Path, group: str, name: str, shard: int = 1) -> Path:
    """The one chunk file of ``name`` for ``shard`` (chunks span every axis but sample)."""
    files = sorted((path / group / name / "c" / str(shard)).rglob("*"))
    files = [f for f in files if f.is_file()]
    assert len(files) == 1, files
    return files[0]


def _arr(path: Path, group: str, name: str) -> zarr.Array:
    return zarr.open_group(str(path), path=group, mode="r+", use_consolidated=False)[name]


def _truncate(p: Path, g: str, n: str) -> None:
    f = _chunk(p, g, n)
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


def _corrupt(p: Path, g: str, n: str) -> None:
    f = _chunk(p, g, n)
    b = bytearray(f.read_bytes())
    for i in range(8, len(b), 7):
        b[i] ^= 0x5A
    f.write_bytes(bytes(b))


def _scale(p: Path, g: str, n: str, factor) -> None:
    a = _arr(p, g, n)
    a[4:8] = a[4:8] * factor


def _add_db(p: Path, g: str, n: str, db: float) -> None:
    a = _arr(p, g, n)
    a[4:8] = a[4:8] + db


def _nan(p: Path, g: str, n: str) -> None:
    a = _arr(p, g, n)
    v = a[5]
    v = np.asarray(v, a.dtype)
    v.flat[0] = np.nan
    a[5] = v


FAULTS = {
    "truncated csi chunk": (
        lambda p: _truncate(p, "dry", "csi"),
        "dry/csi: samples 4-7 (shard 1): unreadable chunk",
    ),
    "corrupted path_a chunk": (
        lambda p: _corrupt(p, "rain_25mmh", "path_a"),
        "rain_25mmh/path_a: samples 4-7 (shard 1): unreadable chunk",
    ),
    "deleted path_a chunk": (
        lambda p: _chunk(p, "dry", "path_a").unlink(),
        "dry/path_a: samples 4-7 (shard 1) hold only fill values",
    ),
    "deleted path_interactions chunk": (
        lambda p: _chunk(p, "dry", "path_interactions").unlink(),
        "dry/path_interactions: samples 4-7 (shard 1) hold only fill values",
    ),
    "deleted csi chunk": (
        lambda p: _chunk(p, "dry", "csi").unlink(),
        "dry/csi: samples 4-7 (shard 1) hold only fill values",
    ),
    "csi x 10": (
        lambda p: _scale(p, "dry", "csi", 10),
        "dry/csi: 8 sampled links whose CSI differs from the CSI recomputed from path_a",
    ),
    "rx_power - 20 dB": (
        lambda p: _add_db(p, "rain_25mmh", "rx_power", -20.0),
        "rx_power: 8 sampled links whose rx_power differs from the path gain of path_a",
    ),
    "toa + 10 ns": (
        lambda p: _add_db(p, "dry", "toa", 1e-8),
        "dry/toa: 8 sampled links whose toa differs from the first stored path delay",
    ),
    "cir x 2": (
        lambda p: _scale(p, "dry", "cir", 2),
        "dry/cir: 8 sampled links whose taps differ from the taps recomputed",
    ),
    "NaN in ue_velocity": (
        lambda p: _nan(p, "dry", "ue_velocity"),
        "dry/ue_velocity: 1 non-finite value",
    ),
    "NaN in time": (lambda p: _nan(p, "dry", "time"), "dry/time: 1 non-finite value"),
    "NaN in path_aoa_az": (lambda p: _nan(p, "dry", "path_aoa_az"), "dry/path_aoa_az"),
    "missing cir array": (lambda p: shutil.rmtree(p / "dry" / "cir"), "dry/cir: missing"),
    "missing path_tau array": (
        lambda p: shutil.rmtree(p / "rain_25mmh" / "path_tau"),
        "rain_25mmh/path_tau: missing",
    ),
}


def test_untouched_store_is_clean(store):
    assert validate(store) == []


@pytest.mark.parametrize("fault", list(FAULTS))
def test_planted_fault_is_a_finding(store, tmp_path, fault):
    plant, expected = FAULTS[fault]
    path = _copy(store, tmp_path)
    plant(path)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    assert expected in res.output, res.output


CLEAN = {
    "traffic, moving UEs": (
        "street_canyon_traffic.yaml",
        {
            "ue": {
                "regions": [{"x": [-60.0, 60.0], "y": [-8.0, -4.5]}],
                "sampling": {"count": 4},
                "speed_mps": 2.0,
                "seed": 5,
            },
            "traffic__snapshots": 3,
            "solver": {"max_depth": 1, "samples_per_src": 10000, "batch_ues": 4},
            "output": {"path": "x", "chunk_samples": 4, "paths": True, "max_paths": 32},
        },
    ),
    "dual-pol arrays in rain, no paths": (
        "street_canyon.yaml",
        {
            "ue__sampling": {"count": 4},
            "ue__array": {"polarization": "cross"},
            "trp_array": {"rows": 1, "cols": 2, "polarization": "VH"},
            "frequency_hz": 28e9,
            "weather": {"rain_rates_mm_h": [0.0, 50.0]},
            "solver": {"max_depth": 1, "samples_per_src": 10000, "batch_ues": 4},
            "output": {"path": "x", "chunk_samples": 4, "paths": False},
        },
    ),
    "dual-pol arrays in rain, paths": (
        "street_canyon.yaml",
        {
            "ue__sampling": {"count": 4},
            "ue__array": {"polarization": "VH"},
            "trp_array": {"rows": 1, "cols": 2, "polarization": "cross"},
            "frequency_hz": 28e9,
            "weather": {"rain_rates_mm_h": [0.0, 50.0]},
            "solver": {"max_depth": 1, "samples_per_src": 10000, "batch_ues": 4},
            "output": {"path": "x", "chunk_samples": 4, "paths": True, "max_paths": 32},
        },
    ),
}


@pytest.mark.parametrize("kind", list(CLEAN))
def test_clean_stores_of_every_kind_validate_clean(tmp_path, kind):
    """No false findings from the new checks on moving UEs, traffic, dual-pol and rain."""
    from simgen.render import Renderer, plan

    base, changes = CLEAN[kind]
    r = Renderer(plan(write_config(tmp_path, base, **changes), out=tmp_path / "c.zarr"), "cpu")
    r.render(r.open_store(overwrite=True))
    assert validate(tmp_path / "c.zarr") == []


def test_deepmimo_import_has_no_new_findings(tmp_path):
    """An import leaves ``time`` and ``trp_tx_power`` NaN (DeepMIMO records neither): that is
    'not recorded', not a missing chunk or a NaN fault."""
    from test_deepmimo import SPACING, make_scenario

    import simgen.interop.deepmimo as sd

    make_scenario(tmp_path / "s", n_ue=6, seed=0)
    sd.import_scenario(
        tmp_path / "s", tmp_path / "s.zarr", num_subcarriers=8, bandwidth_hz=8 * SPACING
    )
    assert validate(tmp_path / "s.zarr") == ["root attrs: missing scene_config_yaml"]
    _add_db(tmp_path / "s.zarr", "dry", "rx_power", -20.0)  # samples 4-7 (shard 0 here)
    assert any(
        "whose rx_power differs from the path gain" in f for f in validate(tmp_path / "s.zarr")
    )


@pytest.fixture(scope="module")
def traffic_store(tmp_path_factory) -> Path:
    """street canyon with traffic: 4 moving UEs x 3 snapshots, vehicles on both lanes."""
    from simgen.render import Renderer, plan

    tmp = tmp_path_factory.mktemp("vt")
    base, changes = CLEAN["traffic, moving UEs"]
    r = Renderer(plan(write_config(tmp, base, **changes), out=tmp / "t.zarr"), "cpu")
    r.render(r.open_store(overwrite=True))
    return tmp / "t.zarr"


def _tile_ues(p: Path) -> None:
    """The old time_series bug: every snapshot repeats the snapshot-0 positions."""
    a = _arr(p, "dry", "ue_position")
    v = a[:]
    n = 4
    a[:] = np.tile(v[:n], (len(v) // n, 1))


def _vehicle_on_ue(p: Path) -> None:
    pos = _arr(p, "dry", "vehicle_position")
    yaw = _arr(p, "dry", "vehicle_yaw")
    ue = _arr(p, "dry", "ue_position")[0]
    vp = pos[:]
    vp[0, 0] = (ue[0], ue[1], ue[2] - 0.5)  # centre half a metre below the UE antenna
    pos[:] = vp
    vy = yaw[:]
    vy[0, 0] = 0.0
    yaw[:] = vy


TRAFFIC_FAULTS = {
    "UEs tiled across snapshots": (
        _tile_ues,
        "dry/ue_position: 8 samples not at the snapshot-0 position + ue_velocity x time",
    ),
    "vehicle on a UE": (_vehicle_on_ue, "dry/vehicle_position: 1 vehicle box (snapshot x"),
}


def test_traffic_store_is_clean(traffic_store):
    assert validate(traffic_store) == []


@pytest.mark.parametrize("fault", list(TRAFFIC_FAULTS))
def test_planted_traffic_fault_is_a_finding(traffic_store, tmp_path, fault):
    plant, expected = TRAFFIC_FAULTS[fault]
    path = tmp_path / "t.zarr"
    shutil.copytree(traffic_store, path)
    plant(path)
    findings = validate(path)
    assert any(expected in f for f in findings), findings
