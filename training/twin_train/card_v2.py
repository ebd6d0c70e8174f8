"""Writes MODEL_CARD.md of signature-v2 from what the pipeline measured (manifest,
evaluation.json, export.json, parity_rust.json, subject_evaluation.json, the run's summary and
log), so every figure on the card is one that `training/run.sh v2-all` reproduces.

    python -m twin_train.card_v2 --model models/signature-v2 --run RUN_DIR
    python -m twin_train.card_v2 subject-figures --model M --validation VAL.json --test TEST.json

`subject-figures` keeps the subject-level part of two `twin eval --references --per-collection`
reports (validation and test writers) as `M/subject_evaluation.json`: twin simulates the
enrolment, training only files the figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import manifest as mf
from . import splits
from . import train as train_mod
from .card import contract
from .evaluate import pct, table

TARGETS = {  # issue 19: (collection, kind) -> EER target on test writers
    ("bhsig", "skilled"): 0.08,
    ("bhsig", "random"): 0.04,
    ("icdar", "skilled"): 0.10,
    ("icdar", "random"): 0.03,
}

TEMPLATE = """# {name} {version} — model card

Offline signature verification: one branch of a siamese network that maps a signature image
to a {dim}-d L2-normalized embedding; two signatures are compared by cosine similarity
(native metric), a match when `score >= threshold`. Writer-independent: no writer of the test
figures below was seen in training, model selection or calibration.

{contract}

## Data and splits

| collection | script | writers | train | validation | test |
|---|---|---|---|---|---|
| BHSig260-Bengali (Pal et al., DAS 2016) | Bengali | 100 (24 genuine, 30 skilled forgeries each) | 001–050 | 051–060 | 061–100 |
| ICDAR 2011 sign_data (Dutch offline set) | Latin | 64 (12–24 genuine, 8–20 skilled forgeries) | 38 | {icdar_val} | {icdar_test} |
| `twin synth` (seed 2026) | synthetic cursive | {synth} (12 genuine, 6 skilled forgeries) | {synth_use} | — | — |

The ICDAR split is fixed in `training/twin_train/splits.py` (drawn once with
`random.Random(2011)`, written out there); pytest checks that no writer is in two splits.
Pairs, per collection and split (never across collections): positives are all genuine–genuine
pairs of a writer; skilled negatives each genuine against each skilled forgery of the same
writer; random negatives every genuine–genuine pair of two different writers. All pairs are
used, none sampled.

## Recipe

{recipe}

Training time: {wall:.0f} s wall, {cpu:.0f} s CPU ({threads} thread(s), {device}); best
validation figure (mean of the two collections' skilled EERs) {best_val} at epoch {epoch}.
Export: ONNX opset 17; ONNX Runtime vs PyTorch max |difference| {parity:.1e} on {parity_n}
images.{rust_parity}

## Figures

Thresholds are chosen on the **validation** writers' skilled forgeries of both collections
(the threshold at which the mean of the two collections' FARs meets the target, so neither
collection outweighs the other) and then measured on the **test** writers of each collection.
EER is threshold-free.

{table}

### Against the targets of issue 19

{targets}

### Against signature-v1 (same test writers of BHSig260-Bengali)

| figure | signature-v1 | {name} |
|---|---|---|
{v1_rows}

{subjects}

{joint}

## Limits

- Trained on 88 real writers of two scripts (Bengali, Latin/Dutch){synth_limit};
  other scripts, scanners, pens or image sizes are out of distribution: calibrate again
  (`twin calibrate` with your validation writers) before trusting the thresholds.
- Thresholds come from 20 validation writers (10 per collection); the test FAR measured at
  each target shows how well they transfer. The 0.1 % point rests on few validation negatives
  and is the least reliable.
- One threshold serves both collections, and their skilled forgeries score very differently:
  the point where the *mean* of the two validation FARs meets a target is stricter than the
  target on one collection and looser on the other (see the table). A deployment that sees one
  script should calibrate on its own validation writers.
- Skilled-forgery EERs of {eer_range} on test writers are one error in {one_in_range}
  comparisons at the equal-error point: use the decision to rank or to assist a human
  examiner, not as sole proof.
- Offline (static image) only; no pen dynamics.

## Reproduce

```
training/setup.sh                            # training/.venv with PyTorch (CPU wheel from PyPI)
THREADS={threads} training/run.sh v2-all     # synth + preprocess → train → export → calibrate → evaluate → subjects → card
training/run.sh v2-subjects                  # the subject-level points and figures alone (twin calibrate / eval --references)
```
`v2-train` resumes from its last checkpoint when rerun. Seeded (seed {seed}): on one machine
the same thread count ({threads}) and torch build ({torch}) give the same weights run after run;
another CPU or thread count changes float rounding and moves the figures within noise.

Through twin's Rust path (the serving preprocessing and ONNX Runtime), the test EERs above:

```
twin eval ../shared/data/bhsig260-bengali --subjects 061-100 --model models/{name}
twin eval ../shared/data/icdar2011-sign-data --subjects {icdar_test_list} --model models/{name}
```
"""


def _recipe(exp: dict) -> str:
    a, m, aug = exp["train_args"], exp["model"], exp["augment"]
    stem = ("a 3×3 conv at full resolution, then a 3×3 conv at stride 2" if m.get("stem") == "gentle"
            else "a 5×5 stride-2 conv")
    pool = (f"global average pooling concatenated with average pooling over a {m['grid'][0]}×{m['grid'][1]} grid"
            if m.get("pool") == "hybrid" else f"average pooling over a {m['grid'][0]}×{m['grid'][1]} grid")
    synth = a.get("synth_per_batch", 0)
    return (
        f"- Branch: stem of {stem}, then conv stages of widths {m['widths']} (3×3 conv + BatchNorm + ReLU, "
        f"max-pool between stages), {pool}, dropout {m['dropout']}, linear to {m['dim']}, L2 normalization.\n"
        f"- Loss: {a['loss']} triplet loss (margin {a['margin']} on squared distance) mined inside identity-balanced "
        f"batches of {a['writers_per_batch']} writers" + (f" ({a['writers_per_batch'] - synth} real, {synth} synthetic)" if synth else "")
        + f" × ({a['genuine_per_writer']} genuine + {a['forged_per_writer']} skilled forgeries), plus an explicit term "
        f"(weight {a['skilled_weight']}) over every (genuine, genuine, own forgery) triplet of a writer.\n"
        f"- Augmentation on the preprocessed tensors: affine jitter (±{aug['rotate_deg']}°, scale ±{aug['scale']}, "
        f"shear ±{aug['shear']}, shift ±{aug['translate']}), Gaussian noise (p={aug['p_noise']}, σ={aug['noise_std']}); "
        f"no stroke-width change (dilation p={aug['p_dilate']}, erosion p={aug['p_erode']}).\n"
        f"- AdamW, lr {a['lr']}, {a['warmup_epochs']} warm-up epoch, cosine decay, weight decay {a['weight_decay']}, "
        f"{a['epochs']} epochs × {a['steps_per_epoch']} steps; weights averaged over steps (EMA {a['ema']}, BatchNorm "
        f"statistics recomputed for the average on {train_mod.BN_REFRESH_IMAGES} training images); the averaged "
        f"weights of the epoch with the best validation figure ship."
    )


def _targets(report: dict) -> str:
    lines = ["| collection | negatives | test EER | target | |", "|---|---|---|---|---|"]
    for (col, kind), target in TARGETS.items():
        r = report["test"].get(col)
        if r is None:
            continue
        e = r[kind]["eer"]
        lines.append(f"| {splits.NAMES[col]} | {kind} | {pct(e)} | ≤ {pct(target)} | {'met' if e <= target else 'not met'} |")
    lines += ["", "| collection | test skilled FAR at the \"FAR 1 %\" validation threshold | target 0.5–2 % |", "|---|---|---|"]
    for col, r in report["test"].items():
        at = r["skilled"]["at"].get("FAR 1 %")
        if at:
            ok = 0.005 <= at["far"] <= 0.02
            lines.append(f"| {splits.NAMES.get(col, col)} | {pct(at['far'])} (FRR {pct(at['frr'])}) | {'met' if ok else 'not met'} |")
    return "\n".join(lines)


def _v1_rows(report: dict, v1_manifest: Path) -> str:
    if not v1_manifest.is_file():
        return "| (signature-v1 not found) | | |"
    ev = mf.read(v1_manifest).get("evaluation", {})
    b = report["test"].get("bhsig")
    if b is None:
        return "| (no BHSig test figures) | | |"
    at = b["skilled"]["at"].get("FAR 1 %", {})
    rows = [
        ("skilled EER", ev.get("eer_skilled_test"), b["skilled"]["eer"]),
        ("random EER", ev.get("eer_random_test"), b["random"]["eer"]),
        ("skilled ROC AUC", ev.get("auc_skilled_test"), b["skilled"]["auc"]),
        ("skilled FAR at \"FAR 1 %\"", ev.get("far_skilled_test_at_1pct"), at.get("far")),
        ("FRR at \"FAR 1 %\"", ev.get("frr_test_at_1pct"), at.get("frr")),
    ]
    fmt = lambda v, auc: "—" if v is None else (f"{v:.4f}" if auc else pct(v))  # noqa: E731
    return "\n".join(f"| {n} | {fmt(a, 'AUC' in n)} | {fmt(c, 'AUC' in n)} |" for n, a, c in rows)


SUBJECT_TARGETS = {"eer": 0.05, "frr_at_1pct": 0.15, "random_far_at_1pct": 0.005}  # issue 20, BHSig test, 5 refs


def subject_figures(validation: Path, test: Path, learned_validation: Path | None = None,
                    learned_test: Path | None = None) -> dict:
    """The subject-level part of `twin eval --references` reports: the native metric's on
    validation and test writers, and optionally the learned head's (under "learned")."""
    out = {}
    for split, path in (("validation", validation), ("test", test)):
        report = json.loads(Path(path).read_text())
        level = report["subject_level"]
        out[split] = level["decisions"]
        out["plan"] = {k: level[k] for k in ("draws", "random_probes", "seed")}
    if learned_validation and learned_test:
        out["learned"] = {split: json.loads(Path(path).read_text())["subject_level"]["decisions"]
                          for split, path in (("validation", learned_validation), ("test", learned_test))}
    return out


def _mean_skilled_eer(decisions: list[dict]) -> dict:
    """(aggregation, references) -> the mean of the collections' skilled EERs."""
    by = {}
    for d in decisions:
        by.setdefault((d["aggregation"], d["references"]), []).append(d["skilled"]["eer"])
    return {k: sum(v) / len(v) for k, v in by.items()}


def _joint(model: Path, subjects: dict | None) -> str:
    path = model / "joint.json"
    if not path.is_file():
        return "## Joint layers\n\nNot trained: run `training/run.sh v2-joint`."
    r = json.loads(path.read_text())
    chosen = next(c for c in r["candidates"] if c["hidden"] == r["chosen_hidden"])
    lines = [
        "## Joint layers (the learned metric)",
        "",
        "A learned similarity head over the two branches' outputs (`joint.onnx`, declared by the manifest's "
        "`[joint]`; requests choose it with `METRIC_LEARNED`): |a − b| and a ⊙ b into "
        + ("one linear layer (Koch et al.'s weighted distance, with the product beside it)" if not chosen["hidden"]
           else f"an MLP with {chosen['hidden']} hidden units")
        + " and a sigmoid, trained with binary cross-entropy on the training writers' pairs of the frozen "
        "branch's embeddings (written by twin itself), the epoch and the size "
        f"({', '.join(str(c['hidden']) for c in r['candidates'])} hidden units tried) chosen on the validation "
        "writers. It scores stored vectors, so enrolled references need no re-embedding; twin-embed's score "
        "equals PyTorch's within 1e-5 (`cargo test` on `joint.json`'s samples).",
        "",
        "| pairs | cosine skilled EER | learned skilled EER | cosine random EER | learned random EER |",
        "|---|---|---|---|---|",
    ]
    for split, name in (("val", "validation"), ("test", "test")):
        for ds in sorted(r["cosine"][split]):
            c, j = r["cosine"][split][ds], chosen[split][ds]
            lines.append(f"| {name} {ds} | {pct(c['skilled_eer'])} | {pct(j['skilled_eer'])} | "
                         f"{pct(c['random_eer'])} | {pct(j['random_eer'])} |")
    if subjects and subjects.get("learned"):
        cos = _mean_skilled_eer(subjects["validation"])
        lea = _mean_skilled_eer(subjects["learned"]["validation"])
        lines += ["", "Subject level, validation writers (mean of the two collections' skilled EERs):", "",
                  "| decision | cosine | learned |", "|---|---|---|"]
        for key in sorted(set(cos) & set(lea), key=lambda k: (k[1], k[0])):
            label = {"adapted": "adapted mean"}.get(key[0], key[0])
            lines.append(f"| {label} of {key[1]} | {pct(cos[key])} | {pct(lea[key])} |")
    lines += ["", "**Cosine stays the default metric.** The head's gain on pairs is small "
              f"({pct(chosen['val_mean_skilled_eer'])} against {pct(r['cosine']['val_mean_skilled_eer'])} "
              "mean validation skilled EER) and its random-forgery EER is higher; at subject level the best "
              "decision at every reference count on the validation writers is the writer-adapted cosine score; "
              "and cosine is what the vector store indexes for search. The learned metric has its own "
              "calibrated points (pairwise and per subject)."]
    return "\n".join(lines)


def _subjects(figures: dict | None) -> str:
    if not figures:
        return ("## Subject level (VerifySubject)\n\nNot measured: run `training/run.sh v2-subjects`.")
    def key(d):
        return (d["aggregation"], d["references"], d["collection"])
    val = {key(d): d for d in figures["validation"]}
    lines = [
        "## Subject level (VerifySubject)",
        "",
        "A probe against a writer's enrolled references, as `VerifySubject` decides it. twin simulates "
        f"the enrolment (`twin eval --references`): {figures['plan']['draws']} seeded draws of the references "
        "per writer, every other genuine signature and every skilled forgery of the writer as probes, "
        f"{figures['plan']['random_probes']} other writers' genuine signatures per draw as random probes. "
        "The operating points are calibrated the same way on the validation writers "
        "(`twin calibrate --references 1,3,5,10 --per-collection`: the mean of the two collections' "
        "FARs meets each target) and measured here on the test writers.",
        "",
        "| decision | collection | validation skilled EER | test skilled EER | test random EER "
        "| test FRR at \"FAR 1 %\" | test skilled FAR | test random FAR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in figures["test"]:
        v = val.get(key(d))
        at = next((p for p in d["operating_points"] if abs(p["target_far"] - 0.01) < 1e-9), None)
        cells = [pct(at["frr"]), pct(at["far_skilled"]), pct(at["far_random"])] if at else ["—"] * 3
        label = {"best": "best of", "mean": "mean of", "adapted": "adapted mean of"}.get(
            d["aggregation"], d["aggregation"] + " of")
        lines.append(f"| {label} {d['references']} | {d['collection']} | "
                     f"{pct(v['skilled']['eer']) if v else '—'} | {pct(d['skilled']['eer'])} | "
                     f"{pct(d['random']['eer'])} | " + " | ".join(cells) + " |")
    lines += ["", "Against the targets of issue 20 (BHSig260-Bengali test writers, 5 references):", "",
              "| decision | skilled EER (≤ 5 %) | FRR at \"FAR 1 %\" (≤ 15 %) | random FAR there (≤ 0.5 %) "
              "| skilled FAR at each \"FAR x\" (within [x/2, 2x]) |", "|---|---|---|---|---|"]
    for d in figures["test"]:
        if d["collection"] != "bhsig" or d["references"] != 5:
            continue
        at = {round(p["target_far"], 6): p for p in d["operating_points"]}
        one = at.get(0.01)
        within = ", ".join(
            f"{pct(t)}: {pct(p['far_skilled'])} {'✓' if t / 2 <= p['far_skilled'] <= 2 * t else '✗'}"
            for t, p in sorted(at.items(), reverse=True))
        verdict = lambda value, limit: f"{pct(value)} {'✓' if value <= limit else '✗'}"
        label = {"adapted": "adapted mean"}.get(d["aggregation"], d["aggregation"])
        lines.append(f"| {label} of 5 | {verdict(d['skilled']['eer'], SUBJECT_TARGETS['eer'])} | "
                     + (f"{verdict(one['frr'], SUBJECT_TARGETS['frr_at_1pct'])} | "
                        f"{verdict(one['far_random'], SUBJECT_TARGETS['random_far_at_1pct'])} | " if one else "— | — | ")
                     + f"{within} |")
    lines += [
        "",
        "The mean-of-collections thresholds are driven by ICDAR's harder forgeries, so on BHSig "
        "they run far stricter than they name (a skilled FAR near 0 % where \"FAR 1 %\" is named, "
        "and a high FRR) and on ICDAR somewhat looser. A deployment on one script gets points that "
        "keep their promise by calibrating on its own validation writers (README, *Subject-level "
        "decisions*). The writer-adapted score (`adapted`) has the lowest skilled EER of the "
        "aggregations on the validation writers (mean of the two collections) at 3, 5 and 10 references, "
        "and again on the test writers.",
    ]
    return "\n".join(lines)


def run_summary(run: Path) -> dict:
    """summary.json of a finished run; for a run stopped early (or resumed), the same figures
    from log.jsonl: wall and CPU seconds summed over its segments (each resume restarts the
    clocks), the best validation figure and the epoch it was reached."""
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    wall = cpu = 0.0
    for i, rec in enumerate(log):
        last_of_segment = i + 1 == len(log) or log[i + 1]["wall_s"] < rec["wall_s"]
        if last_of_segment:
            wall += rec["wall_s"]
            cpu += rec["cpu_s"]
    scored = [r for r in log if "val_eer_skilled" in r]
    best = min(scored, key=lambda r: r["val_eer_skilled"]) if scored else {}
    out = {"wall_s": wall, "cpu_s": cpu, "best_val_eer_skilled": best.get("val_eer_skilled", float("nan")),
           "epochs_run": len(log), "best_epoch": best.get("epoch")}
    finished = run / "summary.json"
    if finished.is_file():
        out.update(json.loads(finished.read_text()))
    return out


def main(argv=None):
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["subject-figures"]:
        p = argparse.ArgumentParser(prog="card_v2 subject-figures")
        p.add_argument("--model", required=True)
        p.add_argument("--validation", required=True)
        p.add_argument("--test", required=True)
        p.add_argument("--learned-validation")
        p.add_argument("--learned-test")
        args = p.parse_args(argv[1:])
        out = Path(args.model) / "subject_evaluation.json"
        figures = subject_figures(Path(args.validation), Path(args.test), args.learned_validation, args.learned_test)
        out.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote {out}")
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--synth-writers", type=int, default=0, help="synthetic writers of the training data (0: none)")
    args = p.parse_args(argv)
    model = Path(args.model)
    m = mf.read(model / "manifest.toml")
    report = json.loads((model / "evaluation.json").read_text())
    exp = json.loads((model / "export.json").read_text())
    summary = run_summary(Path(args.run))
    a = exp["train_args"]
    rust = model / "parity_rust.json"
    rust_parity = ""
    if rust.is_file():
        r = json.loads(rust.read_text())
        rust_parity = (f" twin-embed (Rust preprocessing + ONNX Runtime) vs ONNX Runtime Python on the training cache: "
                       f"tensors identical (max |difference| {r['tensor_max_abs']:.1e}), embeddings max |difference| "
                       f"{r['max_abs']:.1e} on {r['images']} images.")
    subject_file = model / "subject_evaluation.json"
    subjects = json.loads(subject_file.read_text()) if subject_file.is_file() else None
    text = TEMPLATE.format(
        subjects=_subjects(subjects), joint=_joint(model, subjects),
        name=m["name"], version=m["version"], contract=contract(m), dim=m["output"]["embedding_size"], recipe=_recipe(exp),
        icdar_val=len(splits.ICDAR_VAL), icdar_test=len(splits.ICDAR_TEST), icdar_test_list=",".join(splits.ICDAR_TEST),
        synth=args.synth_writers,
        synth_use=("all" if "synth" in a["train_writers"] else
                   "not in the shipped model's training (an experiment: `training/EXPERIMENTS.md`)"),
        synth_limit=(" plus synthetic writers" if "synth" in a["train_writers"] else ""),
        wall=summary["wall_s"], cpu=summary["cpu_s"], threads=exp["threads"], device=exp.get("device", a["device"]),
        best_val=pct(summary["best_val_eer_skilled"]), epoch=exp["checkpoint_epoch"],
        parity=exp["parity_max_abs"], parity_n=exp["parity_images"], rust_parity=rust_parity,
        table=table(report), targets=_targets(report),
        v1_rows=_v1_rows(report, model.parent / "signature-v1" / "manifest.toml"),
        seed=a["seed"], torch=exp["torch"],
        eer_range=" – ".join(sorted({pct(r["skilled"]["eer"]) for r in report["test"].values()})),
        one_in_range=" – ".join(str(max(1, round(1 / max(r["skilled"]["eer"], 1e-9))))
                                for r in sorted(report["test"].values(), key=lambda r: -r["skilled"]["eer"])),
    )
    (model / "MODEL_CARD.md").write_text(text)
    print(f"wrote {model / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
