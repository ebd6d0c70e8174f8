"""Mining on hand-made embeddings: the numpy reference by hand, then torch against numpy."""

import numpy as np
import pytest

from twin_train import mining


def unit(deg):
    r = np.deg2rad(deg)
    return [np.cos(r), np.sin(r)]


# Points on the unit circle: squared distance grows with the angle between them.
# subject 0: a0 at 0°, a1 at 10°;  subject 1: b0 at 40°, b1 at 90°;  forged copy of 0 at 5°.
EMB = np.array([unit(0), unit(10), unit(40), unit(90), unit(5)])
LABELS = mining.forged_labels(np.array([0, 0, 1, 1, 0]), np.array([0, 0, 0, 0, 1], bool))


def test_forged_labels_are_unique_negatives():
    assert list(LABELS) == [0, 0, 1, 1, -5]


def test_semi_hard_by_hand():
    t = dict(((a, p), n) for a, p, n in mining.semi_hard_triplets(EMB, LABELS))
    # forgery is no anchor
    assert all(a != 4 for a, _ in t)
    # a0-a1 (10°): negatives b0 40°, b1 90°, forgery 5°. Farther than 10°: b0, b1 -> closest b0
    assert t[(0, 1)] == 2
    # a1-a0 (10°): negatives from a1: b0 30°, b1 80°, forgery 5° -> farther: b0
    assert t[(1, 0)] == 2
    # b1-b0 (50°): from b1: a0 90°, a1 80°, forgery 85° -> closest farther than 50° is a1
    assert t[(3, 2)] == 1
    # b0-b1 (50°): from b0: a0 40°, a1 30°, forgery 35° -> none farther -> the farthest, a0
    assert t[(2, 3)] == 0


def test_batch_hard_by_hand():
    t = {a: (p, n) for a, p, n in mining.batch_hard_triplets(EMB, LABELS)}
    assert t[0] == (1, 4)  # hardest negative of a0 is its forgery (5°)
    assert t[2] == (3, 1)  # b0: closest negative a1 (30°)
    assert 4 not in t


def test_triplet_loss_value():
    d = mining.sq_distances(EMB)
    margin = 0.2
    trip = [(0, 1, 4)]
    want = max(d[0, 1] - d[0, 4] + margin, 0)
    assert mining.triplet_loss(EMB, trip, margin) == pytest.approx(want)
    assert want > 0


@pytest.fixture
def torch_and_losses():
    torch = pytest.importorskip("torch")
    from twin_train import losses

    return torch, losses


def random_batch(seed, n=24, dim=8):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, dim))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    subj = rng.integers(0, 4, n)
    forged = rng.random(n) < 0.25
    return e, mining.forged_labels(subj, forged)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "loss, triplets", [("semi_hard", mining.semi_hard_triplets), ("batch_hard", mining.batch_hard_triplets)]
)
def test_torch_mined_triplet_loss_matches_numpy(torch_and_losses, loss, triplets, seed):
    torch, losses = torch_and_losses
    e, labels = random_batch(seed)
    want = mining.triplet_loss(e, triplets(e, labels), 0.3)
    got, _ = getattr(losses, loss)(torch.tensor(e), torch.tensor(labels), 0.3)
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_contrastive_matches_numpy(torch_and_losses, seed):
    torch, losses = torch_and_losses
    e, labels = random_batch(seed)
    want = mining.contrastive_loss(e, labels, 1.0)
    got, _ = losses.contrastive(torch.tensor(e), torch.tensor(labels), 1.0)
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_skilled_triplets_by_hand():
    subj = np.array([0, 0, 1, 0, 1])
    forged = np.array([0, 0, 0, 1, 1], bool)
    # subject 0: genuine 0, 1, forgery 3; subject 1: genuine 2 only (no positive)
    assert mining.skilled_triplets(subj, forged) == [(0, 1, 3), (1, 0, 3)]


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_skilled_matches_numpy(torch_and_losses, seed):
    torch, losses = torch_and_losses
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(20, 6))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    subj = rng.integers(0, 3, 20)
    forged = rng.random(20) < 0.3
    want = mining.triplet_loss(e, mining.skilled_triplets(subj, forged), 0.25)
    got = losses.skilled(torch.tensor(e), torch.tensor(subj), torch.tensor(forged), 0.25)
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_adaptive_pool_matches_torch(torch_and_losses):
    torch, _ = torch_and_losses
    from twin_train.model import adaptive_avg_pool

    for shape, grid in [((2, 3, 6, 20), (2, 6)), ((1, 2, 7, 13), (3, 5)), ((1, 1, 4, 8), (1, 2))]:
        x = torch.randn(*shape)
        want = torch.nn.functional.adaptive_avg_pool2d(x, grid)
        assert torch.allclose(adaptive_avg_pool(x, grid), want, atol=1e-6)
