#!/usr/bin/env bash
# Creates bench/.venv with the pinned Python peers for the search benchmark.
# Idempotent: if the venv exists and already imports the pinned versions, it
# does nothing.
#
# Pins: numpy 2.5.x requires Python >= 3.12; this project's machines have
# CPython 3.11, so numpy is pinned to 2.4.6, the newest release for 3.11.
# faiss-cpu 1.15.1 ships an abi3 (cp310+) wheel and installs as is.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
NUMPY_PIN="numpy==2.4.6"
FAISS_PIN="faiss-cpu==1.15.1"

check() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import numpy, faiss
assert numpy.__version__ == "2.4.6", numpy.__version__
assert faiss.__version__ == "1.15.1", faiss.__version__
PY
}

if [ -x "$VENV/bin/python" ] && check; then
  echo "bench venv ok: $VENV"
  exit 0
fi

# /usr/bin/time -v gives peak RSS of the vitrine child processes; optional
# (the script falls back to getrusage), so a failed apt install is not fatal.
if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq time) >/dev/null 2>&1 || \
    echo "note: could not install GNU time; peak RSS will come from getrusage" >&2
fi

"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$NUMPY_PIN" "$FAISS_PIN"
check || { echo "bench venv: pinned imports failed" >&2; exit 1; }
echo "bench venv ready: $VENV"
