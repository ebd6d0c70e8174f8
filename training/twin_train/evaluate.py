"""Calibration and evaluation of a shipped model directory, on twin's preprocessed tensors,
through ONNX Runtime (the graph that ships, not the training checkpoint).

    python -m twin_train.evaluate calibrate --model models/signature-v1 --cache CACHE
        thresholds for target FARs (10 %, 1 %, 0.1 %) chosen on VALIDATION writers' skilled
        forgeries, written to the manifest's operating points
    python -m twin_train.evaluate evaluate --model models/signature-v1 --cache CACHE
        EER and ROC AUC on TEST writers (skilled and random forgeries apart), FAR/FRR at the
        manifest's calibrated thresholds; figures written to the manifest's [evaluation] and
        to MODEL/evaluation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import cache as cache_mod
from . import manifest as mf
from .embed import onnx_embed, onnx_session
from . import splits
from .metrics import far_frr, figures, threshold_for_mean_far
from .pairs import build_pairs, cosine_scores

TARGET_FARS = (0.1, 0.01, 0.001)


def pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def group_scores(model_dir: Path, c, writers: str, threads: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Scores per collection (`bhsig`, `icdar`; "" on a single-collection cache). Pairs never
    cross collections: a random negative is another writer of the same collection."""
    groups = splits.by_dataset(c.samples, writers)
    if not groups:
        raise SystemExit(f"no images of writers {writers} in the cache")
    sess = onnx_session(str(model_dir / mf_onnx()), threads)
    out = {}
    for name, idx in groups.items():
        emb = onnx_embed(sess, np.ascontiguousarray(c.x[idx], dtype=np.float32))
        pairs = build_pairs([c.samples[i] for i in idx])
        out[name] = {
            "positive": cosine_scores(emb, pairs.positive),
            "skilled": cosine_scores(emb, pairs.skilled),
            "random": cosine_scores(emb, pairs.random),
        }
    return out


def mf_onnx() -> str:
    return "model.onnx"


def check_cache_matches(m: dict, c) -> None:
    for key in ("channels", "height", "width"):
        if int(m["input"][key]) != int(c.input[key]):
            raise SystemExit(f"cache input {c.input} does not match the manifest's {m['input']}")
    for key in ("binarize", "crop_to_ink", "margin", "mean", "std"):
        if key in c.preprocess and m["preprocess"].get(key) != c.preprocess[key]:
            if not (isinstance(c.preprocess[key], float) and abs(m["preprocess"][key] - c.preprocess[key]) < 1e-6):
                raise SystemExit(f"cache preprocess {c.preprocess} differs from the manifest's {m['preprocess']}")


def calibrate(model_dir: Path, c, writers: str, description: str) -> list[dict]:
    """Thresholds on validation skilled forgeries; with several collections, the threshold at
    which the mean of their FARs meets the target (each collection weighs the same)."""
    groups = group_scores(model_dir, c, writers)
    pos = np.concatenate([g["positive"] for g in groups.values()])
    points = []
    for target in TARGET_FARS:
        # stored with 7 decimals; measured at the stored value so the manifest is self-consistent
        t = round(threshold_for_mean_far([g["skilled"] for g in groups.values()], target), 7)
        far = float(np.mean([far_frr(g["positive"], g["skilled"], t)[0] for g in groups.values()]))
        frr = float(np.mean(pos < t))
        points.append({
            "name": mf.far_name(target),
            "metric": "cosine",
            "target_far": target,
            "threshold": t,
            "measured_far": far,
            "measured_frr": frr,
            "calibrated_on": description,
        })
    return points


def figures_of(s: dict[str, np.ndarray], m: dict) -> dict:
    out: dict = {"pairs": {k: int(len(v)) for k, v in s.items()}}
    for kind in ("skilled", "random"):
        f = figures(s["positive"], s[kind])
        out[kind] = {"eer": f.eer, "eer_threshold": f.eer_threshold, "auc": f.auc, "at": {}}
        for p in m.get("operating_points", []):
            if p["metric"] != "cosine":
                continue
            far, frr = far_frr(s["positive"], s[kind], p["threshold"])
            out[kind]["at"][p["name"]] = {"target_far": p["target_far"], "threshold": p["threshold"], "far": far, "frr": frr}
    return out


def evaluate(model_dir: Path, m: dict, c, val: str, test: str, names: dict[str, str] | None = None) -> dict:
    """Figures per split and collection: report["val"|"test"][collection] (collection "" on a
    single-collection cache)."""
    report: dict = {"splits": {"val": val, "test": test}, "collections": names or {}}
    for split, writers in (("val", val), ("test", test)):
        report[split] = {name: figures_of(s, m) for name, s in group_scores(model_dir, c, writers).items()}
    return report


def flat_figures(report: dict) -> dict[str, float]:
    """The manifest's [evaluation] keys, e.g. eer_skilled_test, far_skilled_test_at_1pct; with
    several collections suffixed by the collection, e.g. eer_skilled_test_icdar."""
    out = {}
    for split in ("val", "test"):
        for name, r_all in report[split].items():
            suffix = f"_{name}" if name else ""
            for kind in ("skilled", "random"):
                r = r_all[kind]
                out[f"eer_{kind}_{split}{suffix}"] = round(r["eer"], 5)
                out[f"auc_{kind}_{split}{suffix}"] = round(r["auc"], 5)
                if split == "test":
                    for at in r["at"].values():
                        tag = f"{100 * at['target_far']:g}".replace(".", "_") + "pct"
                        out[f"far_{kind}_test{suffix}_at_{tag}"] = round(at["far"], 5)
                        if kind == "skilled":
                            out[f"frr_test{suffix}_at_{tag}"] = round(at["frr"], 5)
    return out


def table(report: dict) -> str:
    names = report.get("collections", {})
    lines = ["| split | collection | negatives | pairs (pos/neg) | EER | ROC AUC |", "|---|---|---|---|---|---|"]
    for split in ("val", "test"):
        for name, r_all in report[split].items():
            for kind in ("skilled", "random"):
                r = r_all[kind]
                n = r_all["pairs"]
                lines.append(f"| {split} | {names.get(name, name) or report['splits'][split]} | {kind} | {n['positive']}/{n[kind]} | {pct(r['eer'])} | {r['auc']:.4f} |")
    lines += ["", "| operating point (threshold, cosine) | collection | test FAR skilled | test FAR random | test FRR | val FAR skilled |",
              "|---|---|---|---|---|---|"]
    for name, r_all in report["test"].items():
        val_all = report["val"].get(name)
        for point, at in r_all["skilled"]["at"].items():
            rnd = r_all["random"]["at"][point]
            val = pct(val_all["skilled"]["at"][point]["far"]) if val_all else "—"
            lines.append(f"| {point} ({at['threshold']:.4f}) | {names.get(name, name) or '—'} | {pct(at['far'])} | {pct(rnd['far'])} | {pct(at['frr'])} | {val} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["calibrate", "evaluate"])
    p.add_argument("--model", required=True, help="model directory (model.onnx, manifest.toml)")
    p.add_argument("--cache", required=True, help="`twin preprocess` cache prefix of the dataset")
    p.add_argument("--val-writers", default="51-60")
    p.add_argument("--test-writers", default="61-100")
    p.add_argument("--dataset", default="BHSig260-Bengali")
    args = p.parse_args(argv)

    model_dir = Path(args.model)
    manifest_path = model_dir / "manifest.toml"
    m = mf.read(manifest_path)
    if m["id"] != mf.sha256_file(model_dir / "model.onnx"):
        raise SystemExit(f"{manifest_path} id is not the sha256 of model.onnx; re-export the model")
    c = cache_mod.load(args.cache, mmap=True)
    check_cache_matches(m, c)

    if args.action == "calibrate":
        desc = f"{args.dataset} writers {args.val_writers} (validation), genuine vs skilled forgeries"
        if ":" in args.val_writers:
            desc = f"validation writers {args.val_writers} ({args.dataset}), genuine vs skilled forgeries, mean FAR of the collections"
        m["operating_points"] = calibrate(model_dir, c, args.val_writers, desc)
        mf.write(manifest_path, m)
        for pt in m["operating_points"]:
            print(f"{pt['name']}: threshold {pt['threshold']:.4f} (validation FAR {pct(pt['measured_far'])}, FRR {pct(pt['measured_frr'])})")
        return
    if not m.get("operating_points"):
        raise SystemExit(f"{manifest_path} has no operating points; run `calibrate` first")
    names = dict(splits.NAMES) if ":" in args.test_writers else {}
    report = evaluate(model_dir, m, c, args.val_writers, args.test_writers, names)
    report["dataset"] = args.dataset
    m["evaluation"] = flat_figures(report)
    mf.write(manifest_path, m)
    (model_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
