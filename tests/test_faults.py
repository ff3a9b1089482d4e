"""Fault injection for data safety (issue #14): deleting, locking, resuming, errors.

Each test injects one fault on real components (Zarr stores, Sionna RT renders of tiny
scenes, the real CLI in a subprocess, a Dask LocalCluster on loopback) and checks that the
outcome is a refusal or a one-line error, and that no data is lost. docs/reliability.md
tabulates them.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml
import zarr
from simgen_testutil import OPEN_SCENE, write_config

from simgen import safety
from simgen.errors import StoreError, UnsafePathError
from simgen.render import Renderer, plan

REPO = Path(__file__).resolve().parent.parent


def simgen(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (this tree's simgen first on the path)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", "from simgen.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def one_line_error(res: subprocess.CompletedProcess, fragment: str) -> str:
    """Assert exit 2 with exactly one 'error: ...' line containing ``fragment``."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def render_in_process(cfg: Path, out: Path) -> Path:
    r = Renderer(plan(cfg, out=out), "cpu")
    r.render(r.open_store())
    return out


def dataset(path: Path) -> dict[str, bytes]:
    """Every variable of the dry group as bytes (to compare stores exactly)."""
    ds = xr.open_zarr(path, group="dry").load()
    return {name: ds[name].values.tobytes() for name in ds.data_vars}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """A finished store of the open scene (12 UEs, free space, paths kept): seconds on CPU."""
    tmp = tmp_path_factory.mktemp("small")
    return render_in_process(write_config(tmp, OPEN_SCENE), tmp / "ds.zarr")


# -- the one rule for deleting ----------------------------------------------------------------


def test_remove_if_ours_deletes_only_stores_exports_and_empty_folders(tmp_path, small_store):
    store = tmp_path / "copy.zarr"
    shutil.copytree(small_store, store)
    (tmp_path / "empty").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    (victim / "zarr.json").write_text('{"node_type": "group", "attributes": {}}')  # not ours
    link = tmp_path / "link.zarr"
    link.symlink_to(store)

    assert safety.is_simgen_store(store) and safety.is_ours(store)
    for path in (victim, link):
        with pytest.raises(UnsafePathError, match="refusing to delete"):
            safety.remove_if_ours(path)
    assert (victim / "thesis.tex").read_text() == "years of work"
    with pytest.raises(UnsafePathError, match="must not be, contain or lie inside the input"):
        safety.remove_if_ours(store, inputs=[store / "zarr.json"])
    run = tmp_path / "run"  # a loc suite run folder: ours only through its marker file
    run.mkdir()
    (run / "suite_run.json").write_text("{}")
    (run / "ckpt.pt").write_bytes(b"x")
    with pytest.raises(UnsafePathError):
        safety.remove_if_ours(run)
    safety.remove_if_ours(run, marker="suite_run.json")
    safety.remove_if_ours(store)
    safety.remove_if_ours(tmp_path / "empty")
    safety.remove_if_ours(tmp_path / "absent")  # nothing to do
    assert not store.exists() and not (tmp_path / "empty").exists() and not run.exists()


def test_cwd_ancestors_and_file_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for path in (".", "", str(tmp_path), "/"):
        with pytest.raises(UnsafePathError):
            safety.check_output(path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UnsafePathError, match="is a file, not a folder"):
        safety.check_output(tmp_path / "afile" / "out.zarr")


# -- item 1: render --overwrite ---------------------------------------------------------------


def test_render_overwrite_refuses_a_folder_that_is_not_a_store(tmp_path):
    cfg = write_config(tmp_path, OPEN_SCENE)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    res = simgen("render", str(cfg), "--out", str(victim), "--overwrite", "-q")
    one_line_error(res, "refusing to delete")
    assert (victim / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("how", ["--out .", "output.path empty", "--out <folder of the YAML>"])
def test_render_overwrite_refuses_cwd_and_inputs(tmp_path, how):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    cfg = write_config(work, OPEN_SCENE)
    args = ["render", str(cfg), "--overwrite", "-q"]
    if how == "--out .":
        args += ["--out", "."]
    elif how == "output.path empty":
        data = yaml.safe_load(cfg.read_text())
        data["output"]["path"] = ""
        cfg.write_text(yaml.safe_dump(data))
    else:
        args += ["--out", str(work)]
        work = tmp_path  # run elsewhere: the folder is refused as holding the YAML
    res = simgen(*args, cwd=work)
    one_line_error(res, "refusing" if how != "--out <folder of the YAML>" else "input")
    assert (tmp_path / "work" / "notes.txt").read_text() == "keep me" and cfg.is_file()


# -- item 2: publish into the store's own folder ----------------------------------------------


def test_publish_into_the_folder_of_the_store_is_refused(tmp_path, small_store):
    pub = tmp_path / "pub"
    pub.mkdir()
    shutil.copytree(small_store, pub / "ds.zarr")
    before = dataset(pub / "ds.zarr")
    res = simgen("publish", "pub/ds.zarr", "--out", "pub", "--no-footprints", cwd=tmp_path)
    one_line_error(res, "must not be, contain or lie inside the input")
    assert dataset(pub / "ds.zarr") == before


def test_republish_replaces_only_its_own_store_copy(tmp_path, small_store):
    from simgen.release.publish import publish

    dist = tmp_path / "dist"
    for mode in ("copy", "copy", "zip", "zip"):  # an earlier release of ours is replaced
        publish(small_store, dist, mode=mode, footprints=False, device="cpu")
    (dist / "notes.md").write_text("mine")
    publish(small_store, dist, mode="copy", footprints=False, device="cpu")
    assert (dist / "notes.md").read_text() == "mine"  # not ours: kept
    assert safety.is_simgen_store(dist / "ds.zarr") and not (dist / "ds.zarr.zip").exists()
    shutil.rmtree(dist / "ds.zarr")
    (dist / "ds.zarr").mkdir()
    (dist / "ds.zarr" / "thesis.tex").write_text("years of work")
    with pytest.raises(UnsafePathError, match="refusing to delete"):
        publish(small_store, dist, mode="copy", footprints=False, device="cpu")
    assert (dist / "ds.zarr" / "thesis.tex").is_file()


# -- item 3: export-deepmimo onto its own source ----------------------------------------------


def test_export_deepmimo_onto_the_source_store_is_refused(tmp_path, small_store):
    store = tmp_path / "s.zarr"
    shutil.copytree(small_store, store)
    before = dataset(store)
    res = simgen("export-deepmimo", "s.zarr", "--out", "s.zarr", "--overwrite", cwd=tmp_path)
    one_line_error(res, "must not be, contain or lie inside the input")
    assert dataset(store) == before
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    res = simgen("export-deepmimo", "s.zarr", "--out", "victim", "--overwrite", cwd=tmp_path)
    one_line_error(res, "refusing to delete")
    assert (victim / "thesis.tex").exists()
    # an export of ours is replaced, and only after the new one is complete
    assert simgen("export-deepmimo", "s.zarr", "--out", "dm", cwd=tmp_path).returncode == 0
    assert safety.is_simgen_export(tmp_path / "dm")
    res = simgen("export-deepmimo", "s.zarr", "--out", "dm", "--overwrite", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not list(tmp_path.glob("dm.writing*"))


# -- item 11: one writer per store ------------------------------------------------------------


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    cfg = write_config(tmp_path, OPEN_SCENE)
    out = tmp_path / "out.zarr"
    with safety.output_lock(out):
        with pytest.raises(StoreError, match="being written by another simgen process"):
            with safety.output_lock(out):
                pass
        res = simgen("render", str(cfg), "--out", str(out), "-q")
        one_line_error(res, "being written by another simgen process")
    assert not out.exists()
    with safety.output_lock(out):  # released: free again
        pass


def test_two_renders_to_the_same_new_store(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml", ue__sampling={"count": 16})
    out = tmp_path / "race.zarr"
    args = ["render", str(cfg), "--out", str(out), "-q", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", "from simgen.cli import main; main()", *args]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for rc, stderr in results:
        if rc == 2:  # the loser: one line, no traceback
            assert "being written by another simgen process" in stderr, stderr
            assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert codes == [0, 2], "the two renders did not overlap; the race was not exercised"
    assert zarr.open_group(str(out), mode="r").attrs["complete"]
    assert not list(tmp_path.glob("*.creating"))


# -- item 12: resume only what was made the same way ------------------------------------------


def _path_scene(tmp: Path) -> Path:
    """A copy of Sionna's simple street canyon as a path scene (XML + PLY meshes)."""
    import sionna.rt

    src = Path(sionna.rt.__file__).parent / "scenes" / "simple_street_canyon"
    shutil.copytree(src, tmp / "canyon")
    return tmp / "canyon" / "simple_street_canyon.xml"


def test_resume_refuses_changed_scene_meshes(tmp_path):
    xml = _path_scene(tmp_path)
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        scene=str(xml),
        ue__sampling={"count": 4},
        solver__max_depth=1,
        solver__samples_per_src=1000,
    )
    out = tmp_path / "out.zarr"
    assert simgen("render", str(cfg), "--out", str(out), "-q").returncode == 0
    meshes = sorted((xml.parent / "meshes").glob("*.ply"))
    a, b = meshes[0].read_bytes(), meshes[1].read_bytes()
    meshes[0].write_bytes(b)  # a building moved: the geometry differs, the scene still loads
    meshes[1].write_bytes(a)
    res = simgen("render", str(cfg), "--out", str(out), "-q")
    one_line_error(res, "the scene XML or mesh files changed")
    res = simgen("render", str(cfg), "--out", str(out), "-q", "--force-resume")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: --force-resume"), res.stderr
    forced = zarr.open_group(str(out), mode="r").attrs["forced_resumes"]
    assert forced == ["the scene XML or mesh files changed"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"versions": {"sionna-rt": "0.0.1"}}, "sionna-rt 0.0.1 ->"),  # before an upgrade
        ({"versions": {"drjit": "0.0.1"}}, "drjit 0.0.1 ->"),
        ({"provenance": {"backend": "cuda"}}, "backend cuda -> llvm"),  # started on a GPU
        ({"provenance": None}, "records no scene-file hash"),  # an older simgen's store
    ],
    ids=["sionna-rt", "drjit", "backend", "no-provenance"],
)
def test_resume_refuses_other_versions_or_backend(tmp_path, small_store, change, expected):
    out = tmp_path / "ds.zarr"
    shutil.copytree(small_store, out)
    root = zarr.open_group(str(out), mode="r+")
    for key, update in change.items():
        old = copy.deepcopy(dict(root.attrs.get(key) or {}))
        root.attrs[key] = None if update is None else {**old, **update}
    cfg = write_config(tmp_path, OPEN_SCENE)
    r = Renderer(plan(cfg, out=out), "cpu")
    with pytest.raises(StoreError, match="--force-resume") as exc:
        r.open_store()
    assert expected in str(exc.value)
    r.open_store(force_resume=True)
    assert any(expected in d for d in r.forced_resume)


# -- item 13: Dask workers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    """A real LocalCluster (one worker process on loopback) whose worker runs in another
    working directory than the client, as a remote worker would."""
    from distributed import Client, LocalCluster

    elsewhere = tmp_path_factory.mktemp("worker_cwd")
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(os.chdir, str(elsewhere))
        yield client, elsewhere


def test_cluster_workers_get_an_absolute_store_path(tmp_path, monkeypatch, dask_client):
    from simgen.cluster import render_distributed

    client, elsewhere = dask_client
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path, OPEN_SCENE)
    ref = render_in_process(cfg, tmp_path / "ref.zarr")
    r = Renderer(plan(cfg, out="rel.zarr"), "cpu")  # relative to the client's directory
    assert render_distributed(r, client.scheduler.address, "cpu") == 12
    assert dataset(tmp_path / "rel.zarr") == dataset(ref)
    assert not (elsewhere / "rel.zarr").exists()


def test_cluster_worker_with_other_ue_positions_is_refused(tmp_path, dask_client):
    from simgen.cluster import render_shard

    client, _ = dask_client
    cfg = write_config(tmp_path, OPEN_SCENE)
    store = tmp_path / "fresh.zarr"
    Renderer(plan(cfg, out=store), "cpu").open_store()  # laid out, nothing rendered yet
    other = copy.deepcopy(OPEN_SCENE)
    other["ue"]["seed"] = 4  # a worker whose UE sampling differs from the store's
    (tmp_path / "other").mkdir()
    p_other = plan(write_config(tmp_path / "other", other), out=store.resolve())
    fut = client.submit(render_shard, p_other, "cpu", None, 0, pure=False)
    with pytest.raises(StoreError, match="UE positions for shard 0 differ"):
        fut.result()
    assert not zarr.open_array(str(store / "shard_done"))[:].any()


# -- item 14: one-line errors, validation before anything is created --------------------------


def test_bad_inputs_give_one_line_errors_and_create_nothing(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    one_line_error(simgen("render", str(binary), "-q"), "not a UTF-8 text file")

    same = write_config(
        tmp_path,
        OPEN_SCENE,
        trps=[{"name": "a", "position": [0.0, 0.0, 10.0], "look_at": [0.0, 0.0, 10.0]}],
    )
    one_line_error(simgen("render", str(same), "-q"), "look_at equals position")

    (tmp_path / "afile").write_text("x")
    cfg = write_config(tmp_path, OPEN_SCENE)
    res = simgen("render", str(cfg), "--out", str(tmp_path / "afile" / "out.zarr"), "-q")
    one_line_error(res, "is a file, not a folder")

    rain = write_config(
        tmp_path, OPEN_SCENE, frequency_hz=0.9e9, weather={"rain_rates_mm_h": [0, 25]}
    )
    one_line_error(simgen("render", str(rain), "-q"), "ITU-R P.838-3")
    assert not (tmp_path / "out.zarr").exists() and not list(tmp_path.glob("*.creating"))


def _run_cli(monkeypatch, *args) -> int:
    """The CLI's main() in this process (so a fault can be injected); returns the exit code."""
    from simgen.cli import main

    monkeypatch.setattr(sys, "argv", ["simgen", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_full_disk_gives_one_line_and_the_store_resumes(tmp_path, monkeypatch, capsys):
    from zarr.storage import LocalStore

    cfg = write_config(tmp_path, OPEN_SCENE, ue__sampling={"count": 24})
    ref = render_in_process(cfg, tmp_path / "ref.zarr")
    out = tmp_path / "out.zarr"
    real_set = LocalStore.set
    writes = {"n": 0}

    async def full_after_a_while(self, key, value):
        if "csi/c" in key or "shard_done/c" in key:
            writes["n"] += 1
            if writes["n"] > 5:  # the disk fills up mid-render
                raise OSError(28, "No space left on device", str(Path(self.root) / key))
        return await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_after_a_while)
    code = _run_cli(monkeypatch, "render", str(cfg), "--out", str(out), "-q")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], err
    assert "re-run the same command to resume" in lines[0]
    done = zarr.open_array(str(out / "shard_done"), mode="r")[:]
    assert 0 < done.sum() < len(done) and not zarr.open_group(str(out)).attrs["complete"]

    monkeypatch.setattr(LocalStore, "set", real_set)  # space freed
    assert _run_cli(monkeypatch, "render", str(cfg), "--out", str(out), "-q") == 0
    assert zarr.open_group(str(out), mode="r").attrs["complete"]
    assert dataset(out) == dataset(ref)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1.2 MB filesystem (tmpfs); skipped where mounting is not allowed (not root)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mnt)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC test covers it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_real_full_disk_then_resume(tmp_path, tiny_disk, monkeypatch, capsys):
    cfg = write_config(
        tmp_path,
        OPEN_SCENE,
        ue__sampling={"count": 600},
        output={"path": "x", "chunk_samples": 50, "paths": True, "max_paths": 4},
    )
    ref = render_in_process(cfg, tmp_path / "ref.zarr")  # about 2.8 MB on disk
    out = tiny_disk / "out.zarr"
    assert _run_cli(monkeypatch, "render", str(cfg), "--out", str(out), "-q") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], lines
    assert not zarr.open_group(str(out), mode="r").attrs["complete"]
    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_disk)], check=True)
    assert _run_cli(monkeypatch, "render", str(cfg), "--out", str(out), "-q") == 0
    assert dataset(out) == dataset(ref)
