#!/usr/bin/env python3
"""A/B: two vitrine binaries on the same stores, in alternating rounds (regression check).

Usage (after bench/search_bench.py and bench/text_query_bench.py have built bench/data):

    git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release -p vitrine-cli \\
        --target-dir "$PWD/../main/target") && cp target/release/vitrine /tmp/vitrine-old
    cargo build --release
    python3 bench/ab_search.py --a /tmp/vitrine-old --b target/release/vitrine --rounds 3

Each round runs, for A then B (then B then A in the next round, so drift cancels), the
in-process timings of `vitrine bench search` (single query, batch of 64, a 5-day filter over
365 days) and `vitrine bench text-search` (products + 5 days, and unfiltered) on the 1M-row
stores of bench/data. Reported: the median over rounds of each binary's median, and B / A.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def cases(n: int) -> list[tuple[str, list[str], str]]:
    store = str(DATA / f"vitrine_store_{n}_512")
    store365 = str(DATA / f"vitrine_store365_{n}_512")
    queries = str(DATA / "queries_512.npy")
    model = str(DATA / "clip-vit-b32-random")
    five = ["--source", "products", "--from", "2023-11-19", "--to", "2023-11-23"]
    return [
        ("search 1M, single query", ["--store", store, "bench", "search", "-c", "bench", "--queries", queries, "--repeat", "15"], "median_ms"),
        ("search 1M, batch of 64", ["--store", store, "bench", "search", "-c", "bench", "--queries", queries, "--batch", "64", "--repeat", "3"], "median_ms"),
        ("search 1M, 5 of 365 days", ["--store", store365, "bench", "search", "-c", "bench", "--queries", queries, "--repeat", "15",
                                      "--from", "2023-06-01", "--to", "2023-06-05"], "median_ms"),
        ("text query 1M, products + 5 days", ["--store", store365, "bench", "text-search", "-c", "bench", "--model", model, "--repeat", "15"] + five, "total_ms"),
        ("text query 1M, everything", ["--store", store365, "bench", "text-search", "-c", "bench", "--model", model, "--repeat", "15"], "total_ms"),
    ]


def run(binary: str, args: list[str], key: str) -> float:
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    out = subprocess.run([binary, "--threads", "2", *args], env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])[key])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--a", required=True, help="the baseline binary")
    p.add_argument("--b", required=True, help="the binary under test")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    for r in range(a.rounds):
        order = [("A", a.a), ("B", a.b)] if r % 2 == 0 else [("B", a.b), ("A", a.a)]
        for name, args, key in cases(a.n):
            for label, binary in order:
                ms = run(binary, args, key)
                results.setdefault(name, {}).setdefault(label, []).append(ms)
                print(f"[ab] round {r + 1} {name} {label}: {ms:.3f} ms", file=sys.stderr)
    load = os.getloadavg()
    print(f"| measurement | A ms | B ms | B / A |\n|---|---:|---:|---:|")
    summary = {}
    for name, by in results.items():
        ma, mb = statistics.median(by["A"]), statistics.median(by["B"])
        summary[name] = {"a_ms": ma, "b_ms": mb, "ratio": mb / ma, "runs": by}
        print(f"| {name} | {ma:.2f} | {mb:.2f} | {mb / ma:.3f} |")
    print(f"\nmedians over {a.rounds} alternating rounds; load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if a.out:
        a.out.write_text(json.dumps({"a": a.a, "b": a.b, "rounds": a.rounds, "load": load, "results": summary}, indent=1))


if __name__ == "__main__":
    main()
