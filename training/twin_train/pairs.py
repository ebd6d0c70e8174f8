"""Verification pairs (writer splits: `splits.py`).

Positives: genuine–genuine pairs of one writer. Skilled negatives: a writer's genuine against
the forgeries of that writer. Random negatives: a writer's genuine against another writer's
genuine (every such pair within the split). All pairs are enumerated, not sampled, so the
figures are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .readers import FORGED, GENUINE, Sample

@dataclass
class Pairs:
    """Index pairs into a sample list, by kind."""

    positive: np.ndarray  # [n, 2]
    skilled: np.ndarray  # [n, 2] (genuine, forged of the same subject)
    random: np.ndarray  # [n, 2] (genuine, genuine of another subject)


def build_pairs(samples: list[Sample], indices: np.ndarray | None = None) -> Pairs:
    """All verification pairs among `samples[indices]` (default: all samples)."""
    if indices is None:
        indices = np.arange(len(samples))
    genuine: dict[str, list[int]] = {}
    forged: dict[str, list[int]] = {}
    for i in indices:
        s = samples[int(i)]
        (genuine if s.kind == GENUINE else forged).setdefault(s.subject, []).append(int(i))
    pos, skilled, rnd = [], [], []
    subjects = sorted(genuine)
    for w in subjects:
        g = genuine[w]
        for a in range(len(g)):
            for b in range(a + 1, len(g)):
                pos.append((g[a], g[b]))
        for a in g:
            for f in forged.get(w, []):
                skilled.append((a, f))
    for x in range(len(subjects)):
        for y in range(x + 1, len(subjects)):
            for a in genuine[subjects[x]]:
                for b in genuine[subjects[y]]:
                    rnd.append((a, b))

    def arr(v):
        return np.array(v, dtype=np.int64).reshape(-1, 2)

    return Pairs(arr(pos), arr(skilled), arr(rnd))


def cosine_scores(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of each index pair (embeddings need not be normalized)."""
    e = np.asarray(emb, dtype=np.float64)
    n = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(n == 0, 1, n)
    return np.einsum("ij,ij->i", e[pairs[:, 0]], e[pairs[:, 1]])


def kinds_valid(samples: list[Sample]) -> None:
    bad = {s.kind for s in samples} - {GENUINE, FORGED}
    if bad:
        raise ValueError(f"unknown sample kinds {sorted(bad)}; use {GENUINE!r} or {FORGED!r}")
