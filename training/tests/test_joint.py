"""The joint head's trainer on a small labelled set of embeddings: it trains, exports a graph
that ONNX Runtime scores as PyTorch did, and declares it in the manifest."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

from twin_train import joint, manifest

REPO = Path(__file__).resolve().parents[2]


def fake_embeddings(prefix: Path, dim=128):
    rng = np.random.default_rng(0)
    samples, vectors = [], []
    for writer in ["001", "002", "003", "004", "051", "052", "061", "062"]:
        centre = rng.normal(size=dim)
        for i in range(6):
            forged = i >= 4
            v = centre + rng.normal(scale=0.3 if not forged else 1.0, size=dim)
            samples.append({"path": f"{writer}-{i}.png", "subject": f"bhsig:{writer}",
                            "kind": "forged" if forged else "genuine"})
            vectors.append(v / np.linalg.norm(v))
    np.save(prefix.with_name(prefix.name + ".embeddings.npy"), np.array(vectors, dtype=np.float32))
    prefix.with_name(prefix.name + ".json").write_text(json.dumps({"samples": samples}))


def test_joint_head_trains_exports_and_is_declared(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(REPO / "models/signature-dev", model)
    prefix = tmp_path / "emb"
    fake_embeddings(prefix)
    joint.main(["--embeddings", str(prefix), "--model", str(model), "--epochs", "3", "--hidden", "0,8"])
    m = manifest.read(model / "manifest.toml")
    assert m["joint"]["file"] == "joint.onnx"
    assert m["joint"]["sha256"] == manifest.sha256_file(model / "joint.onnx")
    report = json.loads((model / "joint.json").read_text())
    assert report["chosen_hidden"] in (0, 8) and len(report["candidates"]) == 2
    for candidate in report["candidates"]:
        assert 0 <= candidate["val_mean_skilled_eer"] <= 1 and set(candidate["test"]) == {"bhsig"}
    session = ort.InferenceSession(str(model / "joint.onnx"), providers=["CPUExecutionProvider"])
    a = np.array(report["parity"]["a"], dtype=np.float32)
    b = np.array(report["parity"]["b"], dtype=np.float32)
    (onnx,) = session.run(["score"], {"a": a, "b": b})
    np.testing.assert_allclose(onnx, report["parity"]["torch"], atol=1e-6)
    (swapped,) = session.run(["score"], {"a": b, "b": a})
    np.testing.assert_allclose(onnx, swapped, atol=1e-6)  # |a - b| and a * b: symmetric
    # any batch size: the batch axis is dynamic
    (one,) = session.run(["score"], {"a": a[:1], "b": b[:1]})
    assert one.shape == (1,)
