#!/usr/bin/env python3
"""Exact search over a store whose float32 vectors do not fit in memory but whose 8-bit codes do.

Issue 16 asks for 10M x 512 on a 24 GB machine (20 GB of f32, 5 GB of codes): that needs
35 GB of disk (a float16 .npy of 10 GB, then the store's 24.4 GiB). With less disk, run the
same situation scaled down. Either way ROWS x 512 is searched inside a memory cgroup (cgroup
v1 or v2, as root) whose limit holds the codes but not the f32 copy beside them. Page cache is charged to the cgroup, so the kernel must evict
vectors exactly as on a machine with that much RAM.

In the cgroup, one after another:
  vitrine   `vitrine bench search` (8-bit scan, f32 re-score, f64 re-rank), single and batch 64
  float     the same with VITRINE_SCAN=float (every f32 row read)
  numpy     numpy over the store's own float32 sections, memory-mapped, `X @ q` + argpartition
with what each run read from disk (GNU time's file-system inputs) against the bytes the search
scans: the page-cache hit rate. Before each measured process, one untimed process of the same
kind fills the cgroup's page cache. Before each system
the store's files are dropped from the page cache (posix_fadvise DONTNEED): pages cached by an
earlier process outside the cgroup would be charged elsewhere and escape the limit.

    bench/.venv/bin/python bench/ram_bench.py --vitrine target/release/vitrine --rows 10000000 --mem 20G
    bench/.venv/bin/python bench/ram_bench.py --vitrine target/release/vitrine --rows 4000000 --mem 4G

Leaves the store in --work (default bench/data/ram) for reruns; --clean removes it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

DIM = 512


def cgroup(mem):
    """A memory cgroup limited to `mem`; returns the file to write a pid into."""
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    if os.path.exists(v2) and "memory" in open(v2).read():
        d = "/sys/fs/cgroup/vitrine-ram-bench"
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "memory.max"), "w").write(str(mem))
        return os.path.join(d, "cgroup.procs")
    d = "/sys/fs/cgroup/memory/vitrine-ram-bench"
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "memory.limit_in_bytes"), "w").write(str(mem))
    return os.path.join(d, "cgroup.procs")


def in_cgroup(procs, cmd, env=None):
    """Runs `cmd` inside the cgroup under GNU time; returns (stdout, major faults, bytes read
    from disk, wall s)."""
    shell = f'echo $$ > {procs} && exec /usr/bin/time -f "FAULTS %F %I %e" "$@"'
    out = subprocess.run(["sh", "-c", shell, "sh", *cmd], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {out.stderr[-2000:]}")
    m = re.search(r"FAULTS (\d+) (\d+) ([\d.]+)", out.stderr)
    return out.stdout, int(m.group(1)), int(m.group(2)) * 512, float(m.group(3))


def evict(segdir):
    """Drops the store's clean pages from the page cache (no root-only drop_caches needed)."""
    for f in os.listdir(segdir):
        fd = os.open(os.path.join(segdir, f), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def make_store(a, store):
    if os.path.isdir(store):
        return
    os.makedirs(a.work, exist_ok=True)
    npy = os.path.join(a.work, "base_f16.npy")
    # float16 input: half the disk of the f32 .npy; the import widens it.
    x = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float16, shape=(a.rows, DIM))
    rng = np.random.default_rng(7)
    for s in range(0, a.rows, 250_000):
        b = rng.standard_normal((min(250_000, a.rows - s), DIM), dtype=np.float32)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        x[s:s + len(b)] = b
    x.flush()
    del x
    t = time.perf_counter()
    subprocess.run([a.vitrine, "--store", store, "import", "-c", "b", "--vectors", npy, "--source", "s",
                    "--day", "2024-01-01", "--id-prefix", "r"], check=True, stdout=subprocess.DEVNULL)
    print(f"imported {a.rows} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    os.remove(npy)


NUMPY = r"""
import json, os, sys, time, numpy as np
store, qfile, batch, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
segdir = os.path.join(store, "collections", "b", "segments")
mats = []
for f in sorted(os.listdir(segdir)):
    if not f.endswith(".vseg"):
        continue
    p = os.path.join(segdir, f)
    with open(p, "rb") as fh:
        fh.seek(-16, 2)
        tail = fh.read(16)
        flen = int.from_bytes(tail[:8], "little")
        fh.seek(-16 - flen, 2)
        foot = json.loads(fh.read(flen))
    # The store's f32 rows start at byte 64 of each segment, row-major.
    mats.append(np.memmap(p, dtype=np.float32, mode="r", offset=64, shape=(foot["rows"], foot["dim"])))
q = np.load(qfile)[:batch]
ms = []
for i in range(repeat + 1):
    t = time.perf_counter()
    best = []
    for X in mats:
        s = q @ X.T
        k = min(20, s.shape[1])
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best.append(np.take_along_axis(s, idx, 1))
    np.concatenate(best, 1)
    if i > 0:  # the first run warms the page cache, as vitrine's does
        ms.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"median_ms": sorted(ms)[len(ms) // 2], "runs_ms": ms, "bytes_scanned": sum(X.nbytes for X in mats)}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vitrine", required=True)
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--mem", default="4G", help="the cgroup's memory limit (codes fit, f32 does not)")
    ap.add_argument("--queries", default="bench/data/queries_512.npy")
    ap.add_argument("--work", default="bench/data/ram")
    ap.add_argument("--clean", action="store_true")
    a = ap.parse_args()
    store = os.path.join(a.work, f"store_{a.rows}")
    make_store(a, store)
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mem = int(a.mem[:-1]) * units[a.mem[-1]] if a.mem[-1] in units else int(a.mem)
    procs = cgroup(mem)
    segdir = os.path.join(store, "collections", "b", "segments")
    size = sum(os.path.getsize(os.path.join(segdir, f)) for f in os.listdir(segdir))
    f32 = a.rows * DIM * 4
    print(f"{a.rows:,} x {DIM}: store {size / 2**30:.2f} GiB (f32 {f32 / 2**30:.2f} GiB, codes and the rest "
          f"{(size - f32) / 2**30:.2f} GiB); cgroup memory limit {mem / 2**30:.2f} GiB; "
          f"load {open('/proc/loadavg').read().split()[:3]}")
    print("| system | batch | runs, ms | median, ms | scanned per run, GB | read from disk per run, MB | "
          "page-cache hit rate | major faults per run |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")

    def row(name, batch, r, maj, disk, repeat):
        runs = " ".join(f"{x:.0f}" for x in r["runs_ms"])
        # A process before this one filled the cgroup's cache; this one's reads (its own warm-up
        # run included) over its runs are the steady state.
        per_run = disk / (repeat + 1)
        scanned = r["bytes_scanned"]
        print(f"| {name} | {batch} | {runs} | {r['median_ms']:.1f} | {scanned / 1e9:.2f} | {per_run / 1e6:.1f} | "
              f"{max(0.0, 1 - per_run / scanned):.3f} | {maj / (repeat + 1):.0f} |")
    bench = [a.vitrine, "bench", "search", "--store", store, "-c", "b", "--queries", a.queries]
    for batch, repeat in [(1, 7), (64, 3)]:
        for name, env in [("vitrine (8-bit scan)", {}), ("vitrine (f32 scan)", {"VITRINE_SCAN": "float"})]:
            evict(segdir)
            cmd = bench + ["--batch", str(batch), "--repeat", str(repeat)]
            in_cgroup(procs, cmd[:-1] + ["1"], env={**os.environ, **env})  # fills the cgroup's cache
            out, maj, disk, _ = in_cgroup(procs, cmd, env={**os.environ, **env})
            row(name, batch, json.loads(out), maj, disk, repeat)
        evict(segdir)
        cmd = [sys.executable, "-c", NUMPY, store, a.queries, str(batch), str(repeat)]
        env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
        in_cgroup(procs, cmd[:-1] + ["1"], env=env)
        out, maj, disk, _ = in_cgroup(procs, cmd, env=env)
        row(f"numpy {np.__version__} (memory-mapped f32)", batch, json.loads(out), maj, disk, repeat)
    if a.clean:
        subprocess.run(["rm", "-rf", store], check=True)


if __name__ == "__main__":
    main()
