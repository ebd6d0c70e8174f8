"""Embedding a tensor cache with a torch branch or an ONNX model (batched)."""

from __future__ import annotations

import numpy as np


def torch_embed(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def onnx_session(path: str, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def onnx_embed(session, x: np.ndarray, batch: int = 256) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = [session.run(None, {name: np.ascontiguousarray(x[i : i + batch])})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out)
