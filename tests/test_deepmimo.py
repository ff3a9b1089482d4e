"""DeepMIMO interoperability: a DeepMIMO v4 folder written here by code (never downloaded) is
imported, exported and re-opened with ``deepmimo.load``; our CSI matches DeepMIMO's channel on
the same paths once the four documented conventions are aligned, and not when one is dropped;
the steering vector reproduces Sionna's synthetic-array gains of a real render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from simgen_testutil import write_config

from simgen.config import ArrayConfig
from simgen.errors import ConfigError, StoreError
from simgen.interop import deepmimo as sd
from simgen.schema import SPEED_OF_LIGHT, LinkState
from simgen.store import open_store

FREQ = 3.5e9
K, SPACING = 32, 240e3  # 1/spacing = 4.2 us > longest fixture delay
TRP_ARRAY = {"rows": 2, "cols": 2}
UE_ARRAY = {"rows": 1, "cols": 2}
ORIENT_DEG = (30.0, 10.0, -5.0)  # yaw, pitch, roll of both TRP arrays


def make_scenario(folder: Path, n_ue=9, n_tx=2, paths=5, seed=0, tx_pos=None) -> dict:
    """A DeepMIMO v4 scenario folder like the Sionna converter writes (npz, strongest first).

    UE 0 has no path; UE 1 has a LoS path weaker than a reflection; others are random."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    ue = np.c_[rng.uniform(-80, 80, (n_ue, 2)), np.full(n_ue, 1.5)].astype(np.float32)
    txs = tx_pos if tx_pos is not None else rng.uniform(-50, 50, (n_tx, 3)) + [0, 0, 20]
    truth = {"rx_pos": ue, "tx_pos": np.asarray(txs, np.float32), "tx": []}
    for t, tx in enumerate(truth["tx_pos"]):
        d = np.linalg.norm(ue - tx, axis=1)
        n_p = rng.integers(1, paths + 1, n_ue)
        n_p[0] = 0
        delay = d[:, None] / SPEED_OF_LIGHT + np.sort(rng.uniform(0, 2e-6, (n_ue, paths)), 1)
        inter = rng.choice([1, 11, 21, 3, 4, 12], (n_ue, paths)).astype(np.float32)
        los = rng.random(n_ue) < 0.6
        los[1] = True
        delay[los, 0] = d[los] / SPEED_OF_LIGHT
        inter[los, 0] = 0
        power = -70 - 20 * np.log10(d)[:, None] - rng.uniform(0, 25, (n_ue, paths))
        power[1, 0] = power[1, 1] - 3  # UE 1: LoS weaker than the next path
        m = {
            "power": power,
            "phase": rng.uniform(-180, 180, (n_ue, paths)),
            "delay": delay,
            "aoa_az": rng.uniform(-180, 180, (n_ue, paths)),
            "aoa_el": rng.uniform(5, 175, (n_ue, paths)),
            "aod_az": rng.uniform(-180, 180, (n_ue, paths)),
            "aod_el": rng.uniform(5, 175, (n_ue, paths)),
            "inter": inter,
        }
        order = np.argsort(-np.where(np.arange(paths) < n_p[:, None], power, -np.inf), 1)
        for k, v in m.items():
            v = np.take_along_axis(v, order, 1)
            m[k] = np.where(np.arange(paths) < n_p[:, None], v, np.nan).astype(np.float32)
        m["inter_pos"] = np.full((n_ue, paths, 2, 3), np.nan, np.float32)
        m["rx_pos"], m["tx_pos"] = ue, truth["tx_pos"][t : t + 1]
        for k, v in m.items():
            np.savez_compressed(folder / f"{k}_t000_tx{t:03d}_r001.npz", **{k: v})
        truth["tx"].append(m)
    np.savez_compressed(folder / "vertices.npz", vertices=np.zeros((0, 3), np.float32))
    (folder / "objects.json").write_text("[]")
    sets = {
        f"txrx_set_{i}": {
            "name": name,
            "id_orig": i,
            "id": i,
            "is_tx": i == 0,
            "is_rx": i == 1,
            "num_points": n,
            "num_active_points": n,
            "num_ant": 1,
            "dual_pol": False,
            "ant_rel_positions": [[0, 0, 0]],
            "array_orientation": [0, 0, 0],
            "grid_spacing": None,
        }
        for i, (name, n) in enumerate((("bs", len(truth["tx_pos"])), ("users", n_ue)))
    }
    rt = {
        "raytracer_name": "Sionna Ray Tracing",
        "raytracer_version": "2.2.0",
        "frequency": FREQ,
        "max_path_depth": 2,
        "max_reflections": 2,
        "max_diffractions": 1,
        "max_scattering": 1,
        "max_transmissions": 1,
    }
    params = {
        "version": "4.0.5",
        "rt_params": rt,
        "txrx_sets": sets,
        "materials": {},
        "scene": {"num_scenes": 1},
    }
    (folder / "params.json").write_text(json.dumps(params))
    return truth


def do_import(folder: Path, out: Path, **kw):
    return sd.import_scenario(
        folder,
        out,
        trp_array=TRP_ARRAY,
        ue_array=UE_ARRAY,
        num_subcarriers=K,
        subcarrier_spacing_hz=SPACING,
        trp_orientation_deg=ORIENT_DEG,
        **kw,
    )


@pytest.fixture(scope="module")
def scen(tmp_path_factory) -> tuple[Path, dict, Path]:
    base = tmp_path_factory.mktemp("dm")
    truth = make_scenario(base / "fixture_scen")
    store = base / "imported.zarr"
    do_import(base / "fixture_scen", store)
    return base / "fixture_scen", truth, store


def test_missing_or_foreign_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="no such DeepMIMO scenario folder"):
        sd.import_scenario(
            tmp_path / "o1_3p5", tmp_path / "x.zarr", num_subcarriers=4, subcarrier_spacing_hz=1e3
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no params.json"):
        sd.load_with_deepmimo(tmp_path / "empty")  # never reaches deepmimo's download prompt


def test_import_maps_sets_paths_and_labels(scen):
    folder, truth, path = scen
    st = open_store(path)
    g = st.root["dry"]
    assert list(g["trp"][:]) == ["bs0_0", "bs0_1"]
    np.testing.assert_array_equal(g["ue_position"][:], truth["rx_pos"])
    np.testing.assert_allclose(g["trp_position"][:], truth["tx_pos"])
    assert g["csi"].shape == (9, 2, 2, 4, K)
    tau, state = g["path_tau"][:], g["link_state"][:]
    for t, m in enumerate(truth["tx"]):
        n = np.isfinite(m["delay"]).sum(1)
        np.testing.assert_array_equal(g["num_paths"][:, t], n)
        np.testing.assert_allclose(
            g["toa"][:, t],
            np.nanmin(np.where(n[:, None] > 0, m["delay"], 1), 1).astype(np.float32)
            * np.where(n, 1, np.nan),
        )
        any_los = (m["inter"] == 0).any(1)
        expect = np.where(
            n == 0, LinkState.NO_PATH, np.where(any_los, LinkState.LOS, LinkState.NLOS)
        )
        np.testing.assert_array_equal(state[:, t], expect)
    assert state[1].tolist() == [LinkState.LOS] * 2  # LoS weaker than a reflection is still LoS
    assert np.all(np.diff(tau, axis=-1)[np.isfinite(np.diff(tau, axis=-1))] >= 0)  # by delay
    # interaction digits -> Sionna bits per depth: 21 = diffraction (8) then reflection (1)
    np.testing.assert_array_equal(
        sd.digits_to_bits(np.array([0, 1, 21, 3, 4, np.nan]), 2),
        [[0, 0], [1, 0], [8, 1], [2, 0], [4, 0], [0, 0]],
    )
    assert sd.bits_to_digits(np.array([[8, 1], [0, 0], [2, 4]], np.uint8)).tolist() == [21, 0, 34]


def test_roundtrip_import_export_deepmimo_load(scen, tmp_path):
    pytest.importorskip("deepmimo")
    folder, truth, path = scen
    out = sd.export_scenario(path, tmp_path / "Exported")  # upper case: deepmimo lower-cases
    ds = sd.load_with_deepmimo(out)
    assert len(ds) == 2  # a MacroDataset: one Dataset per TRP
    for t, m in enumerate(truth["tx"]):
        d = ds[t]
        np.testing.assert_allclose(d.rx_pos, truth["rx_pos"])
        np.testing.assert_allclose(d.tx_pos.reshape(-1), truth["tx_pos"][t])
        for key, tol in (("delay", 1e-12), ("power", 1e-3), ("aod_el", 1e-3), ("inter", 0)):
            got, want = np.asarray(getattr(d, key)), m[key]
            p = max(got.shape[1], want.shape[1])
            got, want = (
                np.pad(x, ((0, 0), (0, p - x.shape[1])), constant_values=np.nan)
                for x in (got, want)
            )
            np.testing.assert_allclose(got, want, atol=tol, err_msg=key)
        phase_err = np.angle(np.exp(1j * np.deg2rad(np.asarray(d.phase) - m["phase"])))
        assert np.nanmax(np.abs(phase_err)) < 1e-4


def rel_err(h: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-link relative error over (ue_ant, trp_ant, subcarrier); links without paths skipped."""
    num = np.linalg.norm((h - ref).reshape(len(h), -1), axis=1)
    den = np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    return num[den > 0] / den[den > 0]


@pytest.mark.parametrize("drop", [None, *sd.CONVENTIONS])
def test_parity_with_deepmimo_generator(scen, drop):
    pytest.importorskip("deepmimo")
    folder, truth, path = scen
    st = open_store(path)
    g = st.root["dry"]
    freqs = st.root.attrs["carrier_frequency_hz"] + g["subcarrier"][:]
    ds = sd.load_with_deepmimo(folder)  # DeepMIMO reads the fixture itself
    csi = g["csi"][:]
    errs = []
    for t in range(2):
        h = sd.deepmimo_csi(
            ds[t],
            frequencies_hz=freqs,
            trp_array=ArrayConfig(**TRP_ARRAY),
            ue_array=ArrayConfig(**UE_ARRAY),
            trp_orientation=np.deg2rad(ORIENT_DEG),
            drop=drop,
        )
        errs.append(rel_err(h, csi[:, t]))
    err = np.concatenate(errs).max()
    if drop is None:
        assert err < 1e-4
    else:
        assert err > 1e-2, f"dropping {drop} should break parity"


def test_dynamic_folder_becomes_snapshots(tmp_path):
    root = tmp_path / "dyn"
    tx = np.array([[0.0, 0.0, 20.0]])
    for i in range(2):
        make_scenario(root / f"scene_{i:03d}", n_ue=4, seed=i, tx_pos=tx)
    params = json.loads((root / "scene_000" / "params.json").read_text())
    params["scene"]["num_scenes"] = 2
    (root / "params.json").write_text(json.dumps(params))
    st = sd.import_scenario(
        root, tmp_path / "dyn.zarr", num_subcarriers=8, bandwidth_hz=8 * SPACING
    )
    assert st.layout.sample == 8 and st.root.attrs["deepmimo_snapshot_offsets"] == [0, 4]
    if "snapshot" in st.root["dry"]:
        assert st.read("snapshot").tolist() == [0] * 4 + [1] * 4
    make_scenario(root / "scene_002", n_ue=4, seed=2, tx_pos=tx + 1)  # the TX moves
    params["scene"]["num_scenes"] = 3
    (root / "params.json").write_text(json.dumps(params))
    with pytest.raises(ConfigError, match="moving TXs are not supported"):
        sd.import_scenario(
            root, tmp_path / "dyn2.zarr", num_subcarriers=8, bandwidth_hz=8 * SPACING
        )


def test_export_refuses_stores_without_paths(tmp_path, scen):
    with pytest.raises(StoreError, match="no such store"):
        sd.export_scenario(tmp_path / "none.zarr", tmp_path / "out")
    with pytest.raises(StoreError, match="exists"):
        sd.export_scenario(scen[2], tmp_path)


def test_cli_import_and_export(scen, tmp_path):
    folder = scen[0]

    def simgen(*args):
        return subprocess.run(
            [sys.executable, "-c", "from simgen.cli import main; main()", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    r = simgen(
        "import-deepmimo", folder, "--out", tmp_path / "c.zarr", "--subcarriers", 8, "--trp-cols", 2
    )
    assert r.returncode == 0, r.stderr
    assert open_store(tmp_path / "c.zarr").layout.trp_ant == 2
    r = simgen("export-deepmimo", tmp_path / "c.zarr", "--out", tmp_path / "back")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back" / "params.json").is_file()
    r = simgen("import-deepmimo", tmp_path / "missing", "--out", tmp_path / "m.zarr")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such DeepMIMO" in r.stderr


@pytest.fixture(scope="module")
def sionna_store(tmp_path_factory) -> Path:
    """A real render: 2x2 TRP arrays tilted by look_at, 1x2 UE arrays, path arrays on."""
    from simgen.render import Renderer, plan

    tmp = tmp_path_factory.mktemp("render")
    cfg = write_config(
        tmp,
        "street_canyon.yaml",
        ue__sampling={"count": 12},
        solver__batch_ues=12,
        trp_array={"rows": 2, "cols": 2, "pattern": "iso", "polarization": "V"},
        ue__array={"rows": 1, "cols": 2, "pattern": "iso", "polarization": "V"},
        ofdm={"num_subcarriers": 16, "subcarrier_spacing_hz": 240e3},
    )
    r = Renderer(plan(cfg, out=tmp / "sc.zarr"), "cpu")
    r.render(r.open_store(overwrite=True))
    return tmp / "sc.zarr"


def test_steering_vector_reproduces_sionna_synthetic_array(sionna_store):
    """Sionna's per-antenna gains are the centre gain times our steering vectors."""
    st = open_store(sionna_store)
    g = st.root["dry"]
    a, p = sd.element_gains(st)
    trp, ue = sd.store_arrays(dict(st.root.attrs))
    rebuilt = sd.path_gains(
        a,
        p["path_aod_zen"],
        p["path_aod_az"],
        p["path_aoa_zen"],
        p["path_aoa_az"],
        trp,
        ue,
        g["trp_orientation"][:],
    )
    assert np.abs(g["trp_orientation"][:, 1]).min() > 0.1  # the arrays are really tilted
    assert np.linalg.norm(rebuilt - p["path_a"]) < 1e-5 * np.linalg.norm(p["path_a"])
    # a wrong convention (no orientation, or edge reference) does not reproduce them
    wrong = sd.path_gains(
        a,
        p["path_aod_zen"],
        p["path_aod_az"],
        p["path_aoa_zen"],
        p["path_aoa_az"],
        trp,
        ue,
        np.zeros_like(g["trp_orientation"][:]),
    )
    assert np.linalg.norm(wrong - p["path_a"]) > 1e-2 * np.linalg.norm(p["path_a"])


def test_parity_on_sionna_paths_through_export(sionna_store, tmp_path):
    """Export the rendered paths, open them with deepmimo: its channel equals our store CSI."""
    pytest.importorskip("deepmimo")
    st = open_store(sionna_store)
    g = st.root["dry"]
    trp, ue = sd.store_arrays(dict(st.root.attrs))
    folder = sd.export_scenario(sionna_store, tmp_path / "dm")
    ds = sd.load_with_deepmimo(folder, max_paths=st.layout.path)
    freqs = st.root.attrs["carrier_frequency_hz"] + g["subcarrier"][:]
    for t in range(st.layout.trp):
        h = sd.deepmimo_csi(
            ds[t],
            frequencies_hz=freqs,
            trp_array=trp,
            ue_array=ue,
            trp_orientation=g["trp_orientation"][t],
        )
        assert rel_err(h, g["csi"][:, t]).max() < 1e-4
