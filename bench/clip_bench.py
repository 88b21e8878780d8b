#!/usr/bin/env python3
"""CLIP encoding benchmark: vitrine vs PyTorch/transformers, side by side in one run.

Usage (the reference venv, see tools/requirements-ref.txt; and `cargo build --release`):

    tools/.venv-ref/bin/python bench/clip_bench.py --out bench/results
    tools/.venv-ref/bin/python bench/clip_bench.py --quick          # smoke test: batch 4, 8 JPEGs

One run:
  * builds, if missing, two random-weight full-size checkpoints under bench/data/
    (clip-vit-b32-random: transformers' CLIPConfig defaults = ViT-B/32; clip-vit-b16-random:
    the same with vision patch 16), with the tokenizer and preprocessor files of the test
    fixture crates/vitrine-clip/tests/fixtures/clip-quickgelu-p32, and 64 synthetic
    1024x768 JPEGs (quality 90) under bench/data/jpeg1024/;
  * times PyTorch in child processes of this script (OMP/MKL thread variables and
    OMP_WAIT_POLICY=PASSIVE set before torch is imported, then torch.set_num_threads(t)),
    float32, model.eval(), under torch.inference_mode(): image encoding (random pixels,
    batch 32), text encoding (32 fixed captions, padded to the longest), decode +
    CLIPImageProcessor and PIL decode alone (1 process, 1 thread), and the peak RSS of a
    process that loads ViT-B/32 and encodes one batch of 64 images;
  * runs `vitrine bench clip-image|clip-text|preprocess` for the same settings right after
    each PyTorch measurement (so both see the same machine load); a vitrine failure is
    recorded and the run goes on;
  * writes results/clip_bench.json (clip_bench_quick.json with --quick) and prints a
    Markdown table: throughputs and vitrine/PyTorch ratios (> 1: vitrine is faster).

Every timing is wall clock (time.perf_counter) after one untimed warm-up call; the reported
figure is the median of the timed runs.  Throughput = items per call / median seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

# Shared with the search benchmark (this script runs from bench/, so it is importable).
from search_bench import last_json_object

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
FIXTURE_DIR = REPO_DIR / "crates" / "vitrine-clip" / "tests" / "fixtures" / "clip-quickgelu-p32"
COPIED_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json"]
MODELS = {  # key -> (folder under --data-dir, vision patch size)
    "b32": ("clip-vit-b32-random", 32),
    "b16": ("clip-vit-b16-random", 16),
}
MODEL_LABEL = {"b32": "ViT-B/32", "b16": "ViT-B/16"}
JPEG_DIR = "jpeg1024"
JPEG_COUNT, JPEG_W, JPEG_H, JPEG_QUALITY = 64, 1024, 768, 90
SEED = 0
CHILD_TIMEOUT_S = 3600
OMP_WAIT_POLICY = "PASSIVE"  # --omp-wait-policy
VITRINE_BENCH_RS = REPO_DIR / "crates" / "vitrine-cli" / "src" / "commands" / "bench.rs"

# 32 captions, 5 to 30 words, marketplace/photo style.  Fixed: change them and text numbers
# from earlier runs are no longer comparable (the batch is padded to the longest caption).
CAPTIONS = [
    "a photo of a samoyed dog",
    "red running sneakers, barely worn",
    "a black handgun lying on a wooden table",
    "vintage leather handbag with a brass buckle and a long brown shoulder strap",
    "an acoustic guitar leaning against a white wall",
    "a smartphone with a cracked screen next to its charger on a desk",
    "close-up of a luxury wrist watch with a blue dial",
    "a mountain bicycle parked in front of a brick wall in the afternoon sun with slightly muddy tyres",
    "grey three-seater sofa in a bright living room",
    "a child's teddy bear sitting on a bed",
    "used laptop, 15 inch screen, keyboard in perfect condition, comes with the original charger and box",
    "a bottle of perfume on a marble bathroom shelf",
    "sunglasses with gold frames and dark green lenses",
    "a small drone with four propellers flying over a green field on a cloudy day",
    "a pair of white wireless earbuds in an open charging case",
    "antique wooden chair with carved legs and a faded red velvet seat cushion",
    "a cat sleeping on a pile of folded laundry",
    "digital camera with a large zoom lens and a leather strap, shown from the front",
    "kitchen stand mixer in pastel blue",
    "a stack of old hardcover books with worn spines on a library shelf",
    "men's winter jacket, size large, dark navy, water resistant, with a detachable hood and many pockets",
    "a bowl of fresh strawberries",
    "hand-painted ceramic vase with blue flowers",
    "a gaming console with two controllers and a few games, all in good working order, pick up only",
    "a street at night with neon signs reflected in puddles after the rain",
    "baby stroller, foldable, light grey",
    "a silver necklace with a small heart pendant on a velvet display",
    "an electric scooter with a scratched deck and new tyres",
    "a golden retriever puppy playing with a tennis ball on the grass in a sunny backyard garden",
    "floor lamp with a linen shade",
    "a set of kitchen knives in a wooden block beside a cutting board with chopped vegetables",
    "two tickets for a concert next saturday, seats next to each other in the front rows of the balcony, can send by email",
]
assert len(CAPTIONS) == 32 and all(5 <= len(c.split()) <= 30 for c in CAPTIONS)


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[clip-bench] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


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


def vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_cmd(cmd: list[str], env: dict | None = None, timeout: float = CHILD_TIMEOUT_S) -> dict:
    """Run cmd with stdout and stderr captured; measure its peak RSS.

    Peak RSS comes from GNU `time -f %M` (it forks the command from its own tiny process,
    so the parent's RSS high-water mark is not inherited as with wait4/RUSAGE_CHILDREN on
    a direct child).  Without GNU time, /proc/PID/status VmHWM is sampled every 10 ms.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        argv = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        t0 = time.perf_counter()
        try:
            # Own session: on a timeout the whole group (GNU time and the command) is killed.
            p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, start_new_session=True)
        except OSError as e:
            return {"cmd": cmd, "rc": None, "stdout": "", "stderr": repr(e), "wall_s": 0.0,
                    "peak_rss_mib": None, "peak_rss_method": None}
        hwm_kib = 0
        timed_out = False
        if not GNU_TIME:
            # WNOWAIT: notice the exit without reaping, then reap via wait().
            while os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                hwm_kib = max(hwm_kib, vm_hwm_kib(p.pid))
                if time.perf_counter() - t0 > timeout:
                    kill_group(p)
                    timed_out = True
                    break
                time.sleep(0.01)
        try:
            rc = p.wait(timeout=None if not GNU_TIME else timeout)
        except subprocess.TimeoutExpired:
            kill_group(p)
            rc = p.wait()
            timed_out = True
        wall = time.perf_counter() - t0
        if GNU_TIME:
            # GNU time prints "Command exited with non-zero status N" first when the command
            # fails; the number is on the last line.
            lines = rss.read().strip().splitlines()
            hwm_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return {
        "cmd": cmd,
        "rc": rc,
        "timed_out": timed_out,
        "stdout": stdout,
        "stderr": stderr,
        "wall_s": wall,
        "peak_rss_mib": hwm_kib / 1024.0 if hwm_kib else None,
        "peak_rss_method": "gnu-time" if GNU_TIME else "VmHWM-sampled",
    }


def kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, 9)  # the group run_cmd created for this command (start_new_session)
    except OSError:
        p.kill()


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # No hub access is possible or wanted; keeps transformers from trying.
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_VERBOSITY"] = env.get("TRANSFORMERS_VERBOSITY", "error")
    return env


def tail(s: str, n: int = 1500) -> str:
    return s[-n:]


def run_worker(kind: str, threads: int, **kw) -> dict:
    """Run one PyTorch measurement in a child of this script; its JSON result, or an error."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--threads", str(threads)]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    log(f"pytorch {kind} threads={threads} {kw}")
    la = loadavg()
    r = run_cmd(argv, env=thread_env(threads))
    out: dict
    if r["rc"] != 0:
        out = {"error": f"exit status {r['rc']}", "stderr_tail": tail(r["stderr"])}
    else:
        try:
            out = last_json_object(r["stdout"])
        except ValueError as e:
            out = {"error": str(e), "stderr_tail": tail(r["stderr"])}
    out.update(wall_s=r["wall_s"], peak_rss_mib=r["peak_rss_mib"], loadavg_before=la)
    if "error" in out:
        log(f"  FAILED: {out['error']}\n{out.get('stderr_tail', '')}")
    return out


def run_vitrine(binary: Path, threads: int, argv: list[str]) -> dict:
    """`vitrine --threads T bench ...`: its JSON, or an error record (run goes on)."""
    cmd = [str(binary), "--threads", str(threads), "bench", *argv]
    log("vitrine " + " ".join(cmd[1:]))
    la = loadavg()
    if not binary.exists():
        return {"error": f"{binary} not found (cargo build --release)", "cmd": cmd}
    r = run_cmd(cmd, env=dict(os.environ))
    out: dict
    if r["rc"] != 0:
        out = {"error": f"exit status {r['rc']}", "stderr_tail": tail(r["stderr"]), "stdout_tail": tail(r["stdout"])}
    else:
        try:
            out = last_json_object(r["stdout"])
        except ValueError as e:
            out = {"error": str(e), "stderr_tail": tail(r["stderr"])}
    out.update(cmd=cmd, wall_s=r["wall_s"], peak_rss_mib=r["peak_rss_mib"], loadavg_before=la)
    if "error" in out:
        log(f"  vitrine FAILED: {out['error']} {out.get('stderr_tail', '')[-300:]}")
    return out


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def checkpoint_ok(d: Path, patch: int) -> bool:
    if not all((d / f).is_file() for f in ["config.json", "model.safetensors", *COPIED_FILES]):
        return False
    try:
        cfg = json.loads((d / "config.json").read_text())
        return cfg["vision_config"]["patch_size"] == patch
    except (OSError, KeyError, ValueError):
        return False


def ensure_checkpoint(data_dir: Path, key: str) -> Path:
    name, patch = MODELS[key]
    d = data_dir / name
    if checkpoint_ok(d, patch):
        log(f"reusing {d}")
        return d
    log(f"building {d} (random weights, ~600 MB)")
    r = run_cmd([sys.executable, str(Path(__file__).resolve()), "--worker", "build", "--model", str(d),
                 "--patch", str(patch), "--threads", "2"], env=thread_env(2))
    if r["rc"] != 0 or not checkpoint_ok(d, patch):
        raise SystemExit(f"building {d} failed:\n{tail(r['stderr'], 4000)}")
    log(f"  built in {r['wall_s']:.1f} s")
    return d


def synth_photo(rng, w: int, h: int):
    """A photo-like RGB image: smooth colour field, lighting, soft shapes, texture, grain."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    bic = Image.Resampling.BICUBIC
    low = rng.integers(0, 256, (int(rng.integers(2, 5)), int(rng.integers(2, 7)), 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(low).resize((w, h), bic), dtype=np.float32)
    arr *= np.linspace(rng.uniform(0.75, 1.15), rng.uniform(0.55, 1.1), h, dtype=np.float32)[:, None, None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGBA")

    over = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    for _ in range(int(rng.integers(8, 26))):
        c = tuple(int(x) for x in rng.integers(0, 256, 3)) + (int(rng.integers(110, 256)),)
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        rx, ry = rng.uniform(0.02, 0.3) * w, rng.uniform(0.02, 0.3) * h
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        k = rng.random()
        if k < 0.35:
            d.ellipse(box, fill=c)
        elif k < 0.6:
            d.rectangle(box, fill=c)
        elif k < 0.85:
            n = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            d.polygon([(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in ang], fill=c)
        else:
            d.line(box, fill=c, width=int(rng.integers(2, 14)))
    img = Image.alpha_composite(img, over).convert("RGB")
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.6, 2.2))))

    arr = np.asarray(img, dtype=np.float32)
    # Mid-frequency texture (like foliage/fabric) and fine sensor grain.
    mid = rng.standard_normal((h // 6, w // 6), dtype=np.float32)
    mid = np.asarray(Image.fromarray(mid).resize((w, h), bic), dtype=np.float32)
    arr += mid[:, :, None] * rng.uniform(3, 12)
    arr += rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(1.5, 5)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def ensure_jpegs(data_dir: Path, n_subset: int | None) -> dict:
    """64 JPEGs under data_dir/jpeg1024 (reused when all present); with n_subset, a folder
    jpeg1024_first{n} holding copies of the first n (vitrine's preprocess takes a folder)."""
    import numpy as np

    d = data_dir / JPEG_DIR
    names = [f"img_{i:03d}.jpg" for i in range(JPEG_COUNT)]
    if all((d / n).is_file() for n in names):
        log(f"reusing {d}")
    else:
        log(f"writing {JPEG_COUNT} JPEGs {JPEG_W}x{JPEG_H} q{JPEG_QUALITY} to {d}")
        d.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(SEED)
        for n in names:  # every image is drawn, so image i never depends on which files existed
            img = synth_photo(rng, JPEG_W, JPEG_H)
            tmp = d / (n + ".tmp")
            img.save(tmp, format="JPEG", quality=JPEG_QUALITY)
            os.replace(tmp, d / n)
    sizes = [(d / n).stat().st_size for n in names]
    info = {"dir": str(d), "count": JPEG_COUNT, "width": JPEG_W, "height": JPEG_H, "quality": JPEG_QUALITY,
            "source": "synthetic (numpy/PIL: smooth colour field, shapes, blur, texture, grain; seed 0)",
            "mean_kib": statistics.mean(sizes) / 1024, "min_kib": min(sizes) / 1024, "max_kib": max(sizes) / 1024}
    if n_subset and n_subset < JPEG_COUNT:
        sub = data_dir / f"{JPEG_DIR}_first{n_subset}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in sub.iterdir():
            if f.name not in names[:n_subset]:
                f.unlink()
        for n in names[:n_subset]:
            if not (sub / n).is_file():
                shutil.copyfile(d / n, sub / n)
        info.update(dir=str(sub), count=n_subset, subset_of=str(d))
    return info


# --------------------------------------------------------------------------
# PyTorch workers (child processes: `clip_bench.py --worker KIND ...`)
# --------------------------------------------------------------------------


def torch_setup(threads: int):
    """Import torch (the parent already put the thread variables in our environment)."""
    import torch

    torch.set_num_threads(threads)
    return torch


def parallel_summary(torch) -> dict:
    """The `key : value` lines of torch.__config__.parallel_info() as a dict."""
    import re

    out: dict = {"libs": []}
    for line in torch.__config__.parallel_info().splitlines():
        m = re.match(r"^\s*(.+?)\s*:\s+(.*\S)\s*$", line)  # "at::get_num_threads() : 2"
        if m:
            out[m.group(1)] = m.group(2)
        elif line.strip() and not line.strip().endswith(":"):
            out["libs"].append(line.strip())
    return out


def features(out):
    """transformers 5 returns a ModelOutput (BaseModelOutputWithPooling) from
    get_*_features, whose pooler_output is the projected embedding; 4.x returned the tensor."""
    import torch

    return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_model(torch, d: str):
    import transformers

    t0 = time.perf_counter()
    m = transformers.CLIPModel.from_pretrained(d, dtype=torch.float32)
    m.eval()
    return m, time.perf_counter() - t0


def time_calls(fn, repeat: int) -> tuple[float, list[float]]:
    """(warm-up seconds, timed seconds per call): one untimed warm-up, then `repeat` calls."""
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    runs = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return warm, runs


def common_info(torch, model=None) -> dict:
    info = {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "parallel": parallel_summary(torch)}
    if model is not None:
        info["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        info["param_count"] = sum(p.numel() for p in model.parameters())
        info["dtype"] = str(next(model.parameters()).dtype)
    return info


def worker_build(a) -> dict:
    """Random-weight full-size CLIP (transformers' default init, seed 0) + fixture tokenizer."""
    torch = torch_setup(a.threads)
    import transformers

    out = Path(a.model)
    tok = transformers.CLIPTokenizerFast.from_pretrained(str(FIXTURE_DIR))
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token_id == eot, (tok.eos_token_id, eot)
    text_cfg = dict(vocab_size=49408, bos_token_id=tok.bos_token_id, eos_token_id=eot, pad_token_id=tok.pad_token_id)
    cfg = transformers.CLIPConfig(text_config=text_cfg, vision_config=dict(patch_size=a.patch))
    torch.manual_seed(0)
    model = transformers.CLIPModel(cfg).eval()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # transformers 5 always writes safetensors (save_pretrained has no safe_serialization
    # argument any more; it would be swallowed by **kwargs).
    model.save_pretrained(str(tmp))
    for f in COPIED_FILES:
        shutil.copyfile(FIXTURE_DIR / f, tmp / f)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return {"dir": str(out), "params": sum(p.numel() for p in model.parameters()),
            "bos": tok.bos_token_id, "eos": eot, "pad": tok.pad_token_id, "tokenizer_len": len(tok)}


def worker_image(a) -> dict:
    torch = torch_setup(a.threads)
    model, load_s = load_model(torch, a.model)
    s = model.config.vision_config.image_size
    x = torch.randn(a.batch, 3, s, s, generator=torch.Generator().manual_seed(SEED))
    kinds, last = set(), {}

    def call():
        with torch.inference_mode():
            o = model.get_image_features(pixel_values=x)
        kinds.add(type(o).__name__)
        last["f"] = features(o)

    warm, runs = time_calls(call, a.repeat)
    f = last["f"]
    med = statistics.median(runs)
    return {"images_per_s": a.batch / med, "median_s": med, "runs_s": runs, "warmup_s": warm, "batch": a.batch,
            "image_size": s, "load_s": load_s, "returns": sorted(kinds), "feature_shape": list(f.shape),
            "feature_finite": bool(torch.isfinite(f).all()), **common_info(torch, model)}


def worker_text(a) -> dict:
    torch = torch_setup(a.threads)
    import transformers

    model, load_s = load_model(torch, a.model)
    tok = transformers.CLIPTokenizerFast.from_pretrained(a.model)
    src = json.loads(Path(a.captions_file).read_text()) if a.captions_file else CAPTIONS
    captions = [src[i % len(src)] for i in range(a.batch)]
    max_len = model.config.text_config.max_position_embeddings
    kinds, tok_s, enc_s, last = set(), [], [], {}

    def call():
        t0 = time.perf_counter()
        b = tok(captions, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.inference_mode():
            o = model.get_text_features(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        t2 = time.perf_counter()
        kinds.add(type(o).__name__)
        tok_s.append(t1 - t0)
        enc_s.append(t2 - t1)
        last.update(b=b, f=features(o))

    warm, runs = time_calls(call, a.repeat)
    tok_s, enc_s = tok_s[1:], enc_s[1:]  # drop the untimed warm-up
    b, f = last["b"], last["f"]
    med = statistics.median(runs)
    lens = b["attention_mask"].sum(1).tolist()
    return {"texts_per_s": a.batch / med, "median_s": med, "runs_s": runs, "warmup_s": warm,
            "encode_only_texts_per_s": a.batch / statistics.median(enc_s), "encode_runs_s": enc_s,
            "tokenize_median_s": statistics.median(tok_s), "batch": a.batch,
            "padded_length": int(b["input_ids"].shape[1]), "token_lengths": [int(x) for x in lens],
            "real_tokens": int(sum(lens)), "load_s": load_s, "returns": sorted(kinds),
            "tokenizer_class": type(tok).__name__, "feature_shape": list(f.shape),
            "feature_finite": bool(torch.isfinite(f).all()), **common_info(torch, model)}


_PREPROC = None


def _preproc_init(model: str) -> None:
    """Pool initializer: one CLIPImageProcessor per worker process, 1 torch thread each."""
    global _PREPROC
    import torch
    import transformers

    torch.set_num_threads(1)
    _PREPROC = transformers.CLIPImageProcessor.from_pretrained(model)


def _preproc_file(path: str) -> tuple:
    from PIL import Image

    return tuple(_PREPROC(images=Image.open(path), return_tensors="pt")["pixel_values"].shape)


def _decode_file(path: str) -> int:
    from PIL import Image

    im = Image.open(path).convert("RGB")
    im.load()
    return im.size[0]


def worker_preprocess(a) -> dict:
    """PIL + CLIPImageProcessor over the JPEGs. With --threads T > 1, T worker processes share
    the files (PIL and the processor are single-threaded, so processes are how Python uses T cores)."""
    torch = torch_setup(1)
    import multiprocessing as mp

    import transformers

    files = [str(p) for p in sorted(Path(a.images).iterdir()) if p.is_file()]
    procs = max(1, a.threads)
    _preproc_init(a.model)
    proc = _PREPROC
    pool = mp.get_context("spawn").Pool(procs, initializer=_preproc_init, initargs=(a.model,)) if procs > 1 else None
    shapes = set()

    def decode_only():
        if pool:
            pool.map(_decode_file, files, chunksize=4)
        else:
            for p in files:
                _decode_file(p)

    def decode_preprocess():
        shapes.update(pool.map(_preproc_file, files, chunksize=4) if pool else map(_preproc_file, files))

    warm_d, runs_d = time_calls(decode_only, a.repeat)
    warm_p, runs_p = time_calls(decode_preprocess, a.repeat)
    if pool:
        pool.close()
        pool.join()
    n = len(files)
    return {"images": n, "images_dir": a.images, "processes": procs,
            "preprocess_images_per_s": n / statistics.median(runs_p), "preprocess_runs_s": runs_p,
            "preprocess_warmup_s": warm_p,
            "decode_images_per_s": n / statistics.median(runs_d), "decode_runs_s": runs_d, "decode_warmup_s": warm_d,
            "processor_class": f"{type(proc).__module__}.{type(proc).__name__}",
            "transformers": transformers.__version__,
            "processor_settings": {k: v for k, v in proc.to_dict().items()
                                   if k in ("size", "crop_size", "resample", "do_center_crop", "do_convert_rgb")},
            "pixel_shapes": sorted(list(s) for s in shapes), **common_info(torch)}


def worker_rss(a) -> dict:
    """Load the model; encode one batch of `batch` random images (none with batch 0); exit."""
    torch = torch_setup(a.threads)
    model, load_s = load_model(torch, a.model)
    out = {"load_s": load_s, "batch": a.batch}
    if a.batch:
        s = model.config.vision_config.image_size
        x = torch.randn(a.batch, 3, s, s, generator=torch.Generator().manual_seed(SEED))
        t0 = time.perf_counter()
        with torch.inference_mode():
            f = features(model.get_image_features(pixel_values=x))
        out.update(encode_s=time.perf_counter() - t0, feature_shape=list(f.shape))
    return out


def worker_info(a) -> dict:
    torch = torch_setup(a.threads)
    import numpy
    import PIL
    import PIL.features
    import tokenizers
    import transformers

    try:
        import safetensors
        st = safetensors.__version__
    except Exception:
        st = None
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": st,
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "torch_cuda_build": torch.version.cuda,
        "mkl_available": torch.backends.mkl.is_available(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "parallel_info": torch.__config__.parallel_info(),
        "parallel": parallel_summary(torch),
        "config_show": torch.__config__.show(),
        "pil_features": {k: PIL.features.check(k) for k in ("jpg", "libjpeg_turbo")},
        "pil_libjpeg_version": PIL.features.version("jpg"),
    }


WORKERS = {"build": worker_build, "image": worker_image, "text": worker_text,
           "preprocess": worker_preprocess, "rss": worker_rss, "info": worker_info}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def fmt(x, none="—") -> str:
    if x is None:
        return none
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def val(d: dict | None, key: str):
    if not d or "error" in d:
        return None
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def ratio(a, b):
    return a / b if a is not None and b else None


def report(res: dict) -> str:
    rows = []
    for e in res["rows"]:
        pt, vt = e["pytorch"], e["vitrine"]
        r = ratio(vt, pt) if e.get("higher_is_better", True) else ratio(pt, vt)
        rows.append(f"| {e['task']} | {e['model']} | {e['threads']} | {fmt(pt)} | {fmt(vt)} | {fmt(r)} |")
    hdr = ["| task | model | threads | PyTorch | vitrine | vitrine / PyTorch |", "|---|---|---:|---:|---:|---:|"]
    s = res["settings"]
    notes = [
        "",
        f"Batch {s['batch']}, median of {s['repeat']} timed runs after 1 warm-up; float32; "
        f"{res['environment']['cpu']}, load before: {res['environment']['loadavg_start']}.",
        "Ratios: vitrine/PyTorch throughput (> 1: vitrine faster); for peak RSS PyTorch/vitrine (> 1: vitrine smaller).",
        f"PyTorch children: OMP/MKL_NUM_THREADS = threads, OMP_WAIT_POLICY={s['omp_wait_policy']}, "
        "torch.set_num_threads(threads), inference_mode, eval, float32.",
    ]
    proc = res["pytorch"].get("preprocess_t1")
    if proc and "error" not in proc:
        notes.append(f"Preprocess PyTorch column: PIL + transformers {proc['processor_class'].rsplit('.', 1)[-1]} "
                     f"over {proc['images']} JPEGs, T worker processes of 1 thread each (T = threads).")
    errs = [f"- {k}: {v}" for k, v in res.get("errors", {}).items()]
    if errs:
        notes += ["", "Errors:"] + errs
    return "\n".join(hdr + rows + notes)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    p.add_argument("--vitrine", type=Path, default=REPO_DIR / "target" / "release" / "vitrine")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per measurement (default 5; 1 with --quick)")
    p.add_argument("--batch", type=int, default=None, help="image/text batch (default 32; 4 with --quick)")
    p.add_argument("--rss-batch", type=int, default=None, help="batch for peak RSS (default 64; 8 with --quick)")
    p.add_argument("--preprocess-repeat", type=int, default=None, help="passes over the JPEGs (default 3; 1 quick)")
    p.add_argument("--images", type=int, default=None, help="use the first N JPEGs (default 64; 8 with --quick)")
    p.add_argument("--thread-list", default="1,2", help="thread counts for encoding (default 1,2)")
    p.add_argument("--models", default="b32,b16", help="subset of b32,b16 for image encoding")
    p.add_argument("--tasks", default="image,text,preprocess,rss", help="subset of image,text,preprocess,rss")
    p.add_argument("--no-vitrine", action="store_true", help="PyTorch side only")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=("PASSIVE", "ACTIVE"),
                   help="OMP_WAIT_POLICY for the PyTorch children (default PASSIVE)")
    p.add_argument("--quick", action="store_true", help="smoke test: batch 4, repeat 1, 8 JPEGs, RSS batch 8")
    # worker mode (internal)
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--patch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--image-dir", dest="images_dir", help=argparse.SUPPRESS)
    p.add_argument("--captions-file", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    q = a.quick
    a.repeat = a.repeat if a.repeat is not None else (1 if q else 5)
    a.batch = a.batch if a.batch is not None else (4 if q else 32)
    a.rss_batch = a.rss_batch if a.rss_batch is not None else (8 if q else 64)
    a.preprocess_repeat = a.preprocess_repeat if a.preprocess_repeat is not None else (1 if q else 3)
    a.n_images = a.images if a.images is not None else (8 if q else JPEG_COUNT)
    return a


def worker_main(a) -> int:
    if a.worker == "preprocess":
        a.images = a.images_dir
    res = WORKERS[a.worker](a)
    print(json.dumps(res))
    return 0


def main(argv=None) -> int:
    global OMP_WAIT_POLICY
    a = parse_args(argv)
    if a.worker:
        return worker_main(a)
    OMP_WAIT_POLICY = a.omp_wait_policy
    if a.threads is not None:
        raise SystemExit("--threads is internal; use --thread-list 1,2 for the thread counts")

    threads = [int(t) for t in a.thread_list.split(",") if t]
    models = [m for m in a.models.split(",") if m]
    tasks = set(t for t in a.tasks.split(",") if t)
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}: use {','.join(MODELS)}")
    vit = None if a.no_vitrine else a.vitrine.resolve()
    a.out.mkdir(parents=True, exist_ok=True)
    a.data_dir.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    need = set(models) | ({"b32"} if tasks & {"text", "preprocess", "rss"} else set())
    ckpt = {k: ensure_checkpoint(a.data_dir, k) for k in MODELS if k in need}
    jpegs = ensure_jpegs(a.data_dir, a.n_images if a.n_images < JPEG_COUNT else None) \
        if "preprocess" in tasks else None

    res: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"batch": a.batch, "repeat": a.repeat, "rss_batch": a.rss_batch,
                     "preprocess_repeat": a.preprocess_repeat, "threads": threads, "models": models,
                     "tasks": sorted(tasks), "quick": a.quick, "omp_wait_policy": OMP_WAIT_POLICY,
                     "captions": [CAPTIONS[i % len(CAPTIONS)] for i in range(a.batch)],
                     "vitrine_binary": str(vit) if vit else None},
        "environment": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                        "loadavg_start": loadavg(), "peak_rss_method": "gnu-time" if GNU_TIME else "VmHWM-sampled"},
        "checkpoints": {k: str(v) for k, v in ckpt.items()},
        "jpegs": jpegs,
        "pytorch": {},
        "vitrine": {},
        "rows": [],
        "errors": {},
    }
    info = run_worker("info", 1)
    res["pytorch"]["info_threads1"] = info
    res["versions"] = {k: info.get(k) for k in ("python", "torch", "transformers", "tokenizers", "safetensors",
                                                  "pillow", "numpy")}
    if vit:
        v = run_cmd([str(vit), "--version"]) if vit.exists() else {"stdout": "", "rc": None}
        res["versions"]["vitrine"] = v["stdout"].strip() or None
    pt, vr, rows = res["pytorch"], res["vitrine"], res["rows"]

    def record_error(key, d):
        if d and "error" in d:
            res["errors"][key] = d["error"]

    # Image encoding: each (model, threads) runs PyTorch then vitrine back to back.
    if "image" in tasks:
        for m in models:
            for t in threads:
                key = f"image_{m}_t{t}"
                pt[key] = run_worker("image", t, model=ckpt[m], batch=a.batch, repeat=a.repeat)
                record_error(f"pytorch {key}", pt[key])
                if vit:
                    vr[key] = run_vitrine(vit, t, ["clip-image", "--model", str(ckpt[m]), "--batch", str(a.batch),
                                                   "--repeat", str(a.repeat)])
                    record_error(f"vitrine {key}", vr[key])
                rows.append({"task": "image encode, images/s", "model": MODEL_LABEL[m], "threads": t,
                             "pytorch": val(pt[key], "images_per_s"), "vitrine": val(vr.get(key), "images_per_s")})

    if "text" in tasks:
        # `vitrine bench clip-text` encodes its own captions (CAPTIONS in bench.rs, cycled to the
        # batch).  The batch is padded to its longest caption, so unless both lists are equal,
        # PyTorch is also timed on vitrine's captions and the ratio uses that run.
        ours = [CAPTIONS[i % len(CAPTIONS)] for i in range(a.batch)]
        vcaps = vitrine_captions(a.batch) if vit else None
        same = vcaps == ours
        res["settings"]["vitrine_captions"] = vcaps
        res["settings"]["vitrine_captions_same_as_ours"] = same
        vfile = None
        if vcaps and not same:
            vfile = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="clip_bench_caps_", delete=False)
            json.dump(vcaps, vfile)
            vfile.close()
        for t in threads:
            key = f"text_b32_t{t}"
            pt[key] = run_worker("text", t, model=ckpt["b32"], batch=a.batch, repeat=a.repeat)
            record_error(f"pytorch {key}", pt[key])
            ref = pt[key]
            if vfile:
                ref = pt[key + "_vitrine_captions"] = run_worker("text", t, model=ckpt["b32"], batch=a.batch,
                                                                 repeat=a.repeat, captions_file=vfile.name)
                record_error(f"pytorch {key}_vitrine_captions", ref)
            if vit:
                vr[key] = run_vitrine(vit, t, ["clip-text", "--model", str(ckpt["b32"]), "--batch", str(a.batch),
                                               "--repeat", str(a.repeat)])
                record_error(f"vitrine {key}", vr[key])
            if vfile:
                rows.append({"task": "text encode (tokenize + encode), texts/s, clip_bench captions",
                             "model": "ViT-B/32 text", "threads": t, "pytorch": val(pt[key], "texts_per_s"),
                             "vitrine": None})
                rows.append({"task": f"text encode (tokenize + encode), texts/s, vitrine's captions "
                                     f"(padded to {ref.get('padded_length', '?')})",
                             "model": "ViT-B/32 text", "threads": t, "pytorch": val(ref, "texts_per_s"),
                             "vitrine": val(vr.get(key), "texts_per_s")})
            else:
                rows.append({"task": f"text encode (tokenize + encode), texts/s (padded to "
                                     f"{pt[key].get('padded_length', '?')})",
                             "model": "ViT-B/32 text", "threads": t, "pytorch": val(pt[key], "texts_per_s"),
                             "vitrine": val(vr.get(key), "texts_per_s")})
        if vfile:
            os.unlink(vfile.name)

    if "preprocess" in tasks:
        for t in threads:
            key = f"preprocess_t{t}"
            pt[key] = run_worker("preprocess", t, model=ckpt["b32"], image_dir=jpegs["dir"],
                                 repeat=a.preprocess_repeat)
            record_error(f"pytorch {key}", pt[key])
            if vit:
                vr[key] = run_vitrine(vit, t, ["preprocess", "--model", str(ckpt["b32"]), "--images", jpegs["dir"],
                                               "--repeat", str(a.preprocess_repeat)])
                record_error(f"vitrine {key}", vr[key])
            rows.append({"task": f"decode + preprocess {JPEG_W}x{JPEG_H} JPEG, images/s (Python: T processes)",
                         "model": "224 px", "threads": t, "pytorch": val(pt[key], "preprocess_images_per_s"),
                         "vitrine": val(vr.get(key), "images_per_s")})
            rows.append({"task": "decode alone (PIL open + convert RGB vs vitrine decode), images/s",
                         "model": "—", "threads": t, "pytorch": val(pt[key], "decode_images_per_s"),
                         "vitrine": val(vr.get(key), "decode_images_per_s")})

    if "rss" in tasks:
        # Peak RSS is only trustworthy from GNU time (or the sampled VmHWM): see run_cmd.
        pt["rss_load_only"] = run_worker("rss", 2, model=ckpt["b32"], batch=0)
        pt["rss"] = run_worker("rss", 2, model=ckpt["b32"], batch=a.rss_batch)
        record_error("pytorch rss", pt["rss"])
        if vit:
            vr["rss"] = run_vitrine(vit, 2, ["clip-image", "--model", str(ckpt["b32"]), "--batch", str(a.rss_batch),
                                             "--repeat", "1"])
            record_error("vitrine rss", vr["rss"])
        rows.append({"task": f"peak RSS MiB, load + encode {a.rss_batch} images", "model": "ViT-B/32", "threads": 2,
                     "pytorch": val(pt["rss"], "peak_rss_mib"), "vitrine": val(vr.get("rss"), "peak_rss_mib"),
                     "higher_is_better": False})
        rows.append({"task": "peak RSS MiB, load only (PyTorch)", "model": "ViT-B/32", "threads": 2,
                     "pytorch": val(pt["rss_load_only"], "peak_rss_mib"), "vitrine": None,
                     "higher_is_better": False})

    # Convenience summary for the JSON reader.
    first = next((v for k, v in pt.items() if k.startswith(("image_", "text_")) and "error" not in v), {})
    res["environment"].update(loadavg_end=loadavg(), total_s=time.perf_counter() - t_start,
                              image_processor_class=pt.get("preprocess_t1", {}).get("processor_class"),
                              get_features_returns=first.get("returns"),
                              attn_implementation=first.get("attn_implementation"),
                              mkl_available=info.get("mkl_available"), mkldnn_available=info.get("mkldnn_available"),
                              cpu_capability=info.get("cpu_capability"), torch_parallel=info.get("parallel"))
    name = "clip_bench_quick.json" if a.quick else "clip_bench.json"
    path = a.out / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1, default=str))
    os.replace(tmp, path)
    log(f"wrote {path} ({res['environment']['total_s']:.0f} s)")
    print(report(res))
    return 0


def vitrine_captions(batch: int) -> list[str] | None:
    """The captions `vitrine bench clip-text --batch N` encodes: CAPTIONS in bench.rs, cycled
    (`CAPTIONS[i % CAPTIONS.len()]`).  None when the source cannot be read or parsed."""
    import re

    try:
        src = VITRINE_BENCH_RS.read_text()
    except OSError:
        return None
    m = re.search(r"const\s+CAPTIONS\s*:\s*&\[&str\]\s*=\s*&\[(.*?)\];", src, re.S)
    if not m:
        return None
    caps = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)):
        try:
            caps.append(json.loads(f'"{lit}"'))  # simple Rust escapes match JSON's
        except ValueError:
            return None
    return [caps[i % len(caps)] for i in range(batch)] if caps else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
