"""Environment pools rendered for real (3 procedural cities + Sionna's simple street canyon,
few UEs): one store that xarray reads per environment, the same bytes in one process and on a
Dask LocalCluster, resume per environment, info / validate / publish, loc's CSIStore."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

from simgen.cli import main
from simgen.errors import StoreError
from simgen.pool import load_pool
from simgen.pool_render import Options, render_pool

POOL = {
    "name": "mini",
    "frequency_hz": 3.5e9,
    "ofdm": {"num_subcarriers": 8, "subcarrier_spacing_hz": 30e3},
    "trp_array": {"rows": 1, "cols": 2},
    "trps": {"pool": {"count": 2, "placement": "rooftops", "min_spacing_m": 10.0, "seed": 5}},
    "ue": {
        "regions": [{"x": [-50.0, 50.0], "y": [-50.0, 50.0]}],
        "sampling": {"count": 8},
        "seed": 7,
    },
    "solver": {"max_depth": 1, "samples_per_src": 10000},
    "output": {"path": "unused.zarr", "chunk_samples": 4},
    "environments": [
        {"procedural": {"count": 3, "seed": 1, "size_m": 120.0}},
        {
            "scene": "simple_street_canyon",
            "trps": [
                {"name": "trp_west", "position": [-45.0, 0.0, 12.0]},
                {"name": "trp_east", "position": [45.0, 0.0, 12.0]},
            ],
        },
    ],
    "split": {"unseen_fraction": 0.25, "seed": 0},
}
NAMES = ["proc_s1", "proc_s2", "proc_s3", "simple_street_canyon"]


def write_pool(tmp, **changes) -> object:
    d = json.loads(json.dumps(POOL))
    d.update(changes)
    path = tmp / "pool.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["simgen", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def arrays(path, env: str) -> dict[str, bytes]:
    ds = xr.open_zarr(str(path), group=f"{env}/dry").load()
    return {k: ds[k].values.tobytes() for k in ds.variables}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("SIMGEN_CACHE", str(path))  # procedural scenes are built here (and by workers)
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def ref(tmp_path_factory, cache):
    tmp = tmp_path_factory.mktemp("poolref")
    pool = load_pool(write_pool(tmp))
    out = tmp / "ref.zarr"
    summaries = render_pool(pool, Options(out=out, device="cpu"))
    return pool, out, summaries


def test_pool_store_layout_split_and_distinct_environments(ref):
    pool, out, summaries = ref
    assert [s["name"] for s in summaries] == NAMES and not any(s["skipped"] for s in summaries)
    root = zarr.open_group(str(out), mode="r")
    attrs = dict(root.attrs)
    assert attrs["pool"] is True and attrs["complete"] is True
    assert [e["name"] for e in attrs["environments"]] == NAMES
    assert [e["kind"] for e in attrs["environments"]] == ["procedural"] * 3 + ["scene"]
    assert attrs["split"]["unseen"] == pool.split["unseen"] and len(attrs["split"]["unseen"]) == 1
    assert {e["split"] for e in attrs["environments"]} == {"seen", "unseen"}
    trps, ues = [], []
    for e in attrs["environments"]:
        ds = xr.open_zarr(str(out), group=f"{e['name']}/dry")  # xarray reads every environment
        sub = zarr.open_group(str(out / e["name"]), mode="r").attrs
        assert sub["config_hash"] == e["config_hash"] and sub["complete"] is True
        assert ds.sizes["sample"] == 8 and ds.sizes["trp"] == 2
        trps.append(ds.trp_position.values.tobytes())
        ues.append(ds.ue_position.values.tobytes())
    assert len(set(trps)) == 4 and len(set(ues)) == 4  # own TRP layout and UEs per environment
    # each procedural city is its own scene (own cache folder, its own world.json beside it)
    scenes = {
        zarr.open_group(str(out / n), mode="r").attrs["provenance"]["scene_files_sha256"]
        for n in NAMES[:3]
    }
    assert len(scenes) == 3


def test_cluster_render_is_identical_to_one_process(ref, tmp_path, monkeypatch, capsys):
    pool, out, _ = ref
    dist = tmp_path / "dist.zarr"
    path = write_pool(tmp_path)
    code, _, err = cli(
        monkeypatch,
        capsys,
        "render",
        path,
        "--out",
        dist,
        "--device",
        "cpu",
        "--cluster",
        "local:2",
    )
    assert code == 0, err
    assert "4 environments rendered" in err and "on local:2" in err
    for name in NAMES:
        a, b = arrays(out, name), arrays(dist, name)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k], (name, k)
    assert zarr.open_group(str(dist), mode="r").attrs["config_hash"] == pool.content_hash()


def test_resume_skips_finished_environments_and_finishes_a_killed_one(ref, tmp_path):
    pool, out, _ = ref
    copy = tmp_path / "resume.zarr"
    shutil.copytree(out, copy)
    # a render killed inside proc_s2: its last shard not written (fill values) nor marked done,
    # the store not complete; proc_s3 never started
    env = zarr.open_group(str(copy / "proc_s2"), mode="r+")
    env["shard_done"][1] = 0
    env.attrs["complete"] = False
    env["dry"]["csi"][4:8] = 0
    shutil.rmtree(copy / "proc_s3")
    zarr.open_group(str(copy), mode="r+").attrs["complete"] = False
    got = render_pool(pool, Options(out=copy, device="cpu"))
    by = {s["name"]: s for s in got}
    assert by["proc_s1"]["skipped"] and by["simple_street_canyon"]["skipped"]
    assert not by["proc_s2"]["skipped"] and by["proc_s2"]["links"] == 4 * 2  # one shard only
    assert by["proc_s3"]["links"] == 8 * 2
    assert zarr.open_group(str(copy), mode="r").attrs["complete"] is True
    for name in NAMES:
        assert arrays(copy, name) == arrays(out, name), name


def test_pool_from_another_config_is_refused(ref, tmp_path, monkeypatch, capsys):
    pool, out, _ = ref
    copy = tmp_path / "other.zarr"
    shutil.copytree(out, copy)
    path = write_pool(tmp_path, split={"unseen_fraction": 0.25, "seed": 3})
    code, _, err = cli(monkeypatch, capsys, "render", path, "--out", copy, "--device", "cpu")
    assert code == 2 and "rendered from a different configuration" in err, err
    with pytest.raises(StoreError, match="different configuration"):
        render_pool(load_pool(path), Options(out=copy, device="cpu"))
    from simgen.safety import is_ours

    assert is_ours(copy)  # a pool is simgen's own: --overwrite may replace it
    (copy / "zarr.json").write_text("{}")
    assert not is_ours(copy)


def test_info_validate_publish_cover_the_pool(ref, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlcroissant")
    pool, out, summaries = ref
    code, text, _ = cli(monkeypatch, capsys, "info", out)
    assert code == 0
    unseen = pool.split["unseen"][0]
    assert "4 environments, 3 seen / 1 unseen" in text and f"unseen: {unseen}" in text
    for s in summaries:  # one row per environment with its link-state mix (% of its links)
        row = next(ln for ln in text.splitlines() if ln.startswith(s["name"] + " "))
        total = sum(s["mix"].values())
        assert f"{100 * s['mix']['NLOS'] / total:.1f}" in row and "8 x 2" in row
    code, text, err = cli(monkeypatch, capsys, "validate", "-q", out)
    assert code == 0, text + err
    assert "pool of 4 environments (1 unseen)" in text

    dist = tmp_path / "dist"
    code, text, err = cli(
        monkeypatch, capsys, "publish", out, "--out", dist, "--no-footprints", "--device", "cpu"
    )
    assert code == 0, err
    assert "mlcroissant: ok" in text
    card = (dist / "README.md").read_text()
    for name in NAMES:
        assert f"`{name}`" in card
    assert f"Unseen: `{unseen}`" in card and "seed 0" in card
    front = yaml.safe_load(card.split("---")[1])
    assert {c["config_name"] for c in front["configs"]} == {f"{n}-dry" for n in NAMES}
    assert {c["data_files"][0]["split"] for c in front["configs"]} == {"seen", "unseen"}
    import mlcroissant as mlc

    ds = mlc.Dataset(jsonld=str(dist / "croissant.json"))
    issues = ds.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    assert {rs.name for rs in ds.metadata.record_sets} == {f"{n}/dry" for n in NAMES}
    code, text, err = cli(monkeypatch, capsys, "validate", "-q", dist / "ref.zarr")
    assert code == 0 and "files match MANIFEST.sha256" in text, text + err

    # a pool missing an environment, or with one that is broken, has findings
    bad = tmp_path / "bad.zarr"
    shutil.copytree(out, bad)
    shutil.rmtree(bad / "proc_s1")
    zarr.open_group(str(bad / "proc_s2"), mode="r+")["shard_done"][0] = 0
    code, text, _ = cli(monkeypatch, capsys, "validate", "-q", bad)
    assert code == 1
    assert "proc_s1: environment group is missing" in text
    assert any(ln.startswith("proc_s2/") for ln in text.splitlines()), text


def test_csistore_reads_a_pool_by_environment_and_split(ref):
    from loc.data import CSIStore, pool_stores
    from loc.errors import DataError

    pool, out, _ = ref
    with pytest.raises(DataError, match="environment pool of 4 environments.*unseen: "):
        CSIStore(out)
    with pytest.raises(DataError, match="has no environment 'nope'"):
        CSIStore(out, environment="nope")
    one = CSIStore(out, "dry", environment="proc_s2")
    ds = xr.open_zarr(str(out), group="proc_s2/dry")
    np.testing.assert_array_equal(one.xy, ds.ue_position.values[:, :2])
    raw = one.read_raw(np.arange(3))  # (sample, trp x ue_ant, trp_ant, subcarrier)
    np.testing.assert_array_equal(raw, ds.csi.values[:3].reshape(3, 2, 2, 8))
    unseen = pool_stores(out, split="unseen")
    seen = pool_stores(out, split="seen")
    assert list(unseen) == pool.split["unseen"] and list(seen) == pool.split["seen"]
    assert set(pool_stores(out, environment=["proc_s1", "proc_s3"])) == {"proc_s1", "proc_s3"}


def test_a_killed_pool_render_resumes_to_the_same_bytes(tmp_path, cache):
    """SIGKILL the CLI while it renders the second environment; the re-run skips the first,
    finishes the second from its marked shards and writes the same bytes as one clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    canyon = {"scene": "simple_street_canyon", "ue": {"sampling": {"count": 40}}}
    canyon["trps"] = POOL["environments"][1]["trps"]
    free = {"scene": "empty", "name": "free", "trps": canyon["trps"]}
    path = write_pool(tmp_path, environments=[free, canyon], split={"unseen_fraction": 0.0})
    pool = load_pool(path)
    clean = tmp_path / "clean.zarr"
    render_pool(pool, Options(out=clean, device="cpu"))
    out = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "simgen", "render", str(path), "--out", str(out), "-q"]
    proc = subprocess.Popen([*cmd, "--device", "cpu"], start_new_session=True)
    done = out / "simple_street_canyon" / "shard_done"
    deadline = time.time() + 240
    marked = 0
    while time.time() < deadline and proc.poll() is None:
        if (done / "zarr.json").is_file():
            marked = int(zarr.open_array(str(done), mode="r")[:].sum())
            if marked >= 2:
                break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= marked < 10, f"the kill must land inside the second environment ({marked})"
    assert zarr.open_group(str(out), mode="r").attrs["complete"] is False
    got = render_pool(pool, Options(out=out, device="cpu"))
    assert got[0]["skipped"] and not got[1]["skipped"]
    assert 0 < got[1]["links"] < 40 * 2  # only the shards that were not marked
    for name in ("free", "simple_street_canyon"):
        assert arrays(out, name) == arrays(clean, name), name
