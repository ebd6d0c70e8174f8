#!/usr/bin/env bash
# Sets up what a fresh machine lacks, from the package registries only:
#   - .venv/ with PyPI's onnxruntime 1.31.1 wheel (it carries libonnxruntime.so) and the
#     Python packages the scripts and Python tests use;
#   - runtime/libonnxruntime.so, a link to the wheel's library, where twin looks first.
# Idempotent: a second run only checks. `--gpu` installs onnxruntime-gpu instead (CUDA 13).
set -euo pipefail
cd "$(dirname "$0")/.."

ort_package="onnxruntime==1.31.1"
[ "${1:-}" = "--gpu" ] && ort_package="onnxruntime-gpu==1.31.1"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import onnxruntime, numpy, onnx, pytest" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "$ort_package" -r scripts/requirements.txt
fi

lib=$(.venv/bin/python - <<'PY'
import glob, os, onnxruntime
capi = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
found = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")))
print(found[-1] if found else "")
PY
)
if [ -z "$lib" ]; then
  echo "setup: the onnxruntime wheel carries no libonnxruntime.so; reinstall with: .venv/bin/pip install --force-reinstall $ort_package" >&2
  exit 1
fi
mkdir -p runtime
ln -sf "$lib" runtime/libonnxruntime.so
echo "setup: ONNX Runtime library at runtime/libonnxruntime.so -> $lib"
