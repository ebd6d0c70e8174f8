"""Training: identity-balanced batches, embed once, mine in the batch, triplet (semi-hard or
batch-hard) or contrastive loss; skilled forgeries ride along as hard negatives.

    python -m twin_train.train --cache CACHE_PREFIX --out RUN_DIR [options]

Prints one line per epoch (loss, active triplets, validation EER on skilled and random
forgeries, time) and writes RUN_DIR/last.pt, RUN_DIR/best.pt (lowest validation skilled EER)
and RUN_DIR/log.jsonl.

`--layout omniglot` (a cache of Omniglot's images_background): subjects are characters,
validation holds out whole alphabets (`--val-alphabets`), rotated copies can be added as new
classes (`--rotations 0,90,180,270`), and the validation figure that selects the checkpoint
is the 20-way one-shot accuracy on seeded Lake-style episodes of the held-out alphabets.

Writers: `--train-writers` / `--val-writers` take a split spec (`splits.py`): `51-60` on a
single-collection cache, `bhsig:train,icdar:train,synth:*` on a combined one. With several
validation collections the selection figure is the mean of their skilled EERs.
`--synth-per-batch N` draws N of the batch's writers from the synthetic ones (co-training), so
thousands of synthetic writers do not crowd out the real ones.

Checkpoints: RUN_DIR/last.pt after every epoch holds the whole training state (weights,
average, optimizer, every random generator, the samplers' positions); `--resume` continues
from it and ends where an uninterrupted run would have ended.

Seeded: the same seed, data, thread count and torch build give the same model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import cache as cache_mod
from . import omniglot
from .augment import AugmentSpec, augment
from .embed import torch_embed
from .losses import LOSSES, skilled
from .metrics import eer
from .model import build
from . import splits
from .pairs import build_pairs, cosine_scores
from .readers import FORGED, GENUINE


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", required=True, help="prefix of the `twin preprocess` cache (PREFIX.npy, PREFIX.json)")
    p.add_argument("--out", required=True, help="run directory for checkpoints and the log")
    p.add_argument("--train-writers", default="1-50")
    p.add_argument("--val-writers", default="51-60")
    p.add_argument("--layout", choices=["bhsig", "omniglot"], default="bhsig",
                   help="bhsig: numeric writer ranges, EER validation; omniglot: alphabet split, one-shot validation")
    p.add_argument("--val-alphabets", default="5", help="omniglot: N alphabets spread over the sorted list, or names")
    p.add_argument("--rotations", default="0", help="omniglot: rotations (degrees) added as new classes, e.g. 0,90,180,270")
    p.add_argument("--val-episodes", type=int, default=200, help="omniglot: 20-way one-shot validation episodes")
    p.add_argument("--loss", choices=sorted(LOSSES), default="semihard")
    p.add_argument("--scale", type=float, default=10.0, help="proto loss: logit scale on cosine similarity")
    p.add_argument("--margin", type=float, default=0.2, help="triplet margin on squared distance (contrastive: on distance)")
    p.add_argument("--no-forgeries", action="store_true", help="do not use skilled forgeries as negatives")
    p.add_argument("--skilled-weight", type=float, default=1.0,
                   help="weight of the explicit term over every (genuine, genuine, own skilled forgery) triplet")
    p.add_argument("--writers-per-batch", type=int, default=16, help="P: subjects per batch")
    p.add_argument("--synth-per-batch", type=int, default=0,
                   help="of the P subjects, this many are synthetic (subjects `synth:…`); 0: synthetic writers are "
                        "sampled like any other")
    p.add_argument("--genuine-per-writer", type=int, default=6, help="K: genuine images per subject")
    p.add_argument("--forged-per-writer", type=int, default=4, help="F: skilled forgeries per subject")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the training genuine images")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--arch", choices=["branch", "conv4"], default="branch",
                   help="branch: the signature CNN (model.Branch); conv4: 4 × [conv, BN, ReLU, pool] of --widths[0] channels")
    p.add_argument("--widths", default="32,64,96,128")
    p.add_argument("--grid", default="2,6")
    p.add_argument("--stem", choices=["s2", "gentle"], default="s2", help="branch stem (model.Branch)")
    p.add_argument("--pool", choices=["grid", "hybrid"], default="grid", help="branch pooling (model.Branch)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--augment", default="", help="override augmentation fields, e.g. p_dilate=0,p_erode=0 (see augment.py)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt if it exists")
    p.add_argument("--stop-after-epoch", type=int, default=0,
                   help="stop (as if interrupted) after this epoch; --resume continues the same schedule")
    p.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights (and BatchNorm statistics) with this "
                        "decay per step; validation, checkpoints and export then use the average (0: off)")
    return p.parse_args(argv)


class BalancedSampler:
    """P subjects × (K genuine + F forged) per batch; subjects cycle in shuffled order so every
    one is seen equally often; images within a subject cycle too."""

    def __init__(self, subjects, genuine, forged, p, k, f, rng: np.random.Generator):
        self.subjects = [s for s in subjects if len(genuine[s]) >= 2]
        if len(self.subjects) < 2:
            raise ValueError("training needs at least 2 subjects with 2+ genuine images each")
        self.genuine, self.forged = genuine, forged
        self.p, self.k, self.f = min(p, len(self.subjects)), k, f
        self.rng = rng
        self.queue: list = []
        self.cursor = {s: [] for s in self.subjects}
        self.fcursor = {s: [] for s in self.subjects}

    def _take(self, pool, cursors, s, n):
        out = []
        while len(out) < n and pool[s]:
            if not cursors[s]:
                cursors[s] = list(self.rng.permutation(pool[s]))
            out.append(cursors[s].pop())
        return out

    def batch(self):
        chosen = []
        while len(chosen) < self.p:
            if not self.queue:
                self.queue = list(self.rng.permutation(len(self.subjects)))
            s = self.subjects[self.queue.pop()]
            if s not in chosen:
                chosen.append(s)
        idx, subj, forged = [], [], []
        for j, s in enumerate(chosen):
            g = self._take(self.genuine, self.cursor, s, min(self.k, len(self.genuine[s])))
            fo = self._take(self.forged, self.fcursor, s, self.f) if self.f else []
            idx += g + fo
            subj += [j] * (len(g) + len(fo))
            forged += [False] * len(g) + [True] * len(fo)
        return np.array(idx), np.array(subj), np.array(forged)


def batch_labels(subj: np.ndarray, forged: np.ndarray) -> torch.Tensor:
    labels = torch.from_numpy(subj.astype(np.int64))
    f = torch.from_numpy(forged)
    labels[f] = -(1 + torch.nonzero(f).flatten())
    return labels


BN_REFRESH_IMAGES = 1600


def refresh_bn(model, x, idx, device, batch=160):
    """Recomputes BatchNorm running statistics for the model's current weights: a plain
    average over `x[idx]` (un-augmented), in batches like training's. Only the BatchNorm
    layers run in training mode (dropout stays off), so no random numbers are drawn."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            model(torch.from_numpy(np.ascontiguousarray(x[idx[i : i + batch]])).to(device))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def validate(model, x, samples, groups: dict[str, np.ndarray], device):
    """EER per validation collection (`val_eer_skilled_bhsig`, …) and, as `val_eer_skilled` /
    `val_eer_random`, their mean: each collection weighs the same however many pairs it has."""
    out: dict[str, float] = {}
    means: dict[str, list[float]] = {"skilled": [], "random": []}
    for name, val_idx in groups.items():
        emb = torch_embed_device(model, x[val_idx], device)
        pairs = build_pairs([samples[i] for i in val_idx])
        pos = cosine_scores(emb, pairs.positive)
        for kind in ("skilled", "random"):
            neg_pairs = getattr(pairs, kind)
            if len(neg_pairs) and len(pos):
                v = eer(pos, cosine_scores(emb, neg_pairs))[0]
                means[kind].append(v)
                if len(groups) > 1:
                    out[f"val_eer_{kind}_{name}"] = v
    for kind, values in means.items():
        if values:
            out[f"val_eer_{kind}"] = float(np.mean(values))
    return out


def torch_embed_device(model, x, device, batch=256):
    if device == "cpu":
        return torch_embed(model, x, batch)
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(device)).cpu().numpy())
    return np.concatenate(out)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    c = cache_mod.load(args.cache)
    mean, std = float(c.preprocess.get("mean", 0.0)), float(c.preprocess.get("std", 1.0))
    x = c.x
    genuine, forged = {}, {}
    val_eps = None
    if args.layout == "omniglot":
        held_out = omniglot.val_alphabets(c.samples, args.val_alphabets)
        train_idx, val_idx = omniglot.split(c.samples, held_out)
        rotations = [int(r) for r in args.rotations.split(",")]
        x, subjects = omniglot.with_rotations(c.x, c.samples, train_idx, rotations)
        train_all = np.concatenate([train_idx, np.arange(len(c.x), len(x))])
        for i in train_all:
            genuine.setdefault(subjects[i], []).append(int(i))
            forged.setdefault(subjects[i], [])
        if len(val_idx):
            val_eps = omniglot.episodes(c.samples, val_idx, 20, args.val_episodes, args.seed)
        print(f"omniglot: validation alphabets {held_out}; rotations {rotations}", flush=True)
    else:
        train_idx = splits.select(c.samples, args.train_writers)
        val_groups = splits.by_dataset(c.samples, args.val_writers)
        val_idx = np.concatenate(list(val_groups.values())) if val_groups else np.array([], dtype=np.int64)
        splits.check_disjoint(c.samples, {"train": args.train_writers, "val": args.val_writers})
        for i in train_idx:
            s = c.samples[i]
            genuine.setdefault(s.subject, [])
            forged.setdefault(s.subject, [])
            (genuine if s.kind == GENUINE else forged)[s.subject].append(int(i))
    if len(train_idx) == 0:
        raise SystemExit(f"no training images for writers {args.train_writers} in {args.cache}")
    f = 0 if args.no_forgeries or args.layout == "omniglot" else args.forged_per_writer
    # (subjects, writers per batch) of each sampler; the first pool sets the epoch length
    synthetic = sorted(s for s in genuine if splits.subject_parts(s)[0] == "synth")
    if args.synth_per_batch and synthetic:
        if not 0 < args.synth_per_batch < args.writers_per_batch:
            raise SystemExit(f"--synth-per-batch must lie in 1..{args.writers_per_batch - 1}")
        real = sorted(set(genuine) - set(synthetic))
        pools = [(real, args.writers_per_batch - args.synth_per_batch), (synthetic, args.synth_per_batch)]
    else:
        pools = [(sorted(genuine), args.writers_per_batch)]
    samplers = [BalancedSampler(subjects, genuine, forged, p, args.genuine_per_writer, f, rng) for subjects, p in pools]
    n_gen = sum(len(genuine[s]) for s in pools[0][0])
    steps = args.steps_per_epoch or max(1, math.ceil(n_gen / (samplers[0].p * args.genuine_per_writer)))

    def next_batch():
        """One batch from every sampler; subject labels stay distinct across samplers."""
        parts = [sm.batch() for sm in samplers]
        offsets = np.cumsum([0] + [sm.p for sm in samplers[:-1]])
        return (np.concatenate([idx for idx, _, _ in parts]),
                np.concatenate([subj + off for (_, subj, _), off in zip(parts, offsets)]),
                np.concatenate([fo for _, _, fo in parts]))

    config = {
        "channels": c.input["channels"],
        "widths": [int(v) for v in args.widths.split(",")],
        "grid": [int(v) for v in args.grid.split(",")],
        "dim": args.dim,
        "dropout": args.dropout,
        "stem": args.stem,
        "pool": args.pool,
    }
    if args.arch == "conv4":
        if c.input["height"] != c.input["width"]:
            raise SystemExit("--arch conv4 needs a square input")
        config = {"arch": "conv4", "channels": c.input["channels"], "widths": config["widths"][:1], "blocks": 4,
                  "dim": args.dim, "dropout": args.dropout, "side": c.input["height"]}
    model = build(config).to(device)
    # The averaged weights are what validation sees and what ships: with ~10 validation writers
    # the best single epoch is a noisy pick, and an average over the last few hundred steps
    # moves less between epochs than the raw weights do.
    ema = None
    if args.ema:
        if not 0.0 < args.ema < 1.0:
            raise SystemExit(f"--ema is a decay per step in (0, 1), got {args.ema}")
        # Parameters only: BatchNorm statistics averaged over changing weights fit none of
        # them (measured: validation skilled EER 30 % with averaged statistics, 7 % with
        # statistics recomputed for the averaged weights at the same epoch), so they are
        # recomputed for the averaged weights before every validation (`refresh_bn`).
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=False)
    evaluated = model if ema is None else ema.module
    # A fixed sample of training images for `refresh_bn`, drawn from its own generator so
    # the training sequence is the same with and without averaging.
    train_pool = np.array(sorted(i for v in list(genuine.values()) + list(forged.values()) for i in v))
    bn_idx = np.sort(np.random.default_rng(args.seed + 1).permutation(train_pool)[:BN_REFRESH_IMAGES])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * steps
    warm = int(args.warmup_epochs * steps)

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    loss_fn = LOSSES[args.loss]
    loss_param = args.scale if args.loss == "proto" else args.margin
    aug = AugmentSpec()
    for item in filter(None, args.augment.split(",")):
        key, _, value = item.partition("=")
        if not hasattr(aug, key):
            raise SystemExit(f"unknown augmentation field {key!r}; fields: {list(dataclasses.asdict(aug))}")
        setattr(aug, key, float(value))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    best = math.inf
    start_epoch, step = 1, 0
    resumed = args.resume and (out / "last.pt").is_file()
    if resumed:
        state = torch.load(out / "last.pt", map_location=device, weights_only=False)
        ts = state.get("train_state")
        if ts is None:
            raise SystemExit(f"{out / 'last.pt'} holds no training state (written by an older version); start afresh")
        model.load_state_dict(ts["model"])
        opt.load_state_dict(ts["optimizer"])
        if ema is not None:
            ema.load_state_dict(ts["ema"])
        for sm, saved in zip(samplers, ts["samplers"]):
            sm.queue, sm.cursor, sm.fcursor = saved["queue"], saved["cursor"], saved["fcursor"]
        rng.bit_generator.state = ts["numpy_rng"]
        g.set_state(ts["augment_rng"])
        torch.set_rng_state(ts["torch_rng"])
        start_epoch, step, best = state["epoch"] + 1, ts["step"], ts["best"]
        print(f"resume: {out / 'last.pt'} after epoch {state['epoch']} (step {step}, best {best:.4f})", flush=True)
    log = open(out / "log.jsonl", "a" if resumed else "w")
    meta = {
        "model": config,
        "input": c.input,
        "preprocess": c.preprocess,
        "args": vars(args),
        "augment": dataclasses.asdict(aug),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
    }
    print(
        f"train: {len(genuine)} subjects, {n_gen} genuine + {sum(len(v) for v in forged.values())} forged images; "
        f"val: {len(val_idx)} images; input {tuple(x.shape[1:])}; batch {'+'.join(str(sm.p) for sm in samplers)}x({args.genuine_per_writer}+{f}); "
        f"{steps} steps/epoch; loss {args.loss} {'scale ' + str(args.scale) if args.loss == 'proto' else 'margin ' + str(args.margin)}; device {device}, {torch.get_num_threads()} threads",
        flush=True,
    )
    wall0, cpu0 = time.time(), time.process_time()
    for epoch in range(start_epoch, args.epochs + 1):
        model.train()
        t0 = time.time()
        losses, active = [], []
        for _ in range(steps):
            idx, subj, is_forged = next_batch()
            xb = torch.from_numpy(x[idx])
            if not args.no_augment:
                xb = augment(xb, aug, mean, std, g)
            labels = batch_labels(subj, is_forged)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            emb = model(xb.to(device))
            loss, info = loss_fn(emb, labels.to(device), loss_param)
            if args.skilled_weight and is_forged.any():
                loss = loss + args.skilled_weight * skilled(
                    emb, torch.from_numpy(subj).to(device), torch.from_numpy(is_forged).to(device), args.margin)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
            active.append(info["active"])
            step += 1
        if ema is not None:
            refresh_bn(ema.module, x, bn_idx, device)
        rec = {"epoch": epoch, "loss": float(np.mean(losses)), "active": float(np.mean(active)), "lr": lr_at(step - 1)}
        if len(val_idx) and (epoch % args.eval_every == 0 or epoch == args.epochs):
            if val_eps is not None:
                emb_val = torch_embed_device(evaluated, c.x[val_idx], device)
                rec["val_oneshot"] = omniglot.oneshot_accuracy(emb_val, val_eps, {int(i): j for j, i in enumerate(val_idx)})
            else:
                rec.update(validate(evaluated, c.x, c.samples, val_groups, device))
        rec["epoch_s"] = time.time() - t0
        rec["wall_s"] = time.time() - wall0
        rec["cpu_s"] = time.process_time() - cpu0
        log.write(json.dumps(rec) + "\n")
        log.flush()
        val_text = (f"val 20-way one-shot {rec.get('val_oneshot', float('nan')):.4f}" if val_eps is not None else
                    f"val EER skilled {rec.get('val_eer_skilled', float('nan')):.4f} random {rec.get('val_eer_random', float('nan')):.4f}")
        per = " ".join(f"{k[8:]} {v:.4f}" for k, v in rec.items() if k.startswith("val_eer_") and k.count("_") > 2)
        if per:
            val_text += f" ({per})"
        done = epoch - start_epoch + 1
        eta = (time.time() - wall0) / done * (args.epochs - epoch)
        print(
            f"epoch {epoch:3d}  loss {rec['loss']:.4f}  active {rec['active']:.2f}  "
            f"{val_text}  "
            f"{rec['epoch_s']:.0f}s (wall {rec['wall_s']:.0f}s, cpu {rec['cpu_s']:.0f}s, eta {eta / 60:.0f} min)",
            flush=True,
        )
        ckpt = {"state": evaluated.state_dict(), "epoch": epoch, "record": rec, **meta}
        score = -rec["val_oneshot"] if "val_oneshot" in rec else rec.get("val_eer_skilled", -epoch)
        if score <= best:
            best = score
            torch.save(ckpt, out / "best.pt")
        train_state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "samplers": [{"queue": sm.queue, "cursor": sm.cursor, "fcursor": sm.fcursor} for sm in samplers],
            "numpy_rng": rng.bit_generator.state,
            "augment_rng": g.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "best": best,
        }
        # written to a temporary name first, so a kill mid-write leaves the previous epoch's state
        torch.save({**ckpt, "train_state": train_state}, out / "last.pt.tmp")
        os.replace(out / "last.pt.tmp", out / "last.pt")
        if args.stop_after_epoch and epoch >= args.stop_after_epoch and epoch < args.epochs:
            print(f"stopped after epoch {epoch} of {args.epochs}; continue with --resume", flush=True)
            return
    summary = {"wall_s": time.time() - wall0, "cpu_s": time.process_time() - cpu0, "best_val_eer_skilled": best, "epochs": args.epochs}
    if val_eps is not None:
        summary = {"wall_s": summary["wall_s"], "cpu_s": summary["cpu_s"], "best_val_oneshot": -best, "epochs": args.epochs,
                   "train_classes": len(genuine), "train_images": n_gen}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    best_text = f"best val 20-way one-shot {-best:.4f}" if val_eps is not None else f"best val skilled EER {best:.4f}"
    print(f"done: wall {summary['wall_s']:.0f}s, cpu {summary['cpu_s']:.0f}s, {best_text}", flush=True)


if __name__ == "__main__":
    main()
