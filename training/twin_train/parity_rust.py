"""Rust parity: the same images through `twin preprocess --embed` (twin_core preprocessing +
twin-embed, the serving path) and through ONNX Runtime in Python on the training cache.

Checks (1) the tensors twin writes now equal the cache training read (one preprocessing),
(2) twin-embed's embeddings equal onnxruntime-Python's within 1e-5. Writes MODEL/parity_rust.json.

    python -m twin_train.parity_rust --model models/signature-v1 --cache CACHE --twin target/debug/twin
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import cache as cache_mod
from .embed import onnx_embed, onnx_session
from .readers import write_list

TOLERANCE = 1e-5


def run(model: Path, cache_prefix: str, twin: str, images: int) -> dict:
    c = cache_mod.load(cache_prefix, mmap=True)
    step = max(1, len(c.samples) // images)
    idx = np.arange(0, len(c.samples), step)[:images]
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "list.tsv"
        write_list([c.samples[i] for i in idx], lst)
        prefix = Path(tmp) / "rust"
        subprocess.run([twin, "preprocess", "--list", str(lst), "--model", str(model), "--embed", "--out", str(prefix)],
                       check=True, stdout=subprocess.PIPE, env={"RUST_LOG": "warn", **os.environ})
        x_rust = np.load(str(prefix) + ".npy")
        e_rust = np.load(str(prefix) + ".embeddings.npy")
    x_cache = np.asarray(c.x[idx], dtype=np.float32)
    e_py = onnx_embed(onnx_session(str(model / "model.onnx")), x_cache)
    return {
        "images": int(len(idx)),
        "tensor_max_abs": float(np.abs(x_rust - x_cache).max()),
        "max_abs": float(np.abs(e_rust - e_py).max()),
        "twin": twin,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--twin", required=True, help="path to the twin binary")
    p.add_argument("--images", type=int, default=64)
    args = p.parse_args(argv)
    r = run(Path(args.model), args.cache, args.twin, args.images)
    print(f"rust parity on {r['images']} images: tensors max |diff| {r['tensor_max_abs']:.1e}, "
          f"embeddings max |twin-embed - onnxruntime-python| {r['max_abs']:.1e}")
    (Path(args.model) / "parity_rust.json").write_text(json.dumps(r, indent=2) + "\n")
    if r["tensor_max_abs"] != 0.0 or r["max_abs"] > TOLERANCE:
        raise SystemExit("rust parity check failed")


if __name__ == "__main__":
    main()
