#!/usr/bin/env python3
"""Resource bounds (issue 14): the memory an import of a 10 GiB .npy and an index of 100k images
take, measured, so the ceilings in TESTING.md are figures and not hopes.

    bench/.venv/bin/python bench/bounds.py --vitrine target/release/vitrine            # both
    bench/.venv/bin/python bench/bounds.py --vitrine BIN --only import --rows 5242880
    bench/.venv/bin/python bench/bounds.py --vitrine BIN --only index --images 100000

import: writes a ROWS x 512 float32 .npy (5,242,880 rows = 10 GiB) in chunks, then runs
  `vitrine import --vectors NPY --source products --day 2023-11-19` into a fresh store.
index:  draws IMAGES gallery pictures (`vitrine demo --images N`, which also indexes them), then
  indexes the same files again into a fresh store with `vitrine index --manifest`, measured.
Each measured process is sampled every 0.1 s from /proc/PID/status: peak VmHWM (all resident
memory, mapped input files included) and peak RssAnon (the heap: what the process itself
holds), with wall time and the load average. Work files go to --work (default bench/data/bounds).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

DIM = 512


def status_kib(pid):
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmHWM", "RssAnon", "RssFile", "VmRSS"):
                out[k] = int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def measured(cmd, log):
    """Runs cmd, sampling its memory; returns wall seconds and peaks in MiB."""
    t = time.time()
    load = os.getloadavg()[0]
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
        while p.poll() is None:
            s = status_kib(p.pid)
            for k in peak:
                peak[k] = max(peak[k], s.get(k, 0))
            time.sleep(0.1)
    wall = time.time() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}); see {log}")
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak["VmHWM"] / 1024),
        "peak_anon_mib": round(peak["RssAnon"] / 1024),
        "peak_file_mib": round(peak["RssFile"] / 1024),
        "load_before": round(load, 2),
    }


def du_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return round(total / 2**20)


def bench_import(vitrine, work, rows):
    npy = os.path.join(work, f"vectors_{rows}x{DIM}.npy")
    if not os.path.exists(npy):
        print(f"writing {npy} ({rows * DIM * 4 / 2**30:.1f} GiB)", file=sys.stderr)
        m = np.lib.format.open_memmap(npy + ".tmp", mode="w+", dtype=np.float32, shape=(rows, DIM))
        rng = np.random.default_rng(7)
        step = 262_144
        for a in range(0, rows, step):
            b = min(rows, a + step)
            m[a:b] = rng.standard_normal((b - a, DIM), dtype=np.float32)
        m.flush()
        del m
        os.rename(npy + ".tmp", npy)
    store = os.path.join(work, "import-store")
    shutil.rmtree(store, ignore_errors=True)
    cmd = [vitrine, "--store", store, "import", "--collection", "big", "--vectors", npy,
           "--source", "products", "--day", "2023-11-19"]
    r = measured(cmd, os.path.join(work, "import.log"))
    r.update(rows=rows, npy_gib=round(os.path.getsize(npy) / 2**30, 2), store_mib=du_mib(store))
    return r


def bench_index(vitrine, work, images):
    demo = os.path.join(work, f"demo-{images}")
    gallery = os.path.join(demo, "demo-gallery")
    if not os.path.exists(os.path.join(gallery, "manifest.jsonl")):
        shutil.rmtree(demo, ignore_errors=True)
        print(f"drawing and indexing {images} pictures with `vitrine demo`", file=sys.stderr)
        d = measured([vitrine, "--store", demo, "demo", "--images", str(images)], os.path.join(work, "demo.log"))
        print(f"demo: {json.dumps(d)}", file=sys.stderr)
    store = os.path.join(work, "index-store")
    shutil.rmtree(store, ignore_errors=True)
    cmd = [vitrine, "--store", store, "index", "--collection", "gallery", "--manifest",
           os.path.join(gallery, "manifest.jsonl")]
    r = measured(cmd, os.path.join(work, "index.log"))
    r.update(images=images, store_mib=du_mib(store))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vitrine", required=True)
    ap.add_argument("--work", default="bench/data/bounds")
    ap.add_argument("--rows", type=int, default=5_242_880)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--only", choices=["import", "index"])
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    out = {"nproc": os.cpu_count()}
    if a.only in (None, "import"):
        out["import"] = bench_import(os.path.abspath(a.vitrine), a.work, a.rows)
        print(json.dumps(out["import"]), file=sys.stderr)
    if a.only in (None, "index"):
        out["index"] = bench_index(os.path.abspath(a.vitrine), a.work, a.images)
        print(json.dumps(out["index"]), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
