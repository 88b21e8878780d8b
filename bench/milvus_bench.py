"""vitrine on Milvus vs the embedded store vs pymilvus, same machine, same data, one run.

    python3 bench/milvus_bench.py --rows 200000 --url milvus://127.0.0.1:19541 [--vitrine target/release/vitrine]

Needs numpy and pymilvus==2.3.7 (tools/milvus.sh's venv plus `pip install pymilvus==2.3.7
"setuptools<70" "marshmallow<4" "environs<10" numpy`). Imports N × 512 random unit vectors over
2 sources × 28 days into a fresh embedded store and into Milvus (through vitrine), then times,
as whole `vitrine search` processes (median of 5): one query, a batch of 64, and one query over
5 days of one source; and the same requests sent by pymilvus straight to the FLAT collection
vitrine made (the client must not be the bottleneck). Prints a Markdown table.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=200_000)
ap.add_argument("--url", required=True)
ap.add_argument("--vitrine", default="target/release/vitrine")
ap.add_argument("--repeat", type=int, default=5)
a = ap.parse_args()
dim, days, sources = 512, 28, ["products", "avatars"]
work = tempfile.mkdtemp(prefix="vitrine-milvus-bench-")
rng = np.random.default_rng(1)
v = rng.standard_normal((a.rows, dim), dtype=np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
np.save(f"{work}/v.npy", v)
first = 19_680  # 2023-11-19
with open(f"{work}/m.jsonl", "w") as f:
    for i in range(a.rows):
        d = first + (i * days) // a.rows
        f.write(json.dumps({"id": f"r{i}", "uri": f"img/{i}.jpg", "source": sources[i % 2], "timestamp": d * 86400 + i % 86400}) + "\n")
q1 = v[[7]] + 0.01 * rng.standard_normal((1, dim), dtype=np.float32)
q64 = v[rng.choice(a.rows, 64, replace=False)]
np.save(f"{work}/q1.npy", q1)
np.save(f"{work}/q64.npy", q64)
del v  # only the queries are needed from here on
store = f"{work}/store"
env = dict(os.environ, VITRINE_BACKEND="")

peak = {}  # (args, backend) -> the largest peak RSS of that vitrine process, in bytes

def run(args, backend=None):
    e = dict(env, VITRINE_BACKEND=backend or "")
    rss_file = f"{work}/rss"
    t = time.perf_counter()
    # GNU time reports the process's own peak RSS (%M, KiB); rusage from here would count this
    # Python process's pages too, since the child is forked from it.
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, a.vitrine, "--store", store, *args],
                   env=e, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t
    key = (args[0] if args[0] == "import" else " ".join(args), backend)
    peak[key] = max(peak.get(key, 0), int(open(rss_file).read().split()[-1]) * 1024)
    return took

def milvus_pids():
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"milvus" in cmd and b"milvus_bench" not in cmd and int(pid) != os.getpid():
            out.append(pid)
    return out

def milvus_cpu_seconds():
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in milvus_pids():
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick  # utime + stime
        except OSError:
            pass
    return total

def settle(limit=180):
    """Waits until the Milvus server is idle (under 10 % of a core over 3 s): after an import it
    seals, flushes and indexes for a while, and would otherwise share the 2 cores with whatever
    is timed next."""
    t0 = time.time()
    while time.time() - t0 < limit:
        c = milvus_cpu_seconds()
        time.sleep(3)
        if milvus_cpu_seconds() - c < 0.3:
            return time.time() - t0
    return time.time() - t0

def milvus_rss():
    """Resident memory of every process of the Milvus server (its wrapper, milvus, etcd, minio)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            if b"milvus" in cmd and b"milvus_bench" not in cmd and int(pid) != os.getpid():
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total

def med(f):
    f()  # warm
    return statistics.median(f() for _ in range(a.repeat))

subprocess.run([a.vitrine, "--backend", a.url, "collection", "drop", "bench"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
imp = ["import", "-c", "bench", "--vectors", f"{work}/v.npy", "--metadata", f"{work}/m.jsonl"]
rss_before = milvus_rss()
t_emb = run(imp)
t_mil = run(imp, a.url)
settled = settle()
rss_loaded = milvus_rss()
five = ["--source", "products", "--from", "2023-11-21", "--to", "2023-11-25"]
cases = {
    "single query, top 20": ["search", "-c", "bench", "--vector-file", f"{work}/q1.npy", "-k", "20"],
    "batch of 64, top 20": ["search", "-c", "bench", "--vector-file", f"{work}/q64.npy", "-k", "20"],
    "5 days of one source, top 20": ["search", "-c", "bench", "--vector-file", f"{work}/q1.npy", "-k", "20", *five],
}
rows = []
for name, args in cases.items():
    rows.append((name, med(lambda: run(args)), med(lambda: run(args, a.url))))

from pymilvus import Collection, connections
host, port = a.url.split("://")[1].split("/")[0].split(":")
connections.connect(host=host, port=port)
c = Collection("vitrine__bench")
c.load()
p = {"metric_type": "COSINE", "params": {}}
out = ["id", "uri", "source", "day", "timestamp", "vector"]
def pm(data, **kw):
    def f():
        t = time.perf_counter()
        c.search(data.tolist(), "vector", p, limit=20 + 20, output_fields=out, consistency_level="Eventually", **kw)
        return time.perf_counter() - t
    return med(f)
parts = sorted({f"p_products_2023{m:02d}" for m in (11,)})
py = [pm(q1), pm(q64), pm(q1, partition_names=parts, expr='source in ["products"] and day >= "2023-11-21" and day <= "2023-11-25"')]

rss_after = milvus_rss()
store_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)
load = os.getloadavg()[0]
print(f"\n{a.rows:,} × {dim} (random unit vectors, 2 sources × {days} days), load average {load:.1f}, medians of {a.repeat}; Milvus idle {settled:.0f} s after the import before timing searches\n")
print("| | embedded store | vitrine on Milvus 2.3.5 | pymilvus, same requests | Milvus / embedded |")
print("|---|---|---|---|---|")
print(f"| import (whole process) | {t_emb:.1f} s ({a.rows / t_emb:,.0f} rows/s) | {t_mil:.1f} s ({a.rows / t_mil:,.0f} rows/s) | | {t_mil / t_emb:.1f}× |")
for (name, e, m), y in zip(rows, py):
    print(f"| {name} (vitrine: whole process) | {e * 1000:.0f} ms | {m * 1000:.0f} ms | {y * 1000:.0f} ms | {m / e:.1f}× |")
gib = 1 << 30
search_peak = lambda backend: max(v for (k, b), v in peak.items() if k != "import" and b == backend)
print(f"| peak RSS of the import process | {peak[('import', None)] / gib:.2f} GiB | {peak[('import', a.url)] / gib:.2f} GiB | | |")
print(f"| peak RSS of a search process | {search_peak(None) / gib:.2f} GiB | {search_peak(a.url) / gib:.2f} GiB | | |")
print(f"| server memory (RSS of all Milvus processes) | none (store on disk: {store_bytes / gib:.2f} GiB, memory-mapped) | {rss_before / gib:.2f} GiB empty → {rss_loaded / gib:.2f} GiB loaded → {rss_after / gib:.2f} GiB after the searches | | |")
