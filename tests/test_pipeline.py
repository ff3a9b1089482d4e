"""The pipelined render writes the same bytes as the serial one; receiver noise in the store;
the memory model behind batch_ues: auto."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from simgen_testutil import write_config

from simgen import memory, receiver
from simgen.config import load_config, parse_config
from simgen.errors import ConfigError
from simgen.render import STAGES, Renderer, plan


def arrays_of(path) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(path), mode="r")
    out = {}
    for cond in root.attrs["conditions"]:
        for name, arr in root[cond].arrays():
            out[f"{cond}/{name}"] = arr[...]
    return out


@pytest.fixture(scope="module")
def two_renders(tmp_path_factory):
    """street_canyon (paths and CIR on, dry and 50 mm/h) rendered pipelined and serially."""
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = write_config(
        tmp,
        "street_canyon.yaml",
        ue__sampling={"count": 24},
        solver__samples_per_src=20000,
        solver__batch_ues=5,
        output__chunk_samples=8,
        output__cir_taps=16,
        weather={"rain_rates_mm_h": [0.0, 50.0]},
        frequency_hz=28e9,
    )
    out = {}
    for mode in ("pipeline", "serial"):
        r = Renderer(plan(cfg, out=tmp / f"{mode}.zarr", pipeline=mode == "pipeline"), "cpu")
        res = r.render(r.open_store())
        assert res.shards_rendered == 3 and set(res.times) == set(STAGES)
        out[mode] = (arrays_of(tmp / f"{mode}.zarr"), res, r)
    return out


def test_pipelined_render_is_byte_identical_to_serial(two_renders):
    pipe, serial = two_renders["pipeline"][0], two_renders["serial"][0]
    assert set(pipe) == set(serial)
    for cond in ("dry", "rain_50mmh"):
        for name in ("csi", "cir", "path_a", "snr_db", "noise_power_dbm", "toa", "link_state"):
            assert f"{cond}/{name}" in pipe
    for key, value in pipe.items():
        assert value.dtype == serial[key].dtype, key
        assert value.tobytes() == serial[key].tobytes(), key
    res = two_renders["pipeline"][1]
    assert "waiting" in res.time_split() and res.times["trace"] > 0


def test_snr_and_noise_power_in_the_store(two_renders):
    arrays, _, r = two_renders["pipeline"]
    cfg = r.plan.cfg
    bandwidth = cfg.ofdm.num_subcarriers * cfg.ofdm.spacing_hz
    noise = receiver.noise_power_dbm(bandwidth)  # defaults: 7 dB, 290 K
    assert np.allclose(arrays["dry/noise_power_dbm"], noise)
    tx = arrays["dry/trp_tx_power"]
    for cond in ("dry", "rain_50mmh"):
        want = receiver.snr_db(arrays[f"{cond}/csi"], tx, arrays[f"{cond}/noise_power_dbm"])
        np.testing.assert_array_equal(arrays[f"{cond}/snr_db"], want)
    dry, rain = arrays["dry/snr_db"], arrays["rain_50mmh/snr_db"]
    signal = np.isfinite(dry)
    assert signal.any() and (np.isnan(dry) == (arrays["dry/num_paths"] == 0)).all()
    assert (rain[signal] < dry[signal]).all()  # 28 GHz, 50 mm/h: rain lowers every SNR
    root = zarr.open_group(str(r.plan.out), mode="r")
    attrs = root["dry"]["noise_power_dbm"].attrs
    assert attrs["units"] == "dBm" and attrs["noise_figure_db"] == 7.0
    assert attrs["temperature_k"] == 290.0 and attrs["bandwidth_hz"] == bandwidth
    assert root["dry"]["snr_db"].attrs["units"] == "dB"
    assert root["dry"]["snr_db"].metadata.dimension_names == ("sample", "trp")


def test_receiver_block_keeps_the_config_hash_when_default(tmp_path):
    base = load_config(write_config(tmp_path, "street_canyon.yaml"))[0]
    text = (tmp_path / "scene.yaml").read_text()
    same = parse_config(text + "receiver: {noise_figure_db: 7, temperature_k: 290}\n")
    assert same.content_hash() == base.content_hash()
    other = parse_config(text + "receiver: {noise_figure_db: 9}\n")
    assert other.content_hash() != base.content_hash()
    for bad, msg in (("temperature_k: 0", "greater than 0"), ("nf: 3", "unknown key")):
        with pytest.raises(ConfigError, match=msg):
            parse_config(text + f"receiver: {{{bad}}}\n")


def test_memory_model_picks_the_largest_batch_that_fits():
    cfg = load_config("scenes/paris_vinloc_pool64.yaml")[0]
    shape = memory.TraceShape.of(cfg, 64, 100_000)
    peaks = [memory.predict_peak_bytes(shape, n) for n in (1, 5, 50)]
    assert peaks[0] < peaks[1] < peaks[2]
    budget = peaks[1] + 1.0
    assert memory.largest_batch(shape, budget, 50) == 5
    assert memory.largest_batch(shape, 1.0, 50) == 1  # nothing fits: one UE per call
    assert memory.largest_batch(shape, 1e15, 50) == 50  # capped
    assert memory.budget_bytes(2.0) == 2 * 2**30
    assert 0 < memory.available_bytes() < 2**50


def test_explicit_batch_predicted_not_to_fit_warns(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml", solver__batch_ues=48)
    r = Renderer(plan(cfg, memory_gb=0.1), "cpu")
    assert r.batch_ues == 48 and r.memory_note.startswith("warning: batch_ues 48")
    auto = Renderer(
        plan(write_config(tmp_path, "street_canyon.yaml", solver__batch_ues="auto")), "cpu"
    )
    assert auto.batch_ues >= 1 and "batch_ues auto" in auto.memory_note


def test_a_store_made_before_the_receiver_variables_resumes(tmp_path):
    import shutil

    from simgen_testutil import OPEN_SCENE

    cfg = write_config(tmp_path, OPEN_SCENE)
    r = Renderer(plan(cfg, out=tmp_path / "old.zarr"), "cpu")
    store = r.open_store()
    for name in ("snr_db", "noise_power_dbm"):  # what an older simgen laid out
        shutil.rmtree(tmp_path / "old.zarr" / "dry" / name)
    res = r.render(r.open_store())
    assert res.shards_rendered == len(store.layout.shards)
    root = zarr.open_group(str(tmp_path / "old.zarr"), mode="r")
    assert "snr_db" not in root["dry"] and root["dry"]["csi"][...].any()
