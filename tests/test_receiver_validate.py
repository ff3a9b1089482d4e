"""``simgen validate`` and ``simgen info`` on the receiver block (``noise_power_dbm``, ``snr_db``;
:mod:`simgen.receiver`): a tiny rendered store is the old contract (no block); the new one is
simulated by writing both arrays into a copy, as a render with the block writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from simgen_testutil import write_config
from typer.testing import CliRunner

from simgen import receiver
from simgen.cli import app
from simgen.release.info import summarize
from simgen.release.validate import check, validate

runner = CliRunner()
NF_DB, TEMP_K = 9.0, 300.0  # not the defaults, so the attributes are what the check reads


@pytest.fixture(scope="module")
def old_store(tmp_path_factory) -> Path:
    from simgen.render import Renderer, plan

    tmp = tmp_path_factory.mktemp("rx")
    cfg = write_config(
        tmp,
        "street_canyon.yaml",
        ue__sampling={"count": 12},
        solver={"max_depth": 1, "samples_per_src": 10000, "batch_ues": 12},
        weather={"rain_rates_mm_h": [0.0, 25.0]},
        output={"path": "unused", "chunk_samples": 6, "paths": False},
    )
    r = Renderer(plan(cfg, out=tmp / "old.zarr"), "cpu")
    r.render(r.open_store(overwrite=True))
    root = zarr.open_group(str(tmp / "old.zarr"), mode="r+")
    for cond in root.attrs["conditions"]:  # a store rendered before the receiver block
        for name in ("noise_power_dbm", "snr_db"):
            if name in root[cond]:
                del root[cond][name]
    _consolidate(tmp / "old.zarr")
    return tmp / "old.zarr"


def add_receiver_block(path: Path, nf_db: float = NF_DB, temp_k: float = TEMP_K) -> None:
    """Write noise_power_dbm and snr_db into every group, as the receiver contract says."""
    root = zarr.open_group(str(path), mode="r+")
    for cond in root.attrs["conditions"]:
        g = root[cond]
        sc = g["subcarrier"][:]
        bw = len(sc) * float(np.diff(sc)[0])
        n_trp = g["trp"].shape[0]
        noise = np.full(n_trp, receiver.noise_power_dbm(bw, nf_db, temp_k), np.float32)
        arr = g.create_array(
            "noise_power_dbm", shape=(n_trp,), dtype="float32", dimension_names=("trp",)
        )
        arr[...] = noise
        arr.attrs.update(units="dBm", noise_figure_db=nf_db, temperature_k=temp_k, bandwidth_hz=bw)
        csi = g["csi"]
        snr = g.create_array(
            "snr_db",
            shape=csi.shape[:2],
            chunks=(csi.chunks[0], n_trp),
            dtype="float32",
            fill_value=np.nan,
            dimension_names=("sample", "trp"),
        )
        snr[...] = receiver.snr_db(csi[:], g["trp_tx_power"][:], noise)
        snr.attrs.update(units="dB", long_name="per-element SNR")
    _consolidate(path)


def _consolidate(path: Path) -> None:
    """Root and per-group consolidated metadata, as simgen writes them."""
    root = zarr.open_group(str(path), mode="r")
    for cond in root.attrs["conditions"]:
        zarr.consolidate_metadata(str(path), path=cond)
    zarr.consolidate_metadata(str(path))


@pytest.fixture(scope="module")
def new_store(old_store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rx_new") / "new.zarr"
    shutil.copytree(old_store, path)
    add_receiver_block(path)
    return path


@pytest.fixture
def copy_of(tmp_path):
    def make(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return make


def test_old_store_passes_with_a_note_on_the_defaults(old_store):
    res = check(old_store)
    assert res.lines == []
    assert len(res.notes) == 1 and "predates the receiver block" in res.notes[0]
    assert "NF 7 dB, 290 K" in res.notes[0]
    out = runner.invoke(app, ["validate", str(old_store)])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("ok: ") and "note: receiver:" in out.output


def test_new_store_with_correct_values_is_clean(new_store):
    res = check(new_store)
    assert res.lines == [] and res.notes == []
    g = zarr.open_group(str(new_store), mode="r")["dry"]
    assert np.isfinite(g["snr_db"][:]).any()  # the check compares real numbers


def test_corrupted_snr_is_found(new_store, copy_of):
    path = copy_of(new_store)
    g = zarr.open_group(str(path), mode="r+")["rain_25mmh"]
    snr = g["snr_db"][:]
    n = int(np.isfinite(snr).sum())
    g["snr_db"][...] = snr + 1.0  # +1 dB on every link with signal
    lines = validate(path)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"rain_25mmh/snr_db: {n} link")
    assert "differs from trp_tx_power + 10 log10(mean |csi|^2) - noise_power_dbm" in lines[0]


def test_wrong_noise_power_is_found(new_store, copy_of):
    path = copy_of(new_store)
    g = zarr.open_group(str(path), mode="r+")["dry"]
    noise = g["noise_power_dbm"][:]
    g["noise_power_dbm"][0] = noise[0] + 3.0
    lines = validate(path)
    want = receiver.noise_power_dbm(g["noise_power_dbm"].attrs["bandwidth_hz"], NF_DB, TEMP_K)
    assert any(
        line.startswith("dry/noise_power_dbm: trp 0 (trp_west)") and f"= {want:.2f} dBm" in line
        for line in lines
    ), lines
    # snr_db was computed with the true noise: it disagrees with the stored one on trp 0
    assert any(line.startswith("dry/snr_db: ") for line in lines), lines


def test_noise_attributes_are_checked(new_store, copy_of):
    path = copy_of(new_store)
    g = zarr.open_group(str(path), mode="r+")["dry"]
    g["noise_power_dbm"].attrs["bandwidth_hz"] = 2 * g["noise_power_dbm"].attrs["bandwidth_hz"]
    g["noise_power_dbm"].attrs["noise_figure_db"] = 7.0  # the values were made with 9 dB
    zarr.consolidate_metadata(str(path))
    lines = validate(path)
    assert any("attribute bandwidth_hz" in line and "is not K x Δf" in line for line in lines)
    assert sum("dry/noise_power_dbm: trp" in line for line in lines) == 2, lines


def test_snr_without_noise_power_is_found(new_store, copy_of):
    path = copy_of(new_store)
    shutil.rmtree(path / "dry" / "noise_power_dbm")
    zarr.consolidate_metadata(str(path))
    lines = validate(path)
    assert "dry/snr_db: present without noise_power_dbm (the receiver block has both)" in lines


def test_info_prints_the_snr_distribution(old_store, new_store):
    new = summarize(new_store)
    assert "predates the receiver block" not in new
    g = zarr.open_group(str(new_store), mode="r")["dry"]
    snr, noise = g["snr_db"][:, 0], float(g["noise_power_dbm"][0])
    v = snr[np.isfinite(snr)]
    p10, med, p90 = np.percentile(v, [10, 50, 90])
    line = f"    {'trp_west':<12s}{p10:.1f} / {med:.1f} / {p90:.1f}  ({len(v)}/{len(snr)} links;"
    assert line in new and f"noise {noise:.1f} dBm" in new, new
    assert new.count("SNR (dB)") == 2  # one block per condition

    old = summarize(old_store)
    assert "predates the receiver block" in old and "NF 7 dB, 290 K" in old
    assert old.count("SNR (dB)") == 2
    # computed from csi with the defaults: the same numbers as snr_db made with them
    bw = float(g["noise_power_dbm"].attrs["bandwidth_hz"])
    default = receiver.noise_power_dbm(bw)
    assert f"noise {default:.1f} dBm" in old
    snr = receiver.snr_db(g["csi"][:], g["trp_tx_power"][:], default)[:, 0]
    v = snr[np.isfinite(snr)]
    p10, med, p90 = np.percentile(v, [10, 50, 90])
    dry = old.split("[dry]")[1].split("[rain_25mmh]")[0]
    assert f"    {'trp_west':<12s}{p10:.1f} / {med:.1f} / {p90:.1f}  ({len(v)}/" in dry, dry
    res = runner.invoke(app, ["info", str(old_store)])
    assert res.exit_code == 0 and "SNR (dB)" in res.stdout
