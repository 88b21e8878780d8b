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
store = f"{work}/store"
env = dict(os.environ, VITRINE_BACKEND="")

def run(args, backend=None):
    e = dict(env, VITRINE_BACKEND=backend or "")
    t = time.perf_counter()
    subprocess.run([a.vitrine, "--store", store, *args], env=e, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t

def med(f):
    f()  # warm
    return statistics.median(f() for _ in range(a.repeat))

subprocess.run([a.vitrine, "--backend", a.url, "collection", "drop", "bench"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
imp = ["import", "-c", "bench", "--vectors", f"{work}/v.npy", "--metadata", f"{work}/m.jsonl"]
t_emb = run(imp)
t_mil = run(imp, a.url)
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

load = os.getloadavg()[0]
print(f"\n{a.rows:,} × {dim} (random unit vectors, 2 sources × {days} days), load average {load:.1f}, medians of {a.repeat}\n")
print("| | embedded store | vitrine on Milvus 2.3.5 | pymilvus, same requests | Milvus / embedded |")
print("|---|---|---|---|---|")
print(f"| import (whole process) | {t_emb:.1f} s ({a.rows / t_emb:,.0f} rows/s) | {t_mil:.1f} s ({a.rows / t_mil:,.0f} rows/s) | | {t_mil / t_emb:.1f}× |")
for (name, e, m), y in zip(rows, py):
    print(f"| {name} (vitrine: whole process) | {e * 1000:.0f} ms | {m * 1000:.0f} ms | {y * 1000:.0f} ms | {m / e:.1f}× |")
