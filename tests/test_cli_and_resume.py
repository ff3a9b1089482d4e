"""The CLI as a user meets it: one-line errors for bad input, refusal to mix configs,
and kill-and-resume of a real render subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr
from simgen_testutil import write_config


def simgen(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from simgen.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


BAD_INPUTS = [
    # (changes to street_canyon.yaml, raw text or None, expected fragment of the one-line error)
    ({"frequncy_hz": 3.5e9}, None, "frequncy_hz: unknown key"),
    ({"frequency_hz": "high"}, None, "frequency_hz: Input should be a valid number"),
    ({"scene": "atlantis"}, None, "scene: unknown scene 'atlantis'"),
    ({"trps": [{"name": "a", "position": [0.0, 0.0]}]}, None, "trps[0].position: too few values"),
    (
        {"trps": [{"name": "far", "position": [5000.0, 0.0, 10.0]}]},
        None,
        "trps[0].position: (5000, 0) is outside the scene",
    ),
    (
        {"trps": [{"name": "in", "position": [0.0, 25.0, 10.0]}]},
        None,
        "trps[0].position: (0.0, 25.0, 10.0) is inside or under",
    ),
    (
        {"ue__regions": [{"x": [500.0, 600.0], "y": [0.0, 10.0]}]},
        None,
        "ue.regions[0]: lies outside the scene",
    ),
    (
        {"ue__regions": [{"x": [-10.0, 10.0], "y": [15.0, 35.0]}]},
        None,  # inside a building
        "ue.regions: found 0 valid UE positions",
    ),
    (
        {"ofdm": {"num_subcarriers": 64}},
        None,
        "ofdm: give exactly one of subcarrier_spacing_hz or bandwidth_hz",
    ),
    ({"solver__max_depth": -1}, None, "solver.max_depth: Input should be greater than or equal"),
    ({"frequency_hz": 60e9}, None, "frequency_hz: 60.000002 GHz is outside the ITU-R P.2040"),
    ({}, "name: [unclosed\n", "invalid YAML at line"),
]


@pytest.mark.parametrize(("changes", "raw", "expected"), BAD_INPUTS)
def test_bad_input_gives_one_line_error(tmp_path, changes, raw, expected):
    path = write_config(tmp_path, "street_canyon.yaml", **changes)
    if raw is not None:
        path.write_text(raw)
    res = simgen("render", str(path), "--quiet")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


def test_bad_device_and_cluster_write_nothing(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml")
    for args, msg in (
        (["--device", "tpu"], "--device must be cpu, gpu or auto"),
        (["--cluster", "local:x"], "expected local:N"),
        (["--cluster", "mpi://x"], "use local:N or tcp://host:port"),
    ):
        res = simgen("render", str(cfg), "-q", *args)
        assert res.returncode == 2 and msg in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out.zarr").exists()


def test_missing_scene_file_and_store(tmp_path):
    res = simgen("render", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "no such scene file" in res.stderr
    res = simgen("info", str(tmp_path / "nope.zarr"))
    assert res.returncode == 2 and "no such store" in res.stderr
    (tmp_path / "junk.zarr").mkdir()
    res = simgen("info", str(tmp_path / "junk.zarr"))
    assert res.returncode == 2 and "not a readable simgen store" in res.stderr


def test_store_from_other_config_is_refused(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml", ue__sampling={"count": 8})
    assert simgen("render", str(cfg), "-q").returncode == 0
    other = write_config(
        tmp_path, "street_canyon.yaml", ue__sampling={"count": 8}, frequency_hz=3.6e9
    )
    res = simgen("render", str(other), "-q")
    assert res.returncode == 2 and "different configuration" in res.stderr
    assert simgen("render", str(other), "-q", "--overwrite").returncode == 0
    assert zarr.open_group(str(tmp_path / "out.zarr")).attrs["carrier_frequency_hz"] == 3.6e9


def _render_proc(cfg, out):
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from simgen.cli import main; main()",
            "render",
            str(cfg),
            "--out",
            str(out),
            "-q",
            "--batch-ues",
            "4",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_kill_and_resume_gives_identical_dataset(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        ue__sampling={"count": 64},
        output={"chunk_samples": 8, "paths": True, "max_paths": 64},
    )
    ref, cut = tmp_path / "ref.zarr", tmp_path / "cut.zarr"
    assert simgen("render", str(cfg), "--out", str(ref), "-q").returncode == 0

    proc = _render_proc(cfg, cut)
    deadline = time.time() + 240
    done = 0
    while time.time() < deadline and proc.poll() is None:  # kill after 2-6 shards landed
        if (cut / "shard_done").exists():
            done = int(zarr.open_array(str(cut / "shard_done"), mode="r")[:].sum())
            if done >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "render finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = int(zarr.open_array(str(cut / "shard_done"), mode="r")[:].sum())
    assert 2 <= partial < 8
    assert "incomplete" in simgen("info", str(cut)).stdout

    res = simgen("render", str(cfg), "--out", str(cut))
    assert res.returncode == 0, res.stderr
    assert f"{partial} of 8 shards already done" in res.stderr
    assert f"{8 - partial} solver calls" in res.stderr  # finished shards are not recomputed
    for group in ("dry",):
        a = xr.open_zarr(ref, group=group).load()
        b = xr.open_zarr(cut, group=group).load()
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_line_progress_steady_interval():
    from simgen.progress import LineProgress

    now = [0.0]
    lines: list[str] = []
    clock = lambda: now[0]  # noqa: E731
    bar = LineProgress(100, lines.append, rate_scale=3, step=0.1, every_s=30.0, clock=clock)
    for _ in range(20):  # 5 UEs per second: a line per 10 % (every 2 s)
        now[0] += 1.0
        bar.advance(5)
    assert len(lines) == 10, lines
    assert lines[4] == "progress: 50/100 UEs (50 %), 15.0 links/s, elapsed 10s, ETA 10s"
    lines.clear()
    slow = LineProgress(1000, lines.append, every_s=30.0, clock=clock)
    for _ in range(9):  # 1 UE per 10 s: well under 10 %, so a line every 30 s
        now[0] += 10.0
        slow.advance(1)
    assert len(lines) == 3 and lines[-1].startswith("progress: 9/1000 UEs (1 %)"), lines


def test_render_to_a_pipe_prints_progress_lines(tmp_path):
    """Without a terminal the rich bar draws nothing; `simgen render` prints steady lines."""
    from simgen_testutil import OPEN_SCENE

    cfg = write_config(
        tmp_path,
        OPEN_SCENE,
        ue__sampling={"count": 20},
        solver__batch_ues=2,
        output__chunk_samples=10,
    )
    res = simgen("render", str(cfg), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    lines = [s for s in res.stderr.splitlines() if s.startswith("tracing UEs: ")]
    assert len(lines) == 10, res.stderr  # one per 2 UEs (10 %)
    assert lines[-1].startswith("tracing UEs: 20/20 UEs (100 %), "), lines
    assert " links/s, elapsed " in lines[0] and ", ETA " in lines[0], lines
    *_, done, split = res.stderr.strip().splitlines()
    assert done.startswith("done: 40 links"), res.stderr
    assert split.startswith("time: trace ") and " / waiting " in split, res.stderr
