"""The preprocessed-tensor cache written by `twin preprocess` (Rust): `<prefix>.npy` holds
float32 [N, C, H, W] exactly as twin serves them; `<prefix>.json` holds the input and
preprocess specs that produced them and one record per image (path, subject, kind)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .readers import Sample


@dataclass
class Cache:
    x: np.ndarray  # [N, C, H, W] float32
    samples: list[Sample]
    input: dict  # manifest [input]: name?, channels, height, width
    preprocess: dict  # manifest [preprocess]


def load(prefix: str | Path, mmap: bool = False) -> Cache:
    prefix = Path(prefix)
    npy = prefix.with_name(prefix.name + ".npy")
    meta_path = prefix.with_name(prefix.name + ".json")
    for p in (npy, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing; build the cache with `twin preprocess` (training/run.sh preprocess)")
    meta = json.loads(meta_path.read_text())
    x = np.load(npy, mmap_mode="r" if mmap else None)
    if x.dtype == np.uint8:
        raise ValueError(f"{npy} is uint8; training needs the float32 cache (twin preprocess --dtype f32)")
    samples = [Sample(r["path"], r["subject"], r["kind"]) for r in meta["samples"]]
    if x.ndim != 4 or x.shape[0] != len(samples):
        raise ValueError(f"{npy} has shape {x.shape} but {meta_path} lists {len(samples)} images")
    spec = meta["input"]
    if tuple(x.shape[1:]) != (spec["channels"], spec["height"], spec["width"]):
        raise ValueError(f"{npy} has shape {x.shape}, its index says {spec}")
    return Cache(np.asarray(x, dtype=np.float32) if not mmap else x, samples, spec, meta["preprocess"])
