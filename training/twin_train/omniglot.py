"""Omniglot: alphabet splits, rotated classes, N-way one-shot episodes, and Lake's 20-way
one-shot benchmark (`all_runs.zip`) on a shipped model directory.

Training uses `images_background` only; validation holds out whole background alphabets and
scores N-way one-shot episodes built like Lake's runs (20 characters of one alphabet, a
support image by one drawer, a query by another). `images_evaluation` is touched only by the
final benchmark, through Lake's runs:

    python -m twin_train.omniglot oneshot --model models/omniglot-v1 --runs all_runs.zip \\
        --extract-to DIR --twin target/release/twin [--val-cache CACHE --val-alphabets 5]

embeds each run's 40 images through `twin preprocess --model MODEL --embed` (twin's own
preprocessing and twin-embed, the serving path), checks them against ONNX Runtime in Python,
classifies each test image as its nearest training image under cosine (the native metric), and
writes MODEL/oneshot.json and the manifest's [evaluation] figures. With --val-cache it also
calibrates the manifest's verification operating points on the validation alphabets
(same character = genuine pair, different characters = impostor pair).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .readers import GENUINE, Sample, extract_omniglot_runs, write_list

ROTATIONS = (0, 90, 180, 270)


def alphabet(subject: str) -> str:
    """`Alphabet/characterNN` (optionally with a `@rot` suffix) → `Alphabet`."""
    return subject.split("/", 1)[0]


def drawer(path: str) -> str:
    """Omniglot file names are `<image id>_<drawer>.png`: the drawer is the suffix."""
    return Path(path).stem.rsplit("_", 1)[-1]


def val_alphabets(samples: list[Sample], spec: str) -> list[str]:
    """`spec` is a comma-separated list of alphabet names, or a number N: N alphabets spread
    evenly over the sorted background alphabets (deterministic, no RNG)."""
    names = sorted({alphabet(s.subject) for s in samples})
    if not spec:
        return []
    if spec.isdigit():
        n = int(spec)
        if not 0 < n < len(names):
            raise ValueError(f"--val-alphabets {n}: need 0 < N < {len(names)} alphabets")
        return [names[int((i + 0.5) * len(names) / n)] for i in range(n)]
    chosen = [a.strip() for a in spec.split(",") if a.strip()]
    missing = sorted(set(chosen) - set(names))
    if missing:
        raise ValueError(f"unknown alphabets {missing}; the cache holds {names}")
    return chosen


def split(samples: list[Sample], val: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sample indices: whole alphabets apart."""
    v = set(val)
    is_val = np.array([alphabet(s.subject) in v for s in samples])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def with_rotations(x: np.ndarray, samples: list[Sample], idx: np.ndarray, rotations=ROTATIONS):
    """Rotated copies of `x[idx]` as new classes (Santoro/Vinyals augmentation): returns
    (x_all, subjects) where x_all = [x, rot(x[idx]) for each extra rotation] and subjects[j]
    names the class of x_all[j] (`Alphabet/characterNN@90` for a rotated copy; rows of x
    outside idx keep their subject but are not meant for training)."""
    if x.shape[2] != x.shape[3] and any(r % 180 for r in rotations):
        raise ValueError(f"90° rotations need square inputs, got {x.shape[2]}×{x.shape[3]}")
    parts, subjects = [x], [s.subject for s in samples]
    for r in rotations:
        if r % 360 == 0:
            continue
        parts.append(np.ascontiguousarray(np.rot90(x[idx], k=r // 90, axes=(2, 3))))
        subjects += [f"{samples[i].subject}@{r}" for i in idx]
    return np.concatenate(parts), subjects


def episodes(samples: list[Sample], idx: np.ndarray, n_way: int, n_episodes: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lake-style N-way one-shot episodes over `samples[idx]`: an alphabet with ≥ N characters,
    N of its characters, two different drawers; support = the first drawer's image of each
    character, query = the second's. Returns (support, query) index arrays, query[i] matching
    support[i]. Seeded, so every epoch and run scores the same episodes."""
    rng = np.random.default_rng(seed)
    by_alpha: dict[str, dict[str, dict[str, int]]] = {}
    for i in idx:
        s = samples[int(i)]
        by_alpha.setdefault(alphabet(s.subject), {}).setdefault(s.subject, {})[drawer(s.path)] = int(i)
    usable = sorted(a for a, chars in by_alpha.items() if len(chars) >= n_way)
    if not usable:
        raise ValueError(f"no alphabet has {n_way} characters for {n_way}-way episodes")
    out = []
    for _ in range(n_episodes):
        chars = by_alpha[usable[rng.integers(len(usable))]]
        names = sorted(chars)
        pick = [names[j] for j in rng.choice(len(names), n_way, replace=False)]
        common = sorted(set.intersection(*(set(chars[c]) for c in pick)))
        d1, d2 = rng.choice(common, 2, replace=False)
        out.append((np.array([chars[c][d1] for c in pick]), np.array([chars[c][d2] for c in pick])))
    return out


def oneshot_accuracy(emb: np.ndarray, eps: list[tuple[np.ndarray, np.ndarray]], positions: dict[int, int] | None = None) -> float:
    """Share of queries whose most cosine-similar support image is their own class. `emb` rows
    are indexed by sample index, or through `positions` (sample index → row)."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    rows = (lambda a: a) if positions is None else (lambda a: np.array([positions[int(i)] for i in a]))
    hits = total = 0
    for support, query in eps:
        sim = e[rows(query)] @ e[rows(support)].T
        hits += int((sim.argmax(1) == np.arange(len(query))).sum())
        total += len(query)
    return hits / total


def verification_scores(emb: np.ndarray, subjects: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every pair: (same subject, different subjects)."""
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    lab = np.array(subjects)
    iu = np.triu_indices(len(e), 1)
    same = lab[iu[0]] == lab[iu[1]]
    s = sim[iu]
    return s[same], s[~same]


# ---- Lake's 20 runs through the serving path ------------------------------------------------

def embed_runs_rust(model: Path, runs, twin: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(tensors, embeddings, paths) of every run image, through `twin preprocess --model
    --embed` (twin_core preprocessing + twin-embed)."""
    paths = []
    for r in runs:
        paths += r.train + r.test
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "runs.tsv"
        write_list([Sample(p, "run", GENUINE) for p in paths], lst)
        prefix = Path(tmp) / "runs"
        subprocess.run([twin, "preprocess", "--list", str(lst), "--model", str(model), "--embed", "--out", str(prefix)],
                       check=True, stdout=subprocess.PIPE, env={"RUST_LOG": "warn", **os.environ})
        return np.load(str(prefix) + ".npy"), np.load(str(prefix) + ".embeddings.npy"), paths


def score_runs(runs, emb: np.ndarray, paths: list[str]) -> list[dict]:
    row = {p: i for i, p in enumerate(paths)}
    e = np.asarray(emb, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    out = []
    for r in runs:
        sim = e[[row[p] for p in r.test]] @ e[[row[p] for p in r.train]].T
        pred = sim.argmax(1)
        correct = int((pred == np.array(r.answer)).sum())
        out.append({"run": r.name, "correct": correct, "trials": len(r.test), "accuracy": correct / len(r.test)})
    return out


def calibrate_points(emb: np.ndarray, subjects: list[str], description: str, targets=(0.1, 0.01, 0.001)) -> tuple[list[dict], dict]:
    from . import manifest as mf
    from .metrics import far_frr, figures, threshold_for_far

    pos, neg = verification_scores(emb, subjects)
    points = []
    for target in targets:
        t = round(threshold_for_far(neg, target), 7)
        far, frr = far_frr(pos, neg, t)
        points.append({"name": mf.far_name(target), "metric": "cosine", "target_far": target, "threshold": t,
                       "measured_far": far, "measured_frr": frr, "calibrated_on": description})
    f = figures(pos, neg)
    return points, {"eer": f.eer, "auc": f.auc, "positive_pairs": int(len(pos)), "negative_pairs": int(len(neg))}


CARD = """# {name} {version} — model card

Handwritten-character similarity: one branch of a siamese network that maps an Omniglot-style
character image to a 128-d L2-normalized embedding; two images are compared by cosine
similarity (native metric), a match when `score >= threshold`. Shipped to show that twin serves
any model that follows the contract (`models/README.md`), not only signatures.

- **Files**: `model.onnx` (id `{id}`), `manifest.toml`, `oneshot.json` (per-run figures),
  `export.json` (training arguments, parity).
- **Input**: `{input_name}` float32 `[N, {c}, {h}, {w}]`, dynamic batch axis. Preprocessing is
  twin's own (`twin_core::preprocess`): Otsu binarization (ink = 1), crop to the ink box with
  margin {margin}, aspect-preserving resize and centred padding to {h}×{w}, `(x - {mean}) / {std}`.
  Training read the same tensors, written by `twin preprocess`.
- **Output**: `{output_name}` float32 `[N, {dim}]`, L2-normalized inside the graph.

## Data

Omniglot (Lake et al., Science 2015): 1623 characters of 50 alphabets, 20 drawers each.
Training and model selection use **`images_background` only** (30 alphabets, 964 characters):
{n_val} alphabets are held out for validation ({val_alphabets}), the other {n_train} train.
`images_evaluation` (20 other alphabets) is seen only by the benchmark: Lake's 20-way one-shot
runs (`all_runs.zip`; 20 runs × 20 trials, each test image is matched against 20 training
images by another drawer, characters of one alphabet).

## Recipe

- Branch: 4 × [3×3 conv, {width} channels, BatchNorm, ReLU, 2×2 max-pool] (the few-shot
  "Conv-4"), linear to {dim}, L2 normalization; {params} parameters.
- Loss: {loss_text}
- Classes: every training character and its 90°, 180° and 270° rotations as new classes
  ({classes} classes).
- Augmentation on the preprocessed tensors: affine jitter (±{rot}°, scale ±{sc}, shear ±{sh},
  shift ±{tr}).
- AdamW, lr {lr}, weight decay {wd}, {warm} warm-up epoch(s) then cosine decay; {epochs} epochs
  of {steps} steps; the checkpoint with the best validation 20-way one-shot accuracy
  ({train_episodes} seeded episodes of the held-out alphabets) ships (epoch {epoch}).

Training time: {wall:.0f} s wall, {cpu:.0f} s CPU ({threads} thread(s), {device}, 2 shared cores).
Export: ONNX opset 17; ONNX Runtime vs PyTorch max |difference| {parity:.1e} on {parity_n} images.

## Figures

| figure | value |
|---|---|
| **20-way one-shot, Lake's 20 runs (400 trials)** | **{acc} ({correct}/{trials})** |
| per run: min / max / std | {rmin} / {rmax} / {rstd} points |
| validation alphabets, 20-way one-shot ({val_episodes} episodes) | {val_acc} |
| validation alphabets, verification EER (same vs different character) | {val_eer} |
| twin-embed (Rust) vs ONNX Runtime Python on the runs' images | max \\|diff\\| {rust_parity:.1e} |

Each trial embeds the run's 40 images through twin's serving path (`twin preprocess --model
--embed`: twin_core preprocessing + twin-embed) and picks the training image with the highest
cosine score. Target of the issue: ≥ 93 % — {target}. Reference: Koch et al. 2015 (siamese
CNN, same protocol) 92.0 %.

Per run: {per_run}.

Operating points (verification: same character or not) are calibrated on the validation
alphabets' pairs:

| operating point | threshold (cosine) | validation FAR | validation FRR |
|---|---|---|---|
{points}

## Limits

- Trained on {n_train} alphabets of Omniglot: clean, centred single characters drawn online and
  rendered in black on white. Scanned handwriting, several characters per image, heavy noise
  or other scripts' conventions are out of distribution.
- Rotations of a character were *different classes* in training: the embedding is not
  rotation-invariant, by design (a rotated glyph is often another character).
- Cropping to the ink box removes position and size: a character that differs from another
  only by its size or position (e.g. a dot vs a circle at low resolution) is confusable.
- The operating points come from validation alphabets of the same dataset; calibrate again
  (`twin calibrate`) on your own data before trusting a FAR.

## Reproduce

```
training/setup.sh                                     # training/.venv with PyTorch (CPU)
TWIN_BIN=target/release/twin THREADS={threads} training/run.sh omniglot-all
```
Seeded (seed {seed}); the same thread count ({threads}) and torch build ({torch}) give the same
weights. How the recipe was chosen: `training/EXPERIMENTS.md` (Omniglot section).
"""


def write_card(model: Path, run: Path) -> None:
    from . import manifest as mf

    m = mf.read(model / "manifest.toml")
    r = json.loads((model / "oneshot.json").read_text())
    exp = json.loads((model / "export.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    a, aug = exp["train_args"], exp["augment"]
    v = r.get("val", {})
    pct = lambda x: f"{100 * x:.2f} %"  # noqa: E731
    width = exp["model"]["widths"][0]
    dim = exp["model"]["dim"]
    side = exp["model"].get("side", 28) // 16
    channels = exp["model"].get("channels", 1)
    params = 9 * channels * width + 9 * width * width * 3 + 2 * 4 * width + width * side * side * dim + dim  # conv, BN, fc
    points = "\n".join(f"| {p['name']} | {p['threshold']:.4f} | {pct(p['measured_far'])} | {pct(p['measured_frr'])} |"
                       for p in m.get("operating_points", []))
    if a["loss"] == "proto":
        loss_text = (f"prototypical (Snell et al. 2017) with a cosine classifier: in each batch of {a['writers_per_batch']} "
                     f"classes × {a['genuine_per_writer']} images, every image is classified among the class means (its own "
                     f"class's mean leaving it out), logits = {a['scale']} · cosine, cross-entropy.")
    else:
        loss_text = (f"{a['loss']} triplet loss (margin {a['margin']} on squared distance between the unit embeddings), "
                     f"mined online inside batches of {a['writers_per_batch']} classes × {a['genuine_per_writer']} images.")
    per_run = ", ".join(f"{x['run']} {x['correct']}/{x['trials']}" for x in r["runs"])
    text = CARD.format(
        name=m["name"], version=m["version"], id=m["id"], input_name=m["input"]["name"], c=m["input"]["channels"],
        h=m["input"]["height"], w=m["input"]["width"], margin=f"{m['preprocess']['margin']:.3g}",
        mean=f"{m['preprocess']['mean']:g}", std=f"{m['preprocess']['std']:g}", output_name=m["output"]["name"], dim=dim,
        n_val=len(v.get("alphabets", [])), n_train=30 - len(v.get("alphabets", [])),
        val_alphabets=", ".join(v.get("alphabets", [])), width=width, params=f"{params:,}",
        loss_text=loss_text, train_episodes=a["val_episodes"],
        classes=summary.get("train_classes", "?"),
        rot=aug["rotate_deg"], sc=aug["scale"], sh=aug["shear"], tr=aug["translate"],
        lr=a["lr"], wd=a["weight_decay"], warm=a["warmup_epochs"], epochs=a["epochs"], steps=a["steps_per_epoch"],
        val_episodes=v.get("episodes", "—"), epoch=exp["checkpoint_epoch"], wall=summary["wall_s"], cpu=summary["cpu_s"],
        threads=exp["threads"], device=exp["device"], parity=exp["parity_max_abs"], parity_n=exp["parity_images"],
        acc=pct(r["accuracy"]), correct=r["correct"], trials=r["trials"], rmin=pct(r["run_accuracy_min"]),
        rmax=pct(r["run_accuracy_max"]), rstd=f"{100 * r['run_accuracy_std']:.1f}",
        val_acc=pct(v["oneshot_20way"]) if v else "—", val_eer=pct(v["verification"]["eer"]) if v else "—",
        rust_parity=r["rust_vs_onnxruntime_python_max_abs"],
        target=("met" if r["accuracy"] >= 0.93 else "**not met**"), per_run=per_run, points=points or "| — | | | |",
        seed=a["seed"], torch=exp["torch"],
    )
    (model / "MODEL_CARD.md").write_text(text)
    print(f"wrote {model / 'MODEL_CARD.md'}")


def main(argv=None):
    from . import cache as cache_mod
    from . import manifest as mf
    from .embed import onnx_embed, onnx_session
    from .evaluate import check_cache_matches

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    o = sub.add_parser("oneshot", help="Lake's 20-way one-shot runs on a model directory")
    o.add_argument("--model", required=True)
    o.add_argument("--runs", required=True, help="all_runs.zip")
    o.add_argument("--extract-to", required=True, help="folder to extract the runs into (outside the repo)")
    o.add_argument("--twin", required=True, help="the twin binary")
    o.add_argument("--val-cache", help="background cache: calibrate operating points on its validation alphabets")
    o.add_argument("--val-alphabets", default="5")
    o.add_argument("--val-episodes", type=int, default=400)
    o.add_argument("--seed", type=int, default=7)
    cd = sub.add_parser("card", help="MODEL_CARD.md of an Omniglot model from the measured figures")
    cd.add_argument("--model", required=True)
    cd.add_argument("--run", required=True)
    args = p.parse_args(argv)
    if args.action == "card":
        write_card(Path(args.model), Path(args.run))
        return

    model = Path(args.model)
    m = mf.read(model / "manifest.toml")
    if m["id"] != mf.sha256_file(model / "model.onnx"):
        raise SystemExit(f"{model}/manifest.toml id is not the sha256 of model.onnx; re-export the model")
    runs = extract_omniglot_runs(args.runs, args.extract_to)
    x, e_rust, paths = embed_runs_rust(model, runs, args.twin)
    e_py = onnx_embed(onnx_session(str(model / "model.onnx")), x)
    parity = float(np.abs(e_rust - e_py).max())
    per_run = score_runs(runs, e_rust, paths)
    correct = sum(r["correct"] for r in per_run)
    trials = sum(r["trials"] for r in per_run)
    accs = np.array([r["accuracy"] for r in per_run])
    report = {
        "benchmark": "Lake et al. 20-way one-shot classification, all_runs.zip (images_evaluation), 20 runs",
        "metric": "cosine nearest neighbour over the run's 20 training images",
        "accuracy": correct / trials, "correct": correct, "trials": trials,
        "run_accuracy_min": float(accs.min()), "run_accuracy_max": float(accs.max()), "run_accuracy_std": float(accs.std()),
        "runs": per_run, "rust_vs_onnxruntime_python_max_abs": parity,
    }
    ev = dict(m.get("evaluation", {}))
    ev["oneshot_20way_lake"] = round(report["accuracy"], 5)
    ev["oneshot_20way_lake_run_min"] = round(report["run_accuracy_min"], 5)
    ev["oneshot_20way_lake_run_max"] = round(report["run_accuracy_max"], 5)
    if args.val_cache:
        c = cache_mod.load(args.val_cache, mmap=True)
        check_cache_matches(m, c)
        val = val_alphabets(c.samples, args.val_alphabets)
        _, vidx = split(c.samples, val)
        ev_val = onnx_embed(onnx_session(str(model / "model.onnx")), np.ascontiguousarray(c.x[vidx], dtype=np.float32))
        vs = [c.samples[i] for i in vidx]
        eps = episodes(vs, np.arange(len(vs)), 20, args.val_episodes, args.seed)
        report["val"] = {"alphabets": val, "images": int(len(vidx)),
                         "oneshot_20way": oneshot_accuracy(ev_val, eps), "episodes": args.val_episodes}
        desc = f"Omniglot background alphabets held out from training ({', '.join(val)}): same character vs different characters"
        m["operating_points"], report["val"]["verification"] = calibrate_points(ev_val, [s.subject for s in vs], desc)
        ev["oneshot_20way_val"] = round(report["val"]["oneshot_20way"], 5)
        ev["eer_val"] = round(report["val"]["verification"]["eer"], 5)
        ev["auc_val"] = round(report["val"]["verification"]["auc"], 5)
    m["evaluation"] = ev
    mf.write(model / "manifest.toml", m)
    (model / "oneshot.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"20-way one-shot (Lake, 20 runs): {100 * report['accuracy']:.2f} % ({correct}/{trials}); "
          f"per run min {100 * accs.min():.0f} %, max {100 * accs.max():.0f} %, std {100 * accs.std():.1f} points; "
          f"twin-embed vs onnxruntime max |diff| {parity:.1e}")
    if "val" in report:
        v = report["val"]
        print(f"validation alphabets: 20-way one-shot {100 * v['oneshot_20way']:.2f} % ({args.val_episodes} episodes), "
              f"verification EER {100 * v['verification']['eer']:.2f} %")
        for pt in m["operating_points"]:
            print(f"  {pt['name']}: threshold {pt['threshold']:.4f} (FAR {100 * pt['measured_far']:.2f} %, FRR {100 * pt['measured_frr']:.2f} %)")


if __name__ == "__main__":
    main()
