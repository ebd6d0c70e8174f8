"""twin's face pipeline (Rust) against dlib itself, image by image.

    python -m twin_train.face.parity --steps target/debug/examples/face_steps \
        --model models/face-v1 --lfw ../shared/data/lfw [--n 300] [--fixture tests/fixtures/face/dlib_on_twin_pixels.json]

twin decodes JPEG with the `image` crate (zune-jpeg); dlib with its own libjpeg. The two
decoders disagree on up to a quarter of the pixel values of an LFW image (by up to ~20 grey
levels, chroma upsampling), so the comparison is made twice:

* **same pixels**: dlib runs on the pixels twin decoded (the example binary `face_steps`
  dumps them): detections, landmarks, chip and descriptor must match exactly (the chip
  byte for byte, the descriptor to float rounding);
* **same file**: dlib decodes the JPEG itself, as a dlib user would: the descriptors'
  cosine similarity is reported (it measures the decoders' disagreement, not the pipeline's).

With --fixture it also writes the "same pixels" results of the first 8 images and of up to
3 images showing several faces, as the fixture the Rust test `crates/twin-embed/tests/face.rs`
checks.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .dlib_format import models_dir


def dlib_models():
    import dlib

    d = models_dir()
    return (dlib.cnn_face_detection_model_v1(str(d / "mmod_human_face_detector.dat")),
            dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat")))


def choose(found, img, policy: str):
    """The face twin uses among dlib's detections (best score first), by the manifest's
    `face.multiple`: "central" the box whose centre is nearest the image centre, otherwise the
    largest; ties keep the earlier (higher-scored) box, as twin does."""
    h, w = img.shape[:2]

    def key(m):
        r = m.rect
        if policy == "central":
            cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
            return -float(np.hypot(cx - w / 2, cy - h / 2))
        return (r.right() - r.left() + 1) * (r.bottom() - r.top() + 1)

    best = found[0]
    for m in found[1:]:
        if key(m) > key(best):
            best = m
    return best


def dlib_pipeline(models, img, policy: str = "central"):
    """dlib on an RGB uint8 image: detections, and for the face twin's policy chooses its
    landmarks, chip sha256 and descriptor."""
    import dlib

    det, sp, rec = models
    found = det(img, 0)
    out = {"detections": [[m.rect.left(), m.rect.top(), m.rect.right(), m.rect.bottom(), m.confidence]
                          for m in found]}
    if not found:
        return out
    best = choose(found, img, policy)
    shape = sp(img, best.rect)
    chip = np.ascontiguousarray(dlib.get_face_chip(img, shape, 150, 0.25))
    out.update({
        "face": [best.rect.left(), best.rect.top(), best.rect.right(), best.rect.bottom()],
        "landmarks": [[shape.part(i).x, shape.part(i).y] for i in range(5)],
        "chip_sha256": hashlib.sha256(chip.tobytes()).hexdigest(),
        "descriptor": list(rec.compute_face_descriptor(chip)),
    })
    return out


def images_of(lfw: Path, n: int):
    names = []
    for line in (lfw / "pairs.txt").read_text().splitlines()[1:]:
        f = line.split()
        pairs = [(f[0], f[1]), (f[0], f[2])] if len(f) == 3 else [(f[0], f[1]), (f[2], f[3])]
        for name, k in pairs:
            p = f"{name}/{name}_{int(k):04d}.jpg"
            if p not in names:
                names.append(p)
    # Spread over the whole file (both matched and mismatched pairs).
    step = max(1, len(names) // n)
    return names[::step][:n]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", required=True, help="the face_steps example binary")
    ap.add_argument("--model", default="models/face-v1")
    ap.add_argument("--lfw", required=True, help="LFW folder (pairs.txt, images/)")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--fixture", help="write the first 8 images' same-pixel results here")
    args = ap.parse_args(argv)
    import dlib

    import tomllib

    policy = tomllib.loads((Path(args.model) / "manifest.toml").read_text())["face"]["multiple"]
    lfw = Path(args.lfw)
    names = images_of(lfw, args.n)
    models = dlib_models()
    with tempfile.TemporaryDirectory() as dump:
        run = subprocess.run([args.steps, args.model, *[str(lfw / "images" / n) for n in names]],
                             capture_output=True, text=True, env={"FACE_STEPS_DUMP": dump, **__import__("os").environ})
        if run.returncode != 0:
            print(run.stderr[-2000:], file=sys.stderr)
            return 1
        twin = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        same, exact_chip, exact_geometry, cos_pixels, cos_file, fixture = 0, 0, 0, [], [], []
        for name, t in zip(names, twin):
            pixels = np.load(Path(dump) / (Path(name).stem + ".npy")).astype(np.uint8)
            ref = dlib_pipeline(models, pixels, policy)
            geometry = ([d[:4] for d in ref["detections"]] == [d[:4] for d in t["detections"]]
                        and ref.get("landmarks") == t.get("landmarks"))
            exact_geometry += geometry
            if "descriptor" in ref and t.get("descriptor"):
                same += 1
                exact_chip += ref["chip_sha256"] == t["chip_sha256"]
                a, b = np.array(ref["descriptor"]), np.array(t["descriptor"])
                cos_pixels.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
                own = dlib_pipeline(models, dlib.load_rgb_image(str(lfw / "images" / name)), policy)
                if "descriptor" in own:
                    c = np.array(own["descriptor"])
                    cos_file.append(float(c @ b / np.linalg.norm(c) / np.linalg.norm(b)))
            several = len(ref["detections"]) > 1 and sum(len(f["detections"]) > 1 for f in fixture) < 3
            if args.fixture and "descriptor" in ref and (len(fixture) < 8 or several):
                fixture.append({"image": name, **{k: ref[k] for k in
                                ("detections", "face", "landmarks", "chip_sha256", "descriptor")}})
    cp, cf = np.array(cos_pixels), np.array(cos_file)
    print(f"{len(names)} LFW images, {same} with a face in both")
    print(f"same pixels: detections and landmarks identical on {exact_geometry}/{len(names)}, "
          f"chip identical on {exact_chip}/{same}, descriptor cosine min {cp.min():.7f} mean {cp.mean():.7f}")
    print(f"same file (each decoder its own pixels): descriptor cosine min {cf.min():.5f} mean {cf.mean():.5f}, "
          f">= 0.999 on {(cf >= 0.999).sum()}/{len(cf)}, >= 0.99 on {(cf >= 0.99).sum()}/{len(cf)}")
    if args.fixture:
        Path(args.fixture).write_text(json.dumps({
            "format": "twin-face-dlib-on-twin-pixels-v1",
            "generated_by": "python -m twin_train.face.parity --fixture <this file> (dlib 20.0.1 on the pixels twin decodes)",
            "images": fixture}, separators=(",", ":")) + "\n")
        print(f"fixture: {args.fixture} ({len(fixture)} images)")
    ok = exact_geometry == len(names) and exact_chip == same and cp.min() >= 0.99999
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
