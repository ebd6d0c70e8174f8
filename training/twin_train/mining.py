"""Online triplet mining, numpy reference implementation (the torch losses in `losses.py`
are checked against it).

Label convention inside a batch: genuine samples carry their subject's id (>= 0); every
forged sample carries its own negative id, so a forgery is never anyone's positive, never an
anchor, and is a negative for every anchor — including the writer it imitates, which makes
skilled forgeries the hardest negatives. Distances are squared Euclidean between
L2-normalized embeddings (= 2 - 2 cos).
"""

from __future__ import annotations

import numpy as np


def forged_labels(subject_ids: np.ndarray, is_forged: np.ndarray) -> np.ndarray:
    """Batch labels: the subject id for genuine samples, -(1 + position) for forged ones."""
    labels = np.asarray(subject_ids, dtype=np.int64).copy()
    forged = np.asarray(is_forged, dtype=bool)
    labels[forged] = -(1 + np.nonzero(forged)[0])
    return labels


def sq_distances(emb: np.ndarray) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    sq = (e * e).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * e @ e.T
    return np.maximum(d, 0.0)


def masks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive[a, p], negative[a, n]) for anchors a with a genuine label."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    anchor = (labels >= 0)[:, None]
    pos = same & anchor & ~np.eye(len(labels), dtype=bool)
    neg = ~same & anchor
    return pos, neg


def semi_hard_triplets(emb: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, int]]:
    """For every anchor–positive pair, the semi-hard negative (FaceNet): the closest negative
    that is farther than the positive; if none is, the farthest negative (TensorFlow's
    `triplet_semihard_loss` convention). Pairs whose anchor has no negative are skipped."""
    d = sq_distances(emb)
    pos, neg = masks(labels)
    out = []
    for a, p in zip(*np.nonzero(pos)):
        negs = np.nonzero(neg[a])[0]
        if negs.size == 0:
            continue
        dn = d[a, negs]
        farther = dn > d[a, p]
        if farther.any():
            n = negs[farther][np.argmin(dn[farther])]
        else:
            n = negs[np.argmax(dn)]
        out.append((int(a), int(p), int(n)))
    return out


def batch_hard_triplets(emb: np.ndarray, labels: np.ndarray) -> list[tuple[int, int, int]]:
    """For every anchor with a positive and a negative: its farthest positive and closest negative
    (Hermans et al. 2017)."""
    d = sq_distances(emb)
    pos, neg = masks(labels)
    out = []
    for a in range(len(labels)):
        if not pos[a].any() or not neg[a].any():
            continue
        ps, ns = np.nonzero(pos[a])[0], np.nonzero(neg[a])[0]
        out.append((a, int(ps[np.argmax(d[a, ps])]), int(ns[np.argmin(d[a, ns])])))
    return out


def triplet_loss(emb: np.ndarray, triplets: list[tuple[int, int, int]], margin: float) -> float:
    """Mean of max(d(a,p) - d(a,n) + margin, 0) over the triplets."""
    if not triplets:
        return 0.0
    d = sq_distances(emb)
    t = np.array(triplets)
    return float(np.maximum(d[t[:, 0], t[:, 1]] - d[t[:, 0], t[:, 2]] + margin, 0).mean())


def contrastive_loss(emb: np.ndarray, labels: np.ndarray, margin: float) -> float:
    """SigNet-style contrastive loss over all anchor pairs of the batch: mean of d² over positive
    pairs plus mean of max(margin - d, 0)² over negative pairs (d Euclidean)."""
    d2 = sq_distances(emb)
    d = np.sqrt(d2)
    pos, neg = masks(labels)
    lp = d2[pos].mean() if pos.any() else 0.0
    ln = (np.maximum(margin - d[neg], 0) ** 2).mean() if neg.any() else 0.0
    return float(lp + ln)


def skilled_triplets(subject: np.ndarray, is_forged: np.ndarray) -> list[tuple[int, int, int]]:
    """Every (anchor, positive, forgery) of one subject: genuine anchor and positive, and a
    skilled forgery of that same subject as the negative (the explicit hard-negative term)."""
    subject = np.asarray(subject)
    forged = np.asarray(is_forged, dtype=bool)
    out = []
    for a in np.nonzero(~forged)[0]:
        same = subject == subject[a]
        for p in np.nonzero(same & ~forged)[0]:
            if p == a:
                continue
            for f in np.nonzero(same & forged)[0]:
                out.append((int(a), int(p), int(f)))
    return out
