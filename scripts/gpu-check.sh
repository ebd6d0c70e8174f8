#!/usr/bin/env bash
# GPU check for twin's embedding runtime, for a machine with an NVIDIA GPU (< 5 minutes
# once `twin` is built; building it first takes longer on a fresh machine).
#
#   bash scripts/gpu-check.sh [model dir]        # default models/signature-v2 (shipped)
#
# 1. installs onnxruntime-gpu 1.31.1 with its CUDA/cuDNN wheels into .venv (via
#    scripts/setup.sh --gpu) and points twin at that library;
# 2. proves every node of the model is placed on the CUDA execution provider: an ONNX
#    Runtime profile of one run through the same library lists each node's provider;
# 3. runs `twin bench embed` with embed.provider = cuda (fails loudly if CUDA is unusable)
#    and prints images/s through raw ort and the micro-batcher;
# 4. runs `twin bench verify` on CUDA (the gateway's Verify latency and throughput against
#    raw inference, issue #7's figures) and prints its table and JSON line.
# Exit status 0 only if the first three pass and the verify benchmark ran on CUDA; its
# ratio verdicts are printed, not enforced (they are measurements, not tests).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/signature-v2}
seconds=${GPU_CHECK_SECONDS:-2}
ort_gpu="onnxruntime-gpu[cuda,cudnn]==1.31.1"

step() { printf '\n== gpu-check: %s\n' "$*"; }
fail() { printf 'gpu-check: FAILED: %s\n' "$*" >&2; exit 1; }

step "GPU"
command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this machine has no NVIDIA driver"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  || fail "nvidia-smi cannot talk to a GPU"

step "onnxruntime-gpu into .venv"
bash scripts/setup.sh --gpu
has_cuda() { .venv/bin/python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; }
if ! has_cuda; then
  # .venv already held the CPU-only wheel; both install the same `onnxruntime` package.
  echo "gpu-check: replacing the CPU-only onnxruntime in .venv with $ort_gpu"
  .venv/bin/pip uninstall -q -y onnxruntime onnxruntime-gpu || true
fi
# The [cuda,cudnn] extras bring the CUDA runtime and cuDNN as wheels (nvidia-*), so no
# system CUDA toolkit is needed, only the driver.
.venv/bin/pip install -q --disable-pip-version-check "$ort_gpu"
bash scripts/setup.sh --gpu   # relinks runtime/libonnxruntime.so to the GPU wheel's library
has_cuda || fail "onnxruntime-gpu is installed but lists no CUDAExecutionProvider"

# The CUDA provider library sits next to the real libonnxruntime.so (the wheel's capi/
# directory) and needs the nvidia-* wheels' libraries on the loader path.
TWIN_ORT_DYLIB=$(readlink -f runtime/libonnxruntime.so)
nvidia_libs=$(.venv/bin/python - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for lib in glob.glob(os.path.join(sp, "nvidia", "*", "lib")):
        dirs.add(lib)
print(":".join(sorted(dirs)))
PY
)
export TWIN_ORT_DYLIB
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: ONNX Runtime library $TWIN_ORT_DYLIB"

step "node placement (ONNX Runtime profile of one batch on CUDA)"
.venv/bin/python - "$model" <<'PY'
import json, os, sys, tempfile
import numpy as np
import onnxruntime as ort

model_dir = sys.argv[1]
if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()  # the nvidia-* wheels' CUDA and cuDNN libraries
options = ort.SessionOptions()
options.enable_profiling = True
options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "twin-gpu-check")
session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options,
                               providers=["CUDAExecutionProvider"])
if session.get_providers()[0] != "CUDAExecutionProvider":
    sys.exit(f"gpu-check: session providers are {session.get_providers()}, CUDA was not used")
graph_input = session.get_inputs()[0]  # [N, C, H, W], N dynamic (the model contract)
x = np.random.default_rng(0).random([32, *graph_input.shape[1:]], dtype=np.float32)
session.run(None, {graph_input.name: x})
events = json.load(open(session.end_profiling()))
placement = {}
for e in events:
    if e.get("cat") == "Node" and "provider" in e.get("args", {}):
        name = e["name"].rsplit("_kernel_time", 1)[0]
        if e["name"].endswith("_kernel_time"):
            placement[name] = e["args"]["provider"]
if not placement:
    sys.exit("gpu-check: the profile holds no node events")
off_gpu = {n: p for n, p in placement.items() if p != "CUDAExecutionProvider"}
for n, p in sorted(placement.items()):
    print(f"  {p:<24} {n}")
if off_gpu:
    sys.exit(f"gpu-check: {len(off_gpu)} of {len(placement)} nodes did not run on the GPU: {off_gpu}")
print(f"gpu-check: all {len(placement)} nodes ran on CUDAExecutionProvider")
PY

step "twin bench embed, provider = cuda"
twin=${TWIN_BIN:-target/release/twin}
if [ ! -x "$twin" ]; then
  echo "gpu-check: building $twin (cargo build --release -p twin-cli)"
  cargo build --release -p twin-cli
fi
out=$(mktemp)
TWIN_EMBED__PROVIDER=cuda "$twin" bench embed --model "$model" --seconds "$seconds" | tee "$out"
json=$(tail -n 1 "$out")
echo "$json" | grep -q '"provider":"cuda"' || fail "the benchmark did not run on CUDA: $json"

step "twin bench verify, provider = cuda"
TWIN_EMBED__PROVIDER=cuda "$twin" bench verify --model "$model" --seconds "$seconds" --rounds 1 | tee "$out"
json=$(tail -n 1 "$out")
echo "$json" | grep -q '"provider":"cuda"' || fail "the verify benchmark did not run on CUDA: $json"
printf '\ngpu-check: PASSED (CUDA execution provider, every node on the GPU)\n'
