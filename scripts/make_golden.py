#!/usr/bin/env python3
"""Regenerates twin-embed's golden files: what onnxruntime-Python computes for tensors made
by twin's RUST preprocessing. The test crates/twin-embed/tests/golden.rs then checks that
twin-embed gives the same embeddings (within 1e-5) and that the Rust preprocessing still
makes the same tensors of the same images.

    .venv/bin/python scripts/make_golden.py

Steps:
  1. `cargo run -p twin-embed --example golden_inputs` writes images/*, tensors.npy and
     inputs.json under crates/twin-embed/tests/golden/ (Rust preprocessing);
  2. onnxruntime (CPU) runs the model on tensors.npy, one batch, -> outputs.npy;
  3. fixtures for the model-contract tests (a graph with a rank-3 input, a graph whose
     outputs are not L2-normalized).
Rerun it when the development model or the preprocessing changes on purpose.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "signature-dev"
GOLDEN = ROOT / "crates" / "twin-embed" / "tests" / "golden"
FIXTURES = ROOT / "crates" / "twin-embed" / "tests" / "fixtures"


def rank3_fixture() -> None:
    """A graph whose input is [N, H, W] (no channel axis): the loader must refuse it."""
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["embedding"], axis=1)],
        "rank3",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 80, 160])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 12800])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "rank3.onnx").write_bytes(model.SerializeToString())


def unnormalized_fixture() -> None:
    """The dev model's input and output shapes without L2 normalization (1x1 conv to 128
    channels of weight 3, average pool): outputs have norm far from 1."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [128, 1, 1, 1], [3.0] * 128)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["g"]),
         helper.make_node("Flatten", ["g"], ["embedding"], axis=1)],
        "unnormalized",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 80, 160])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 128])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (FIXTURES / "unnormalized.onnx").write_bytes(model.SerializeToString())


def main() -> None:
    subprocess.run(
        ["cargo", "run", "--quiet", "-p", "twin-embed", "--example", "golden_inputs", "--",
         str(MODEL), str(GOLDEN)],
        cwd=ROOT, check=True)
    tensors = np.load(GOLDEN / "tensors.npy")
    assert tensors.dtype == np.float32 and tensors.ndim == 4, tensors.shape

    session = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(["embedding"], {"image": tensors})
    np.save(GOLDEN / "outputs.npy", outputs.astype(np.float32))

    listing = json.loads((GOLDEN / "inputs.json").read_text())
    listing["onnxruntime"] = ort.__version__
    listing["outputs_shape"] = list(outputs.shape)
    (GOLDEN / "inputs.json").write_text(json.dumps(listing, indent=2) + "\n")
    rank3_fixture()
    unnormalized_fixture()
    print(f"make_golden: {len(listing['images'])} images, outputs {outputs.shape} "
          f"with onnxruntime {ort.__version__} -> {GOLDEN}")


if __name__ == "__main__":
    main()
