"""Batch losses in torch, vectorized: embed each image once per batch, then mine inside the
batch's distance matrix (the OpenFace speed-up). Same conventions as `mining.py` (the numpy
reference the tests compare against)."""

from __future__ import annotations

import torch


def sq_distances(e: torch.Tensor) -> torch.Tensor:
    sq = (e * e).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(0)


def masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    anchor = (labels >= 0)[:, None]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & anchor & ~eye, ~same & anchor


def _mean_hinge(e: torch.Tensor, hinges: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The mean of a batch's triplet hinges and the share still active (> 0); with no triplet,
    a zero that keeps the graph of `e`."""
    if hinges.numel() == 0:
        return e.sum() * 0, {"active": 0.0}
    return hinges.mean(), {"active": float((hinges > 0).float().mean())}


def semi_hard(e: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[torch.Tensor, dict]:
    d = sq_distances(e)
    pos, neg = masks(labels)
    d_ap = d[:, :, None]  # [a, p, 1]
    d_an = d[:, None, :]  # [a, 1, n]
    farther = neg[:, None, :] & (d_an > d_ap)  # [a, p, n]
    inf = torch.tensor(float("inf"), device=e.device, dtype=e.dtype)
    semi = torch.where(farther, d_an, inf).amin(-1)  # [a, p]
    fallback = torch.where(neg, d, -inf).amax(-1)  # [a]
    has_neg = neg.any(-1)
    d_n = torch.where(farther.any(-1), semi, fallback[:, None])
    valid = pos & has_neg[:, None]
    return _mean_hinge(e, (d - d_n + margin).clamp_min(0)[valid])


def batch_hard(e: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[torch.Tensor, dict]:
    d = sq_distances(e)
    pos, neg = masks(labels)
    valid = pos.any(1) & neg.any(1)
    inf = torch.tensor(float("inf"), device=e.device, dtype=e.dtype)
    hp = torch.where(pos, d, -inf).amax(1)
    hn = torch.where(neg, d, inf).amin(1)
    return _mean_hinge(e, (hp - hn + margin).clamp_min(0)[valid])


def contrastive(e: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[torch.Tensor, dict]:
    d2 = sq_distances(e)
    pos, neg = masks(labels)
    # sqrt has an infinite gradient at 0; negatives at distance 0 are rare but must not NaN
    d = (d2 + 1e-12).sqrt()
    zero = e.sum() * 0
    lp = d2[pos].mean() if pos.any() else zero
    ln = (margin - d[neg]).clamp_min(0).pow(2).mean() if neg.any() else zero
    return lp + ln, {"active": float((d[neg] < margin).float().mean()) if neg.any() else 0.0}


def proto(e: torch.Tensor, labels: torch.Tensor, scale: float) -> tuple[torch.Tensor, dict]:
    """Prototypical loss with a cosine classifier (Snell et al. 2017, cosine instead of squared
    Euclidean, as the embedding is L2-normalized and served under cosine): every anchor is
    classified among the batch's class means — its own class's mean without itself
    (leave-one-out), the other classes' means over all their images — with logits
    `scale · cos(anchor, mean)`; the loss is the cross-entropy. Needs ≥ 2 images per class.
    Labels < 0 (forgeries) are ignored. `active` is the share of anchors misclassified."""
    keep = labels >= 0
    e, labels = e[keep], labels[keep]
    classes, y = torch.unique(labels, return_inverse=True)
    onehot = torch.nn.functional.one_hot(y, len(classes)).to(e.dtype)  # [n, c]
    sums = onehot.T @ e  # [c, d]
    counts = onehot.sum(0)  # [c]
    means = sums[None, :, :].expand(len(e), -1, -1).clone()  # [n, c, d]
    own = torch.arange(len(e), device=e.device)
    means[own, y] = sums[y] - e
    cnt = counts[None, :].expand(len(e), -1).clone()
    cnt[own, y] = counts[y] - 1
    valid = cnt[own, y] > 0
    if not valid.any():
        return e.sum() * 0, {"active": 0.0}
    means = torch.nn.functional.normalize(means, dim=-1, eps=1e-12)
    logits = scale * torch.einsum("nd,ncd->nc", e, means)
    loss = torch.nn.functional.cross_entropy(logits[valid], y[valid])
    wrong = (logits[valid].argmax(1) != y[valid]).float().mean()
    return loss, {"active": float(wrong)}


LOSSES = {"semihard": semi_hard, "batchhard": batch_hard, "contrastive": contrastive, "proto": proto}


def skilled(e: torch.Tensor, subject: torch.Tensor, is_forged: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean hinge over every (genuine anchor, genuine positive, skilled forgery) of one subject:
    the writer's own forgeries must lie farther than its genuine signatures."""
    d = sq_distances(e)
    same = subject[:, None] == subject[None, :]
    gen = ~is_forged
    eye = torch.eye(len(subject), dtype=torch.bool, device=e.device)
    pos = same & gen[:, None] & gen[None, :] & ~eye  # [a, p]
    forg = same & gen[:, None] & is_forged[None, :]  # [a, f]
    valid = pos[:, :, None] & forg[:, None, :]  # [a, p, f]
    if not valid.any():
        return e.sum() * 0
    h = (d[:, :, None] - d[:, None, :] + margin).clamp_min(0)
    return h[valid].mean()
