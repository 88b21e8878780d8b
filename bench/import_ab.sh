#!/usr/bin/env bash
# Import throughput, two binaries alternating on the same data (medians of N each):
#   bench/import_ab.sh OLD_BINARY NEW_BINARY VECTORS.npy [N] [METADATA]
# e.g. the commit before the 8-bit scan codes against now. Prints wall seconds per run.
# Without METADATA every row goes to one partition; with it (e.g. 28 days, see
# bench/cli_bench.py) each 100k-row commit writes a segment per partition it touches.
set -euo pipefail
old="$1"; new="$2"; npy="$3"; n="${4:-3}"
rows=(--source s --day 2024-01-01 --id-prefix r)
[ -n "${5:-}" ] && rows=(--metadata "$5")
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$n"); do
  for which in old new; do
    bin="$old"; [ "$which" = new ] && bin="$new"
    rm -rf "$work/store"
    t0=$(date +%s.%N)
    "$bin" --store "$work/store" import -c b --vectors "$npy" "${rows[@]}" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$which $(echo "$t1 - $t0" | bc)"
  done
done | sort | awk '{a[$1]=a[$1]" "$2} END {for (k in a) print k":"a[k]}'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
