"""Export a checkpoint to a twin model directory: `model.onnx` (dynamic batch axis, L2
normalization inside the graph) and `manifest.toml`, then check ONNX Runtime against PyTorch
on real preprocessed images (max |difference| <= 1e-5, at batch 1 and at a full batch).

    python -m twin_train.export --checkpoint RUN/best.pt --out models/signature-v1 --cache CACHE
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import cache as cache_mod
from . import manifest as mf
from .embed import onnx_embed, onnx_session, torch_embed
from .model import build

OUTPUT_NAME = "embedding"
PARITY_TOLERANCE = 1e-5


def load_checkpoint(path: str | Path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build(ckpt["model"])
    model.load_state_dict(ckpt["state"])
    model.eval()
    return model, ckpt


def export_onnx(model, input_spec: dict, path: Path) -> None:
    c, h, w = input_spec["channels"], input_spec["height"], input_spec["width"]
    dummy = torch.zeros(2, c, h, w)
    name = input_spec.get("name", "image")
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=[name],
        output_names=[OUTPUT_NAME],
        dynamic_axes={name: {0: "N"}, OUTPUT_NAME: {0: "N"}},
        opset_version=17,
        dynamo=False,
    )


def parity(model, onnx_path: Path, x: np.ndarray) -> float:
    """Largest |torch − onnxruntime| over `x`, embedded one by one and as one batch."""
    ref = torch_embed(model, x)
    sess = onnx_session(str(onnx_path))
    batched = onnx_embed(sess, x, batch=len(x))
    single = onnx_embed(sess, x, batch=1)
    return float(max(np.abs(ref - batched).max(), np.abs(ref - single).max()))


def base_manifest(ckpt: dict, onnx_path: Path, name: str, version: str, description: str) -> dict:
    inp = dict(ckpt["input"])
    inp.setdefault("name", "image")
    return {
        "name": name,
        "version": version,
        "id": mf.sha256_file(onnx_path),
        "trained": True,
        "description": description,
        "native_metric": "cosine",
        "default_target_far": 0.01,
        "input": inp,
        "preprocess": dict(ckpt["preprocess"]),
        "output": {"name": OUTPUT_NAME, "embedding_size": int(ckpt["model"]["dim"]), "l2_normalized": True},
        "operating_points": [],
        "evaluation": {},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="model directory to write (model.onnx, manifest.toml)")
    p.add_argument("--cache", help="tensor cache whose images the parity check uses (default: zeros+noise)")
    p.add_argument("--parity-images", type=int, default=64)
    p.add_argument("--name", default="signature-v1")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--description", default="Offline signature verification branch (BHSig260-Bengali, triplet loss)")
    args = p.parse_args(argv)

    model, ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    export_onnx(model, ckpt["input"], onnx_path)

    if args.cache:
        c = cache_mod.load(args.cache, mmap=True)
        if (c.input["channels"], c.input["height"], c.input["width"]) != (
            ckpt["input"]["channels"], ckpt["input"]["height"], ckpt["input"]["width"]):
            raise SystemExit(f"cache input {c.input} does not match the checkpoint's {ckpt['input']}")
        step = max(1, len(c.x) // args.parity_images)
        x = np.ascontiguousarray(c.x[::step][: args.parity_images], dtype=np.float32)
    else:
        i = ckpt["input"]
        x = np.random.default_rng(0).random((args.parity_images, i["channels"], i["height"], i["width"]), dtype=np.float32)
    diff = parity(model, onnx_path, x)
    print(f"parity: max |torch - onnxruntime| = {diff:.2e} over {len(x)} images (batch 1 and {len(x)})")
    if diff > PARITY_TOLERANCE:
        raise SystemExit(f"parity check failed: {diff:.2e} > {PARITY_TOLERANCE}")

    m = base_manifest(ckpt, onnx_path, args.name, args.version, args.description)
    manifest_path = out / "manifest.toml"
    if manifest_path.is_file():  # keep calibration of a previous run only if the graph is the same
        old = mf.read(manifest_path)
        if old.get("id") == m["id"]:
            m["operating_points"] = old.get("operating_points", [])
            m["evaluation"] = old.get("evaluation", {})
    mf.write(manifest_path, m)
    (out / "export.json").write_text(json.dumps({"parity_max_abs": diff, "parity_images": len(x), "checkpoint_epoch": ckpt["epoch"],
                                                 "train_args": ckpt["args"], "model": ckpt["model"], "augment": ckpt["augment"],
                                                 "torch": ckpt["torch"], "threads": ckpt["threads"],
                                                 "device": ckpt.get("device", ckpt["args"]["device"])}, indent=2) + "\n")
    print(f"exported {onnx_path} (id {m['id'][:12]}…) and {manifest_path}")


if __name__ == "__main__":
    main()
