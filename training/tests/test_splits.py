"""The fixed writer splits: disjoint, complete, and what a spec selects."""

import numpy as np
import pytest

from twin_train import metrics, splits
from twin_train.readers import GENUINE, Sample


def samples(subjects):
    return [Sample(f"{s}.png", s, GENUINE) for s in subjects]


def test_icdar_split_is_disjoint_complete_and_about_60_15_25():
    train, val, test = set(splits.ICDAR_TRAIN), set(splits.ICDAR_VAL), set(splits.ICDAR_TEST)
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 64
    assert (len(train), len(val), len(test)) == (38, 10, 16)


def test_icdar_split_covers_the_shared_collection():
    root = splits.__file__.rsplit("/training/", 1)[0] + "/../shared/data/icdar2011-sign-data"
    import os

    if not os.path.isdir(root):
        pytest.skip("no ../shared/data/icdar2011-sign-data")
    on_disk = set(os.listdir(root))
    assert on_disk == set(splits.ICDAR_TRAIN) | set(splits.ICDAR_VAL) | set(splits.ICDAR_TEST)


def test_specs_select_by_collection_split_and_range():
    s = samples(["bhsig:001", "bhsig:050", "bhsig:051", "bhsig:061", "icdar:013", "icdar:002", "icdar:001",
                 "synth:w0001", "007"])
    pick = lambda spec: [s[i].subject for i in splits.select(s, spec)]  # noqa: E731
    assert pick("bhsig:train") == ["bhsig:001", "bhsig:050"]
    assert pick("bhsig:val,icdar:val") == ["bhsig:051", "icdar:013"]
    assert pick("bhsig:test,icdar:test") == ["bhsig:061", "icdar:002"]
    assert pick("synth:*") == ["synth:w0001"]
    assert pick("bhsig:40-55") == ["bhsig:050", "bhsig:051"]
    assert pick("1-10") == ["007"]  # unprefixed: a single-collection cache
    groups = splits.by_dataset(s, "icdar:val,bhsig:val")
    assert list(groups) == ["icdar", "bhsig"]
    with pytest.raises(ValueError, match="51-60"):
        splits.parse("bhsig:fifty")


def test_no_writer_in_two_splits():
    s = samples([f"bhsig:{i:03d}" for i in range(1, 101)] + [f"icdar:{w}" for w in splits.ICDAR_TRAIN + splits.ICDAR_VAL
                                                           + splits.ICDAR_TEST] + ["synth:w0001"])
    splits.check_disjoint(s, {"train": "bhsig:train,icdar:train,synth:*", "val": "bhsig:val,icdar:val",
                              "test": "bhsig:test,icdar:test"})
    with pytest.raises(ValueError, match="both the train and the val split"):
        splits.check_disjoint(s, {"train": "bhsig:1-55", "val": "bhsig:val"})


def test_threshold_for_mean_far_weighs_each_collection_the_same():
    big = np.array([0.1] * 97 + [0.9, 0.8, 0.7])  # 100 negatives
    small = np.array([0.2, 0.3, 0.85, 0.95])  # 4 negatives
    # threshold 0.9: big FAR 1/100, small 1/4 -> mean 0.13; 0.96: 0, 0 -> mean 0
    # target 0.13: the lowest threshold meeting it is 0.9 (0.85 would give mean (2/100 + 2/4)/2)
    t = metrics.threshold_for_mean_far([big, small], 0.13)
    assert 0.85 < t <= 0.9
    means = np.mean([np.mean(big >= t), np.mean(small >= t)])
    assert means <= 0.13
    # one collection: the plain threshold
    assert metrics.threshold_for_mean_far([big], 0.02) == metrics.threshold_for_far(big, 0.02)
