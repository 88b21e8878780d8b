#!/usr/bin/env python3
"""Preprocessing parity on real photographs: vitrine vs PIL + transformers' CLIPImageProcessor.

    tools/.venv-ref/bin/python tools/preprocess_parity.py --model bench/data/clip-vit-b32-random

Photos come from the sample data shipped inside the scikit-image, matplotlib and scikit-learn
wheels (downloaded with `pip download --no-deps` and unzipped; nothing is installed). For each
photo it reports the max abs difference of the pixel tensors and the cosine between the image
features of the two tensors under the given model (transformers). Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
PHOTOS = {
    "scikit-image==0.26.0": ["skimage/data/astronaut.png", "skimage/data/chelsea.png", "skimage/data/coffee.png",
                             "skimage/data/motorcycle_left.png", "skimage/data/rocket.jpg", "skimage/data/retina.jpg",
                             "skimage/data/hubble_deep_field.jpg", "skimage/data/camera.png", "skimage/data/brick.png"],
    "matplotlib==3.11.2": ["matplotlib/mpl-data/sample_data/grace_hopper.jpg"],
    "scikit-learn==1.9.1": ["sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg"],
}


def fetch_photos(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for pkg, members in PHOTOS.items():
        missing = [m for m in members if not (dest / Path(m).name).exists()]
        if missing:
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", pkg, "-d", tmp], check=True)
                whl = next(Path(tmp).glob("*.whl"))
                with zipfile.ZipFile(whl) as z:
                    for m in missing:
                        (dest / Path(m).name).write_bytes(z.read(m))
        out += [dest / Path(m).name for m in members]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--vitrine", type=Path, default=REPO / "target/release/vitrine")
    ap.add_argument("--photos", type=Path, default=REPO / "bench/data/photos")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/preprocess_parity.json")
    a = ap.parse_args()
    photos = fetch_photos(a.photos)
    proc = transformers.CLIPImageProcessor.from_pretrained(str(a.model))
    model = transformers.CLIPModel.from_pretrained(str(a.model)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours_path = Path(tmp) / "ours.npy"
        cmd = [str(a.vitrine), "bench", "pixels", "--model", str(a.model), "--out", str(ours_path)]
        for p in photos:
            cmd += ["--image", str(p)]
        subprocess.run(cmd, check=True)
        ours = np.load(ours_path)
    rows = []
    for i, p in enumerate(photos):
        img = ImageOps.exif_transpose(Image.open(p))
        ref = proc(images=img, return_tensors="pt")["pixel_values"]
        mine = torch.from_numpy(ours[i].reshape(ref.shape))
        with torch.inference_mode():
            f = model.get_image_features(pixel_values=torch.cat([ref, mine]))
            f = f if isinstance(f, torch.Tensor) else f.pooler_output
        cos = torch.nn.functional.cosine_similarity(f[0:1], f[1:2]).item()
        diff = (ref - mine).abs()
        rows.append({"photo": p.name, "size": f"{img.width}x{img.height}", "mode": img.mode,
                     "max_abs_pixel_diff": float(diff.max()), "mean_abs_pixel_diff": float(diff.mean()), "cosine": cos})
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"model": str(a.model), "transformers": transformers.__version__, "rows": rows}, indent=1))
    print("| photo | size | mode | max abs pixel diff | mean abs diff | feature cosine |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['photo']} | {r['size']} | {r['mode']} | {r['max_abs_pixel_diff']:.2e} | {r['mean_abs_pixel_diff']:.2e} | {r['cosine']:.7f} |")
    print(f"\nmin cosine {min(r['cosine'] for r in rows):.7f} over {len(rows)} photos")


if __name__ == "__main__":
    main()
