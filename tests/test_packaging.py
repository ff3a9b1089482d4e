"""The wheel carries every file the code reads at run time, and ``loc suite all`` says when no
protocol defines a budget. (``tools/wheel_check.sh``, run by ``.ci/run``, goes further: a fresh
venv, a render and ``loc suite rain --budget tiny`` from outside the checkout.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from loc.errors import DataError
from loc.suite import protocol
from loc.suite.results import run_all

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built (without build isolation: offline) from a copy of the sources, so the
    checkout gets no build/ or egg-info folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("simgen", "loc", "scenes"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    return next((tmp / "dist").glob("simgen-*.whl"))


def test_wheel_carries_the_files_read_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "simgen/release/templates/dataset_card.md" in names
    shipped = sorted(p.name for p in protocol.EXPERIMENTS_DIR.glob("*.yaml"))
    assert shipped and all(f"loc/experiments/{n}" in names for n in shipped)
    for n in shipped:  # every scene a protocol names, in any budget
        raw = yaml.safe_load((protocol.EXPERIMENTS_DIR / n).read_text())
        specs = [raw.get("datasets") or {}]
        specs += [(b or {}).get("datasets") or {} for b in raw["budgets"].values()]
        for ds in specs:
            for d in ds.values():
                if "scene" in d:
                    assert f"loc/experiments/{d['scene']}" in names, (n, d["scene"])


def test_installed_protocols_find_their_scenes_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run = tmp_path / "run"
    run.mkdir()
    code = (
        "from loc.suite.protocol import load_protocol, list_protocols; import loc; "
        "p = load_protocol('rain', 'tiny'); print(loc.__file__); print(p.datasets['rain'].scene);"
        "print(len(list_protocols()))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=run, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    where, scene, count = out.stdout.split()
    assert where == str(site / "loc" / "__init__.py")
    assert scene == str(site / "loc" / "experiments" / "scenes" / "street_canyon_rain.yaml")
    assert int(count) == len(protocol.list_protocols())


def test_suite_all_says_when_no_protocol_defines_the_budget(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"no shipped protocol defines budget 'nosuch' \(protoc"):
        run_all("nosuch", tmp_path, tmp_path / "cache", tmp_path / "results.md")
    monkeypatch.setattr(protocol, "EXPERIMENTS_DIR", tmp_path / "empty")
    with pytest.raises(DataError, match="none in .*empty"):
        run_all("tiny", tmp_path, tmp_path / "cache", tmp_path / "results.md")
