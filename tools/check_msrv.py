#!/usr/bin/env python3
"""CI check: every crate declares the workspace's minimum Rust version, and that version is at
least every dependency's own (from `cargo metadata`). Clippy's `incompatible_msrv` lint then
checks our use of the standard library against it (CI runs clippy with -D warnings)."""
import json
import subprocess
import sys

meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1"]))
members = set(meta["workspace_members"])
ours = [p for p in meta["packages"] if p["id"] in members]
theirs = [p for p in meta["packages"] if p["id"] not in members]


def ver(v):
    # Padded to three parts: "1.89" and "1.89.0" are the same version.
    return (tuple(int(x) for x in (v or "0").split(".")) + (0, 0, 0))[:3]


declared = {p["name"]: p.get("rust_version") for p in ours}
bad = [f"{n} declares no rust-version" for n, v in declared.items() if not v]
msrv = max((ver(v) for v in declared.values() if v), default=(0,))
bad += [f"{n} declares {v}, the workspace {'.'.join(map(str, msrv))}" for n, v in declared.items() if v and ver(v) != msrv]
need = max(theirs, key=lambda p: ver(p.get("rust_version")))
if ver(need.get("rust_version")) > msrv:
    bad.append(f"{need['name']} {need['version']} needs Rust {need['rust_version']}, above the declared {'.'.join(map(str, msrv))}")
if bad:
    print("rust-version check failed:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"rust-version {'.'.join(map(str, msrv))}: declared by all {len(ours)} crates; highest dependency needs {need.get('rust_version')} ({need['name']})")
