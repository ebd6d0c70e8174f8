import numpy as np
import pytest

from twin_train.metrics import auc, eer, far_frr, roc, threshold_for_far


def test_far_frr_by_hand():
    pos = [0.9, 0.8, 0.4, 0.7]
    neg = [0.1, 0.5, 0.8, 0.3, 0.2]
    # threshold 0.5: negatives >= 0.5 are 0.5, 0.8 -> 2/5; positives < 0.5: 0.4 -> 1/4
    assert far_frr(pos, neg, 0.5) == (0.4, 0.25)
    assert far_frr(pos, neg, 0.95) == (0.0, 1.0)


def test_roc_points():
    t, far, frr = roc([0.6, 0.9], [0.1, 0.6])
    assert list(t) == [0.1, 0.6, 0.9, np.inf]
    assert list(far) == [1.0, 0.5, 0.0, 0.0]
    assert list(frr) == [0.0, 0.0, 0.5, 1.0]


def test_eer_separable_is_zero():
    e, t = eer([0.8, 0.9], [0.1, 0.2, 0.3])
    assert e == 0.0
    assert 0.3 < t <= 0.8


def test_eer_interpolates_by_hand():
    # thresholds 0.1..0.4: (far, frr) = (1, 0) (.5, 0) (.5, .5) (0, .5) ... crossing at 0.3
    pos = [0.3, 0.4]
    neg = [0.1, 0.35]
    # at t=0.3: far=.5, frr=0 (diff .5); t=0.35: far=.5, frr=.5 (diff 0) -> EER .5 at t=.35
    e, t = eer(pos, neg)
    assert e == pytest.approx(0.5)
    assert t == pytest.approx(0.35)


def test_eer_exact_crossing():
    # t=0.4: far .5 (0.4, 0.6), frr .25 (0.3); t=0.5: far .25, frr .25 -> EER .25 at 0.5
    pos = [0.3, 0.5, 0.7, 0.9]
    neg = [0.2, 0.4, 0.6, 0.1]
    e, t = eer(pos, neg)
    assert e == pytest.approx(0.25)
    assert t == pytest.approx(0.5)


def test_eer_interpolation_between_points():
    # t=0.4: far 2/3, frr 1/2 (diff +1/6); t=0.45: far 1/3, frr 1/2 (diff -1/6)
    # -> halfway: far 2/3 + (1/3 - 2/3)/2 = 1/2 at t = 0.425
    e, t = eer([0.3, 0.5], [0.2, 0.4, 0.45])
    assert e == pytest.approx(0.5)
    assert t == pytest.approx(0.425)


def test_auc_by_hand():
    assert auc([1, 2], [0, -1]) == 1.0
    assert auc([0, 0], [0, 0]) == 0.5
    # pos 0.5 beats 0.1, loses to 0.9; pos 0.95 beats both -> 3/4
    assert auc([0.5, 0.95], [0.1, 0.9]) == 0.75


def test_threshold_for_far_by_hand():
    neg = np.arange(100) / 100.0  # 0.00 .. 0.99
    t = threshold_for_far(neg, 0.01)  # one accept allowed: 0.99 only
    assert 0.98 < t <= 0.99
    assert far_frr([1.0], neg, t)[0] == 0.01
    t = threshold_for_far(neg, 0.1)
    assert far_frr([1.0], neg, t)[0] == pytest.approx(0.1)
    # nothing may be accepted: just above the highest
    t = threshold_for_far(neg[:50], 0.01)
    assert t > 0.49 and far_frr([1.0], neg[:50], t)[0] == 0.0


def test_threshold_for_far_with_ties():
    neg = [0.5, 0.5, 0.5, 0.1]
    t = threshold_for_far(neg, 0.5)  # at most 2 accepts, but three tie at 0.5 -> accept none of them
    assert far_frr([1.0], neg, t)[0] == 0.0
    assert 0.5 < t < 0.51
