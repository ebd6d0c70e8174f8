"""Writes MODEL_CARD.md of a model directory from what the pipeline measured (manifest,
evaluation.json, export.json, the run's summary), so the card's figures are the ones the
documented command reproduces.

    python -m twin_train.card --model models/signature-v1 --run RUN_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import manifest as mf
from . import train as train_mod
from .evaluate import pct, table

# The files, input and output of a signature model directory: the same on every signature card.
CONTRACT = """- **Files**: `model.onnx` (id `{id}`), `manifest.toml` (the contract, see `models/README.md`).
- **Input**: `{input_name}` float32 `[N, {c}, {h}, {w}]`, dynamic batch axis. Preprocessing is
  twin's own (`twin_core::preprocess`): Otsu binarization (ink = 1), crop to the ink box with
  margin {margin}, aspect-preserving resize and centred padding to {h}×{w}, `(x - {mean}) / {std}`.
  Training read the same tensors, written by `twin preprocess`.
- **Output**: `{output_name}` float32 `[N, {dim}]`, L2-normalized inside the graph."""


def contract(m: dict) -> str:
    return CONTRACT.format(
        id=m["id"], input_name=m["input"]["name"], c=m["input"]["channels"], h=m["input"]["height"],
        w=m["input"]["width"], margin=f'{m["preprocess"]["margin"]:.4g}', mean=f'{m["preprocess"]["mean"]:g}',
        std=f'{m["preprocess"]["std"]:g}', output_name=m["output"]["name"], dim=m["output"]["embedding_size"])


TEMPLATE = """# {name} {version} — model card

Offline signature verification: one branch of a siamese network that maps a signature image
to a 128-d L2-normalized embedding; two signatures are compared by cosine similarity
(native metric), a match when `score >= threshold`.

{contract}

## Data

BHSig260-Bengali (Pal et al., DAS 2016): 100 writers, 24 genuine signatures and 30 skilled
forgeries each. Writer-independent protocol: writers 001–050 train, 051–060 validation
(model selection and threshold calibration), 061–100 test, never seen before evaluation.
Positives: all genuine–genuine pairs of a writer (276 per writer). Skilled negatives: each
genuine against each skilled forgery of the same writer (720 per writer). Random negatives:
every genuine–genuine pair of two different writers of the split. All pairs are used, none
sampled.

## Recipe

{recipe}

Training time: {wall:.0f} s wall, {cpu:.0f} s CPU ({threads} thread(s), {device}); best
validation skilled EER {best_val} at epoch {epoch}. Export: ONNX opset 17; ONNX Runtime vs
PyTorch max |difference| {parity:.1e} on {parity_n} real images.{rust_parity}

## Figures

Thresholds are chosen on the **validation** writers' skilled forgeries for each target FAR
and then measured on the **test** writers (stricter than the published protocol, whose
threshold is tuned on the test set itself). EER is threshold-free.

{table}

Reference: SigNet (Dey et al. 2017), writer-independent on BHSig260-Bengali, FAR = FRR =
13.89 % with a test-tuned threshold.

Targets of issue 6: test skilled EER ≤ 10 % — {eer_target}; test FAR at the 1 % validation
threshold within 0.5–1.5 % — {far_target}.

How the recipe was chosen (input size, loss, augmentation), with the figures of the runs
that were compared on the validation writers: `training/EXPERIMENTS.md`.

## Limits

- Trained on 50 writers of one script (Bengali) scanned in one setting; other scripts,
  scanners, pens or image sizes are out of distribution: calibrate again (`twin calibrate`
  or `training/run.sh calibrate` with your validation data) before trusting the thresholds.
- Skilled-forgery EER around {eer_test} means roughly one error in {one_in} at the
  equal-error point: use it to rank or to assist a human examiner, not as sole proof.
- Thresholds come from {n_val_writers} validation writers; the measured test FAR at a target
  shows how well they transfer. The 0.1 % point rests on few validation negatives and is the
  least reliable.
- Offline (static image) only; no pen dynamics.

## Reproduce

```
training/setup.sh          # training/.venv with PyTorch (CPU wheel from PyPI)
THREADS={threads} training/run.sh all   # preprocess → train → export → calibrate → evaluate → card
```
Seeded (seed {seed}): on one machine the same thread count ({threads}) and torch build ({torch})
give the same weights run after run. Another CPU (other vector kernels) or thread count changes
float rounding, the runs part ways after a few epochs, and the figures move within noise
(`training/EXPERIMENTS.md`, "Reproduction", compares a rerun on another machine with the shipped
model). The 10 validation writers make the validation EER swing by a few points from epoch to
epoch, and the test FAR measured at the thresholds they calibrate with it.
"""


def _far_target(report: dict) -> str:
    at = report["test"]["skilled"]["at"].get("FAR 1 %")
    if at is None:
        return "no FAR 1 % operating point"
    ok = 0.005 <= at["far"] <= 0.015
    return f"{'met' if ok else 'not met'} ({pct(at['far'])})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--run", required=True)
    args = p.parse_args(argv)
    model = Path(args.model)
    m = mf.read(model / "manifest.toml")
    report = json.loads((model / "evaluation.json").read_text())
    if "skilled" in report["test"]:  # written before evaluation.json held one entry per collection
        report = {**report, "val": {"": report["val"]}, "test": {"": report["test"]}}
    single = {**report, "val": report["val"][""], "test": report["test"][""]}
    exp = json.loads((model / "export.json").read_text())
    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    a = exp["train_args"]
    rust = model / "parity_rust.json"
    rust_parity = ""
    if rust.is_file():
        r = json.loads(rust.read_text())
        rust_parity = f" twin-embed (Rust) vs ONNX Runtime Python: max |difference| {r['max_abs']:.1e} on {r['images']} images."
    recipe = (
        f"- Branch: 5×5 stride-2 stem, then conv stages of widths {exp['model']['widths']} "
        f"(3×3 conv + BatchNorm + ReLU, max-pool between stages), average-pooled to a "
        f"{exp['model']['grid'][0]}×{exp['model']['grid'][1]} grid, dropout {exp['model']['dropout']}, "
        f"linear to {exp['model']['dim']}, L2 normalization.\n"
        f"- Loss: {a['loss']} triplet loss (margin {a['margin']} on squared distance), mined online inside "
        f"identity-balanced batches of {a['writers_per_batch']} writers × ({a['genuine_per_writer']} genuine + "
        f"{a['forged_per_writer']} skilled forgeries); forgeries are negatives only (never anchors), so the hardest "
        f"negatives of a writer are its own forgeries.\n"
        f"- Augmentation on the preprocessed tensors: affine jitter (±{exp['augment']['rotate_deg']}°, "
        f"scale ±{exp['augment']['scale']}, shear ±{exp['augment']['shear']}, shift ±{exp['augment']['translate']}), "
        f"stroke width (dilation p={exp['augment']['p_dilate']}, erosion p={exp['augment']['p_erode']}), "
        f"Gaussian noise (p={exp['augment']['p_noise']}, σ={exp['augment']['noise_std']}).\n"
        f"- AdamW, lr {a['lr']} with {a['warmup_epochs']} warm-up epoch and cosine decay, weight decay "
        f"{a['weight_decay']}, {a['epochs']} epochs of "
        + (f"{a['steps_per_epoch']} steps" if a.get("steps_per_epoch") else "one pass over the training genuine images")
        + (f"; weights averaged over steps (EMA, decay {a['ema']} per step; BatchNorm statistics recomputed for "
           f"the averaged weights on {train_mod.BN_REFRESH_IMAGES} training images), and the averaged weights are "
           f"what is validated and shipped" if a.get("ema") else "")
        + "; the checkpoint with the lowest validation skilled EER ships."
    )
    eer_test = single["test"]["skilled"]["eer"]
    text = TEMPLATE.format(
        name=m["name"], version=m["version"], contract=contract(m), recipe=recipe,
        wall=summary["wall_s"], cpu=summary["cpu_s"], threads=exp["threads"], device=exp.get("device", a["device"]),
        best_val=pct(summary["best_val_eer_skilled"]), epoch=exp["checkpoint_epoch"],
        parity=exp["parity_max_abs"], parity_n=exp["parity_images"], rust_parity=rust_parity,
        table=table(report), eer_test=pct(eer_test), one_in=max(1, round(1 / max(eer_test, 1e-9))),
        n_val_writers=len(range(*[int(v) + i for i, v in enumerate(report["splits"]["val"].split("-"))])),
        seed=a["seed"], torch=exp["torch"],
        eer_target=("met" if eer_test <= 0.10 else f"not met ({pct(eer_test)})"),
        far_target=_far_target(single),
    )
    (model / "MODEL_CARD.md").write_text(text)
    print(f"wrote {model / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
