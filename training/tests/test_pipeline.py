"""A few-step train → export → load smoke test (needs torch; skipped without it).

The cache is built by `twin preprocess` from images of `twin synth` when the `twin` binary
exists (target/debug/twin or $TWIN_BIN), else from random tensors. The exported manifest is
checked field by field against `ModelManifest` in crates/twin-core/src/manifest.rs, and the
model is loaded with onnxruntime; with a `twin` binary that can embed, Rust parity is checked
by `twin_train.parity_rust`'s own test.
"""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from twin_train import export, manifest, train  # noqa: E402
from twin_train.embed import onnx_embed, onnx_session  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MANIFEST_RS = REPO / "crates/twin-core/src/manifest.rs"


def rust_struct_fields(name: str, source: Path | None = None) -> set[str]:
    text = (source or MANIFEST_RS).read_text()
    body = re.search(r"pub struct " + name + r" \{(.*?)\n\}", text, re.S).group(1)
    return set(re.findall(r"^\s*pub (\w+):", body, re.M))


def fake_cache(prefix: Path, h=32, w=64):
    rng = np.random.default_rng(0)
    samples, xs = [], []
    for writer in range(1, 9):
        base = rng.random((1, h, w)) < 0.1
        for i in range(6):
            forged = i >= 4
            img = base if not forged else rng.random((1, h, w)) < 0.1
            noise = rng.random((1, h, w)) < 0.02
            xs.append((img ^ noise).astype(np.float32))
            samples.append({"path": f"w{writer}_{i}.png", "subject": f"{writer:03d}", "kind": "forged" if forged else "genuine"})
    np.save(prefix.with_name(prefix.name + ".npy"), np.stack(xs))
    meta = {
        "input": {"name": "image", "channels": 1, "height": h, "width": w},
        "preprocess": {"binarize": True, "crop_to_ink": True, "margin": 0.0, "mean": 0.0, "std": 1.0},
        "count": len(samples),
        "samples": samples,
        "skipped": [],
    }
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(meta))


def test_train_export_load(tmp_path):
    prefix = tmp_path / "cache"
    fake_cache(prefix)
    run = tmp_path / "run"
    train.main([
        "--cache", str(prefix), "--out", str(run), "--train-writers", "1-6", "--val-writers", "7-8",
        "--epochs", "2", "--steps-per-epoch", "2", "--writers-per-batch", "4", "--genuine-per-writer", "3",
        "--forged-per-writer", "1", "--widths", "8,8,8,8", "--grid", "1,2", "--device", "cpu", "--threads", "1",
    ])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0 <= r["val_eer_skilled"] <= 1 for r in log)

    model_dir = tmp_path / "model"
    export.main(["--checkpoint", str(run / "best.pt"), "--out", str(model_dir), "--cache", str(prefix),
                 "--parity-images", "8", "--name", "smoke"])
    m = manifest.read(model_dir / "manifest.toml")
    # exactly ModelManifest's fields, so the Rust loader (deny_unknown_fields) accepts it
    assert set(m) <= rust_struct_fields("ModelManifest")
    assert set(rust_struct_fields("ModelManifest")) - set(m) <= {"description", "operating_points", "evaluation",
                                                                 "subject_operating_points", "joint", "face"}
    # since text models (issue 22) an image input is `ImageInput` (InputSpec is an enum of kinds)
    image_input = "ImageInput" if "pub struct ImageInput" in MANIFEST_RS.read_text() else "InputSpec"
    assert set(m["input"]) == rust_struct_fields(image_input)
    assert set(m["preprocess"]) == rust_struct_fields("PreprocessSpec")
    assert set(m["output"]) == rust_struct_fields("OutputSpec")
    assert m["id"] == manifest.sha256_file(model_dir / "model.onnx")

    sess = onnx_session(str(model_dir / "model.onnx"))
    (inp,) = sess.get_inputs()
    assert inp.name == m["input"]["name"]
    assert inp.shape[1:] == [1, 32, 64] and not isinstance(inp.shape[0], int)  # dynamic batch
    assert sess.get_outputs()[0].name == m["output"]["name"]
    x = np.load(prefix.with_name("cache.npy"))[:5]
    e = onnx_embed(sess, x)
    assert e.shape == (5, m["output"]["embedding_size"])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def tiny_run_args(prefix, steps):
    """One epoch of `steps` steps of a tiny branch on writers 1-6 of a fake cache, seed 3."""
    return ["--cache", str(prefix), "--train-writers", "1-6", "--val-writers", "7-8", "--epochs", "1",
            "--steps-per-epoch", str(steps), "--writers-per-batch", "4", "--genuine-per-writer", "3",
            "--widths", "8,8,8,8", "--grid", "1,2", "--device", "cpu", "--threads", "1", "--seed", "3"]


def test_training_is_reproducible(tmp_path):
    prefix = tmp_path / "cache"
    fake_cache(prefix)
    args = tiny_run_args(prefix, 2)
    train.main(args + ["--out", str(tmp_path / "a")])
    train.main(args + ["--out", str(tmp_path / "b")])
    a = torch.load(tmp_path / "a/last.pt", weights_only=False)["state"]
    b = torch.load(tmp_path / "b/last.pt", weights_only=False)["state"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ema_weights_are_what_is_saved(tmp_path):
    prefix = tmp_path / "cache"
    fake_cache(prefix)
    args = tiny_run_args(prefix, 3)
    train.main(args + ["--out", str(tmp_path / "raw")])
    train.main(args + ["--out", str(tmp_path / "ema"), "--ema", "0.5"])
    raw = torch.load(tmp_path / "raw/last.pt", weights_only=False)["state"]
    ema = torch.load(tmp_path / "ema/last.pt", weights_only=False)["state"]
    assert raw.keys() == ema.keys()
    # same training trajectory, so the saved weights differ only by the averaging
    moved = [k for k in raw if raw[k].is_floating_point() and not torch.equal(raw[k], ema[k])]
    assert "fc.weight" in moved
    with pytest.raises(SystemExit, match="decay"):
        train.main(args + ["--out", str(tmp_path / "bad"), "--ema", "1.5"])


def test_refresh_bn_recomputes_statistics_for_the_current_weights():
    from twin_train.model import build

    torch.manual_seed(0)
    model = build({"channels": 1, "widths": [4, 4, 4, 4], "grid": [1, 1], "dim": 8, "dropout": 0.5})
    x = np.random.default_rng(0).random((12, 1, 16, 32), dtype=np.float32)
    stem_bn = model.stem[1]
    stem_bn.running_mean.fill_(5.0)  # stale statistics, as averaging leaves them
    train.refresh_bn(model, x, np.arange(12), "cpu", batch=4)
    with torch.no_grad():
        out = model.stem[0](torch.from_numpy(x))
    np.testing.assert_allclose(stem_bn.running_mean.numpy(), out.mean((0, 2, 3)).numpy(), atol=1e-5)
    # per-batch unbiased variances, averaged (what BatchNorm's cumulative mode keeps)
    per_batch = [out[i:i + 4].transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for i in range(0, 12, 4)]
    np.testing.assert_allclose(stem_bn.running_var.numpy(), torch.stack(per_batch).mean(0).numpy(), rtol=1e-4)
    assert not model.training and stem_bn.momentum == 0.1


def twin_binary():
    path = Path(os.environ.get("TWIN_BIN", REPO / "target/debug/twin"))
    return path if path.is_file() else None


def write_png(path: Path, img: np.ndarray) -> None:
    import struct
    import zlib

    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.skipif(twin_binary() is None, reason="no twin binary (cargo build -p twin-cli) or $TWIN_BIN")
def test_exported_model_loads_in_rust(tmp_path):
    """train → export → `twin preprocess --embed` (twin-embed loads and runs the model):
    embeddings equal onnxruntime-Python's on twin's own tensors."""
    lib = Path(os.environ.get("TWIN_ORT_DYLIB", REPO / "runtime/libonnxruntime.so"))
    if not lib.exists():
        pytest.skip("no ONNX Runtime library (scripts/setup.sh)")
    prefix = tmp_path / "cache"
    fake_cache(prefix)
    train.main(["--cache", str(prefix), "--out", str(tmp_path / "run"), "--train-writers", "1-6", "--val-writers", "7-8",
                "--epochs", "1", "--steps-per-epoch", "1", "--writers-per-batch", "4", "--genuine-per-writer", "3",
                "--widths", "8,8,8,8", "--grid", "1,2", "--device", "cpu", "--threads", "1"])
    model_dir = tmp_path / "model"
    export.main(["--checkpoint", str(tmp_path / "run/best.pt"), "--out", str(model_dir), "--parity-images", "4"])

    rng = np.random.default_rng(1)
    lines = []
    for i in range(3):
        img = np.full((60, 150), 255, np.uint8)
        for _ in range(6):  # a few dark strokes
            y, x = rng.integers(5, 50), rng.integers(5, 130)
            img[y : y + 3, x : x + 15] = 20
        write_png(tmp_path / f"s{i}.png", img)
        lines.append(f"s{i}.png\t001\tgenuine")
    (tmp_path / "list.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rust"
    subprocess.run([str(twin_binary()), "preprocess", "--list", str(tmp_path / "list.tsv"), "--model", str(model_dir),
                    "--embed", "--out", str(out)], check=True, env={**os.environ, "TWIN_ORT_DYLIB": str(lib), "RUST_LOG": "warn"})
    x = np.load(str(out) + ".npy")
    e_rust = np.load(str(out) + ".embeddings.npy")
    assert x.shape == (3, 1, 32, 64) and e_rust.shape == (3, 128)
    e_py = onnx_embed(onnx_session(str(model_dir / "model.onnx")), x)
    np.testing.assert_allclose(e_rust, e_py, atol=1e-5)
    index = json.loads(Path(str(out) + ".json").read_text())
    assert [s["subject"] for s in index["samples"]] == ["001"] * 3


def mixed_cache(prefix: Path, h=32, w=64):
    """A combined cache: 6 `bhsig:` writers, 2 `icdar:` writers (validation split ids) and 8
    synthetic ones, each with 4 genuine images and 2 forgeries."""
    rng = np.random.default_rng(1)
    subjects = [f"bhsig:{i:03d}" for i in range(1, 7)] + ["icdar:013", "icdar:017"] + [f"synth:w{i:04d}" for i in range(1, 9)]
    samples, xs = [], []
    for subject in subjects:
        base = rng.random((1, h, w)) < 0.1
        for i in range(6):
            forged = i >= 4
            img = base if not forged else rng.random((1, h, w)) < 0.1
            xs.append((img ^ (rng.random((1, h, w)) < 0.02)).astype(np.float32))
            samples.append({"path": f"{subject}_{i}.png", "subject": subject, "kind": "forged" if forged else "genuine"})
    np.save(prefix.with_name(prefix.name + ".npy"), np.stack(xs))
    meta = {"input": {"name": "image", "channels": 1, "height": h, "width": w},
            "preprocess": {"binarize": True, "crop_to_ink": True, "margin": 0.0, "mean": 0.0, "std": 1.0},
            "count": len(samples), "samples": samples, "skipped": []}
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(meta))


MIXED_ARGS = ["--train-writers", "bhsig:1-4,synth:*", "--val-writers", "icdar:val,bhsig:5-6",
              "--steps-per-epoch", "2", "--writers-per-batch", "4", "--synth-per-batch", "2", "--genuine-per-writer", "2",
              "--forged-per-writer", "1", "--widths", "8,8,8,8", "--grid", "1,2", "--stem", "gentle", "--pool", "hybrid",
              "--device", "cpu", "--threads", "1", "--ema", "0.9"]


def test_co_training_on_synthetic_writers_and_resume(tmp_path, capsys):
    """The synthetic co-training step: batches hold real and synthetic writers in the asked
    proportion, validation reports each collection; and an interrupted run resumed from
    last.pt ends exactly where an uninterrupted one does."""
    prefix = tmp_path / "cache"
    mixed_cache(prefix)
    with pytest.raises(ValueError, match="both the train and the val split"):
        train.main(["--cache", str(prefix), "--out", str(tmp_path / "bad"), "--epochs", "1", *MIXED_ARGS[:1],
                    "bhsig:1-6", "--val-writers", "bhsig:6-6"])
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.main(["--cache", str(prefix), "--out", str(straight), "--epochs", "3", *MIXED_ARGS])
    out = capsys.readouterr().out
    assert "batch 2+2x(2+1)" in out, out
    train.main(["--cache", str(prefix), "--out", str(split), "--epochs", "3", "--stop-after-epoch", "2", *MIXED_ARGS])
    train.main(["--cache", str(prefix), "--out", str(split), "--epochs", "3", "--resume", *MIXED_ARGS])
    assert "resume:" in capsys.readouterr().out
    a = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (split / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert ra["loss"] == rb["loss"] and ra["val_eer_skilled"] == rb["val_eer_skilled"]
        assert {"val_eer_skilled_icdar", "val_eer_skilled_bhsig"} <= set(ra)
    sa = torch.load(straight / "last.pt", weights_only=False)["state"]
    sb = torch.load(split / "last.pt", weights_only=False)["state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_manifest_writer_knows_every_field_of_the_optional_tables():
    """What `twin calibrate --references` and the joint head add, training writes back unchanged."""
    decision_rs = MANIFEST_RS.with_name("decision.rs")
    assert set(manifest.SUBJECT_POINT_FIELDS) == rust_struct_fields("SubjectOperatingPoint", decision_rs)
    assert set(manifest.JOINT_FIELDS) == rust_struct_fields("JointSpec")
    shipped = manifest.read(REPO / "models/signature-v2/manifest.toml")
    assert shipped["subject_operating_points"] and shipped["joint"]
    assert tomllib.loads(manifest.dumps(shipped)) == shipped


def test_the_shipped_face_manifest_has_exactly_the_face_contract_fields():
    """models/face-v1's [face] table, as twin_train.face.ship writes it, is FaceSpec's fields."""
    import tomllib

    m = tomllib.loads((Path(__file__).resolve().parents[2] / "models/face-v1/manifest.toml").read_text())
    assert set(m["face"]) == rust_struct_fields("FaceSpec")
    assert set(m) <= rust_struct_fields("ModelManifest")
    assert "preprocess" not in m
