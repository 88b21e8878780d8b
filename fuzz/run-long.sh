#!/usr/bin/env bash
# The long fuzzing runs of TESTING.md: each target until 10 million executions or one hour of CPU
# time, whichever comes first, at nice 19 (so other work on the machine keeps its cores), JOBS
# targets at a time. Working corpora persist under $FUZZ_LONG_DIR/corpus/<target> (seeded from the
# committed seeds), logs under $FUZZ_LONG_DIR/<target>.log, and one summary line per target in
# $FUZZ_LONG_DIR/summary.tsv: target, wall s, CPU s, executions, executions per CPU second, cov,
# ft, peak RSS MiB, exit status of the last slice, start time. A crash leaves its input in $FUZZ_LONG_DIR/artifacts/<target>/.
# Usage: fuzz/run-long.sh [TARGET...]   (env: JOBS=2, SECS=3600 CPU s, RUNS=10000000, SLICE=600)
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
JOBS="${JOBS:-2}" SECS="${SECS:-3600}" RUNS="${RUNS:-10000000}" SLICE="${SLICE:-600}"
mkdir -p "$out"

TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] ||
  TARGETS=(npy filter store_files http_bodies image_decode metadata index_manifest)

# FUZZ_NO_BUILD=1 reuses the binaries already built (e.g. to go on after a stop).
[ -n "${FUZZ_NO_BUILD:-}" ] || cargo "+${FUZZ_TOOLCHAIN:-stable}" fuzz build >&2
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

# One target, in slices of at most SLICE seconds, until its executions reach RUNS or the CPU time
# it has had reaches SECS: on a shared machine an hour of wall time can be a quarter of an hour of
# CPU, so the hour is counted in CPU seconds. Each slice goes on from the corpus the last left.
one() {
  local t=$1 execs=0 cpu=0 wall=0 rss=0 rc=0 rate cov ft
  local start
  start=$(date +%s)
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  : >"$out/$t.log"
  while [ "$execs" -lt "$RUNS" ] && [ "$cpu" -lt "$SECS" ]; do
    # The binary is run directly (not through cargo fuzz run) so /usr/bin/time measures it alone.
    set +e
    nice -n 19 /usr/bin/time -f 'TIME %e %U %S %M' "$bin/$t" "$out/corpus/$t" "$here/fuzz/corpus/$t" \
      -runs=$((RUNS - execs)) -max_total_time="$SLICE" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" >"$out/$t.slice.log" 2>&1
    rc=$?
    set -e
    cat "$out/$t.slice.log" >>"$out/$t.log"
    local e w u s m
    e=$(grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$out/$t.slice.log" || echo 0)
    read -r _ w u s m < <(grep '^TIME ' "$out/$t.slice.log" | tail -1)
    execs=$((execs + e))
    wall=$((wall + ${w%.*}))
    cpu=$(awk -v c="$cpu" -v u="$u" -v s="$s" 'BEGIN { printf "%.0f", c + u + s }')
    rss=$((m / 1024 > rss ? m / 1024 : rss))
    [ "$rc" -eq 0 ] || break
  done
  rate=$(awk -v e="$execs" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? e / c : 0) }')
  cov=$(grep -oP 'cov: \K[0-9]+' "$out/$t.log" | tail -1 || true)
  ft=$(grep -oP 'ft: \K[0-9]+' "$out/$t.log" | tail -1 || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$wall" "$cpu" "$execs" "$rate" \
    "${cov:-}" "${ft:-}" "$rss" "$rc" "$(date -u -d "@$start" +%FT%TZ)" >>"$out/summary.tsv"
}
export -f one
export out here bin SECS RUNS SLICE

printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}'
column -t "$out/summary.tsv"
