#!/usr/bin/env bash
# The same recipe as `training/run.sh STAGE` (default `v2-all`: signature-v2), on one CUDA GPU (PyPI's default Linux torch wheel
# carries CUDA). Preprocessing stays on the CPU in Rust (`twin preprocess`, ~40 s for BHSig);
# training the 30 epochs takes a few minutes on a GPU. Not run in this repo's CI (no GPU).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/setup.sh"
"$here/.venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
stage="${1:-v2-all}"
shift || true
DEVICE=cuda "$here/run.sh" "$stage" "$@"
