#!/usr/bin/env python3
"""Builds models/signature-dev: an UNTRAINED, randomly initialized siamese branch so the
whole pipeline (preprocessing, ONNX Runtime, micro-batching, storage, decisions) runs
before the trained model exists. Its embeddings carry no knowledge of signatures.

Uses only onnx + numpy (+ onnxruntime to calibrate the test operating points); no torch.
Deterministic: the same seed writes byte-identical model.onnx, hence the same id.

    .venv/bin/python scripts/make_dev_model.py            # writes models/signature-dev/

The graph (one branch of the siamese network; both branches share these weights):
    image [N,1,80,160] -> 3 x (Conv 3x3 -> ReLU -> MaxPool 2x2)   16, 32, 64 channels
                       -> GlobalAveragePool -> Flatten -> Gemm 64->128
                       -> x / max(||x||_2, 1e-12)                -> embedding [N,128]
Every op has a CUDA kernel in ONNX Runtime, so on a GPU no node falls back to the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = "signature-dev"
VERSION = "0.1.0"
HEIGHT, WIDTH = 80, 160
CHANNELS = (16, 32, 64)
EMBEDDING = 128
OPSET = 17
SEED = 20240611
CALIBRATION_SEED = 7
WRITERS, SAMPLES_PER_WRITER = 60, 6


def build_model(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    x, in_ch = "image", 1
    for i, out_ch in enumerate(CHANNELS, start=1):
        fan_in = in_ch * 9
        w = init(f"conv{i}.weight", rng.normal(0, np.sqrt(2.0 / fan_in), (out_ch, in_ch, 3, 3)))
        b = init(f"conv{i}.bias", rng.normal(0, 0.01, (out_ch,)))
        nodes.append(helper.make_node("Conv", [x, w, b], [f"conv{i}"], name=f"conv{i}",
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"relu{i}"))
        nodes.append(helper.make_node("MaxPool", [f"relu{i}"], [f"pool{i}"], name=f"pool{i}",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        x, in_ch = f"pool{i}", out_ch

    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], name="flatten", axis=1))
    fc_w = init("fc.weight", rng.normal(0, np.sqrt(1.0 / in_ch), (EMBEDDING, in_ch)))
    fc_b = init("fc.bias", rng.normal(0, 0.01, (EMBEDDING,)))
    nodes.append(helper.make_node("Gemm", ["features", fc_w, fc_b], ["projection"], name="fc",
                                  transB=1))
    # L2 normalization from primitives with CUDA kernels (LpNormalization has none).
    nodes.append(helper.make_node("ReduceL2", ["projection"], ["norm"], name="l2norm",
                                  axes=[1], keepdims=1))
    eps = init("eps", np.array([1e-12]))
    nodes.append(helper.make_node("Max", ["norm", eps], ["safe_norm"], name="clamp_norm"))
    nodes.append(helper.make_node("Div", ["projection", "safe_norm"], ["embedding"],
                                  name="normalize"))

    graph = helper.make_graph(
        nodes, "signature_branch",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, HEIGHT, WIDTH])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", EMBEDDING])],
        inits,
    )
    model = helper.make_model(graph, producer_name="twin/scripts/make_dev_model.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.doc_string = "UNTRAINED development model: random weights, no knowledge of signatures."
    onnx.checker.check_model(model, full_check=True)
    return model


def render_stroke(params: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """One synthetic 'signature': a smooth closed-form curve drawn as a thick line, ink = 1
    on black, already at the model's input size (it does not pass through twin's
    preprocessing; these images only calibrate the untrained model's test thresholds)."""
    t = np.linspace(0.0, 1.0, 400)
    p = params + rng.normal(0.0, jitter, params.shape)
    xs = 0.1 + 0.8 * t + 0.05 * np.sin(2 * np.pi * (p[0] * t + p[1]))
    ys = 0.5 + 0.3 * np.sin(2 * np.pi * (p[2] * t + p[3])) * np.cos(2 * np.pi * (p[4] * t))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    canvas = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for x, y in zip(xs * WIDTH, ys * HEIGHT):
        canvas[(xx - x) ** 2 + (yy - y) ** 2 <= 2.25] = 1.0
    return canvas


def calibrate(model_path: Path) -> dict:
    """Scores of genuine (same curve, jittered) and impostor (different curves) pairs of
    synthetic strokes; thresholds at FAR 1 % for cosine and l2."""
    import onnxruntime as ort

    rng = np.random.default_rng(CALIBRATION_SEED)
    writers = rng.uniform([1, 0, 1, 0, 0.5], [3, 1, 4, 1, 2], (WRITERS, 5))
    images, owner = [], []
    for w, params in enumerate(writers):
        for _ in range(SAMPLES_PER_WRITER):
            images.append(render_stroke(params, rng, jitter=0.03))
            owner.append(w)
    batch = np.stack(images)[:, None, :, :]
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    emb = session.run(["embedding"], {"image": batch})[0].astype(np.float64)
    owner = np.array(owner)
    i, j = np.triu_indices(len(owner), k=1)
    genuine = owner[i] == owner[j]
    cosine = np.sum(emb[i] * emb[j], axis=1) / (
        np.linalg.norm(emb[i], axis=1) * np.linalg.norm(emb[j], axis=1))
    l2 = -np.linalg.norm(emb[i] - emb[j], axis=1)
    described = (f"synthetic random-stroke images from scripts/make_dev_model.py "
                 f"(seed {CALIBRATION_SEED}, {WRITERS} curves x {SAMPLES_PER_WRITER}, "
                 f"{int(genuine.sum())} genuine / {int((~genuine).sum())} impostor pairs); "
                 f"for tests only, meaningless for real signatures")
    points = []
    for metric, scores in (("cosine", cosine), ("l2", l2)):
        impostor = np.sort(scores[~genuine])
        # Smallest threshold with FAR <= 1 % (match when score >= threshold).
        k = int(np.ceil(0.99 * len(impostor)))
        threshold = float(impostor[min(k, len(impostor) - 1)])
        far = float(np.mean(scores[~genuine] >= threshold))
        frr = float(np.mean(scores[genuine] < threshold))
        points.append(dict(name="FAR 1 %", metric=metric, target_far=0.01,
                           threshold=threshold, measured_far=round(far, 6),
                           measured_frr=round(frr, 6), calibrated_on=described))
    return dict(points=points, eer_synthetic=equal_error_rate(cosine, genuine))


def equal_error_rate(scores: np.ndarray, genuine: np.ndarray) -> float:
    best = (2.0, 1.0)
    for threshold in np.unique(scores):
        far = np.mean(scores[~genuine] >= threshold)
        frr = np.mean(scores[genuine] < threshold)
        best = min(best, (abs(far - frr), (far + frr) / 2))
    return round(float(best[1]), 6)


def toml_string(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_manifest(out: Path, model_id: str, calibration: dict) -> None:
    lines = [
        "# UNTRAINED development model written by scripts/make_dev_model.py; do not edit.",
        "# Contract: models/README.md.",
        f"name = {toml_string(NAME)}",
        f"version = {toml_string(VERSION)}",
        f"id = {toml_string(model_id)}",
        "trained = false",
        "description = " + toml_string(
            "UNTRAINED random-weight CNN branch for development and tests; its scores say "
            "nothing about signatures"),
        'native_metric = "cosine"',
        "default_target_far = 0.01",
        "",
        "[input]",
        'name = "image"',
        "channels = 1",
        f"height = {HEIGHT}",
        f"width = {WIDTH}",
        "",
        "[preprocess]",
        "binarize = true",
        "crop_to_ink = true",
        "margin = 0.05",
        "# Identity normalization: the random weights were fitted to no data statistics.",
        "mean = 0.0",
        "std = 1.0",
        "",
        "[output]",
        'name = "embedding"',
        f"embedding_size = {EMBEDDING}",
        "l2_normalized = true",
        "",
        "[evaluation]",
        f"eer_synthetic_strokes = {calibration['eer_synthetic']}",
    ]
    for p in calibration["points"]:
        lines += ["", "[[operating_points]]"]
        lines += [f"{k} = {toml_string(v) if isinstance(v, str) else v}" for k, v in p.items()]
    (out / "manifest.toml").write_text("\n".join(lines) + "\n")


README = """# signature-dev — UNTRAINED development model

**This model is not trained.** Its weights are random (seed {seed}); its embeddings carry no
knowledge of signatures and its verification decisions are meaningless. It exists so that
twin's pipeline — preprocessing, ONNX Runtime, micro-batching, storage, decisions — runs and
is tested before the trained model (`models/signature-v1`, training/) exists.

- Made by `scripts/make_dev_model.py` (onnx + numpy, no torch); rerunning it writes a
  byte-identical `model.onnx`, so `id` (its sha256) is stable.
- Graph: `image [N,1,{h},{w}]` → 3 × (Conv 3×3 → ReLU → MaxPool 2×2; 16/32/64 channels) →
  GlobalAveragePool → Gemm 64→{e} → L2 normalization → `embedding [N,{e}]`. Opset {opset}.
  Every op has a CUDA kernel.
- Operating points (cosine and l2 at FAR 1 %) were measured by the same script on synthetic
  random-stroke images drawn directly at {h}×{w} (not through twin's preprocessing):
  {writers} curves × {samples} jittered samples each, genuine = same curve. They give tests a
  calibrated threshold to work with; they say nothing about real signatures.
- Subject-level operating points (`VerifySubject`: best, mean and adapted over 1, 3 and 5
  references, cosine and l2) are added afterwards by twin's own calibration, on `twin synth`
  images: `twin synth --out /tmp/devsynth --writers 30 --genuine 8 --forgeries 4 --seed 11`, then
  for METRIC in cosine and l2 `twin calibrate /tmp/devsynth --model models/signature-dev
  --references 1,3,5 --metric METRIC --calibrated-on "twin synth --writers 30 --genuine 8
  --forgeries 4 --seed 11 (synthetic; for tests only, meaningless for real signatures)"`. Just
  as meaningless; tests need them.
- Preprocessing: Otsu binarization, crop to ink with 5 % margin, identity normalization.

The model contract (every manifest field) is documented in `models/README.md`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "models" / NAME)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "model.onnx"
    model_path.write_bytes(build_model(args.seed).SerializeToString())
    model_id = hashlib.sha256(model_path.read_bytes()).hexdigest()
    calibration = calibrate(model_path)
    write_manifest(args.out, model_id, calibration)
    (args.out / "README.md").write_text(README.format(
        seed=args.seed, h=HEIGHT, w=WIDTH, e=EMBEDDING, opset=OPSET, writers=WRITERS,
        samples=SAMPLES_PER_WRITER))
    print(f"make_dev_model: wrote {args.out} (id {model_id}, UNTRAINED)")
    for p in calibration["points"]:
        print(f"  {p['metric']:>6} FAR 1 %: threshold {p['threshold']} "
              f"(measured FAR {p['measured_far']}, FRR {p['measured_frr']})")
    print("  next: add the subject-level points with twin calibrate --references (README.md)")


if __name__ == "__main__":
    main()
