"""Assembles models/face-v1 from the project's own conversion of dlib's models (PyPI
face-recognition-models 0.3.0): the descriptor as model.onnx, the detector graph and its
config, the 5-point landmark model as JSON, the licences, and manifest.toml with every
file's sha256. Operating points are added afterwards by `twin calibrate --lfw`.

    python -m twin_train.face.ship --converted DIR --out models/face-v1
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .. import manifest as mf
from . import landmarks

LICENCES = """# Licences of the files in this directory

Every weight file here was converted by twin's own code (training/twin_train/face/) from the
PyPI package face-recognition-models 0.3.0 (https://pypi.org/project/face-recognition-models/,
MIT licence, by Adam Geitgey), which redistributes dlib's models (http://dlib.net, Davis E. King):

| file | converted from | licence of the weights |
|---|---|---|
| model.onnx | dlib_face_recognition_resnet_model_v1.dat | public domain (CC0), as released by Davis King with dlib's face recognition model |
| face_detector.onnx, detector.json | mmod_human_face_detector.dat | public domain (CC0), as released by Davis King with dlib's MMOD face detector |
| landmarks.json | shape_predictor_5_face_landmarks.dat | public domain (CC0); trained by Davis King on his own 5-point dataset (dlib_faces_5points), released with that licence |

The 68-point landmark model of the same package is NOT used: its training data (iBUG 300-W)
forbids commercial use. The conversion code itself is twin's (its repository's licence).
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--converted", required=True, help="convert.py's --out directory")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    src, out = Path(args.converted), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "face_descriptor.onnx", out / "model.onnx")
    shutil.copyfile(src / "face_detector.onnx", out / "face_detector.onnx")
    shutil.copyfile(src / "detector.json", out / "detector.json")
    landmarks.export_landmarks(landmarks.default_dat_path(), out / "landmarks.json")
    (out / "LICENSES.md").write_text(LICENCES)
    text = f'''name = "face-v1"
version = "1.0.0"
id = "{mf.sha256_file(out / 'model.onnx')}"
trained = true
description = "Face verification: dlib's ResNet face descriptor (128-d) behind dlib's MMOD CNN face detector and 5-point alignment, converted to ONNX by twin (weights: public domain, see LICENSES.md)"
native_metric = "l2"
default_target_far = 0.01

[input]
name = "chip"
channels = 3
height = 150
width = 150

[face]
detector = "face_detector.onnx"
detector_sha256 = "{mf.sha256_file(out / 'face_detector.onnx')}"
detector_config = "detector.json"
landmarks = "landmarks.json"
landmarks_sha256 = "{mf.sha256_file(out / 'landmarks.json')}"
chip_size = 150
padding = 0.25
min_face = 40
multiple = "central"
cropped = false

[output]
name = "embedding"
embedding_size = 128
l2_normalized = false
'''
    (out / "manifest.toml").write_text(text)
    print(f"wrote {out}: model.onnx, face_detector.onnx, detector.json, landmarks.json, manifest.toml "
          f"(no operating points yet: run `twin calibrate --lfw`)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
