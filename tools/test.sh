#!/usr/bin/env bash
# Every test, on a fresh machine: the Rust tests, then the web page in a real browser against a
# real `vitrine serve` over the demo store, with clip-retrieval's own client. Installs what the
# browser tests need (Debian's chromium, playwright-core from npm, clip-retrieval's client file
# from PyPI) when it is missing, and a Milvus 2.3.5 server for the Milvus backend's tests. .ci/run calls this; the README names it.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"

cargo test --workspace --release

# --- the Milvus backend against a real Milvus 2.3.5 ------------------------------------------
# Its tests are #[ignore]d (a plain `cargo test` lists them as skipped); here they run.
MILVUS_DIR="$(mktemp -d)"
stop_milvus() { tools/milvus.sh stop "$MILVUS_DIR" || true; rm -rf "$MILVUS_DIR"; }
trap stop_milvus EXIT
MILVUS_URL="$(tools/milvus.sh start "$MILVUS_DIR")"
echo "testing against $MILVUS_URL" >&2
VITRINE_TEST_MILVUS="$MILVUS_URL" cargo test --release -p vitrine-milvus -- --ignored --test-threads=1
stop_milvus
trap - EXIT

# --- the page in a browser ----------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium (browser tests)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
command -v node >/dev/null 2>&1 || { echo "node (Node.js) is needed for the browser tests" >&2; exit 1; }
(cd tests/browser && npm ci --no-audit --no-fund --silent)

cargo build --release -p vitrine-cli
BIN="$TARGET/release/vitrine"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BIN" --store "$WORK/store" demo >"$WORK/demo.log" || { cat "$WORK/demo.log" >&2; exit 1; }

# clip-retrieval's ClipClient, unchanged: its one file from the released wheel (the package's
# other modules need torch), with `requests` in a small venv.
CLIP_CLIENT=""
if python3 -m venv "$WORK/venv" >/dev/null 2>&1 \
  && "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check requests \
  && "$WORK/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$WORK/wheel" clip-retrieval==2.45.0 \
  && (cd "$WORK/wheel" && "$WORK/venv/bin/python" -m zipfile -e clip_retrieval-2.45.0-py3-none-any.whl x); then
  CLIP_CLIENT="$WORK/wheel/x/clip_retrieval/clip_client.py"
else
  echo "clip-retrieval's client could not be fetched: that test reports itself skipped" >&2
fi

(cd tests/browser && VITRINE_BIN="$BIN" VITRINE_DEMO_STORE="$WORK/store" CLIP_CLIENT="$CLIP_CLIENT" \
  PYTHON="$WORK/venv/bin/python" VITRINE_SCREENSHOTS="${VITRINE_SCREENSHOTS:-$TARGET/screenshots}" npm test)
