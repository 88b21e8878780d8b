#!/usr/bin/env python3
"""Trains vitrine's bundled bilingual demo model: a small Chinese-CLIP.

No real CLIP weights can be downloaded where vitrine is built, so the demo ships its own model,
trained here on pictures drawn by vitrine itself (crates/vitrine-gallery: 16 marketplace things
x 10 colours, product shots and avatar badges, varied sizes, positions, angles, mirror images and
backgrounds) with English and Chinese captions. The pictures come from
`vitrine bench demo-dataset`, i.e. through the very JPEG + decode + PIL-exact bicubic resize the
index path uses, so training and use see identical pixels.

The result is a standard Hugging Face Chinese-CLIP checkpoint (config.json, model.safetensors,
vocab.txt + tokenizer files, preprocessor_config.json) that vitrine loads through the same code
path as real checkpoints.

Loss: CLIP's symmetric contrastive loss with every consistent pair counted as a positive
(captions repeat across pictures: "a red dog" matches every red dog, "a dog" every dog), plus a
supervised image-image contrastive term so that similar pictures cluster (image -> image search).

Usage (2 cores, about 25 minutes; see models/vitrine-demo/README.md for the recorded run):
    cargo build --release
    tools/.venv-ref/bin/python tools/train_demo_model.py --out models/vitrine-demo
Requires the pinned reference stack: tools/requirements-ref.txt.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_dataset(vitrine, out, count, seed, size):
    if (out / "pixels.npy").exists() and (out / "labels.jsonl").exists():
        return
    cmd = [str(vitrine), "bench", "demo-dataset", "--out", str(out), "--count", str(count),
           "--seed", str(seed), "--size", str(size)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def load(dir_):
    pixels = np.load(dir_ / "pixels.npy", mmap_mode="r")
    labels = [json.loads(line) for line in open(dir_ / "labels.jsonl", encoding="utf-8")]
    return pixels, labels


def build_vocab(captions):
    """WordPiece vocabulary: every word and CJK character of the captions, plus letters and
    digits (whole and ##) so that any other English word still tokenises into pieces."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    norm = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = BertPreTokenizer()
    words = set()
    for c in captions:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(c)))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    punct = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~，。！？、：；（）")
    vocab = list(SPECIALS) + sorted(words - set(SPECIALS)) + letters + ["##" + c for c in letters] + punct
    seen, out = set(), []
    for t in vocab:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def save_tokenizer(out, vocab, max_len):
    from transformers import BertTokenizerFast
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 silently ignores BertTokenizerFast(vocab_file=...): load the folder instead.
    tok = BertTokenizerFast.from_pretrained(str(out), do_lower_case=True, tokenize_chinese_chars=True,
                                            model_max_length=max_len)
    probe = tok("a photo of a red dog 一张红色狗的照片")["input_ids"]
    assert tok.unk_token_id not in probe, f"tokenizer lost its vocabulary: {probe}"
    tok.save_pretrained(str(out))
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "vitrine-demo")
    ap.add_argument("--vitrine", type=Path, default=ROOT / "target" / "release" / "vitrine")
    ap.add_argument("--data", type=Path, default=ROOT / "target" / "demo-data")
    ap.add_argument("--train-count", type=int, default=60_000)
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=8e-4, help="peak learning rate of the vision tower")
    ap.add_argument("--text-lr", type=float, default=3e-4,
                    help="peak learning rate of the text tower (post-LN BERT collapses at the vision rate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=200)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    size, max_len = 64, 32
    t0 = time.time()
    make_dataset(args.vitrine, args.data / "train", args.train_count, 1, size)
    make_dataset(args.vitrine, args.data / "val", 2000, 2, size)
    train_px, train_lb = load(args.data / "train")
    val_px, val_lb = load(args.data / "val")
    classes = json.load(open(args.data / "train" / "classes.json", encoding="utf-8"))
    n_colours = 1 + max(c["colour"] for c in classes)

    all_captions = [c["text"] for lb in train_lb for c in lb["captions"]]
    all_captions += [c[k] for c in classes for k in ("en", "zh")]
    vocab = build_vocab(all_captions)
    tok = save_tokenizer(args.out, vocab, max_len)
    print(f"vocabulary: {len(vocab)} tokens", flush=True)

    from transformers import (ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel,
                              ChineseCLIPTextConfig, ChineseCLIPVisionConfig)
    text_cfg = ChineseCLIPTextConfig(vocab_size=len(vocab), hidden_size=192, num_hidden_layers=3,
                                     num_attention_heads=4, intermediate_size=768,
                                     max_position_embeddings=max_len, type_vocab_size=2, pad_token_id=0)
    vision_cfg = ChineseCLIPVisionConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=4,
                                         num_attention_heads=4, image_size=size, patch_size=8, projection_dim=128,
                                         hidden_act="quick_gelu")
    cfg = ChineseCLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision_cfg.to_dict(), projection_dim=128)
    model = ChineseCLIPModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f} M", flush=True)

    # Tokenise every caption once: (pictures, 6 captions, max_len).
    def encode(texts):
        e = tok(texts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np")
        return e["input_ids"].astype(np.int64), e["attention_mask"].astype(np.int64)

    caps_per = len(train_lb[0]["captions"])
    ids, mask = encode(all_captions[: len(train_lb) * caps_per])
    ids = torch.from_numpy(ids.reshape(len(train_lb), caps_per, max_len))
    mask = torch.from_numpy(mask.reshape(len(train_lb), caps_per, max_len))
    cap_obj = torch.tensor([[c["object"] for c in lb["captions"]] for lb in train_lb])
    cap_col = torch.tensor([[-1 if c["colour"] is None else c["colour"] for c in lb["captions"]] for lb in train_lb])
    img_obj = torch.tensor([lb["object"] for lb in train_lb])
    img_col = torch.tensor([lb["colour"] for lb in train_lb])
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)

    def pixels(arr, idx):
        x = torch.from_numpy(np.ascontiguousarray(arr[idx])).permute(0, 3, 1, 2).float() / 255.0
        return (x - mean) / std

    groups = []
    for tower, peak in (("text_model.", args.text_lr), ("", args.lr)):
        taken = {id(p) for g in groups for p in g["params"]}
        params = [(n, p) for n, p in model.named_parameters() if n.startswith(tower) and id(p) not in taken]
        decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
        groups += [{"params": decay, "weight_decay": 0.05, "peak": peak},
                   {"params": no_decay, "weight_decay": 0.0, "peak": peak}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)

    def lr_at(step, peak=args.lr):
        if step < warmup:
            return peak * (step + 1) / warmup
        p = (step - warmup) / max(1, args.steps - warmup)
        return peak * 0.5 * (1 + math.cos(math.pi * p))

    def evaluate():
        model.eval()
        with torch.no_grad():
            feats = []
            for i in range(0, len(val_lb), 500):
                x = pixels(val_px, np.arange(i, min(i + 500, len(val_lb))))
                feats.append(F.normalize(model.get_image_features(pixel_values=x).pooler_output, dim=-1))
            im = torch.cat(feats)
            cls = torch.tensor([lb["object"] * n_colours + lb["colour"] for lb in val_lb])
            out = {}
            for lang in ("en", "zh"):
                q_ids, q_mask = encode([c[lang] for c in classes])
                q = model.get_text_features(input_ids=torch.from_numpy(q_ids),
                                            attention_mask=torch.from_numpy(q_mask)).pooler_output
                q = F.normalize(q, dim=-1)
                present = torch.zeros(len(classes), dtype=torch.bool)
                present[cls] = True
                top = (q @ im.T).argmax(dim=1)
                hit = (cls[top] == torch.arange(len(classes)))[present].float().mean().item()
                out[f"t2i_{lang}"] = round(hit, 4)
                out[f"cls_{lang}"] = round(((im @ q.T).argmax(dim=1) == cls).float().mean().item(), 4)
            s = im @ im.T
            s.fill_diagonal_(-2)
            out["i2i"] = round((cls[s.argmax(dim=1)] == cls).float().mean().item(), 4)
        model.train()
        return out

    print(f"data ready in {time.time() - t0:.0f} s", flush=True)
    model.train()
    rng = np.random.default_rng(args.seed)
    t_train = time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, g["peak"])
        idx = np.sort(rng.choice(len(train_lb), size=args.batch, replace=False))
        which = torch.from_numpy(rng.integers(0, caps_per, size=args.batch))
        it = torch.from_numpy(idx)
        x = pixels(train_px, idx)
        t_ids, t_mask = ids[it, which], mask[it, which]
        c_obj, c_col = cap_obj[it, which], cap_col[it, which]
        i_obj, i_col = img_obj[it], img_col[it]
        # Image i and caption j agree when the thing matches and the colour matches or is unsaid.
        pos = (i_obj[:, None] == c_obj[None, :]) & ((c_col[None, :] < 0) | (i_col[:, None] == c_col[None, :]))
        same = (i_obj[:, None] == i_obj[None, :]) & (i_col[:, None] == i_col[None, :])
        same.fill_diagonal_(False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            im = model.get_image_features(pixel_values=x).pooler_output
            tx = model.get_text_features(input_ids=t_ids, attention_mask=t_mask).pooler_output
        im = F.normalize(im.float(), dim=-1)
        tx = F.normalize(tx.float(), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * im @ tx.T
        posf = pos.float()
        loss_i = -(posf / posf.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
        loss_t = -(posf.T / posf.T.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        ii = (im @ im.T) / 0.1
        ii = ii.masked_fill(torch.eye(args.batch, dtype=torch.bool), -1e4)
        has = same.any(1)
        samef = same.float()
        loss_ii = -(samef / samef.sum(1, keepdim=True).clamp(min=1) * F.log_softmax(ii, dim=1)).sum(1)[has].mean()
        loss = (loss_i + loss_t) / 2 + 0.5 * loss_ii
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            el = time.time() - t_train
            print(f"step {step} loss {loss.item():.3f} (i {loss_i.item():.3f} t {loss_t.item():.3f} "
                  f"ii {loss_ii.item():.3f}) scale {scale.item():.1f} lr {lr_at(step):.2e} {el:.0f} s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            print(f"eval at step {step + 1}: {evaluate()}", flush=True)
    train_secs = time.time() - t_train
    final = evaluate()

    model.save_pretrained(str(args.out), safe_serialization=True)
    proc = ChineseCLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                     do_center_crop=True, resample=3, image_mean=MEAN, image_std=STD)
    proc.save_pretrained(str(args.out))
    record = {
        "command": " ".join([Path(sys.executable).name] + [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "parameters": n_params,
        "steps": args.steps,
        "batch": args.batch,
        "threads": args.threads,
        "train_pictures": len(train_lb),
        "train_seconds": round(train_secs),
        "total_seconds": round(time.time() - t0),
        "val": final,
        "torch": torch.__version__,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
