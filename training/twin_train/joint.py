"""The seed's joint layers: a learned similarity head over the two branches' outputs, trained on
the frozen branch's embeddings, which twin itself wrote (`twin preprocess --embed`: serving's
preprocessing and ONNX Runtime), so the head learns from exactly what it will score.

    python -m twin_train.joint --embeddings PREFIX --model models/signature-v2

The head sees |a - b| and a ⊙ b, so it scores (a, b) and (b, a) alike, then a linear layer
(hidden 0: Koch et al.'s weighted L1 distance, with the product beside it) or a small MLP, then
a sigmoid: score in (0, 1), higher = same writer. Binary cross-entropy on the training writers'
pairs (positives, skilled negatives and as many random negatives, each class weighing the
same); each candidate keeps its epoch with the lowest mean of the collections' validation
skilled EERs, and the candidate with the lowest such figure is exported, if it beats cosine
there; test writers only measure. Writes `joint.onnx` (inputs `a`, `b` [N, D] -> `score` [N],
dynamic N), `joint.json` (every candidate's figures, cosine's, and parity samples for the Rust
test) and the manifest's `[joint]` section.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import manifest as mf
from . import metrics, pairs as pairs_mod, splits
from .readers import Sample

JOINT_FILE = "joint.onnx"
INPUT_A, INPUT_B, OUTPUT = "a", "b", "score"


class JointHead(torch.nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.net = torch.nn.Sequential(torch.nn.Linear(2 * dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        else:
            self.net = torch.nn.Linear(2 * dim, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features = torch.cat([(a - b).abs(), a * b], dim=1)
        return torch.sigmoid(self.net(features)).squeeze(1)


def load_embeddings(prefix: str | Path) -> tuple[np.ndarray, list[Sample]]:
    prefix = Path(prefix)
    meta = json.loads(prefix.with_name(prefix.name + ".json").read_text())
    emb = np.load(prefix.with_name(prefix.name + ".embeddings.npy")).astype(np.float32)
    samples = [Sample(r["path"], r["subject"], r["kind"]) for r in meta["samples"]]
    if emb.shape[0] != len(samples):
        raise ValueError(f"{prefix}: {emb.shape[0]} embeddings for {len(samples)} samples")
    return emb, samples


def split_pairs(samples: list[Sample], spec: str) -> dict[str, pairs_mod.Pairs]:
    return {ds: pairs_mod.build_pairs(samples, idx) for ds, idx in splits.by_dataset(samples, spec).items()}


def scores(head: JointHead, emb: torch.Tensor, p: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(emb[p[:, 0]], emb[p[:, 1]]).double().numpy()


def cosine(emb: np.ndarray, p: np.ndarray) -> np.ndarray:
    return pairs_mod.cosine_scores(emb, p)


def figures(score_fn, sets: dict[str, pairs_mod.Pairs]) -> dict:
    out = {}
    for ds, p in sets.items():
        pos = score_fn(p.positive)
        out[ds] = {"skilled_eer": metrics.eer(pos, score_fn(p.skilled))[0],
                   "random_eer": metrics.eer(pos, score_fn(p.random))[0]}
    return out


def mean_skilled(fig: dict) -> float:
    return float(np.mean([f["skilled_eer"] for f in fig.values()]))


def train(emb: np.ndarray, train_sets, val_sets, hidden: int, epochs: int, seed: int, lr: float = 1e-3):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    et = torch.from_numpy(emb)
    head = JointHead(emb.shape[1], hidden)
    opt = torch.optim.Adam(head.parameters(), lr, weight_decay=1e-4)
    pos = np.concatenate([p.positive for p in train_sets.values()])
    skilled = np.concatenate([p.skilled for p in train_sets.values()])
    rnd = np.concatenate([p.random for p in train_sets.values()])
    best = None
    for epoch in range(1, epochs + 1):
        r = rnd[rng.choice(len(rnd), min(len(rnd), len(skilled)), replace=False)]
        x = np.concatenate([pos, skilled, r])
        y = np.concatenate([np.ones(len(pos)), np.zeros(len(skilled) + len(r))]).astype(np.float32)
        # each class (genuine / forged) weighs the same whatever its count
        w = np.where(y == 1, 0.5 / len(pos), 0.5 / (len(skilled) + len(r))).astype(np.float32) * len(x)
        order = rng.permutation(len(x))
        for i in range(0, len(x), 512):
            j = order[i:i + 512]
            out = head(et[x[j, 0]], et[x[j, 1]])
            loss = torch.nn.functional.binary_cross_entropy(out, torch.from_numpy(y[j]), weight=torch.from_numpy(w[j]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = figures(lambda p: scores(head, et, p), val_sets)
        if best is None or mean_skilled(val) < best["val_mean_skilled_eer"]:
            best = {"epoch": epoch, "val": val, "val_mean_skilled_eer": mean_skilled(val),
                    "state": {k: v.clone() for k, v in head.state_dict().items()}}
        print(f"joint hidden={hidden} epoch {epoch}: validation mean skilled EER {mean_skilled(val):.4f}", flush=True)
    head.load_state_dict(best.pop("state"))
    return head, best


def export(head: JointHead, dim: int, path: Path) -> None:
    head.eval()
    a = torch.zeros(2, dim)
    torch.onnx.export(head, (a, a), str(path), input_names=[INPUT_A, INPUT_B], output_names=[OUTPUT],
                      dynamic_axes={INPUT_A: {0: "N"}, INPUT_B: {0: "N"}, OUTPUT: {0: "N"}}, opset_version=17,
                      dynamo=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--embeddings", required=True, help="prefix of `twin preprocess --embed` output")
    p.add_argument("--model", required=True, help="model directory: receives joint.onnx, joint.json, [joint]")
    p.add_argument("--train-writers", default="bhsig:train,icdar:train")
    p.add_argument("--val-writers", default="bhsig:val,icdar:val")
    p.add_argument("--test-writers", default="bhsig:test,icdar:test")
    p.add_argument("--hidden", default="0,64", help="candidate hidden sizes (0: linear)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = Path(args.model)
    m = mf.read(model / "manifest.toml")
    emb, samples = load_embeddings(args.embeddings)
    if emb.shape[1] != m["output"]["embedding_size"]:
        raise SystemExit(f"embeddings are {emb.shape[1]}-d, the model's are {m['output']['embedding_size']}-d")
    splits.check_disjoint(samples, {"train": args.train_writers, "val": args.val_writers, "test": args.test_writers})
    train_sets = split_pairs(samples, args.train_writers)
    val_sets = split_pairs(samples, args.val_writers)
    test_sets = split_pairs(samples, args.test_writers)
    et = torch.from_numpy(emb)
    report = {"cosine": {"val": figures(lambda q: cosine(emb, q), val_sets),
                         "test": figures(lambda q: cosine(emb, q), test_sets)},
              "candidates": []}
    report["cosine"]["val_mean_skilled_eer"] = mean_skilled(report["cosine"]["val"])
    chosen = None
    for hidden in [int(h) for h in args.hidden.split(",")]:
        head, best = train(emb, train_sets, val_sets, hidden, args.epochs, args.seed)
        best["hidden"] = hidden
        best["test"] = figures(lambda q: scores(head, et, q), test_sets)
        report["candidates"].append(best)
        if chosen is None or best["val_mean_skilled_eer"] < chosen[1]["val_mean_skilled_eer"]:
            chosen = (head, best)
    head, best = chosen
    report["chosen_hidden"] = best["hidden"]
    report["beats_cosine_on_validation"] = best["val_mean_skilled_eer"] < report["cosine"]["val_mean_skilled_eer"]
    onnx_path = model / JOINT_FILE
    export(head, emb.shape[1], onnx_path)
    # parity samples: the Rust test scores these embeddings with joint.onnx through twin-embed
    rng = np.random.default_rng(0)
    ia, ib = rng.choice(len(emb), 16), rng.choice(len(emb), 16)
    report["parity"] = {"a": emb[ia].tolist(), "b": emb[ib].tolist(),
                        "torch": scores(head, et, np.stack([ia, ib], 1)).tolist()}
    (model / "joint.json").write_text(json.dumps(report, indent=1) + "\n")
    m["joint"] = {"file": JOINT_FILE, "sha256": mf.sha256_file(onnx_path), "input_a": INPUT_A, "input_b": INPUT_B,
                  "output": OUTPUT,
                  "description": (f"learned similarity over |a - b| and a * b (hidden {best['hidden']}), trained on "
                                  f"{args.train_writers} embeddings of the frozen branch, epoch {best['epoch']} chosen "
                                  f"on {args.val_writers}")}
    mf.write(model / "manifest.toml", m)
    print(f"wrote {onnx_path} (hidden {best['hidden']}, epoch {best['epoch']}): validation mean skilled EER "
          f"{best['val_mean_skilled_eer']:.4f} against cosine {report['cosine']['val_mean_skilled_eer']:.4f}")


if __name__ == "__main__":
    main()
