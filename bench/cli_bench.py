#!/usr/bin/env python3
"""What a command-line query costs as a whole process, against the same search in process.

For each store: `vitrine bench search` (the engine's search, timed inside one process, warm)
and `vitrine search --vector-file q.npy -k 20` started afresh each time (exec, argument
parsing, opening the manifest and every segment, mapping, page faults, the scan, output,
exit), same query, same warm page cache. Stores are built the way users fill them:

  one       1M rows in one partition (10 segments)
  days28    1M rows over 28 days, imported in 100k-row commits: 280 segments
  days365   1M rows over 365 days, imported in 100k-row commits: about 375 segments
            (imports commit partition by partition; file order would leave 3,650)

    bench/.venv/bin/python bench/cli_bench.py --vitrine target/release/vitrine \\
        --vectors bench/data/base_1000000_512.npy --queries bench/data/queries_512.npy --evict

In-process and whole-process runs alternate over --rounds rounds, as the machine's load drifts;
medians are over all rounds.

Stores are built under --work (default bench/data/cli) unless they exist. Needs numpy.
"""
import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def build(vitrine, vectors, work, name, days, rows):
    store = os.path.join(work, name)
    if os.path.isdir(store):
        return store
    meta = os.path.join(work, f"meta_{name}.jsonl")
    d0 = datetime.date(2023, 1, 1)
    with open(meta, "w") as f:
        for i in range(rows):
            day = (d0 + datetime.timedelta(days=i % days)).isoformat()
            f.write(json.dumps({"id": f"r{i}", "uri": f"mem://{i}", "source": "products", "day": day}) + "\n")
    t = time.perf_counter()
    subprocess.run([vitrine, "--store", store, "import", "-c", "b", "--vectors", vectors, "--metadata", meta],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"built {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    os.remove(meta)
    return store


def whole_process(cmd, n, warm=2):
    """n fresh processes after `warm` untimed ones: the wall ms and minor page faults of each."""
    times, faults = [], []
    for i in range(n + warm):
        f0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if i >= warm:  # warm-ups: the page cache and the binary itself
            times.append((time.perf_counter() - t) * 1e3)
            faults.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - f0)
    return times, faults


def evict(store):
    """Drops a store's files from the page cache, so that the next read brings them back the
    way the binary under test reads them (vitrine: 2 MiB folios), not the way whatever wrote or
    last read them did."""
    for d, _, files in os.walk(store):
        for f in files:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vitrine", required=True)
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--work", default="bench/data/cli")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--stores", default="one,days28,days365")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate in-process and whole-process runs this many times (the load drifts)")
    ap.add_argument("--evict", action="store_true",
                    help="drop each store from the page cache first; the warm-up reads it back")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rows = np.load(a.vectors, mmap_mode="r").shape[0]
    q1 = os.path.join(a.work, "q1.npy")
    np.save(q1, np.load(a.queries)[:1].astype(np.float32))
    days = {"one": 1, "days28": 28, "days365": 365}
    start, _ = whole_process([a.vitrine, "--version"], a.repeat)
    print(f"`vitrine --version` as a process: {statistics.median(start):.1f} ms")
    print(f"load: {open('/proc/loadavg').read().split()[:3]}")
    print("| store | partitions | segments | in process, ms | whole process, ms | faults per process "
          "| whole process, no rows selected, ms | whole / in process |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in a.stores.split(","):
        store = build(a.vitrine, a.vectors, a.work, name, days[name], rows)
        segs = len(os.listdir(os.path.join(store, "collections", "b", "segments")))
        if a.evict:
            evict(store)
        cmd = [a.vitrine, "search", "--store", store, "-c", "b", "--vector-file", q1, "-k", "20", "--format", "jsonl"]
        inproc, whole, faults, empty = [], [], [], []
        for r in range(a.rounds):
            out = subprocess.run([a.vitrine, "bench", "search", "--store", store, "-c", "b", "--queries", q1,
                                  "--batch", "1", "--repeat", str(a.repeat)], check=True, capture_output=True, text=True)
            inproc += json.loads(out.stdout)["runs_ms"]
            t, f = whole_process(cmd, a.repeat)
            whole += t
            faults += f
            # The fixed cost: the same process with a day range that selects nothing.
            t, _ = whole_process(cmd + ["--from", "2100-01-01"], a.repeat // 3 + 1, warm=1)
            empty += t
        ms, wh = statistics.median(inproc), statistics.median(whole)
        print(f"| {name} | {days[name]} | {segs} | {ms:.1f} | {wh:.1f} | {statistics.median(faults):.0f} "
              f"| {statistics.median(empty):.1f} | {wh / ms:.2f}× |")


if __name__ == "__main__":
    main()
