"""Verification figures from scores (higher = more similar; a match when `score >= threshold`).

Pure numpy, so the figures the model card quotes are checked by tests against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def far_frr(pos: np.ndarray, neg: np.ndarray, threshold: float) -> tuple[float, float]:
    """FAR = share of negatives with score >= threshold; FRR = share of positives below it."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("far_frr needs at least one positive and one negative score")
    return float(np.mean(neg >= threshold)), float(np.mean(pos < threshold))


def roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, far, frr) at every distinct score, ascending thresholds, plus +inf at the end
    (where everything is rejected)."""
    pos = np.sort(np.asarray(pos, dtype=np.float64))
    neg = np.sort(np.asarray(neg, dtype=np.float64))
    if pos.size == 0 or neg.size == 0:
        raise ValueError("roc needs at least one positive and one negative score")
    thresholds = np.unique(np.concatenate([pos, neg, [np.inf]]))
    # count of scores >= t: n - (number strictly below t)
    far = 1.0 - np.searchsorted(neg, thresholds, side="left") / neg.size
    frr = np.searchsorted(pos, thresholds, side="left") / pos.size
    return thresholds, far, frr


def eer(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold.

    FAR falls and FRR rises as the threshold rises; between the last threshold where FAR > FRR
    and the first where FAR <= FRR, the crossing is interpolated linearly (in the rates) and
    the threshold is the matching interpolation between the two thresholds (the midpoint when
    the second one is +inf)."""
    t, far, frr = roc(pos, neg)
    diff = far - frr
    i = int(np.argmax(diff <= 0))  # first index with far <= frr (exists: at +inf far = 0)
    if i == 0:
        return float((far[0] + frr[0]) / 2), float(t[0])
    d0, d1 = diff[i - 1], diff[i]
    w = d0 / (d0 - d1)  # in (0, 1]
    rate = far[i - 1] + w * (far[i] - far[i - 1])
    hi = t[i] if np.isfinite(t[i]) else t[i - 1] + 1e-6
    return float(rate), float(t[i - 1] + w * (hi - t[i - 1]))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC = P(pos score > neg score) + 0.5 P(tie) (Mann–Whitney)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_vals = both[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    r_pos = ranks[: pos.size].sum()
    return float((r_pos - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def threshold_for_far(neg: np.ndarray, target_far: float) -> float:
    """The lowest threshold whose FAR on `neg` is at most `target_far`.

    With negatives sorted high to low (s0 >= s1 >= ...), at most k = floor(target * n) may be
    accepted; the threshold lies between s_k and the next higher distinct score (their midpoint,
    for a margin on both sides), or just above s_k when none is higher."""
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"target FAR must be in (0, 1), got {target_far}")
    s = np.sort(np.asarray(neg, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("threshold_for_far needs negative scores")
    k = int(np.floor(target_far * s.size + 1e-9))
    if k >= s.size:
        return float(s[-1])
    higher = s[:k][s[:k] > s[k]]
    if higher.size:
        return float((s[k] + higher.min()) / 2)
    return float(np.nextafter(s[k], np.inf))


def threshold_for_mean_far(negs: list[np.ndarray], target_far: float) -> float:
    """The lowest threshold at which the *mean* of several collections' FARs is at most
    `target_far`: each collection weighs the same however many negatives it has, so a large
    collection cannot hide a small one's false accepts. With one collection this is
    `threshold_for_far`."""
    if not 0.0 < target_far < 1.0:
        raise ValueError(f"target FAR must be in (0, 1), got {target_far}")
    negs = [np.sort(np.asarray(n, dtype=np.float64)) for n in negs]
    if not negs or any(n.size == 0 for n in negs):
        raise ValueError("threshold_for_mean_far needs negative scores in every collection")
    if len(negs) == 1:
        return threshold_for_far(negs[0], target_far)
    cand = np.unique(np.concatenate(negs))  # ascending
    # mean FAR when the threshold is each candidate (scores >= t accepted)
    mean_far = np.mean([1.0 - np.searchsorted(n, cand, side="left") / n.size for n in negs], axis=0)
    ok = np.nonzero(mean_far <= target_far + 1e-12)[0]
    if ok.size == 0:  # only rejecting every negative meets it
        return float(np.nextafter(cand[-1], np.inf))
    i = int(ok[0])
    if i == 0:
        return float(cand[0])
    # nothing lies strictly between cand[i-1] (rejected) and cand[i]: the midpoint has the same rates
    return float((cand[i - 1] + cand[i]) / 2)


@dataclass
class Figures:
    eer: float
    eer_threshold: float
    auc: float
    n_pos: int
    n_neg: int

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {f"eer_{prefix}": self.eer, f"auc_{prefix}": self.auc}


def figures(pos: np.ndarray, neg: np.ndarray) -> Figures:
    e, t = eer(pos, neg)
    return Figures(e, t, auc(pos, neg), int(np.size(pos)), int(np.size(neg)))
