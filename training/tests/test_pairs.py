import numpy as np

from twin_train.pairs import build_pairs, cosine_scores
from twin_train.splits import select
from twin_train.readers import FORGED, GENUINE, Sample


def samples():
    out = []
    for w, (g, f) in {"001": (3, 2), "002": (2, 1), "051": (2, 0)}.items():
        out += [Sample(f"{w}g{i}", w, GENUINE) for i in range(g)]
        out += [Sample(f"{w}f{i}", w, FORGED) for i in range(f)]
    return out


def test_pair_counts_and_kinds():
    s = samples()
    p = build_pairs(s)
    # positives: C(3,2) + C(2,2) + C(2,2) = 5; skilled: 3*2 + 2*1 = 8;
    # random: 3*2 + 3*2 + 2*2 = 16
    assert (len(p.positive), len(p.skilled), len(p.random)) == (5, 8, 16)
    for a, b in p.positive:
        assert s[a].subject == s[b].subject and s[a].kind == s[b].kind == GENUINE
    for a, b in p.skilled:
        assert s[a].subject == s[b].subject and (s[a].kind, s[b].kind) == (GENUINE, FORGED)
    for a, b in p.random:
        assert s[a].subject != s[b].subject and s[a].kind == s[b].kind == GENUINE


def test_split_keeps_writers_apart():
    s = samples()
    train = select(s, "1-50")
    test = select(s, "51-60")
    assert {s[i].subject for i in train} == {"001", "002"}
    assert {s[i].subject for i in test} == {"051"}
    p = build_pairs(s, test)
    assert (len(p.positive), len(p.skilled), len(p.random)) == (1, 0, 0)


def test_cosine_scores():
    e = np.array([[1.0, 0], [0, 2.0], [3.0, 3.0]])
    got = cosine_scores(e, np.array([[0, 1], [0, 2], [2, 2]]))
    np.testing.assert_allclose(got, [0.0, np.sqrt(0.5), 1.0])
