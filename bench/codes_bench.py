#!/usr/bin/env python3
"""The 8-bit scan vs the f32 scan on random and on CLIP-like data, same store, one run.

    bench/.venv/bin/python bench/codes_bench.py --n 1000000 [--vitrine target/release/vitrine]

For each kind of data it writes N × 512 unit vectors, imports them into a fresh store (one
partition), and runs `vitrine bench search` (in process, warm, medians) for single queries and
batches of 64, first through the 8-bit codes, then with VITRINE_SCAN=float, alternating. It
prints time, rows re-ranked in f64 per query (the survivors of the bound) and fallbacks.

Kinds of data:
- random: i.i.d. Gaussian directions (the easiest case for any bound: scores spread thinly).
- clip-like: what CLIP image embeddings look like: every vector shares a cone direction
  (pairwise cosines around 0.5), 2,000 clusters of near-duplicates, 5 % exact duplicates; the
  queries are text-like (cosine about 0.3 to their cluster) and image-like (a row plus noise).
"""
import argparse, json, os, subprocess, tempfile
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=1_000_000)
ap.add_argument("--vitrine", default="target/release/vitrine")
ap.add_argument("--repeat", type=int, default=9)
a = ap.parse_args()
dim = 512
rng = np.random.default_rng(7)


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_data(n):
    return unit(rng.standard_normal((n, dim), dtype=np.float32)), unit(rng.standard_normal((64, dim), dtype=np.float32))


def clip_like(n):
    cone = unit(rng.standard_normal((1, dim)))[0]
    centres = unit(1.0 * cone + unit(rng.standard_normal((2000, dim))))
    which = rng.integers(0, 2000, n)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x[s:e] = unit(centres[which[s:e]] + 0.35 * unit(rng.standard_normal((e - s, dim))))
    dup = rng.choice(n, n // 20, replace=False)
    x[dup] = x[rng.integers(0, n, n // 20)]
    text = unit(0.45 * centres[rng.integers(0, 2000, 32)] + 0.9 * unit(rng.standard_normal((32, dim))) + 0.3 * cone)
    image = unit(x[rng.integers(0, n, 32)] + 0.2 * unit(rng.standard_normal((32, dim))))
    q = np.concatenate([text, image])
    rng.shuffle(q)
    return x, q


def run(args, env=None):
    out = subprocess.run([a.vitrine, *args], env={**os.environ, **(env or {})}, check=True, capture_output=True, text=True)
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])


print(f"\n{a.n:,} × {dim}, top 20, medians of {a.repeat} (warm), load average {os.getloadavg()[0]:.1f}\n")
print("| data | query | 8-bit scan, ms | f32 scan, ms | f32 / 8-bit | rows past the 8-bit bound, per query | rows re-ranked in f64 per query (8-bit / f32) | fallbacks |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for kind, make in (("random unit vectors", random_data), ("CLIP-like (cone, clusters, duplicates)", clip_like)):
    work = tempfile.mkdtemp(prefix="vitrine-codes-bench-")
    x, q = make(a.n)
    np.save(f"{work}/x.npy", x)
    np.save(f"{work}/q.npy", q)
    del x
    store = f"{work}/store"
    subprocess.run([a.vitrine, "--store", store, "import", "-c", "b", "--vectors", f"{work}/x.npy",
                    "--source", "s", "--day", "2024-01-01", "--id-prefix", "r"], check=True, capture_output=True)
    os.remove(f"{work}/x.npy")
    for label, batch in (("single", 1), ("batch of 64", 64)):
        common = ["--store", store, "bench", "search", "-c", "b", "--queries", f"{work}/q.npy", "-k", "20",
                  "--batch", str(batch), "--repeat", str(a.repeat if batch == 1 else 3)]
        c = run(common)
        f = run(common, {"VITRINE_SCAN": "float"})
        print(f"| {kind} | {label} | {c['median_ms']:.1f} | {f['median_ms']:.1f} | {f['median_ms'] / c['median_ms']:.2f}× "
              f"| {c['code_survivors_per_query']:,.0f} | {c['candidates_reranked_per_query']:,.1f} / {f['candidates_reranked_per_query']:,.1f} | {c['code_fallbacks']} |")
    subprocess.run(["rm", "-rf", work])
