#!/usr/bin/env bash
# The signature model's whole life cycle, one command per stage; `all` reproduces
# models/signature-v1 and its model card figures.
#
#   training/run.sh preprocess   BHSig list -> `twin preprocess` -> $WORK/bhsig.<H>x<W>.{npy,json}
#   training/run.sh train        -> $WORK/runs/signature-v1/{best,last}.pt, log.jsonl
#   training/run.sh export       -> models/signature-v1/{model.onnx,manifest.toml} + parity check
#   training/run.sh calibrate    thresholds on validation writers -> manifest operating points
#   training/run.sh evaluate     test-writer figures -> manifest [evaluation], evaluation.json
#   training/run.sh parity-rust  twin-embed (Rust) vs onnxruntime-Python on the same images
#   training/run.sh card         MODEL_CARD.md from the measured figures
#   training/run.sh all          every stage above, in order
#
# Omniglot (models/omniglot-v1; images_background only for training and model selection):
#   training/run.sh omniglot-preprocess  zips -> `twin preprocess` -> $WORK/omniglot/background.28x28.{npy,json}
#   training/run.sh omniglot-train       -> $WORK/runs/omniglot-v1/{best,last}.pt, log.jsonl
#   training/run.sh omniglot-export      -> models/omniglot-v1/{model.onnx,manifest.toml} + parity check
#   training/run.sh omniglot-eval        Lake's 20-way one-shot runs through twin-embed; operating points
#                                        calibrated on the held-out background alphabets -> manifest
#   training/run.sh omniglot-card        models/omniglot-v1/MODEL_CARD.md from the measured figures
#   training/run.sh omniglot-all         every Omniglot stage above, in order
#
# Environment: TWIN_DATA (default ../shared/data next to the repo), TWIN_TRAIN_WORK (caches and
# runs, default ~/.cache/twin-train; never inside the repo), TWIN_BIN (the twin binary,
# default: built with cargo), THREADS (torch threads, default 1), EPOCHS, OMNI_EPOCHS, SEED,
# DEVICE (cpu|cuda|auto).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
cd "$here"

DATA="${TWIN_DATA:-$repo/../shared/data}"
WORK="${TWIN_TRAIN_WORK:-$HOME/.cache/twin-train}"
H=96
W=320
MARGIN=0.02
CACHE="$WORK/bhsig.${H}x${W}"
RUN="$WORK/runs/signature-v1"
MODEL="$repo/models/signature-v1"
PY="$here/.venv/bin/python"
EPOCHS="${EPOCHS:-30}"
SEED="${SEED:-7}"
DEVICE="${DEVICE:-auto}"
# the shipped weights were trained with 1 thread; on one machine the same count gives the same
# weights every run (another CPU or thread count moves the figures within noise: EXPERIMENTS.md)
THREADS="${THREADS:-1}"
export TWIN_ORT_DYLIB="${TWIN_ORT_DYLIB:-$repo/runtime/libonnxruntime.so}"

twin_bin() {
  if [ -n "${TWIN_BIN:-}" ]; then echo "$TWIN_BIN"; return; fi
  (cd "$repo" && cargo build -q -p twin-cli >&2)
  echo "$repo/target/debug/twin"
}

need_py() {
  [ -x "$PY" ] || { echo "run training/setup.sh first (creates training/.venv with PyTorch)" >&2; exit 1; }
}

preprocess() {
  need_py
  mkdir -p "$WORK"
  "$PY" -m twin_train.data list --reader bhsig --root "$DATA/bhsig260-bengali" --out "$WORK/bhsig.tsv"
  "$(twin_bin)" preprocess --list "$WORK/bhsig.tsv" --height "$H" --width "$W" --margin "$MARGIN" --out "$CACHE"
}

train() {
  need_py
  "$PY" -m twin_train.train --cache "$CACHE" --out "$RUN" --epochs "$EPOCHS" --seed "$SEED" \
    --device "$DEVICE" --threads "$THREADS" --train-writers 1-50 --val-writers 51-60 \
    --widths 24,48,64,96 --grid 1,1 --loss semihard --margin 0.2 --skilled-weight 1.0 --lr 1e-3 \
    --augment p_dilate=0,p_erode=0 --steps-per-epoch 26 --ema 0.99 "$@"
}

export_model() {
  need_py
  "$PY" -m twin_train.export --checkpoint "$RUN/best.pt" --out "$MODEL" --cache "$CACHE" --name signature-v1
}

calibrate() {
  need_py
  "$PY" -m twin_train.evaluate calibrate --model "$MODEL" --cache "$CACHE" --val-writers 51-60
}

evaluate() {
  need_py
  "$PY" -m twin_train.evaluate evaluate --model "$MODEL" --cache "$CACHE" --val-writers 51-60 --test-writers 61-100
}

parity_rust() {
  need_py
  "$PY" -m twin_train.parity_rust --model "$MODEL" --cache "$CACHE" --twin "$(twin_bin)"
}

card() {
  need_py
  "$PY" -m twin_train.card --model "$MODEL" --run "$RUN"
}

# ---- Omniglot ----------------------------------------------------------------------------
OMNI_DATA="$DATA/omniglot"
OMNI_WORK="$WORK/omniglot"
OMNI_SIDE=28
OMNI_MARGIN=0.1
OMNI_CACHE="$OMNI_WORK/background.${OMNI_SIDE}x${OMNI_SIDE}"
OMNI_RUN="$WORK/runs/omniglot-v1"
OMNI_MODEL="$repo/models/omniglot-v1"
OMNI_VAL_ALPHABETS=5
OMNI_EPOCHS="${OMNI_EPOCHS:-12}"

omniglot_preprocess() {
  need_py
  mkdir -p "$OMNI_WORK"
  "$PY" -m twin_train.data list --reader omniglot --root "$OMNI_DATA/images_background.zip" \
    --extract-to "$OMNI_WORK/raw" --out "$OMNI_WORK/background.tsv"
  "$(twin_bin)" preprocess --list "$OMNI_WORK/background.tsv" --height "$OMNI_SIDE" --width "$OMNI_SIDE" \
    --margin "$OMNI_MARGIN" --out "$OMNI_CACHE"
}

omniglot_train() {
  need_py
  "$PY" -m twin_train.train --layout omniglot --cache "$OMNI_CACHE" --out "$OMNI_RUN" --epochs "$OMNI_EPOCHS" \
    --seed "$SEED" --device "$DEVICE" --threads "$THREADS" --val-alphabets "$OMNI_VAL_ALPHABETS" \
    --rotations 0,90,180,270 --arch conv4 --widths 64 --dropout 0 --loss semihard --margin 0.2 \
    --writers-per-batch 64 --genuine-per-writer 4 --steps-per-epoch 100 --warmup-epochs 0.3 --lr 2e-3 \
    --val-episodes 200 --augment rotate_deg=10,scale=0.1,shear=0.1,translate=0.05,p_dilate=0,p_erode=0,p_noise=0 "$@"
}

omniglot_export() {
  need_py
  "$PY" -m twin_train.export --checkpoint "$OMNI_RUN/best.pt" --out "$OMNI_MODEL" --cache "$OMNI_CACHE" \
    --name omniglot-v1 --description "Omniglot handwritten characters (images_background, Conv-4, semi-hard triplet loss)"
}

omniglot_eval() {
  need_py
  "$PY" -m twin_train.omniglot oneshot --model "$OMNI_MODEL" --runs "$OMNI_DATA/all_runs.zip" \
    --extract-to "$OMNI_WORK/runs" --twin "$(twin_bin)" --val-cache "$OMNI_CACHE" \
    --val-alphabets "$OMNI_VAL_ALPHABETS" --seed "$SEED"
}

omniglot_card() {
  need_py
  "$PY" -m twin_train.omniglot card --model "$OMNI_MODEL" --run "$OMNI_RUN"
}

stage="${1:-}"
shift || true
case "$stage" in
  preprocess) preprocess ;;
  train) train "$@" ;;
  export) export_model ;;
  calibrate) calibrate ;;
  evaluate) evaluate ;;
  parity-rust) parity_rust ;;
  card) card ;;
  all) preprocess; train "$@"; export_model; calibrate; evaluate; parity_rust; card ;;
  omniglot-preprocess) omniglot_preprocess ;;
  omniglot-train) omniglot_train "$@" ;;
  omniglot-export) omniglot_export ;;
  omniglot-eval) omniglot_eval ;;
  omniglot-card) omniglot_card ;;
  omniglot-all) omniglot_preprocess; omniglot_train "$@"; omniglot_export; omniglot_eval; omniglot_card ;;
  *) sed -n '2,27p' "$0"; exit 2 ;;
esac
