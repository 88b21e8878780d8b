#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30) over the committed seeds,
# then replays the minimized crashers under fuzz/regressions/; fails on any crash, timeout or
# out-of-memory. Usage: fuzz/run-ci.sh [SECONDS] [TARGET...]
#        fuzz/run-ci.sh --seeds   (rewrites store_files' seeds from the fuzz store)
#
# Toolchain: cargo-fuzz needs -Zsanitizer=address, a nightly flag. The stable toolchain that
# comes with the machine accepts it with RUSTC_BOOTSTRAP=1 (checked with 1.95.0), so no
# nightly is needed; set FUZZ_TOOLCHAIN=nightly to use one instead (also works).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

TOOLCHAIN="${FUZZ_TOOLCHAIN:-stable}"
if [ "$TOOLCHAIN" != nightly ]; then
  export RUSTC_BOOTSTRAP=1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vitrine-fuzz-target}"
export CARGO_TERM_COLOR=never
fuzz=(cargo "+$TOOLCHAIN" fuzz)

ALL=(image_decode npy metadata index_manifest filter store_files http_bodies)

if [ "${1:-}" = "--seeds" ]; then
  "${fuzz[@]}" build store_files
  rm -f fuzz/corpus/store_files/seed-*
  empty=$(mktemp -d)
  VITRINE_FUZZ_WRITE_SEEDS="$PWD/fuzz/corpus/store_files" \
    "${fuzz[@]}" run store_files "$empty" -- -runs=0 >/dev/null 2>&1
  rm -rf "$empty"
  ls -l fuzz/corpus/store_files
  exit 0
fi

SECS="${1:-30}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

# One build of every target (they share their dependencies).
"${fuzz[@]}" build

work=$(mktemp -d "${TMPDIR:-/tmp}/vitrine-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${TARGETS[@]}"; do
  echo "=== $t: ${SECS}s"
  mkdir -p "$work/$t"
  # The committed seeds are read, never written: new inputs go to the working corpus in $work.
  if ! "${fuzz[@]}" run "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log"
    failed+=("$t")
    continue
  fi
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$work/$t.log" || true
  if [ -d "fuzz/regressions/$t" ]; then
    for f in "fuzz/regressions/$t"/*; do
      [ -f "$f" ] || continue
      if ! "${fuzz[@]}" run "$t" "$f" -- -rss_limit_mb=2048 -timeout=10 >"$work/$t.regr.log" 2>&1; then
        echo "regression input $f fails again:"
        tail -n 40 "$work/$t.regr.log"
        failed+=("$t:$f")
      fi
    done
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: ${#TARGETS[@]} targets, ${SECS}s each, no crash"
