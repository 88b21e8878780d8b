#!/usr/bin/env bash
# Creates bench/.venv with the pinned Python peers for the search benchmark
# (bench/search_bench.py).  Idempotent: a venv that already imports the pinned
# versions is left alone; a broken one is recreated.
#
# Pins: numpy 2.5.x requires Python >= 3.12 and this project's machines have
# CPython 3.11, so numpy is pinned to 2.4.6, the newest release for 3.11.
# faiss-cpu 1.15.1 ships an abi3 (cp310+) wheel and installs as is.
# Override the interpreter with PYTHON=/path/to/python3 (pins are for 3.11).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
NUMPY_VERSION="2.4.6"
FAISS_VERSION="1.15.1"

# GNU time measures the peak RSS of each benchmarked process (search_bench.py
# falls back to sampling /proc/PID/status without it).  Optional: not fatal.
if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq time) >/dev/null 2>&1 || \
    echo "note: could not install GNU time; peak RSS will be sampled from /proc" >&2
fi

check() {
  "$VENV/bin/python" - "$NUMPY_VERSION" "$FAISS_VERSION" <<'PY' 2>/dev/null
import sys
import numpy, faiss
assert numpy.__version__ == sys.argv[1], numpy.__version__
assert faiss.__version__ == sys.argv[2], faiss.__version__
PY
}

if [ -x "$VENV/bin/python" ] && check; then
  echo "bench venv ok: $VENV"
  exit 0
fi

rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "numpy==$NUMPY_VERSION" "faiss-cpu==$FAISS_VERSION"
check || { echo "bench venv: pinned imports failed" >&2; exit 1; }
echo "bench venv ready: $VENV"
