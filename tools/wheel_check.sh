#!/usr/bin/env bash
# The wheel works outside the checkout: build it (sdist, then the wheel from the sdist, as
# `python -m build` does), install it into a fresh venv (CPU torch first, then the wheel and its
# dependencies; no deepmimo, no test extras), and from an empty temp folder render a shipped
# scene by path and run a shipped protocol by name (`loc suite rain --budget tiny`: its protocol
# and scene YAMLs come from the wheel; it renders into ./out/cache and writes ./runs/suite).
# Usage: tools/wheel_check.sh   (PYTHON=python3.11, KEEP=1 keeps the temp folder)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
TMP=$(mktemp -d /tmp/simgen_wheel.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
t0=$SECONDS
step() { echo "wheel_check [$((SECONDS - t0)) s]: $*"; }
pipi() { "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}"; }

step "build sdist + wheel from $ROOT"
"$PY" -m venv "$TMP/buildenv"
pipi "$TMP/buildenv" build
"$TMP/buildenv/bin/python" -m build --outdir "$TMP/dist" "$ROOT" >"$TMP/build.log" 2>&1 \
  || { tail -30 "$TMP/build.log" >&2; echo "wheel_check: the build failed" >&2; exit 1; }
whl=$(ls "$TMP"/dist/simgen-*.whl)
for f in loc/experiments/rain.yaml loc/experiments/scenes/street_canyon_rain.yaml \
         simgen/release/templates/dataset_card.md; do
  "$TMP/buildenv/bin/python" -c "import sys, zipfile; sys.exit('$f' not in zipfile.ZipFile('$whl').namelist())" \
    || { echo "wheel_check: $f missing from $(basename "$whl")" >&2; exit 1; }
done

step "fresh venv: torch==2.13.0 (CPU), then $(basename "$whl")"
"$PY" -m venv "$TMP/venv"
pipi "$TMP/venv" "torch==2.13.0"  # pinned first: a bare torch would pull a CUDA build
pipi "$TMP/venv" "$whl"
BIN="$TMP/venv/bin"
"$BIN/python" -c "from simgen.backend import find_libllvm; find_libllvm()" || {
  echo "wheel_check: Dr.Jit's CPU backend needs libLLVM >= 16 (tools/install.sh installs it)" >&2
  exit 1
}

mkdir "$TMP/run" && cd "$TMP/run"  # outside the checkout: nothing is found by relative path
"$BIN/python" - <<'PY'
import loc, simgen, sys
for m in (loc, simgen):
    assert "site-packages" in m.__file__, f"{m.__name__} imported from {m.__file__}"
print("imports:", simgen.__file__, loc.__file__, file=sys.stderr)
PY
step "simgen render (a shipped scene by path), validate, info"
"$BIN/simgen" render "$ROOT/scenes/street_canyon.yaml" --out "$TMP/run/sc.zarr" --device cpu -q
"$BIN/simgen" validate "$TMP/run/sc.zarr" -q
"$BIN/simgen" info "$TMP/run/sc.zarr" >/dev/null

step "loc suite rain --budget tiny (protocol and scene from the wheel)"
"$BIN/loc" suite rain --budget tiny --device cpu --quiet
"$BIN/python" -c "import json; assert json.load(open('runs/suite/rain_tiny/rain.json'))['complete']"

step "loc suite all with a budget no protocol defines says so"
if msg=$("$BIN/loc" suite all --budget nosuch 2>&1); then
  echo "wheel_check: loc suite all --budget nosuch succeeded" >&2; exit 1
fi
grep -q "no shipped protocol defines budget 'nosuch' (protocols: .*rain" <<<"$msg" \
  || { echo "wheel_check: unexpected message: $msg" >&2; exit 1; }
step "ok"
