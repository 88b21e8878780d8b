#!/usr/bin/env python3
"""End-to-end index rate on 1024x768 JPEGs: `vitrine index` vs a Python/transformers pipeline.

Usage (the reference venv, see tools/requirements-ref.txt; and `cargo build --release`):

    tools/.venv-ref/bin/python bench/index_bench.py
    tools/.venv-ref/bin/python bench/index_bench.py --images 64 --repeat 1 --threads 1 \
        --models bench/data/clip-vit-b32-random                        # quick sanity run

Defaults: --images 256, --repeat 3, --threads 1,2, --batch 32,
--models bench/data/clip-vit-b32-random,models/vitrine-demo (a model folder without
config.json + model.safetensors is skipped with a message).

What one run measures, per (model, thread count T), repeats interleaved (vitrine, Python,
vitrine, Python, ...) so that both see the same machine load; each figure is the median:

  * vitrine: `target/release/vitrine --threads T --store <fresh tmp store> index <folder>
    --source bench --model <model> --json -c bench --batch 32` with RAYON_NUM_THREADS=T in
    its environment.  A fresh store each repeat, so no image is skipped as unchanged.
    Reported: images / wall seconds measured here around the process (process start, model
    load, decode, preprocess, encode, thumbnails unless --no-thumbnails, fsync'd commits),
    and vitrine's own `images_per_s` (its clock also starts before the model load).
  * Python: a child process of this script (`--worker`), with OMP/MKL/OPENBLAS_NUM_THREADS=T
    and OMP_WAIT_POLICY=PASSIVE set before torch is imported, torch.set_num_threads(T);
    float32, model.eval(), torch.no_grad().  CLIPModel + CLIPImageProcessor, or
    ChineseCLIPModel + ChineseCLIPImageProcessor (from config.json's model_type; without
    torchvision transformers uses the PIL image-processor backend).  For each batch of 32
    paths: PIL Image.open(p).convert("RGB"), processor(images=batch, return_tensors="pt"),
    model.get_image_features(pixel_values=...) (.pooler_output of the ModelOutput in
    transformers 5), L2-normalise, append; at the end np.save of all vectors to an .npy in
    a temp dir (fsync'd).  Reported three ways:
      python_images_per_s            images / wall of the whole child process measured here
                                     (interpreter start, imports, model load, pipeline):
                                     the figure symmetric with vitrine's wall time;
      python_images_per_s_in_process images / (model load + pipeline), measured in the child;
      python_images_per_s_no_load    images / pipeline alone (after the model is loaded).
  * ratio = vitrine_images_per_s / python_images_per_s (= Python wall s / vitrine wall s;
    > 1: vitrine is faster); ratio_vs_python_no_load compares vitrine's wall (load included)
    with Python's pipeline alone (a conservative bound).

Data: the 64 synthetic 1024x768 JPEGs (quality 90) of bench/clip_bench.py under
bench/data/jpeg1024/ (generated if absent), expanded to --images N distinct files under
bench/data/jpeg1024_index_<N>/ (cached): image i is source i % 64; copy 0 keeps the
original bytes, copy k >= 1 is re-encoded at quality 90 with one pixel changed, so that no
two files have the same content (vitrine deduplicates by content hash).  Before the timed
runs the model file and the images are read once so both systems start with a warm page cache.

Output: one JSON object per (model, threads) on stdout as soon as it is measured, then a
Markdown table; with --out FILE also the whole result (per-run numbers) as JSON.  Progress
goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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
from clip_bench import cpu_name, ensure_jpegs, loadavg, run_cmd, tail, thread_env, JPEG_COUNT, JPEG_DIR

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_MODELS = "bench/data/clip-vit-b32-random,models/vitrine-demo"
JPEG_QUALITY = 90
COLLECTION = "bench"
SOURCE = "bench"


def log(msg: str) -> None:
    print(f"[index-bench] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def index_folder(data_dir: Path, n: int) -> Path:
    """data_dir/jpeg1024_index_<n>/ with n distinct JPEGs made from the 64 base JPEGs (cached)."""
    from PIL import Image

    ensure_jpegs(data_dir, None)
    base_dir = data_dir / JPEG_DIR
    base = [base_dir / f"img_{i:03d}.jpg" for i in range(JPEG_COUNT)]
    d = data_dir / f"{JPEG_DIR}_index_{n}"
    names = [f"idx_{i:05d}.jpg" for i in range(n)]
    if d.is_dir() and sorted(p.name for p in d.iterdir()) == names:
        log(f"reusing {rel(d)}")
        return d
    log(f"writing {n} distinct JPEGs to {rel(d)}")
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        src, k = base[i % JPEG_COUNT], i // JPEG_COUNT
        out = tmp / name
        if k == 0:
            shutil.copyfile(src, out)
        else:
            img = Image.open(src).convert("RGB")
            w, h = img.size
            x, y = (k * 37) % w, (k * 11) % h
            r, g, b = img.getpixel((x, y))
            img.putpixel((x, y), ((r + 128) % 256, (g + 128) % 256, (b + 128) % 256))
            img.save(out, format="JPEG", quality=JPEG_QUALITY)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        if digest in seen:
            raise SystemExit(f"{name} has the same bytes as {seen[digest]}: cannot make distinct copies")
        seen[digest] = name
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp, d)
    return d


def warm_page_cache(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def model_ok(d: Path) -> str | None:
    """None when the folder looks usable, else why it is skipped."""
    if not (d / "config.json").is_file():
        return f"{rel(d)}/config.json missing"
    if not (d / "model.safetensors").is_file():
        return f"{rel(d)}/model.safetensors missing"
    try:
        mt = json.loads((d / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as e:
        return f"{rel(d)}/config.json unreadable: {e}"
    if mt not in ("clip", "chinese_clip"):
        return f"{rel(d)}: model_type {mt!r} is neither 'clip' nor 'chinese_clip'"
    return None


def model_label(d: Path) -> str:
    mt = json.loads((d / "config.json").read_text()).get("model_type")
    return f"{d.name} ({mt})"


# --------------------------------------------------------------------------
# Python worker (child process: `index_bench.py --worker ...`)
# --------------------------------------------------------------------------


def worker_main(a) -> int:
    t_start = time.perf_counter()
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    torch.set_num_threads(a.worker_threads)
    t_imported = time.perf_counter()

    d = Path(a.model)
    mt = json.loads((d / "config.json").read_text())["model_type"]
    if mt == "chinese_clip":
        model_cls, proc_cls = transformers.ChineseCLIPModel, transformers.ChineseCLIPImageProcessor
    else:
        model_cls, proc_cls = transformers.CLIPModel, transformers.CLIPImageProcessor
    model = model_cls.from_pretrained(str(d), dtype=torch.float32).eval()
    processor = proc_cls.from_pretrained(str(d))
    t_loaded = time.perf_counter()

    paths = sorted(str(p) for p in Path(a.image_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    vecs = []
    t_dec = t_pre = t_enc = 0.0
    returns = None
    with torch.no_grad():
        for i in range(0, len(paths), a.batch):
            t0 = time.perf_counter()
            imgs = [Image.open(p).convert("RGB") for p in paths[i:i + a.batch]]
            t1 = time.perf_counter()
            pix = processor(images=imgs, return_tensors="pt")["pixel_values"]
            t2 = time.perf_counter()
            out = model.get_image_features(pixel_values=pix)
            returns = type(out).__name__
            feats = out if isinstance(out, torch.Tensor) else out.pooler_output
            feats = torch.nn.functional.normalize(feats, dim=-1)
            vecs.append(feats.numpy().astype(np.float32, copy=False))
            t3 = time.perf_counter()
            t_dec, t_pre, t_enc = t_dec + (t1 - t0), t_pre + (t2 - t1), t_enc + (t3 - t2)
    t0 = time.perf_counter()
    allv = np.concatenate(vecs) if vecs else np.zeros((0, 0), np.float32)
    with tempfile.TemporaryDirectory(prefix="index_bench_py_") as tmp:
        with open(Path(tmp) / "vectors.npy", "wb") as f:
            np.save(f, allv)
            f.flush()
            os.fsync(f.fileno())
    t_end = time.perf_counter()

    n = len(paths)
    pipeline = t_end - t_loaded
    print(json.dumps({
        "images": n, "dim": int(allv.shape[1]) if allv.ndim == 2 else None,
        "norm_min": float(np.linalg.norm(allv, axis=1).min()) if n else None,
        "import_s": t_imported - t_start, "load_s": t_loaded - t_imported,
        "pipeline_s": pipeline, "in_process_s": t_end - t_imported,
        "decode_s": t_dec, "preprocess_s": t_pre, "encode_s": t_enc, "write_s": t_end - t0,
        "images_per_s_no_load": n / pipeline, "images_per_s_in_process": n / (t_end - t_imported),
        "model_class": model_cls.__name__, "processor_class": type(processor).__name__,
        "get_image_features_returns": returns, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__,
    }))
    return 0


# --------------------------------------------------------------------------
# parent: one vitrine run, one Python run
# --------------------------------------------------------------------------


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def run_vitrine_index(a, vit: Path, model: Path, folder: Path, threads: int, n: int) -> dict:
    store = Path(tempfile.mkdtemp(prefix="index_bench_store_", dir=a.tmp_dir))
    try:
        cmd = [str(vit), "--threads", str(threads), "--store", str(store), "index", str(folder),
               "--source", SOURCE, "--model", str(model), "--json", "-c", COLLECTION, "--batch", str(a.batch)]
        if a.no_thumbnails:
            cmd.append("--no-thumbnails")
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        la = loadavg()
        r = run_cmd(cmd, env=env)
        out: dict
        if r["rc"] != 0:
            out = {"error": f"exit status {r['rc']}", "stderr_tail": tail(r["stderr"], 3000),
                   "stdout_tail": tail(r["stdout"])}
        else:
            try:
                out = last_json_object(r["stdout"])
            except ValueError as e:
                out = {"error": str(e), "stderr_tail": tail(r["stderr"], 3000)}
        if "error" not in out:
            bad = {k: out.get(k) for k in ("unchanged", "duplicates", "failed") if out.get(k)}
            if out.get("indexed") != n or bad:
                ff = out.get("failures_file")
                first = ""
                if ff and Path(ff).is_file():
                    first = "".join(Path(ff).read_text().splitlines(True)[1:4])
                out["error"] = f"indexed {out.get('indexed')} of {n} images ({bad}) {first}".strip()
            out["store_bytes"] = dir_bytes(store)
        out.update(cmd=" ".join(cmd), wall_s=r["wall_s"], images_per_s_wall=n / r["wall_s"],
                   peak_rss_mib=r["peak_rss_mib"], loadavg_before=la)
        if "error" in out:
            log(f"  vitrine FAILED: {out['error']}\n{out.get('stderr_tail', '')[-1500:]}")
        return out
    finally:
        shutil.rmtree(store, ignore_errors=True)


def run_python_index(a, model: Path, folder: Path, threads: int, n: int) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--worker-threads", str(threads),
            "--model", str(model), "--image-dir", str(folder), "--batch", str(a.batch)]
    env = thread_env(threads)
    if a.tmp_dir:
        env["TMPDIR"] = str(a.tmp_dir)
    la = loadavg()
    r = run_cmd(argv, env=env)
    out: dict
    if r["rc"] != 0:
        out = {"error": f"exit status {r['rc']}", "stderr_tail": tail(r["stderr"], 3000)}
    else:
        try:
            out = last_json_object(r["stdout"])
        except ValueError as e:
            out = {"error": str(e), "stderr_tail": tail(r["stderr"], 3000)}
        if "error" not in out and out.get("images") != n:
            out["error"] = f"encoded {out.get('images')} of {n} images"
    out.update(wall_s=r["wall_s"], images_per_s_wall=n / r["wall_s"], peak_rss_mib=r["peak_rss_mib"],
               loadavg_before=la)
    if "error" in out:
        log(f"  python FAILED: {out['error']}\n{out.get('stderr_tail', '')[-1500:]}")
    return out


def summarise(label: str, model: Path, threads: int, n: int, vr: list[dict], py: list[dict]) -> dict:
    vok = [r for r in vr if "error" not in r]
    pok = [r for r in py if "error" not in r]
    v_wall = median([r["wall_s"] for r in vok])
    p_wall = median([r["wall_s"] for r in pok])
    p_in = median([r["in_process_s"] for r in pok])
    p_pipe = median([r["pipeline_s"] for r in pok])

    def rate(s):
        return n / s if s else None

    s = {
        "model": label, "model_dir": rel(model), "threads": threads, "images": n,
        "repeats": {"vitrine_ok": len(vok), "python_ok": len(pok), "asked": len(vr)},
        "vitrine_images_per_s": rate(v_wall),
        "vitrine_reported_images_per_s": median([r["images_per_s"] for r in vok]),
        "python_images_per_s": rate(p_wall),
        "python_images_per_s_in_process": rate(p_in),
        "python_images_per_s_no_load": rate(p_pipe),
        "ratio": (p_wall / v_wall) if v_wall and p_wall else None,
        "ratio_vs_python_no_load": (p_pipe / v_wall) if v_wall and p_pipe else None,
        "vitrine_wall_s": v_wall, "vitrine_reported_s": median([r["seconds"] for r in vok]),
        "vitrine_peak_rss_mib": median([r["peak_rss_mib"] for r in vok if r.get("peak_rss_mib")]),
        "vitrine_store_bytes": median([r["store_bytes"] for r in vok if "store_bytes" in r]),
        "python_wall_s": p_wall,
        "python_import_s": median([r["import_s"] for r in pok]),
        "python_load_s": median([r["load_s"] for r in pok]),
        "python_pipeline_s": p_pipe,
        "python_stage_s": {k: median([r[k] for r in pok]) for k in ("decode_s", "preprocess_s", "encode_s", "write_s")},
        "python_peak_rss_mib": median([r["peak_rss_mib"] for r in pok if r.get("peak_rss_mib")]),
    }
    errs = [f"vitrine: {r['error']}" for r in vr if "error" in r] + [f"python: {r['error']}" for r in py if "error" in r]
    if errs:
        s["errors"] = errs
    return s


def fmt(x, digits=3) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def report(rows: list[dict], n: int, thumbs: bool) -> str:
    lines = [
        f"| index {n} JPEGs 1024×768, images/s | threads | vitrine (wall) | vitrine (own clock) | "
        f"Python (wall: start + import + load + pipeline) | Python (load + pipeline) | Python (pipeline only) | "
        f"vitrine / Python (wall) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in rows:
        ratio = f"**{s['ratio']:.2f}**" if s.get("ratio") else "—"
        lines.append(
            f"| {s['model']} | {s['threads']} | {fmt(s['vitrine_images_per_s'])} | "
            f"{fmt(s['vitrine_reported_images_per_s'])} | {fmt(s['python_images_per_s'])} | "
            f"{fmt(s['python_images_per_s_in_process'])} | {fmt(s['python_images_per_s_no_load'])} | {ratio} |"
        )
    lines.append("")
    lines.append(f"(vitrine {'with' if thumbs else 'without'} thumbnails; medians; ratio = Python wall s / "
                 f"vitrine wall s, > 1: vitrine is faster)")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=256, help="images per index run (default 256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per system; the median is reported")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated model folders (default {DEFAULT_MODELS})")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass, both systems (default 32)")
    p.add_argument("--vitrine", type=Path, default=REPO_DIR / "target" / "release" / "vitrine")
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    p.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary stores go (default: $TMPDIR)")
    p.add_argument("--no-thumbnails", action="store_true", help="pass --no-thumbnails to vitrine index")
    p.add_argument("--out", type=Path, default=None, help="also write the whole result as JSON to this file")
    # internal: the Python pipeline in a child process
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--image-dir", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker:
        return worker_main(a)
    threads = [int(t) for t in a.threads.split(",") if t.strip()]
    models = [(REPO_DIR / m).resolve() if not Path(m).is_absolute() else Path(m) for m in a.models.split(",") if m]
    vit = a.vitrine.resolve()
    if not vit.exists():
        raise SystemExit(f"{vit} not found (cargo build --release)")
    if a.tmp_dir:
        a.tmp_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    a.data_dir.mkdir(parents=True, exist_ok=True)
    folder = index_folder(a.data_dir, a.images)
    images = sorted(folder.iterdir())
    n = len(images)

    version = run_cmd([str(vit), "--version"])["stdout"].strip()
    res: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"images": n, "folder": rel(folder), "repeat": a.repeat, "threads": threads, "batch": a.batch,
                     "thumbnails": not a.no_thumbnails, "vitrine_binary": rel(vit), "vitrine_version": version,
                     "python": sys.version.split()[0]},
        "environment": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                        "loadavg_start": loadavg()},
        "skipped": {}, "runs": {}, "results": [],
    }
    for model in models:
        why = model_ok(model)
        if why:
            log(f"skipping {rel(model)}: {why}")
            res["skipped"][rel(model)] = why
            continue
        label = model_label(model)
        log(f"warming the page cache: {rel(model)}/model.safetensors and {n} images")
        warm_page_cache([model / "model.safetensors", *images])
        for t in threads:
            vr, py = [], []
            for rep in range(a.repeat):
                log(f"{label} threads={t} repeat {rep + 1}/{a.repeat}: vitrine")
                vr.append(run_vitrine_index(a, vit, model, folder, t, n))
                if "error" not in vr[-1]:
                    log(f"  wall {vr[-1]['wall_s']:.2f} s = {vr[-1]['images_per_s_wall']:.1f} images/s "
                        f"(own clock {vr[-1].get('images_per_s', 0):.1f})")
                log(f"{label} threads={t} repeat {rep + 1}/{a.repeat}: python")
                py.append(run_python_index(a, model, folder, t, n))
                if "error" not in py[-1]:
                    log(f"  wall {py[-1]['wall_s']:.2f} s = {py[-1]['images_per_s_wall']:.1f} images/s "
                        f"(no load {py[-1]['images_per_s_no_load']:.1f})")
            res["runs"][f"{rel(model)}|t{t}"] = {"vitrine": vr, "python": py}
            s = summarise(label, model, t, n, vr, py)
            res["results"].append(s)
            print(json.dumps(s), flush=True)
    res["environment"].update(loadavg_end=loadavg(), total_s=time.perf_counter() - t_start)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_name(a.out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1, default=str))
        os.replace(tmp, a.out)
        log(f"wrote {a.out}")
    print()
    print(report(res["results"], n, not a.no_thumbnails))
    for m, why in res["skipped"].items():
        print(f"\nskipped {m}: {why}")
    log(f"done in {res['environment']['total_s']:.0f} s")
    return 1 if any("errors" in s for s in res["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
