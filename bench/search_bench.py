#!/usr/bin/env python3
"""Exact top-k search benchmark: vitrine vs numpy vs faiss (IndexFlatIP).

Usage (after bench/setup.sh):

    bench/.venv/bin/python bench/search_bench.py --n 1000000 --dim 512 --out bench/results

One run generates (or reuses) the data under bench/data/, measures the numpy
and faiss peers in child processes of this same script (so BLAS/OpenMP thread
settings are in the environment before numpy/faiss are imported), then drives
the vitrine binary, and writes results/search_N_D.json, results/faiss_ids.json
and a Markdown summary on stdout.

Every timing is wall clock (time.perf_counter) after one untimed warm-up run;
the reported figure is the median of the timed runs.  Data files are read warm
(page cache is never dropped).  "GB" is 10^9 bytes; scan GB/s = N*D*4 / time.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SEED = 42
N_QUERIES = 64  # size of the query set, and of one batch
N_EXACT = 8  # queries used for the id-equality check
META_DAYS = 365
META_START = dt.date(2023, 1, 1)
PRUNE_FROM, PRUNE_TO = "2023-06-01", "2023-06-05"  # 5 of the 365 days
# faiss >= 1.15 switches to BLAS when nq * d >= this (older faiss: nq >= it).
FAISS_BLAS_THRESHOLD = 10240


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def median_ms(runs_ms: list[float]) -> float:
    return float(statistics.median(runs_ms))


def scan_gbps(n: int, d: int, ms: float | None) -> float | None:
    """Bytes of the float32 matrix read by one full scan, per second, in GB/s."""
    if not ms:
        return None
    return n * d * 4 / (ms / 1e3) / 1e9


def time_runs(fn, inputs: list, warmup: int = 1) -> list[float]:
    """Run fn over inputs (after `warmup` untimed calls); return ms per call."""
    for x in inputs[:warmup]:
        fn(x)
    out = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def last_json_object(text: str) -> dict:
    """The whole stdout as JSON, or else its last line that parses as an object."""
    text = text.strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except json.JSONDecodeError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object in output: {text[-300:]!r}")


def gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (supports -f/-o), else None."""
    exe = "/usr/bin/time"
    if not os.access(exe, os.X_OK):
        return None
    try:
        r = subprocess.run([exe, "-f", "%M", "-o", os.devnull, "true"], capture_output=True)
        return exe if r.returncode == 0 else None
    except OSError:
        return None


GNU_TIME = gnu_time()


def run_cmd(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd; stderr goes straight to ours, stdout is captured.

    Peak RSS: os.wait4/getrusage on a direct child of this script is NOT used,
    because Linux carries the parent's RSS high-water mark into a forked child
    across exec (a /bin/true spawned from a 300 MiB Python reports 313 MiB).
    GNU time forks the command from its own tiny process, so its %M is the
    command's true peak.  Without GNU time, /proc/PID/status VmHWM is sampled
    every 10 ms (may miss a peak in the last few ms before exit).
    """
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        argv = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=None, env=env)
        hwm_kib = 0
        if not GNU_TIME:
            # WNOWAIT: notice the exit without reaping, then reap via wait().
            while os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                hwm_kib = max(hwm_kib, vm_hwm_kib(p.pid))
                time.sleep(0.01)
        rc = p.wait()
        wall = time.perf_counter() - t0
        if GNU_TIME:
            # GNU time prints "Command exited with non-zero status N" first
            # when the command fails; the number is on the last line.
            lines = rss.read().strip().splitlines()
            hwm_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    return {
        "cmd": cmd,
        "rc": rc,
        "stdout": stdout,
        "wall_s": wall,
        "peak_rss_mib": hwm_kib / 1024.0 if hwm_kib else None,
        "peak_rss_method": "gnu-time" if GNU_TIME else "VmHWM-sampled",
    }


def vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def openblas_info(lib_glob: str, prefix: str, suffix: str) -> dict:
    """Runtime thread count and core name of an already-loaded OpenBLAS."""
    info: dict = {}
    try:
        paths = glob.glob(lib_glob)
        if not paths:
            return {"error": f"no library matches {lib_glob}"}
        lib = ctypes.CDLL(paths[0])  # same handle as the one numpy/faiss loaded
        info["library"] = os.path.basename(paths[0])
        info["threads"] = int(getattr(lib, f"{prefix}get_num_threads{suffix}")())
        for name in ("get_corename", "get_config"):
            f = getattr(lib, f"{prefix}{name}{suffix}")
            f.restype = ctypes.c_char_p
            info[name[4:]] = f().decode()
    except Exception as e:  # informational only
        info["error"] = repr(e)
    return info


def ids_compare(ref: list[list[int]], got: list[list[int]]) -> dict:
    """Compare two per-query ranked id lists: in order, as sets, or neither."""
    per_query = []
    for a, b in zip(ref, got):
        per_query.append(
            {
                "order_equal": a == b,
                "set_equal": set(a) == set(b),
                "sym_diff": sorted(set(a) ^ set(b)),
            }
        )
    if len(ref) != len(got):
        verdict = "differs (query count)"
    elif all(q["order_equal"] for q in per_query):
        verdict = "equal"
    elif all(q["set_equal"] for q in per_query):
        verdict = "equal as sets (order differs)"
    else:
        verdict = "differs"
    return {"verdict": verdict, "per_query": per_query}


def tie_gaps(cmp: dict, base_path: Path, queries, k: int, ref, got) -> None:
    """For ids that only one side returned, add how far their exact (float64)
    score is from the exact k-th score: ~1e-7 means a legitimate near-tie."""
    import numpy as np

    base = np.load(base_path, mmap_mode="r")
    worst = 0.0
    for qi, q in enumerate(cmp["per_query"]):
        if not q["sym_diff"]:
            continue
        union = sorted(set(ref[qi]) | set(got[qi]))
        s = base[union].astype(np.float64) @ queries[qi].astype(np.float64)
        score = dict(zip(union, s.tolist()))
        kth = sorted(s.tolist(), reverse=True)[k - 1]
        gap = max(abs(score[i] - kth) for i in q["sym_diff"])
        q["max_gap_to_kth_f64"] = gap
        worst = max(worst, gap)
    cmp["max_gap_to_kth_f64"] = worst


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def unit_rows(x):
    import numpy as np

    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def npy_ok(path: Path, shape: tuple) -> bool:
    import numpy as np

    if not path.exists():
        return False
    try:
        m = np.load(path, mmap_mode="r")
        return m.shape == shape and m.dtype == np.float32
    except Exception:
        return False


def ensure_data(n: int, d: int, data_dir: Path) -> dict:
    """Create (or reuse) base, queries, q8 and meta365 files.

    One default_rng(42) stream: the 64 queries are drawn first, then the base
    rows in chunks (chunking does not change the stream), so queries depend
    only on D and base_N is a prefix of base_M for N < M.
    """
    import numpy as np

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "base": data_dir / f"base_{n}_{d}.npy",
        "queries": data_dir / f"queries_{d}.npy",
        "q8": data_dir / f"q{N_EXACT}_{d}.npy",
        "meta365": data_dir / f"meta365_{n}.jsonl",
    }
    rng = np.random.default_rng(SEED)
    queries = unit_rows(rng.standard_normal((N_QUERIES, d), dtype=np.float32))
    if not npy_ok(paths["queries"], (N_QUERIES, d)):
        np.save(paths["queries"], queries)
    else:
        queries = np.load(paths["queries"])
    if not npy_ok(paths["q8"], (N_EXACT, d)):
        np.save(paths["q8"], np.ascontiguousarray(queries[:N_EXACT]))

    if npy_ok(paths["base"], (n, d)):
        log(f"reusing {paths['base']}")
    else:
        log(f"generating {paths['base']} ({n * d * 4 / 1e9:.2f} GB)")
        t0 = time.perf_counter()
        tmp = paths["base"].with_suffix(".npy.tmp")
        # Write through a memmap so only one chunk is ever in memory; the
        # rename makes a half-written file impossible to mistake for data.
        m = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
        chunk = max(1, (64 << 20) // (4 * d))  # ~64 MiB per chunk
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m[start:stop] = unit_rows(
                rng.standard_normal((stop - start, d), dtype=np.float32)
            )
        m.flush()
        del m
        os.replace(tmp, paths["base"])
        log(f"generated in {time.perf_counter() - t0:.1f} s")

    meta = paths["meta365"]
    if not (meta.exists() and line_count(meta) == n):
        log(f"writing {meta}")
        days = [(META_START + dt.timedelta(days=i)).isoformat() for i in range(META_DAYS)]
        tmp = meta.with_suffix(".jsonl.tmp")
        with open(tmp, "w", buffering=1 << 20) as f:
            for i in range(n):
                src = "products" if i % 2 == 0 else "avatars"
                f.write(
                    f'{{"id": "r{i}", "uri": "mem://{i}", "source": "{src}", '
                    f'"day": "{days[i % META_DAYS]}"}}\n'
                )
        os.replace(tmp, meta)
    return {"paths": paths, "queries": queries}


def line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))


# --------------------------------------------------------------------------
# peers (run as child processes: `search_bench.py --peer numpy|faiss ...`)
# --------------------------------------------------------------------------


def single_inputs(r: int) -> list[int]:
    """Query indices for R single-query runs, cycling over the query set."""
    return [i % N_QUERIES for i in range(r)]


def peer_numpy(a) -> dict:
    import numpy as np

    k = a.k
    t0 = time.perf_counter()
    X = np.load(a.base)  # one private copy in RAM (no mmap page-cache effects)
    load_s = time.perf_counter() - t0
    Q = np.load(a.queries)

    def single(qi: int):
        s = X @ Q[qi]  # sgemv
        idx = np.argpartition(s, -k)[-k:]
        return idx[np.argsort(-s[idx])]

    def batch(_):
        S = Q @ X.T  # sgemm, (64, N) float32
        idx = np.argpartition(S, -k, axis=1)[:, -k:]
        top = np.take_along_axis(S, idx, axis=1)
        return np.take_along_axis(idx, np.argsort(-top, axis=1), axis=1)

    single_runs = time_runs(single, single_inputs(a.repeat_single))
    # This untimed batch doubles as the batch warm-up.  gemv and gemm round
    # differently, so a disagreement at rank k is possible (near-tie): record it.
    agree = set(single(0).tolist()) == set(batch(None)[0].tolist())
    batch_runs = time_runs(batch, [None] * a.repeat_batch, warmup=0)
    ids = [single(i).tolist() for i in range(N_EXACT)]

    np_libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    return {
        "numpy_version": np.__version__,
        "openblas_runtime": openblas_info(
            os.path.join(np_libs, "libscipy_openblas64_*.so"), "scipy_openblas_", "64_"
        ),
        "npy_load_s": load_s,
        "single_runs_ms": single_runs,
        "single_ms": median_ms(single_runs),
        "batch_runs_ms": batch_runs,
        "batch_ms": median_ms(batch_runs),
        "ids_first8": ids,
        "single_batch_top_k_agree_q0": agree,
    }


def peer_faiss(a) -> dict:
    import faiss
    import numpy as np

    k = a.k
    X = np.load(a.base)  # in RAM first, so add() is timed without file reads
    Q = np.load(a.queries)
    n, d = X.shape
    index = faiss.IndexFlatIP(d)
    faiss.omp_set_num_threads(a.threads)
    t0 = time.perf_counter()
    index.add(X)  # copies X into the index
    add_s = time.perf_counter() - t0
    del X

    def single(qi: int):
        return index.search(Q[qi : qi + 1], k)

    def batch(_):
        return index.search(Q, k)

    out: dict = {
        "faiss_version": faiss.__version__,
        "compile_options": faiss.get_compile_options(),
        "simd_level": simd_level(faiss),
        "add_s": add_s,
        "add_vectors_per_s": n / add_s,
    }

    # Single query.  faiss 1.15 with 1 thread: sequential SIMD scan.  With 2+
    # threads and nq < threads it splits the *database* over threads
    # (knn_db_parallel_impl, sgemm per 1024-row block); older faiss would use
    # a single thread for nq=1 whatever the setting.
    for t in (1, a.threads):
        faiss.omp_set_num_threads(t)
        runs = time_runs(single, single_inputs(a.repeat_single))
        out[f"single_{t}t_runs_ms"] = runs
        out[f"single_{t}t_ms"] = median_ms(runs)

    # Batch-64 on all threads through BLAS.  Since faiss 1.15 the switch is
    # nq * d >= distance_compute_blas_threshold (default 128000, so 64 x 512 =
    # 32768 would *not* use BLAS by default); lower it, but never above nq*d.
    faiss.omp_set_num_threads(a.threads)
    cv = faiss.cvar
    have_attr = hasattr(cv, "distance_compute_blas_threshold")
    out["blas_threshold_attr_exists"] = have_attr
    if have_attr:
        default = int(cv.distance_compute_blas_threshold)
        used = min(FAISS_BLAS_THRESHOLD, N_QUERIES * d)
        cv.distance_compute_blas_threshold = used
        out["blas_threshold_default"] = default
        out["blas_threshold_used"] = used
        out["batch_uses_blas"] = N_QUERIES * d >= used
    runs = time_runs(batch, [None] * a.repeat_batch)
    out["batch_runs_ms"] = runs
    out["batch_ms"] = median_ms(runs)
    if have_attr:
        cv.distance_compute_blas_threshold = default

    # Reference ids for the exactness check (default threshold; 8 queries on
    # `threads` threads take the sequential SIMD path, one query per thread).
    _, ids = index.search(Q[:N_EXACT], k)
    out["ids_first8"] = ids.tolist()
    out["openblas_runtime"] = openblas_info(
        os.path.join(os.path.dirname(faiss.__file__), os.pardir, "faiss_cpu.libs", "libopenblas*.so"),
        "openblas_",
        "",
    )
    return out


def simd_level(faiss) -> str | None:
    try:  # faiss >= 1.13 dynamic dispatch
        return faiss.SIMDConfig.get_level_name()
    except Exception:
        return None


def run_peer(name: str, args, paths: dict) -> dict:
    """Run one peer in a child of this script with the thread env pinned."""
    env = dict(os.environ)
    t = str(args.threads)
    env.update(
        OPENBLAS_NUM_THREADS=t, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OMP_WAIT_POLICY="PASSIVE"
    )
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--peer", name,
        "--base", str(paths["base"]), "--queries", str(paths["queries"]),
        "--k", str(args.k), "--threads", t,
        "--repeat-single", str(args.repeat_single), "--repeat-batch", str(args.repeat_batch),
    ]  # fmt: skip
    log(f"peer {name}: starting")
    r = run_cmd(cmd, env=env)
    if r["rc"] != 0:
        raise RuntimeError(f"peer {name} failed (rc={r['rc']})")
    res = last_json_object(r["stdout"])
    res["peak_rss_mib"] = r["peak_rss_mib"]
    res["env"] = {k: env[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    log(f"peer {name}: done in {r['wall_s']:.1f} s")
    return res


# --------------------------------------------------------------------------
# vitrine
# --------------------------------------------------------------------------


class Vitrine:
    """Runs vitrine sub-commands; a failing step is recorded, not fatal."""

    def __init__(self, binary: Path, res: dict):
        self.binary = str(binary)
        self.res = res
        self.res.setdefault("errors", {})

    def run(self, step: str, argv: list[str], parse_json: bool = True, env: dict | None = None):
        cmd = [self.binary, *argv]
        log(f"vitrine {step}: {' '.join(cmd)}")
        r = run_cmd(cmd, env=None if env is None else {**os.environ, **env})
        if r["rc"] != 0:
            self.res["errors"][step] = f"rc={r['rc']}: {r['stdout'][-500:]}"
            log(f"vitrine {step}: FAILED rc={r['rc']}")
            return None
        if not parse_json:
            return r
        try:
            r["json"] = last_json_object(r["stdout"])
        except ValueError as e:
            self.res["errors"][step] = str(e)
            return None
        return r


def bench_vitrine(args, n: int, d: int, paths: dict, queries, faiss_ids) -> dict:
    res: dict = {"binary": str(args.vitrine)}
    v = Vitrine(args.vitrine, res)
    k = str(args.k)
    data_dir = paths["base"].parent
    store = data_dir / f"vitrine_store_{n}_{d}"
    store365 = data_dir / f"vitrine_store365_{n}_{d}"

    ver = v.run("version", ["--version"], parse_json=False)
    if ver:
        res["version"] = ver["stdout"].strip()

    r = v.run("membw", ["bench", "membw", "--mib", str(args.membw_mib), "--repeat", "5"])
    if r:
        res["membw"] = r["json"]

    # Imports are timed from outside (wall clock, including process start).
    for step, st, extra in (
        ("import", store,
         ["--source", "products", "--day", "2023-01-01", "--id-prefix", "r"]),
        ("import365", store365, ["--metadata", str(paths["meta365"])]),
    ):  # fmt: skip
        if st.exists():
            shutil.rmtree(st)  # a fresh store each run, so the import is real
        r = v.run(
            step,
            ["--store", str(st), "import", "--collection", "bench",
             "--vectors", str(paths["base"]), *extra],
            parse_json=False,
        )  # fmt: skip
        if r and not st.exists():
            res["errors"][step] = f"exit 0 but no store at {st}"
        elif r:
            res[step] = {
                "wall_s": r["wall_s"],
                "vectors_per_s": n / r["wall_s"],
                "peak_rss_mib": r["peak_rss_mib"],
                "stdout_tail": r["stdout"][-1000:],
            }

    r = v.run("open", ["--store", str(store), "bench", "open", "--collection", "bench", "--repeat", "5"])
    if r:
        res["open"] = r["json"]

    def search(step, st, batch, repeat, extra=(), env=None):
        r = v.run(
            step,
            ["--store", str(st), "bench", "search", "--collection", "bench",
             "--queries", str(paths["queries"]), "-k", k,
             "--batch", str(batch), "--repeat", str(repeat), *extra],
            env=env,
        )  # fmt: skip
        if r:
            out = dict(r["json"])
            out["peak_rss_mib"] = r["peak_rss_mib"]
            res[step] = out

    # The 8-bit scan (the default) and the f32 scan, alternating, on the same store.
    for _ in range(2):
        search("search_single", store, 1, args.repeat_single)
        search("search_single_f32", store, 1, args.repeat_single, env={"VITRINE_SCAN": "float"})
    search("search_batch", store, N_QUERIES, args.repeat_batch)
    search("search_batch_f32", store, N_QUERIES, args.repeat_batch, env={"VITRINE_SCAN": "float"})
    search("prune_full", store365, 1, args.repeat_single)
    search("prune_5d", store365, 1, args.repeat_single, ("--from", PRUNE_FROM, "--to", PRUNE_TO))
    full, part = res.get("prune_full"), res.get("prune_5d")
    if full and part:
        res["pruning"] = {
            "full_ms": full["median_ms"],
            "days5_ms": part["median_ms"],
            "ratio": part["median_ms"] / full["median_ms"],
            "ideal_ratio": 5 / META_DAYS,
        }

    r = v.run(
        "exact",
        ["--store", str(store), "search", "--collection", "bench",
         "--vector-file", str(paths["q8"]), "-k", k, "--format", "jsonl"],
        parse_json=False,
    )  # fmt: skip
    if r and faiss_ids is not None:
        try:
            got = parse_vitrine_jsonl(r["stdout"], N_EXACT)
            short = [q for q, ids in enumerate(got) if len(ids) != args.k]
            if short:
                raise ValueError(f"queries {short} do not have {args.k} hits")
            cmp = ids_compare(faiss_ids, got)
            tie_gaps(cmp, paths["base"], queries, args.k, faiss_ids, got)
            res["exact_vs_faiss"] = cmp
        except Exception as e:
            res["errors"]["exact"] = f"parse: {e!r}"
    return res


def parse_vitrine_jsonl(text: str, nq: int) -> list[list[int]]:
    """jsonl hits {"query":q,"rank":r,"id":"r123",...} -> ranked row indices."""
    hits: dict[int, list[tuple[int, int]]] = {q: [] for q in range(nq)}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        h = json.loads(line)
        if "receipt" in h:  # the last line: what the search covered
            continue
        ident = str(h["id"])
        if not ident.startswith("r"):
            raise ValueError(f"unexpected id {ident!r}")
        hits.setdefault(int(h["query"]), []).append((int(h["rank"]), int(ident[1:])))
    return [[i for _, i in sorted(hits[q])] for q in range(nq)]


# --------------------------------------------------------------------------
# environment record and report
# --------------------------------------------------------------------------


def environment() -> dict:
    import numpy as np

    env: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "numpy": np.__version__,
    }
    try:
        import faiss

        env["faiss"] = faiss.__version__
    except ImportError:
        env["faiss"] = None
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        env["numpy_blas"] = {
            "name": blas.get("name"),
            "version": blas.get("version"),
            "openblas_configuration": blas.get("openblas configuration"),
        }
        env["numpy_simd"] = cfg.get("SIMD Extensions")
    except Exception as e:
        env["numpy_blas"] = {"error": repr(e)}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu_model"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split()
                    env["cpu_simd"] = [x for x in ("avx2", "fma", "avx512f", "avx512bw") if x in flags]
                    break
        with open("/proc/meminfo") as f:
            env["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        env["git_head"] = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip() or None
    except OSError:
        env["git_head"] = None
    return env


def fmt(x, spec=".2f", none="—") -> str:
    return none if x is None else format(x, spec)


def report(results: dict) -> str:
    n, d = results["n"], results["dim"]
    nq = N_QUERIES
    npy, fai, vit = (results.get(key) or {} for key in ("numpy", "faiss", "vitrine"))
    vs, vb = vit.get("search_single") or {}, vit.get("search_batch") or {}
    v_single, v_batch = vs.get("median_ms"), vb.get("median_ms")

    def ratio(ms, ref):
        return f"{ms / ref:.2f}x" if ms and ref else "—"

    rows = []
    if vit:
        rows.append(("vitrine", "8-bit codes, then exact f64 re-rank (default)", v_single, v_batch))
        fs, fb = vit.get("search_single_f32") or {}, vit.get("search_batch_f32") or {}
        rows.append(("vitrine", "f32 scan, then exact f64 re-rank (VITRINE_SCAN=float)", fs.get("median_ms"), fb.get("median_ms")))
    if npy:
        rows.append((f"numpy {npy['numpy_version']}", f"X@q + argpartition, OpenBLAS {results['threads']} thr", npy["single_ms"], npy["batch_ms"]))  # fmt: skip
    if fai:
        t = results["threads"]
        thr = fai.get("blas_threshold_used")
        rows.append((f"faiss {fai['faiss_version']}", "IndexFlatIP, 1 thread", fai["single_1t_ms"], None))
        rows.append((f"faiss {fai['faiss_version']}", f"IndexFlatIP, {t} threads (batch: BLAS, threshold {thr})", fai[f"single_{t}t_ms"], fai["batch_ms"]))  # fmt: skip

    lines = [
        f"### Exact top-{results['k']} search, N={n:,} D={d} float32 ({n * d * 4 / 1e9:.2f} GB)",
        "",
        f"| system | setting | single-query ms (median) | scan GB/s | batch-{nq} ms | queries/s | ratio vs vitrine (single / batch) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for system, setting, s_ms, b_ms in rows:
        qps = f"{nq * 1e3 / b_ms:,.0f}" if b_ms else (f"{1e3 / s_ms:,.0f}*" if s_ms else "—")
        lines.append(
            f"| {system} | {setting} | {fmt(s_ms, '.3f')} | {fmt(scan_gbps(n, d, s_ms), '.1f')} "
            f"| {fmt(b_ms, '.1f')} | {qps} | {ratio(s_ms, v_single)} / {ratio(b_ms, v_batch)} |"
        )
    lines += [
        "",
        f"queries/s = {nq} / batch-{nq} time (* = 1 / single-query time). "
        "ratio = system time / vitrine time (>1: vitrine faster). "
        f"Median of {results['repeat_single']} single / {results['repeat_batch']} batch runs after one warm-up.",
        "",
    ]
    if not vit:
        lines.append(f"vitrine: skipped ({results.get('vitrine_skipped', 'not run')})")
    else:
        mb = vit.get("membw") or {}
        all_bw = mb.get("threads_all_gbps")
        lines.append(
            f"- memory bandwidth (vitrine bench membw): 1 thread {fmt(mb.get('threads_1_gbps'), '.1f')} GB/s, "
            f"{mb.get('threads', '?')} threads {fmt(all_bw, '.1f')} GB/s"
        )
        g = scan_gbps(n, d, v_single)
        pct = f"{100 * g / all_bw:.0f}%" if g and all_bw else "—"
        lines.append(f"- vitrine single-query scan: {fmt(g, '.1f')} GB/s of f32 equivalent = {pct} of all-core bandwidth")
        for key, label in (("search_single", "single"), ("search_batch", f"batch of {nq}")):
            st = vit.get(key) or {}
            if "rows_by_code" in st:
                lines.append(
                    f"- vitrine 8-bit scan, {label}: {st['rows_by_code']:,} rows read by code, "
                    f"{st['bytes_scanned'] / 1e6:,.0f} MB read, {st['candidates_reranked_per_query']:,.1f} rows re-ranked "
                    f"in f64 per query, {st['code_fallbacks']} fallbacks to f32"
                )
        for key, label in (("import", "import"), ("import365", "import with metadata (365 days)")):
            im = vit.get(key)
            if im:
                lines.append(
                    f"- vitrine {label}: {im['vectors_per_s']:,.0f} vectors/s "
                    f"({im['wall_s']:.2f} s wall), peak RSS {fmt(im['peak_rss_mib'], ',.0f')} MiB"
                )
        op = vit.get("open") or {}
        lines.append(f"- vitrine open: {fmt(op.get('open_ms'), '.2f')} ms (median of 5)")
        lines.append(
            f"- vitrine search peak RSS: single {fmt(vs.get('peak_rss_mib'), ',.0f')} MiB, "
            f"batch {fmt(vb.get('peak_rss_mib'), ',.0f')} MiB"
        )
        pr = vit.get("pruning")
        if pr:
            lines.append(
                f"- pruning {PRUNE_FROM}..{PRUNE_TO}: {pr['days5_ms']:.3f} ms vs {pr['full_ms']:.3f} ms "
                f"all 365 days, ratio {pr['ratio']:.4f} (ideal 5/365 = {pr['ideal_ratio']:.4f})"
            )
        ex = vit.get("exact_vs_faiss")
        if ex:
            lines.append(
                f"- top-{results['k']} ids vs faiss, first {N_EXACT} queries: {ex['verdict']}"
                + (f" (max |score-kth| of differing ids, float64: {ex['max_gap_to_kth_f64']:.2e})" if ex.get("max_gap_to_kth_f64") else "")
            )  # fmt: skip
        if vit.get("errors"):
            lines.append(f"- vitrine steps that failed: {', '.join(sorted(vit['errors']))}")
    if fai:
        lines.append(f"- faiss add(): {fai['add_vectors_per_s']:,.0f} vectors/s (from RAM)")
    peers = [(nm, r.get("peak_rss_mib")) for nm, r in (("numpy", npy), ("faiss", fai)) if r]
    if peers:
        lines.append("- peers peak RSS: " + ", ".join(f"{nm} {fmt(m, ',.0f')} MiB" for nm, m in peers))
    if results.get("numpy_vs_faiss"):
        lines.append(f"- numpy vs faiss ids, first {N_EXACT} queries: {results['numpy_vs_faiss']['verdict']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="base vectors")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--repeat-single", type=int, default=7, help="timed single-query runs")
    p.add_argument("--repeat-batch", type=int, default=3, help="timed batch-64 runs")
    p.add_argument("--threads", type=int, default=2, help="threads for numpy/faiss peers")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    p.add_argument("--vitrine", type=Path, default=REPO_DIR / "target" / "release" / "vitrine")
    p.add_argument("--membw-mib", type=int, default=2048)
    p.add_argument(
        "--systems", default="numpy,faiss,vitrine", help="comma list of systems to run"
    )
    # internal: child-process mode
    p.add_argument("--peer", choices=("numpy", "faiss"), help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    p.add_argument("--queries", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.peer:
        # Child: the parent set the thread env before this interpreter started.
        fn = peer_numpy if args.peer == "numpy" else peer_faiss
        print(json.dumps(fn(args)))
        return 0

    n, d = args.n, args.dim
    systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    data = ensure_data(n, d, args.data_dir)
    paths, queries = data["paths"], data["queries"]

    results: dict = {
        "n": n,
        "dim": d,
        "k": args.k,
        "threads": args.threads,
        "repeat_single": args.repeat_single,
        "repeat_batch": args.repeat_batch,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {k: str(v) for k, v in paths.items()},
        "environment": environment(),
        "peak_rss_method": "gnu-time" if GNU_TIME else "VmHWM-sampled",
    }
    if "numpy" in systems:
        results["numpy"] = run_peer("numpy", args, paths)
    faiss_ids = None
    if "faiss" in systems:
        results["faiss"] = run_peer("faiss", args, paths)
        faiss_ids = results["faiss"]["ids_first8"]
        with open(args.out / "faiss_ids.json", "w") as f:
            json.dump({"n": n, "dim": d, "k": args.k, "queries": str(paths["q8"]), "ids": faiss_ids}, f)
        if "numpy" in systems:
            results["numpy_vs_faiss"] = ids_compare(faiss_ids, results["numpy"]["ids_first8"])
            tie_gaps(results["numpy_vs_faiss"], paths["base"], queries, args.k, faiss_ids, results["numpy"]["ids_first8"])  # fmt: skip
    if "vitrine" in systems:
        if args.vitrine.is_file() and os.access(args.vitrine, os.X_OK):
            results["vitrine"] = bench_vitrine(args, n, d, paths, queries, faiss_ids)
        else:
            results["vitrine_skipped"] = f"binary not found: {args.vitrine}"
            log(f"note: {results['vitrine_skipped']}; skipping vitrine rows")
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    out_json = args.out / f"search_{n}_{d}.json"
    with open(out_json, "w") as f:
        json.dump(results, f, indent=1)
    print(report(results))
    log(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
