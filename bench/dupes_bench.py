#!/usr/bin/env python3
"""Near-duplicate pairs: `vitrine dupes` vs faiss `IndexFlatIP.range_search`, same data, one run.

    bench/.venv/bin/python bench/dupes_bench.py --week 100000 [--history 0] [--threshold 0.95]

Data (512-d, unit vectors, CLIP-like): every vector shares a cone direction and belongs to
one of 2,000 clusters (cosine about 0.9 inside a cluster, 0.5 across), and a share of rows
are copies of another row: exact (5 %), re-encoded (noise, cosine about 0.997, 2 %) and
edited (cosine about 0.95, right at the threshold, 2 %).

- `--history 0`: a week of N rows against itself (every pair within the week).
- `--history M`: the week against M older rows (every week row with each history row).

vitrine: the rows are imported into a fresh store (week and history as two sources) and
`vitrine dupes` runs as a whole process (start to exit, warm page cache), writing every pair
as CSV. faiss: an IndexFlatIP over the searched rows and one `range_search` of the week's
rows (all cores), in a child process; self pairs dropped and each pair kept once. Pair sets
are compared: faiss scores in float32 and keeps scores strictly above the radius, so pairs
within float32 rounding of the threshold may differ; every difference is listed with its
exact (float64) score.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np


def faiss_pairs(week_path, hist_path, t, out_path, repeat):
    """Child process: faiss range search, pairs as (i, j) global row numbers."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count())
    w = np.load(week_path)
    base = np.load(hist_path) if hist_path else w
    index = faiss.IndexFlatIP(w.shape[1])
    index.add(base)
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        lims, D, I = index.range_search(w, t)
        runs.append(time.perf_counter() - t0)
        print(f"faiss range_search: {runs[-1]:.2f} s", file=sys.stderr, flush=True)
    q = np.repeat(np.arange(len(w)), np.diff(lims).astype(np.int64))
    I = I.astype(np.int64)
    if hist_path:
        pairs = np.stack([q, I + len(w)], 1)
    else:
        keep = q < I
        pairs = np.stack([q[keep], I[keep]], 1)
    np.save(out_path, pairs)
    json.dump({"runs": runs, "pairs": len(pairs)}, open(out_path + ".json", "w"))


if len(sys.argv) > 1 and sys.argv[1] == "faiss-child":
    _, _, wp, hp, t, op, rep = sys.argv
    faiss_pairs(wp, hp or None, float(t), op, int(rep))
    raise SystemExit

ap = argparse.ArgumentParser()
ap.add_argument("--week", type=int, default=100_000)
ap.add_argument("--history", type=int, default=0)
ap.add_argument("--threshold", type=float, default=0.95)
ap.add_argument("--vitrine", default=os.environ.get("VITRINE", "target/release/vitrine"))
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--work", default=None, help="folder for data and store (default: a temp dir)")
a = ap.parse_args()
dim = 512


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def data(n, rng):
    cone = unit(np.random.default_rng(1).standard_normal((1, dim)))[0]
    centres = unit(1.0 * cone + unit(np.random.default_rng(2).standard_normal((2000, dim))))
    x = np.empty((n, dim), dtype=np.float32)
    which = rng.integers(0, 2000, n)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x[s:e] = unit(centres[which[s:e]] + 0.35 * unit(rng.standard_normal((e - s, dim))))
    for share, noise in ((0.05, 0.0), (0.02, 0.075), (0.02, 0.33)):
        dst = rng.choice(n, int(n * share), replace=False)
        src = rng.integers(0, n, len(dst))
        x[dst] = unit(x[src] + noise * unit(rng.standard_normal((len(dst), dim))))
    return x




work = Path(a.work or tempfile.mkdtemp(prefix="dupes-bench-"))
work.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(11)
n_all = a.week + a.history
x = data(n_all, rng)
week, hist = x[: a.week], x[a.week :]
np.save(work / "week.npy", week)
if a.history:
    np.save(work / "history.npy", hist)
ids = [f"r{i:08d}" for i in range(n_all)]
with open(work / "week.jsonl", "w") as f:
    for i in range(a.week):
        f.write(json.dumps({"id": ids[i], "source": "week", "day": f"2023-11-{19 + i % 5}"}) + "\n")
if a.history:
    with open(work / "history.jsonl", "w") as f:
        for i in range(a.history):
            f.write(json.dumps({"id": ids[a.week + i], "source": "history", "day": f"2023-{1 + i % 10:02d}-01"}) + "\n")

store = work / "store"
if not store.exists():
    for name in ["week"] + (["history"] if a.history else []):
        subprocess.run([a.vitrine, "--store", str(store), "import", "-c", "c", "--vectors", str(work / f"{name}.npy"),
                        "--metadata", str(work / f"{name}.jsonl")], check=True, capture_output=True)

# faiss in a child process (its OpenMP threads apart from ours).
subprocess.run([sys.executable, __file__, "faiss-child", str(work / "week.npy"),
                str(work / "history.npy") if a.history else "", str(a.threshold), str(work / "faiss_pairs.npy"),
                str(a.repeat)], check=True)
fr = json.load(open(work / "faiss_pairs.npy.json"))
fpairs = np.load(work / "faiss_pairs.npy")

cmd = [a.vitrine, "--store", str(store), "dupes", "-c", "c", "--threshold", str(a.threshold), "--pairs", "--format", "csv"]
cmd += ["--source", "week"] + (["--against-source", "history"] if a.history else [])
vruns = []
for _ in range(a.repeat):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    vruns.append(time.perf_counter() - t0)
    print(f"vitrine dupes: {vruns[-1]:.2f} s", file=sys.stderr, flush=True)
num = {s: i for i, s in enumerate(ids)}
vpairs = set()
vscore = {}
for row in csv.DictReader(out.stdout.splitlines()):
    i, j = sorted((num[row["a"]], num[row["b"]]))
    vpairs.add((i, j))
    vscore[(i, j)] = float(row["score"])
fset = {(int(i), int(j)) if i < j else (int(j), int(i)) for i, j in fpairs}


def exact(i, j):
    u, v = x[i].astype(np.float64), x[j].astype(np.float64)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


only_v = sorted(vpairs - fset)
only_f = sorted(fset - vpairs)
bad_v = [p for p in only_v if exact(*p) < a.threshold]
bad_f = [p for p in only_f if exact(*p) >= a.threshold]
med = lambda r: sorted(r)[len(r) // 2]
q, b = a.week, (a.history or a.week)
print(f"\n{q:,} × {b:,} × {dim}, threshold {a.threshold}, medians of {a.repeat}, load average {os.getloadavg()[0]:.1f}\n")
print("| | time, s | pairs | ratio to faiss |")
print("|---|---:|---:|---:|")
print(f"| faiss IndexFlatIP.range_search | {med(fr['runs']):.2f} | {fr['pairs']:,} | 1.00 |")
print(f"| vitrine dupes (whole process) | {med(vruns):.2f} | {len(vpairs):,} | {med(vruns) / med(fr['runs']):.2f} |")
print(f"\nonly vitrine: {len(only_v)} pairs ({len(bad_v)} of them below the threshold in float64); "
      f"only faiss: {len(only_f)} pairs ({len(bad_f)} of them at or above it in float64, i.e. missed by vitrine)")
for p in (only_v + only_f)[:10]:
    print(f"  {ids[p[0]]} {ids[p[1]]}: float64 {exact(*p)!r}")
print(f"runs: faiss {[round(r, 2) for r in fr['runs']]}, vitrine {[round(r, 2) for r in vruns]}")
