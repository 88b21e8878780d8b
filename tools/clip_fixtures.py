#!/usr/bin/env python3
"""Build small random-weight CLIP and Chinese-CLIP checkpoints plus reference outputs.

The Rust tests in crates/vitrine-clip compare against what this script writes, so they need no
Python. Run it only to regenerate the fixtures (pinned versions: tools/requirements-ref.txt):

    python3 -m venv tools/.venv-ref
    tools/.venv-ref/bin/pip install -r tools/requirements-ref.txt
    tools/.venv-ref/bin/python tools/clip_fixtures.py crates/vitrine-clip/tests/fixtures

Everything is made offline and deterministically (fixed seeds):
  * tokenizers: a CLIP byte-level BPE trained here on a small bilingual corpus (vocab.json,
    merges.txt, and the tokenizer.json that transformers' converter derives from them) and a
    BERT WordPiece vocab.txt for Chinese-CLIP;
  * models of several shapes (widths, depths, patch sizes, quick_gelu vs gelu, layer-norm eps,
    end-of-text id not the largest id) with random weights scaled so activations are O(1);
  * test images in several PIL modes and sizes;
  * reference.json: token ids, text features (padded batch with attention mask), image
    features, all from transformers; pixels_*.npy: the reference processor's pixel tensors.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import regex
import torch
import transformers
from PIL import Image, ImageDraw

SEED = 1234

TEXTS = [
    "a photo of a samoyed dog",
    "A PHOTO OF A HANDGUN!!",
    "red sneakers, size 42 — like new",
    "一只萨摩耶犬的照片",
    "二手 iPhone 14 Pro 手机,九成新",
    "vintage leather handbag 复古 皮包",
    "emoji test 🐶🔫👟 ok",
    "   multiple    spaces\tand\nnewlines   ",
    "don't won't it's we're they've I'm you'll he'd",
    "punctuation: (brackets) [square] {curly} <angle> & ampersand / slash",
    "12345 67.89 1e-3 #hashtag @mention",
    "a very long description " + " ".join(f"word{i}" for i in range(120)),
    "",
]

CORPUS = """
a photo of a dog a photo of a cat a photo of a samoyed a photo of a handgun a photo of a pistol
red sneakers blue sneakers white shoes leather handbag vintage watch used phone new phone like new
size large small medium bicycle guitar sofa lamp camera teddy bear laptop perfume sunglasses drone
the quick brown fox jumps over the lazy dog photos of dogs and cats selling buying second hand
marketplace listing avatar profile picture product image clean condition original box receipt
""" * 3


# ---------------------------------------------------------------- tokenizers


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


CLIP_PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def train_clip_bpe(corpus: str, n_merges: int) -> tuple[list[str], list[tuple[str, str]]]:
    """A plain BPE over byte-level symbols with CLIP's `</w>` end-of-word marker."""
    b2u = bytes_to_unicode()
    words = Counter()
    for w in CLIP_PAT.findall(corpus.lower()):
        syms = [b2u[b] for b in w.encode("utf-8")]
        syms[-1] += "</w>"
        words[tuple(syms)] += 1
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    alphabet = list(b2u.values())
    vocab = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges]
    return vocab, merges


def write_clip_tokenizer(out: Path, specials_first: bool) -> transformers.PreTrainedTokenizerBase:
    vocab, merges = train_clip_bpe(CORPUS, 300)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    ordered = specials + vocab if specials_first else vocab + specials
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(ordered)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tok = transformers.CLIPTokenizerFast.from_pretrained(str(out))
    tok.save_pretrained(str(out))
    return tok


def write_bert_vocab(out: Path) -> transformers.PreTrainedTokenizerBase:
    chars = sorted({c for t in TEXTS + [CORPUS] for c in t.lower() if not c.isspace()} - set("🐶🔫👟"))
    words = sorted({w for w in regex.findall(r"[a-z]+", CORPUS)})[:80]
    pieces = ["##" + s for s in ["s", "ing", "ed", "er", "ly", "e", "a", "o", "n", "t"]]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + words + pieces
    seen, vocab = set(), []
    for t in tokens:
        if t not in seen:
            seen.add(t)
            vocab.append(t)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast.from_pretrained(str(out), do_lower_case=True)
    tok.save_pretrained(str(out))
    return tok


# ---------------------------------------------------------------- models


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights with O(1) activations: the default init is so small that features would
    barely depend on the input, which would make parity tests weak."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "logit_scale" in name:
                p.fill_(math.log(1 / 0.07))
            elif "norm" in name.lower():
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


def image_processor(size: int) -> transformers.CLIPImageProcessor:
    # Without torchvision installed, transformers 5 runs this with its PIL backend: the reference
    # most published CLIP vectors were computed with.
    return transformers.CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": size},
        resample=3,  # bicubic
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb=True,
    )


def test_images(out: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    paths = []

    def scene(w: int, h: int) -> Image.Image:
        img = Image.new("RGB", (w, h), tuple(int(x) for x in rng.integers(0, 255, 3)))
        d = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(5, w // 2)), y0 + int(rng.integers(5, h // 2))
            fill = tuple(int(x) for x in rng.integers(0, 255, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
        return img

    specs = [
        ("scene_320x240.png", scene(320, 240)),
        ("tall_97x131_gray.png", scene(97, 131).convert("L")),
        ("rgba_200x200.png", scene(200, 200).convert("RGBA")),
        ("palette_150x100.png", scene(150, 100).convert("P", palette=Image.Palette.ADAPTIVE)),
        ("wide_641x203.jpg", scene(641, 203)),
    ]
    for name, img in specs:
        p = out / name
        img.save(p, quality=90) if name.endswith(".jpg") else img.save(p)
        paths.append(p)
    return paths


def write_png16(path: Path, rgb: np.ndarray) -> None:
    import struct
    import zlib

    h, w, _ = rgb.shape
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def format_images(out: Path) -> list[Path]:
    """One image per decoding case the Rust side must handle like PIL."""
    base = Image.open(out / "scene_320x240.png").convert("RGB")
    paths = []

    def save(name: str, img: Image.Image, **kw) -> None:
        img.save(out / name, **kw)
        paths.append(out / name)

    save("progressive.jpg", base, quality=85, progressive=True)
    save("cmyk.jpg", base.convert("CMYK"), quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    save("exif_rotate90.jpg", base.resize((160, 120)), quality=90, exif=exif)
    # 16-bit RGB PNG (Pillow cannot write one): a minimal PNG writer.
    rgb16 = (np.asarray(base, dtype=np.uint16) * 257 + 7).astype(">u2")
    write_png16(out / "rgb16.png", rgb16)
    paths.append(out / "rgb16.png")
    save("gray16.png", Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 200).astype(np.uint16)))
    save("lossless.webp", base, lossless=True)
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    save("animated.gif", frames[0].convert("P", palette=Image.Palette.ADAPTIVE), save_all=True,
         append_images=[frames[1].convert("P", palette=Image.Palette.ADAPTIVE)], duration=100, loop=0)
    save("photo.bmp", base)
    save("photo.tiff", base)
    return paths


def load_like_transformers(p: Path) -> Image.Image:
    # transformers.image_utils.load_image applies the EXIF orientation; so do we.
    from PIL import ImageOps
    return ImageOps.exif_transpose(Image.open(p))


def features(out) -> torch.Tensor:
    # transformers 5 returns a ModelOutput from get_*_features; 4.x returned the tensor.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def build(out: Path, kind: str, text_cfg: dict, vision_cfg: dict, image_size: int, seed: int,
          images: list[Path], specials_first: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "clip":
        tok = write_clip_tokenizer(out, specials_first)
        text_cfg = dict(text_cfg, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        cfg = transformers.CLIPConfig(text_config=text_cfg, vision_config=dict(vision_cfg, image_size=image_size),
                                      projection_dim=16)
        model = transformers.CLIPModel(cfg)
        max_len = text_cfg["max_position_embeddings"]
    else:
        tok = write_bert_vocab(out)
        text_cfg = dict(text_cfg, vocab_size=len(tok), pad_token_id=tok.pad_token_id)
        cfg = transformers.ChineseCLIPConfig(text_config=text_cfg, vision_config=dict(vision_cfg, image_size=image_size),
                                             projection_dim=16)
        model = transformers.ChineseCLIPModel(cfg)
        max_len = 52  # Chinese-CLIP's context length
    randomize(model, seed)
    model.eval()
    model.save_pretrained(str(out))
    if kind == "chinese_clip":
        # Older checkpoints ship pytorch_model.bin; the loader must read that too.
        torch.save(model.state_dict(), out / "pytorch_model.bin")
    proc = image_processor(image_size)
    proc.save_pretrained(str(out))

    ref: dict = {"transformers": transformers.__version__, "torch": torch.__version__, "kind": kind,
                 "max_length": max_len, "texts": TEXTS, "token_ids": [], "images": []}
    for t in TEXTS:
        ref["token_ids"].append(tok(t, truncation=True, max_length=max_len)["input_ids"])
    batch = tok(TEXTS, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    with torch.no_grad():
        tf = features(model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]))
        # One text alone (no padding) must give the same features as inside the padded batch.
        single = tok([TEXTS[0]], return_tensors="pt")
        tf0 = features(model.get_text_features(**{k: v for k, v in single.items() if k != "token_type_ids"}))
    assert torch.allclose(tf[0], tf0[0], atol=1e-5), "padding changed a text feature"
    ref["text_features"] = tf.tolist()
    for p in images:
        pix = proc(images=load_like_transformers(p), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            f = features(model.get_image_features(pixel_values=pix))
        np.save(out / f"pixels_{p.stem}.npy", pix[0].numpy().astype(np.float32).reshape(1, -1))  # (1, 3*H*W)
        ref["images"].append({"file": p.name, "features": f[0].tolist()})
    (out / "reference.json").write_text(json.dumps(ref, ensure_ascii=False, indent=1))
    print(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB)")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "crates/vitrine-clip/tests/fixtures")
    (root / "images").mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    images = test_images(root / "images")
    formats = format_images(root / "images")
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    # OpenAI layout: quick_gelu, eps 1e-5, ViT-B/32-like patching at 224; end-of-text is NOT the
    # largest id (specials first), which catches pooling at argmax(token id).
    build(root / "clip-quickgelu-p32", "clip", text, vision, 224, SEED, images, specials_first=True)
    # LAION-style: gelu, eps 1e-6, more layers, patch 16 at 64 px, specials last.
    build(root / "clip-gelu-p16", "clip",
          dict(text, hidden_size=48, num_attention_heads=6, num_hidden_layers=3, hidden_act="gelu", layer_norm_eps=1e-6),
          dict(vision, hidden_size=48, num_attention_heads=6, num_hidden_layers=3, patch_size=16,
               hidden_act="gelu", layer_norm_eps=1e-6),
          64, SEED + 1, images + formats)
    # Chinese-CLIP: BERT text tower (post-LN, token types, attention mask), CLIP vision tower.
    build(root / "chinese-clip-p16", "chinese_clip",
          dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12),
          dict(vision, patch_size=16), 64, SEED + 2, images)


if __name__ == "__main__":
    main()
