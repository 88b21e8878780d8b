#!/usr/bin/env bash
# The long fuzzing runs of TESTING.md: each target until 10 million executions or one hour,
# whichever comes first, at nice 19 (so other work on the machine keeps its cores), JOBS targets
# at a time. Working corpora persist under $FUZZ_LONG_DIR/corpus/<target> (seeded from the
# committed seeds), logs under $FUZZ_LONG_DIR/<target>.log, and one summary line per target in
# $FUZZ_LONG_DIR/summary.tsv: target, wall s, CPU s, executions, exec/s, cov, ft, peak RSS MiB,
# exit status, start time. A crash leaves its input in $FUZZ_LONG_DIR/artifacts/<target>/.
# Usage: fuzz/run-long.sh [TARGET...]   (env: JOBS=2, SECS=3600, RUNS=10000000)
set -euo pipefail
# With autogroup scheduling (most desktop and cloud kernels) nice only ranks processes within one
# session: run in a session of its own whose autogroup is at nice 19, or the fuzzers take half the
# machine from every other session whatever their nice value.
if [ -z "${FUZZ_LONG_SESSION:-}" ]; then
  FUZZ_LONG_SESSION=1 exec setsid -w "$0" "$@"
fi
echo 19 >/proc/self/autogroup 2>/dev/null || true
cd "$(dirname "$0")/.."
here=$PWD

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
[ "${FUZZ_TOOLCHAIN:-stable}" = nightly ] || export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vitrine-fuzz-target}"
export CARGO_TERM_COLOR=never
out="${FUZZ_LONG_DIR:-$HOME/.cache/vitrine-fuzz-long}"
JOBS="${JOBS:-2}" SECS="${SECS:-3600}" RUNS="${RUNS:-10000000}"
mkdir -p "$out"

TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] ||
  TARGETS=(npy filter store_files http_bodies image_decode metadata index_manifest)

cargo "+${FUZZ_TOOLCHAIN:-stable}" fuzz build >&2
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

one() {
  local t=$1
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  local start end
  start=$(date +%s)
  # The binary is run directly (not through cargo fuzz run) so /usr/bin/time measures it alone.
  set +e
  nice -n 19 /usr/bin/time -f 'TIME %e %U %S %M' "$bin/$t" "$out/corpus/$t" "$here/fuzz/corpus/$t" \
    -runs="$RUNS" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" >"$out/$t.log" 2>&1
  local rc=$?
  set -e
  end=$(date +%s)
  local execs rate cov ft wall cpu rss
  execs=$(grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$out/$t.log" || echo 0)
  rate=$(grep -oP '^stat::average_exec_per_sec:\s*\K[0-9]+' "$out/$t.log" || echo 0)
  cov=$(grep -oP 'cov: \K[0-9]+' "$out/$t.log" | tail -1 || true)
  ft=$(grep -oP 'ft: \K[0-9]+' "$out/$t.log" | tail -1 || true)
  read -r _ wall usr sys rss < <(grep '^TIME ' "$out/$t.log" | tail -1)
  cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${wall%.*}" "$cpu" "$execs" "$rate" \
    "${cov:-}" "${ft:-}" "$((rss / 1024))" "$rc" "$(date -u -d "@$start" +%FT%TZ)" >>"$out/summary.tsv"
}
export -f one
export out here bin SECS RUNS

printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}'
column -t "$out/summary.tsv"
