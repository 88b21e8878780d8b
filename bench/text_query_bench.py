#!/usr/bin/env python3
"""Text-query latency: embed one text query + exact top-k, vitrine vs a Python reference.

Usage (the reference venv, see tools/requirements-ref.txt; and `cargo build --release`):

    tools/.venv-ref/bin/python bench/text_query_bench.py
    tools/.venv-ref/bin/python bench/text_query_bench.py --out bench/results/text_query_bench.json
    tools/.venv-ref/bin/python bench/text_query_bench.py --sizes 100000 --repeat 5   # quicker

Defaults: --sizes 100000,1000000, --threads 2, --repeat 15, -k 20,
--model bench/data/clip-vit-b32-random (random-weight ViT-B/32-shaped CLIP, 512-d text
output), filter --source products --from 2023-11-19 --to 2023-11-23 (one source, 5 days).

Data: bench/data/base_1000000_512.npy (1M x 512 float32) and bench/data/meta365_1000000.jsonl
(rows {"id": "r<i>", "uri": ..., "source": "products"|"avatars" alternating, "day": the 365
days of 2023 cycling}); the vitrine store of exactly these rows is
bench/data/vitrine_store365_1000000_512 (collection `bench`, cosine).  For a smaller size N
the first N rows are written to bench/data/base_<N>_512.npy + meta365_<N>.jsonl and imported
once into bench/data/vitrine_store365_<N>_512 (cosine, the 1M store's metric); all cached.

For each size, both variants (filtered: source + 5-day range; unfiltered: the whole
collection), same machine, same thread count T, in one run:

  * vitrine: `target/release/vitrine --threads T --store STORE bench text-search -c bench
    --model MODEL -k 20 --repeat 15 [--source products --from 2023-11-19 --to 2023-11-23]`
    with RAYON_NUM_THREADS=T.  In-process: one warm-up query, then 15 timed queries, query i
    being f"{CAPTIONS[i % 8]} {i}" (a different text each run); per query embed_ms = tokenize
    + text encoder + normalise, search_ms = the exact top-k over the selection (partition
    pruning by source/day, then a scan of the selected rows); medians.
  * Python: a child process of this script (`--worker`) with OMP/MKL/OPENBLAS_NUM_THREADS=T
    and OMP_WAIT_POLICY=PASSIVE set before torch is imported, torch.set_num_threads(T).
    Not timed: CLIPModel + CLIPTokenizerFast from MODEL (float32, eval, inference_mode),
    np.load of the vectors into RAM and their L2 normalisation (cosine), the metadata as
    numpy arrays (source code int8, day as int32 days since 1970).  Timed per query, the
    same 1 + 15 texts as vitrine (warm-up untimed): tokenize (padding to the longest,
    truncation to 77) + get_text_features (.pooler_output of transformers 5's ModelOutput)
    + L2 normalise = embed_ms; then search_ms = the boolean mask (source == products & day
    in [from, to]) computed for this query, np.nonzero, X[idx] @ q, np.argpartition top-k,
    sort of the k (unfiltered: X @ q over the whole matrix, argpartition, sort).
  * Checks: the number of rows the Python mask selects must equal vitrine's rows_scanned
    (asserted; the stores hold the same rows); and, untimed, the top-k ids of vitrine
    `search --text` vs Python for one query text (overlap reported, not asserted: two
    float32 text encoders may swap near-ties).
  * ratio = python_total_ms / vitrine_total_ms (> 1: vitrine is faster); also per part.

Caveat (measured on a 2-core machine): with OPENBLAS_NUM_THREADS=2, numpy's second OpenBLAS
thread keeps spinning after each matmul and competes with torch's threads, so the next text
encoding is ~7-14 ms slower (8 tokens: 16 -> 23 ms; 58 tokens: 36-45 -> 59 ms).  The
default keeps it (it is what the plain numpy+torch pipeline costs); `--python-openblas-threads 1`
removes it but makes the numpy scan single-threaded.  The text encoding time depends on the
query's token count (9 to 59 here, special tokens included; listed in the JSON).

Output: one JSON object per (size, variant) on stdout as soon as measured, then a Markdown
table; with --out FILE the whole result as JSON.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Shared with the other benchmarks (this script runs from bench/, so they are importable).
from search_bench import last_json_object
from clip_bench import cpu_name, loadavg, run_cmd, tail, thread_env

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
FULL_N = 1_000_000
DIM = 512
FULL_VECTORS = DATA_DIR / f"base_{FULL_N}_{DIM}.npy"
FULL_META = DATA_DIR / f"meta365_{FULL_N}.jsonl"
COLLECTION = "bench"
METRIC = "cosine"

# The queries of both sides: query i is f"{CAPTIONS[i % len(CAPTIONS)]} {i}", i = 0 the
# warm-up. vitrine reads the same list from a file (`bench text-search --queries`).
CAPTIONS = [
    "a photo of a samoyed dog",
    "a photo of a handgun on a wooden table",
    "red running sneakers, size 42, barely worn, original box included",
    "vintage leather handbag with brass buckle and long shoulder strap in brown",
    "a smartphone with a cracked screen lying on a desk next to a charger",
    "a close-up photo of a luxury wrist watch with a blue dial and a steel bracelet",
    "an acoustic guitar",
    "a mountain bicycle leaning against a brick wall in the afternoon sun, slightly muddy tyres",
]


def query_text(i: int) -> str:
    return f"{CAPTIONS[i % len(CAPTIONS)]} {i}"


def log(msg: str) -> None:
    print(f"[text-query-bench] {msg}", file=sys.stderr, flush=True)


def rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def data_paths(n: int) -> tuple[Path, Path, Path]:
    """(vectors .npy, metadata .jsonl, vitrine store) for size n."""
    if n == FULL_N:
        return FULL_VECTORS, FULL_META, DATA_DIR / f"vitrine_store365_{FULL_N}_{DIM}"
    return (DATA_DIR / f"base_{n}_{DIM}.npy", DATA_DIR / f"meta365_{n}.jsonl",
            DATA_DIR / f"vitrine_store365_{n}_{DIM}")


def store_rows(vitrine: Path, store: Path) -> int | None:
    if not (store / "collections").is_dir():
        return None
    r = run_cmd([str(vitrine), "--store", str(store), "collection", "info", COLLECTION])
    if r["rc"] != 0:
        return None
    try:
        info = last_json_object(r["stdout"])
    except ValueError:
        return None
    if info.get("metric") != METRIC:
        raise SystemExit(f"{store}: metric {info.get('metric')!r}, expected {METRIC!r}")
    return int(info.get("rows", -1))


def ensure_data(vitrine: Path, n: int) -> tuple[Path, Path, Path]:
    """The vectors, metadata and store of size n, written/imported if absent (cached)."""
    import numpy as np

    vecs, meta, store = data_paths(n)
    if n > FULL_N:
        raise SystemExit(f"size {n} > {FULL_N}")
    if n != FULL_N:
        if not vecs.exists():
            log(f"writing the first {n} rows of {rel(FULL_VECTORS)} to {rel(vecs)}")
            full = np.load(FULL_VECTORS, mmap_mode="r")
            assert full.shape == (FULL_N, DIM) and full.dtype == np.float32, (full.shape, full.dtype)
            tmp = vecs.with_name(vecs.name + ".tmp.npy")
            np.save(tmp, np.ascontiguousarray(full[:n]))
            os.replace(tmp, vecs)
        if not meta.exists():
            log(f"writing the first {n} lines of {rel(FULL_META)} to {rel(meta)}")
            tmp = meta.with_name(meta.name + ".tmp")
            with open(FULL_META) as src, open(tmp, "w") as dst:
                for i, line in enumerate(src):
                    if i >= n:
                        break
                    dst.write(line)
            os.replace(tmp, meta)
    rows = store_rows(vitrine, store)
    if rows is None:
        if n == FULL_N:
            raise SystemExit(f"{rel(store)}: no vitrine store with collection {COLLECTION!r}")
        if store.exists():
            log(f"removing the incomplete store {rel(store)}")
            shutil.rmtree(store)
        log(f"importing {n} rows into {rel(store)} ({METRIC})")
        r = run_cmd([str(vitrine), "--store", str(store), "import", "-c", COLLECTION, "--metric", METRIC,
                     "--vectors", str(vecs), "--metadata", str(meta)])
        if r["rc"] != 0:
            raise SystemExit(f"vitrine import failed (rc {r['rc']}): {tail(r['stderr'])}")
        log(f"  imported in {r['wall_s']:.1f} s")
        rows = store_rows(vitrine, store)
    if rows != n:
        raise SystemExit(f"{rel(store)}: {rows} rows, expected {n}")
    return vecs, meta, store


# --------------------------------------------------------------------------
# Python reference (child process)
# --------------------------------------------------------------------------


def worker(a) -> dict:
    import numpy as np
    import torch  # the parent put the thread variables in our environment
    import transformers

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = transformers.CLIPModel.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    tok = transformers.CLIPTokenizerFast.from_pretrained(a.model)
    load_model_s = time.perf_counter() - t0
    max_len = model.config.text_config.max_position_embeddings

    t0 = time.perf_counter()
    x = np.load(a.vectors)  # into RAM
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == a.n, (x.dtype, x.shape)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    x /= norms  # cosine: normalise once
    load_vectors_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sources, days = [], []
    with open(a.metadata) as f:
        for line in f:
            r = json.loads(line)
            sources.append(r["source"])
            days.append(r["day"])
    assert len(sources) == a.n, (len(sources), a.n)
    names = sorted(set(sources))
    code = {s: i for i, s in enumerate(names)}
    src = np.fromiter((code[s] for s in sources), dtype=np.int8, count=a.n)
    day = np.array(days, dtype="datetime64[D]").astype(np.int32)
    del sources, days
    want_src = code.get(a.source, -1)
    lo = int(np.datetime64(a.day_from, "D").astype(np.int32))
    hi = int(np.datetime64(a.day_to, "D").astype(np.int32))
    load_meta_s = time.perf_counter() - t0

    def embed(text: str) -> np.ndarray:
        b = tok([text], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            o = model.get_text_features(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        f = o if isinstance(o, torch.Tensor) else o.pooler_output
        f = torch.nn.functional.normalize(f, dim=-1)
        return f[0].numpy()

    def search_filtered(q: np.ndarray):
        mask = (src == want_src) & (day >= lo) & (day <= hi)
        idx = np.nonzero(mask)[0]
        s = x[idx] @ q
        k = min(a.k, s.shape[0])
        top = np.argpartition(-s, k - 1)[:k] if k < s.shape[0] else np.arange(s.shape[0])
        top = top[np.argsort(-s[top], kind="stable")]
        return idx[top], s[top], int(idx.shape[0])

    def search_all(q: np.ndarray):
        s = x @ q
        k = min(a.k, s.shape[0])
        top = np.argpartition(-s, k - 1)[:k] if k < s.shape[0] else np.arange(s.shape[0])
        top = top[np.argsort(-s[top], kind="stable")]
        return top, s[top], int(s.shape[0])

    # Tokens per query, <|startoftext|> and <|endoftext|> included (one text: no padding).
    token_counts = [len(tok(query_text(i), truncation=True, max_length=max_len)["input_ids"])
                    for i in range(a.repeat + 1)]
    out = {"load_model_s": load_model_s, "load_vectors_s": load_vectors_s, "load_meta_s": load_meta_s,
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "transformers": transformers.__version__, "numpy": np.__version__,
           "tokenizer_class": type(tok).__name__, "rows_total": int(x.shape[0]),
           "token_counts": token_counts, "variants": {}}
    for variant, search in (("filtered", search_filtered), ("unfiltered", search_all)):
        embed_ms, search_ms, total_ms = [], [], []
        selected, parity = None, None
        for i in range(a.repeat + 1):
            text = query_text(i)
            t0 = time.perf_counter()
            q = embed(text)
            t1 = time.perf_counter()
            ids, scores, n_sel = search(q)
            t2 = time.perf_counter()
            if i > 0:
                embed_ms.append((t1 - t0) * 1e3)
                search_ms.append((t2 - t1) * 1e3)
                total_ms.append((t2 - t0) * 1e3)
            if i == a.parity_query:
                parity = {"text": text, "ids": [f"r{j}" for j in ids.tolist()],
                          "scores": [float(s) for s in scores]}
            selected = n_sel
        out["variants"][variant] = {
            "total_ms": statistics.median(total_ms), "embed_ms": statistics.median(embed_ms),
            "search_ms": statistics.median(search_ms), "rows_selected": selected,
            "total_runs_ms": total_ms, "embed_runs_ms": embed_ms, "search_runs_ms": search_ms,
            "parity": parity,
        }
    return out


def run_python(a, n: int, vecs: Path, meta: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(n), "--vectors", str(vecs),
           "--metadata", str(meta), "--model", str(a.model), "--threads", str(a.threads),
           "--repeat", str(a.repeat), "-k", str(a.k), "--source", a.source, "--from", a.day_from,
           "--to", a.day_to, "--parity-query", str(a.parity_query)]
    env = thread_env(a.threads)
    if a.python_openblas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(a.python_openblas_threads)
    r = run_cmd(cmd, env=env)
    if r["rc"] != 0:
        raise SystemExit(f"python worker failed (rc {r['rc']}): {tail(r['stderr'])}")
    res = last_json_object(r["stdout"])
    res["wall_s"] = r["wall_s"]
    res["peak_rss_mib"] = r["peak_rss_mib"]
    res["openblas_num_threads"] = env["OPENBLAS_NUM_THREADS"]
    return res


# --------------------------------------------------------------------------
# vitrine
# --------------------------------------------------------------------------


def vitrine_env(threads: int) -> dict:
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(threads)
    return env


def filter_args(a) -> list[str]:
    return ["--source", a.source, "--from", a.day_from, "--to", a.day_to]


def run_vitrine(a, store: Path, filtered: bool) -> dict:
    queries = Path(tempfile.mkdtemp(prefix="text-queries-")) / "queries.txt"
    queries.write_text("".join(query_text(i) + "\n" for i in range(a.repeat + 1)), encoding="utf-8")
    cmd = [str(a.vitrine), "--threads", str(a.threads), "--store", str(store), "bench", "text-search",
           "-c", COLLECTION, "--model", str(a.model), "-k", str(a.k), "--repeat", str(a.repeat),
           "--queries", str(queries)]
    if filtered:
        cmd += filter_args(a)
    r = run_cmd(cmd, env=vitrine_env(a.threads))
    shutil.rmtree(queries.parent, ignore_errors=True)
    if r["rc"] != 0:
        raise SystemExit(f"vitrine bench text-search failed (rc {r['rc']}): {tail(r['stderr'])}")
    res = last_json_object(r["stdout"])
    res["cmd"] = " ".join([f"RAYON_NUM_THREADS={a.threads}", *[rel(Path(c)) if "/" in c else c for c in cmd]])
    res["wall_s"] = r["wall_s"]
    res["peak_rss_mib"] = r["peak_rss_mib"]
    return res


def vitrine_top_ids(a, store: Path, text: str, filtered: bool) -> list[str] | None:
    cmd = [str(a.vitrine), "--threads", str(a.threads), "--store", str(store), "search", "-c", COLLECTION,
           "--model", str(a.model), "--text", text, "-k", str(a.k), "--format", "jsonl"]
    if filtered:
        cmd += filter_args(a)
    r = run_cmd(cmd, env=vitrine_env(a.threads))
    if r["rc"] != 0:
        log(f"  vitrine search failed (rc {r['rc']}): {tail(r['stderr'], 300)}")
        return None
    ids = []
    for line in r["stdout"].splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            if "id" in obj:
                ids.append(str(obj["id"]))
    return ids


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def fmt_ms(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def markdown(rows: list[dict], threads: int, openblas: int) -> str:
    out = [
        f"| images | filter | rows scanned | vitrine total ms (embed + search) | Python total ms (embed + search) "
        f"| search ratio | total ratio Python/vitrine |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        v, p = r["vitrine"], r["python"]
        out.append(
            f"| {r['images']:,} | {r['filter']} | {v['rows_scanned']:,} "
            f"| {fmt_ms(v['total_ms'])} ({fmt_ms(v['embed_ms'])} + {fmt_ms(v['search_ms'])}) "
            f"| {fmt_ms(p['total_ms'])} ({fmt_ms(p['embed_ms'])} + {fmt_ms(p['search_ms'])}) "
            f"| {r['ratio_search']:.1f}x | {r['ratio_total']:.2f}x |"
        )
    out.append("")
    out.append(f"Medians of {rows[0]['repeat'] if rows else '?'} queries after one warm-up, {threads} threads both "
               f"sides (Python OPENBLAS_NUM_THREADS={openblas}); ratio = Python ms / vitrine ms "
               f"(> 1: vitrine is faster).")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--vectors", help=argparse.SUPPRESS)
    p.add_argument("--metadata", help=argparse.SUPPRESS)
    p.add_argument("--parity-query", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("-k", "--k", type=int, default=20)
    p.add_argument("--model", default=str(DATA_DIR / "clip-vit-b32-random"))
    p.add_argument("--source", default="products")
    p.add_argument("--from", dest="day_from", default="2023-11-19")
    p.add_argument("--to", dest="day_to", default="2023-11-23")
    p.add_argument("--vitrine", default=str(REPO_DIR / "target" / "release" / "vitrine"))
    p.add_argument("--python-openblas-threads", type=int, default=None,
                   help="OPENBLAS_NUM_THREADS of the Python worker (default: --threads); 1 is a diagnostic: "
                        "on a 2-core machine numpy's second OpenBLAS thread spins after each matmul and slows "
                        "the next torch text encoding, but 1 also makes the numpy scan single-threaded")
    p.add_argument("--out", help="write the whole result as JSON to this file")
    a = p.parse_args()

    if a.worker:
        print(json.dumps(worker(a)))
        return 0

    a.vitrine = Path(a.vitrine)
    a.model = Path(a.model)
    if not a.vitrine.exists():
        raise SystemExit(f"{a.vitrine}: missing (cargo build --release)")
    if not (a.model / "model.safetensors").exists():
        raise SystemExit(f"{a.model}: no model.safetensors (bench/clip_bench.py builds it)")
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    started = dt.datetime.now(dt.timezone.utc)
    rows, failures = [], []
    for n in sizes:
        vecs, meta, store = ensure_data(a.vitrine, n)
        log(f"{n} images: vitrine filtered / unfiltered")
        la = loadavg()
        v = {"filtered": run_vitrine(a, store, True), "unfiltered": run_vitrine(a, store, False)}
        log(f"{n} images: python reference")
        py = run_python(a, n, vecs, meta)
        log(f"{n} images: vitrine filtered / unfiltered again (after Python)")
        v2 = {"filtered": run_vitrine(a, store, True), "unfiltered": run_vitrine(a, store, False)}
        for variant in ("filtered", "unfiltered"):
            pv = py["variants"][variant]
            vv = v[variant]
            if pv["rows_selected"] != vv["rows_scanned"]:
                failures.append(f"{n} {variant}: python selected {pv['rows_selected']} rows, "
                                f"vitrine scanned {vv['rows_scanned']}")
            assert pv["rows_selected"] == vv["rows_scanned"], failures[-1]
            assert vv["rows_total"] == n, (vv["rows_total"], n)
            par = pv.pop("parity")
            vids = vitrine_top_ids(a, store, par["text"], variant == "filtered")
            overlap = len(set(vids) & set(par["ids"])) if vids is not None else None
            row = {
                "images": n, "filter": (f"source={a.source}, {a.day_from}..{a.day_to}" if variant == "filtered"
                                        else "none"),
                "variant": variant, "threads": a.threads, "k": a.k, "repeat": a.repeat,
                "vitrine": vv, "vitrine_rerun": v2[variant],
                "python": {**{k: pv[k] for k in ("total_ms", "embed_ms", "search_ms", "rows_selected")},
                           "runs": {k: pv[k] for k in ("total_runs_ms", "embed_runs_ms", "search_runs_ms")}},
                "ratio_total": pv["total_ms"] / vv["total_ms"],
                "ratio_embed": pv["embed_ms"] / vv["embed_ms"],
                "ratio_search": pv["search_ms"] / vv["search_ms"],
                "rows_match": pv["rows_selected"] == vv["rows_scanned"],
                "parity_topk": {"text": par["text"], "python_ids": par["ids"], "python_scores": par["scores"],
                                "vitrine_ids": vids, "overlap": overlap,
                                "same_order": vids == par["ids"] if vids is not None else None},
                "python_token_counts": py["token_counts"],
                "loadavg_before": la,
            }
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("images", "variant", "ratio_total", "ratio_embed", "ratio_search",
                                                   "rows_match")}
                             | {"vitrine": {k: vv[k] for k in ("total_ms", "embed_ms", "search_ms", "rows_scanned",
                                                               "partitions_scanned")},
                                "vitrine_rerun_total_ms": v2[variant]["total_ms"],
                                "python": row["python"] | {"runs": None},
                                "topk_overlap": overlap}), flush=True)
        py_info = {k: py[k] for k in py if k != "variants"}
        rows[-1]["python_info"] = rows[-2]["python_info"] = py_info
    table = markdown(rows, a.threads, a.python_openblas_threads or a.threads)
    print()
    print(table)
    if a.out:
        result = {
            "bench": "text_query_bench", "started": started.isoformat(timespec="seconds"),
            "cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "threads": a.threads,
            "python_openblas_threads": a.python_openblas_threads or a.threads, "k": a.k, "repeat": a.repeat,
            "model": rel(a.model), "queries": [query_text(i) for i in range(a.repeat + 1)],
            "results": rows, "markdown": table, "loadavg_end": loadavg(),
        }
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
        log(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
