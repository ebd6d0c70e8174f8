#!/usr/bin/env bash
# Sets up and runs every test: Rust (cargo nextest; unit, property, contract, fault and
# end-to-end tests against the local RabbitMQ) and Python (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/ensure-rabbitmq.sh

export TWIN_ORT_DYLIB="${TWIN_ORT_DYLIB:-$PWD/runtime/libonnxruntime.so}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

# Python tests; pytest exits 5 when it collects nothing, which is not a failure here.
status=0
.venv/bin/python -m pytest -q training/tests scripts/tests || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then exit "$status"; fi
