"""Omniglot data code: alphabet splits, rotated classes, Lake-style episodes, one-shot scoring,
and the prototypical loss (torch, skipped without it)."""

import numpy as np
import pytest

from twin_train import omniglot
from twin_train.readers import GENUINE, OneShotRun, Sample


def samples(alphabets=("A", "B", "C", "D"), chars=3, drawers=4):
    out = []
    for a in alphabets:
        for c in range(1, chars + 1):
            for d in range(1, drawers + 1):
                out.append(Sample(f"/x/{a}/character{c:02d}/{c:04d}_{d:02d}.png", f"{a}/character{c:02d}", GENUINE))
    return out


def test_drawer_and_alphabet():
    assert omniglot.drawer("/x/Greek/character01/0394_07.png") == "07"
    assert omniglot.alphabet("Greek/character01@90") == "Greek"


def test_val_alphabets_by_count_and_name():
    s = samples()
    assert omniglot.val_alphabets(s, "2") == ["B", "D"]
    assert omniglot.val_alphabets(s, "C,A") == ["C", "A"]
    assert omniglot.val_alphabets(s, "") == []
    with pytest.raises(ValueError, match="unknown"):
        omniglot.val_alphabets(s, "Klingon")
    with pytest.raises(ValueError):
        omniglot.val_alphabets(s, "4")


def test_split_keeps_alphabets_apart():
    s = samples()
    tr, va = omniglot.split(s, ["B"])
    assert {omniglot.alphabet(s[i].subject) for i in va} == {"B"}
    assert "B" not in {omniglot.alphabet(s[i].subject) for i in tr}
    assert len(tr) + len(va) == len(s)


def test_rotations_are_new_classes():
    s = samples(("A",), chars=2, drawers=1)
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    x_all, subj = omniglot.with_rotations(x, s, np.array([1]), (0, 90, 180))
    assert x_all.shape == (4, 1, 3, 3)
    assert subj == ["A/character01", "A/character02", "A/character02@90", "A/character02@180"]
    np.testing.assert_array_equal(x_all[2, 0], np.rot90(x[1, 0]))
    np.testing.assert_array_equal(x_all[3, 0], x[1, 0, ::-1, ::-1])
    with pytest.raises(ValueError, match="square"):
        omniglot.with_rotations(np.zeros((2, 1, 3, 4), np.float32), s, np.array([0]), (0, 90))


def test_episodes_are_lake_style():
    s = samples(chars=5, drawers=4)
    _, va = omniglot.split(s, ["A", "C"])
    eps = omniglot.episodes(s, va, 5, 30, seed=1)
    again = omniglot.episodes(s, va, 5, 30, seed=1)  # seeded
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(eps, again))
    for support, query in eps:
        assert len(support) == len(query) == 5
        # one alphabet; query i is the same character as support i, by another drawer
        assert len({omniglot.alphabet(s[i].subject) for i in np.r_[support, query]}) == 1
        for a, b in zip(support, query):
            assert s[a].subject == s[b].subject and omniglot.drawer(s[a].path) != omniglot.drawer(s[b].path)
        assert len({omniglot.drawer(s[i].path) for i in support}) == 1
    with pytest.raises(ValueError, match="6-way"):
        omniglot.episodes(s, va, 6, 1, seed=1)


def test_oneshot_accuracy_by_hand():
    emb = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.8, 0.2]], dtype=np.float32)
    eps = [(np.array([0, 1]), np.array([2, 3]))]  # query 2 -> 0 right, query 3 -> 0 wrong
    assert omniglot.oneshot_accuracy(emb, eps) == 0.5
    # through a position map (sample index -> row)
    assert omniglot.oneshot_accuracy(emb[::-1], [(np.array([0, 1]), np.array([2, 3]))], {0: 3, 1: 2, 2: 1, 3: 0}) == 0.5


def test_score_runs():
    run = OneShotRun("run01", ["q1", "q2"], ["t1", "t2"], [1, 0])
    emb = np.array([[1, 0], [0, 1], [0.1, 1], [1, 0.2]], dtype=np.float32)  # t1 t2 q1 q2
    (r,) = omniglot.score_runs([run], emb, ["t1", "t2", "q1", "q2"])
    assert (r["correct"], r["trials"]) == (2, 2)


def test_verification_scores():
    emb = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    pos, neg = omniglot.verification_scores(emb, ["a", "a", "b"])
    np.testing.assert_allclose(pos, [1.0])
    np.testing.assert_allclose(neg, [0.0, 0.0])


def test_proto_loss():
    torch = pytest.importorskip("torch")
    from twin_train.losses import proto

    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    loss, info = proto(e, labels, 10.0)
    assert info["active"] == 0.0
    # by hand: anchor 0's own prototype is e1 alone, the other class's is mean(e2, e3)
    other = torch.nn.functional.normalize((e[2] + e[3]) / 2, dim=0)
    logits = 10 * torch.stack([e[0] @ e[1], e[0] @ other])
    expected0 = -torch.log_softmax(logits, 0)[0]
    swapped, _ = proto(e[[0, 1, 2, 3]], torch.tensor([0, 0, 1, 1]), 10.0)
    assert torch.isclose(loss, swapped)
    assert loss.item() > 0 and expected0.item() > 0
    # a mislabelled batch is misclassified and costs more
    bad, info_bad = proto(e, torch.tensor([0, 1, 0, 1]), 10.0)
    assert bad > loss and info_bad["active"] > 0
    # forgeries (labels < 0) are ignored
    with_forged, _ = proto(torch.cat([e, e[:1]]), torch.tensor([0, 0, 1, 1, -5]), 10.0)
    assert torch.isclose(with_forged, loss)


def fake_omniglot_cache(prefix, side=28):
    """3 alphabets × 20 characters × 3 drawers of random glyphs (plus drawer noise)."""
    import json

    rng = np.random.default_rng(0)
    xs, recs = [], []
    for a in ("Alpha", "Beta", "Gamma"):
        for c in range(1, 21):
            base = rng.random((1, side, side)) < 0.15
            for d in range(1, 4):
                xs.append((base ^ (rng.random((1, side, side)) < 0.02)).astype(np.float32))
                recs.append({"path": f"/x/{a}/character{c:02d}/{c:04d}_{d:02d}.png", "subject": f"{a}/character{c:02d}",
                             "kind": GENUINE})
    np.save(str(prefix) + ".npy", np.stack(xs))
    prefix.with_name(prefix.name + ".json").write_text(json.dumps({
        "input": {"name": "image", "channels": 1, "height": side, "width": side},
        "preprocess": {"binarize": True, "crop_to_ink": True, "margin": 0.1, "mean": 0.0, "std": 1.0},
        "count": len(recs), "samples": recs, "skipped": []}))


def test_omniglot_train_export(tmp_path):
    """--layout omniglot: rotated classes, Conv-4, proto loss, one-shot validation, then an
    export with a dynamic batch axis and unit-norm 128-d output."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import json

    from twin_train import export, train
    from twin_train.embed import onnx_embed, onnx_session

    prefix = tmp_path / "cache"
    fake_omniglot_cache(prefix)
    run = tmp_path / "run"
    train.main(["--layout", "omniglot", "--cache", str(prefix), "--out", str(run), "--val-alphabets", "Beta",
                "--rotations", "0,90,180,270", "--arch", "conv4", "--widths", "8", "--loss", "proto", "--dropout", "0",
                "--epochs", "2", "--steps-per-epoch", "2", "--writers-per-batch", "8", "--genuine-per-writer", "3",
                "--val-episodes", "5", "--device", "cpu", "--threads", "1"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and 0 <= r["val_oneshot"] <= 1 for r in log)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_classes"] == 2 * 20 * 4  # two training alphabets, four rotations each
    ckpt = torch.load(run / "best.pt", weights_only=False)
    assert ckpt["model"]["arch"] == "conv4"
    model_dir = tmp_path / "model"
    export.main(["--checkpoint", str(run / "best.pt"), "--out", str(model_dir), "--cache", str(prefix),
                 "--parity-images", "8", "--name", "omniglot-smoke"])
    sess = onnx_session(str(model_dir / "model.onnx"))
    assert not isinstance(sess.get_inputs()[0].shape[0], int)
    e = onnx_embed(sess, np.load(str(prefix) + ".npy")[:7])
    assert e.shape == (7, 128)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
