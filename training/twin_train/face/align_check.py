"""Parity of the numpy face-alignment reference (landmarks.predict, chip.chip_details,
chip.extract_chip) against dlib itself (dlib-bin 20.0.1), and the Rust tests' fixture.

    python -m twin_train.face.landmarks --check --lfw /work/shared/data/lfw/images --n 300
    python -m twin_train.face.landmarks --fixture ../tests/fixtures/face/reference.json

Needs the `dlib` module (dlib-bin); the reference modules themselves do not.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from . import chip as chipmod
from . import landmarks as lm

# Chip pixels recorded in the fixture, as (row, col).
SAMPLE_POSITIONS = [(0, 0), (0, 149), (149, 0), (149, 149), (75, 75),
                    (30, 40), (40, 110), (100, 75), (120, 30), (60, 130)]
SHIFTS = [(3, -2), (-4, 5)]          # extra rects for the landmark check: the cnn rect moved by (dx, dy)
UPSCALES = [3, 5]                     # nearest-neighbour upscales for the chip check (pyramid path)
FALLBACK_RECT = (68, 68, 181, 181)    # used when the cnn finds no face (LFW faces are centred)
EDGE_CROP = 90                        # the edge-case variant drops this many top rows / left columns


def lfw_files(root, n: int) -> list[str]:
    """n LFW images evenly spread over the sorted list of all of them (relative paths)."""
    root = Path(root)
    allf = sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg"))
    if not allf:
        return []
    if n >= len(allf):
        return allf
    idx = np.linspace(0, len(allf) - 1, n).round().astype(int)
    return [allf[i] for i in idx]


def upscale(img: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor: out[y][x] = img[y // k][x // k]."""
    return img if k == 1 else np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def _rect_t(r):
    return (r.left(), r.top(), r.right(), r.bottom())


def _parts(det):
    return np.array([(det.part(i).x, det.part(i).y) for i in range(det.num_parts)], dtype=np.int64)


class _Dlib:
    def __init__(self, dat=None, descriptor=False):
        import dlib
        self.dlib = dlib
        md = lm.models_dir()
        self.cnn = dlib.cnn_face_detection_model_v1(str(md / "mmod_human_face_detector.dat"))
        self.sp = dlib.shape_predictor(str(dat or md / "shape_predictor_5_face_landmarks.dat"))
        self.fr = (dlib.face_recognition_model_v1(str(md / "dlib_face_recognition_resnet_model_v1.dat"))
                   if descriptor else None)

    def detect(self, img):
        dets = self.cnn(img, 0)
        return [(_rect_t(d.rect), float(d.confidence)) for d in dets]

    def shape(self, img, rect):
        return self.sp(img, self.dlib.rectangle(*rect))

    def chip(self, img, pts, rect):
        d = self.dlib
        det = d.full_object_detection(d.rectangle(*rect), [d.point(int(x), int(y)) for x, y in pts])
        return np.asarray(d.get_face_chip(img, det, 150, 0.25)), d.get_face_chip_details(det, 150, 0.25)


_W = {}


def _init_worker(dat):
    _W["dlib"] = _Dlib(dat)
    _W["model"] = lm.load_dat(dat)


def _one(args):
    root, rel = args
    D, model = _W["dlib"], _W["model"]
    img = D.dlib.load_rgb_image(str(Path(root) / rel))
    dets = D.detect(img)
    detected = bool(dets)
    rect = max(dets, key=lambda d: d[1])[0] if dets else FALLBACK_RECT
    out = {"path": rel, "detected": detected, "lm": [], "chip": []}
    inten = lm._intensity(img)
    rects = [rect] + [(rect[0] + dx, rect[1] + dy, rect[2] + dx, rect[3] + dy) for dx, dy in SHIFTS]
    dl_pts = None
    for i, r in enumerate(rects):
        a = _parts(D.shape(img, r))
        b = lm.predict(img, r, model, intensity=inten)
        out["lm"].append(int(np.abs(a - b).max()))
        if i == 0:
            dl_pts = a
    # edge case: the image cropped at (EDGE_CROP, EDGE_CROP) so that the rect and the chip
    # reach outside it (out-of-image feature pixels, black chip borders)
    ec = np.ascontiguousarray(img[EDGE_CROP:, EDGE_CROP:])
    er = tuple(v - EDGE_CROP for v in rect)
    a = _parts(D.shape(ec, er))
    b = lm.predict(ec, er, model)
    out["lm"].append(int(np.abs(a - b).max()))
    variants = [(k, upscale(img, k), dl_pts * k, tuple(v * k for v in rect)) for k in [1] + UPSCALES]
    variants.append(("edge", ec, a, er))
    for k, im, pts, r in variants:
        a, dd = D.chip(im, pts, r)
        d = chipmod.chip_details([tuple(p) for p in pts])
        b = chipmod.extract_chip(im, d, 150)
        diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
        drect = _rect_t(dd.rect)
        out["chip"].append({
            "scale": k, "max": int(diff.max()), "mean": float(diff.mean()),
            "level": chipmod.chip_plan(im.shape, d)["level"],
            "details_err": float(max(np.abs(np.subtract(drect, d.rect)).max(), abs(dd.angle - d.angle))),
        })
    return out


def check(lfw, n: int = 300, dat=None, workers: int = 0, verbose: bool = True) -> dict:
    files = lfw_files(lfw, n)
    if not files:
        raise FileNotFoundError(f"no LFW images under {lfw}")
    workers = workers or os.cpu_count() or 1
    t0 = time.time()
    jobs = [(str(lfw), f) for f in files]
    if workers > 1:
        with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(dat,)) as pool:
            res = pool.map(_one, jobs, chunksize=4)
    else:
        _init_worker(dat)
        res = [_one(j) for j in jobs]
    n_img = len(res)
    lm_cases = [(r["path"], i, e) for r in res for i, e in enumerate(r["lm"])]
    summary = {"images": n_img, "detected": sum(r["detected"] for r in res), "seconds": round(time.time() - t0, 1)}
    for i, name in enumerate(["cnn_rect"] + [f"shift{dx:+d}{dy:+d}" for dx, dy in SHIFTS] + ["edge_crop"]):
        errs = np.array([e for _, j, e in lm_cases if j == i])
        summary[f"landmarks_{name}"] = {"identical": int((errs == 0).sum()), "of": len(errs),
                                        "identical_pct": round(100.0 * (errs == 0).mean(), 2),
                                        "max_px": int(errs.max())}
    for k in [1] + UPSCALES + ["edge"]:
        cs = [c for r in res for c in r["chip"] if c["scale"] == k]
        mx = np.array([c["max"] for c in cs])
        summary[f"chip_x{k}" if k != "edge" else "chip_edge_crop"] = {
            "images": len(cs), "max_abs": int(mx.max()), "worst_mean_abs": float(max(c["mean"] for c in cs)),
            "mean_abs": float(np.mean([c["mean"] for c in cs])), "bit_exact": int((mx == 0).sum()),
            "pyramid_levels": sorted({c["level"] for c in cs}),
            "details_max_err": float(max(c["details_err"] for c in cs)),
        }
    lm_ok = all(summary[k]["identical_pct"] >= 99.0 and summary[k]["max_px"] <= 1
                for k in summary if k.startswith("landmarks_"))
    chip_ok = all(summary[k]["max_abs"] <= 1 and summary[k]["worst_mean_abs"] <= 0.05
                  for k in summary if k.startswith("chip_"))
    summary["ok"] = bool(lm_ok and chip_ok)
    if verbose:
        print(f"images: {n_img} (cnn detections on {summary['detected']}; fallback rect "
              f"{FALLBACK_RECT} otherwise), {summary['seconds']} s")
        for k, v in summary.items():
            if k.startswith("landmarks_"):
                print(f"{k:28s} identical {v['identical']}/{v['of']} ({v['identical_pct']} %), max {v['max_px']} px")
        for k, v in summary.items():
            if k.startswith("chip_"):
                print(f"{k:28s} max|diff| {v['max_abs']}, worst image mean {v['worst_mean_abs']:.5f}, "
                      f"mean {v['mean_abs']:.6f}, bit-exact {v['bit_exact']}/{v['images']}, "
                      f"pyramid levels {v['pyramid_levels']}, chip_details max err {v['details_max_err']:.3g}")
        print("PASS" if summary["ok"] else "FAIL")
    return summary


# ---------------------------------------------------------------------------------------------
# fixture

def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).hexdigest()


def _file_sha(p) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def gradient_image(h: int = 200, w: int = 240) -> np.ndarray:
    """The synthetic no-face image: R = x * 255 // (w-1), G = y * 255 // (h-1), B = 128."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], axis=2).astype(np.uint8)


FIXTURE_IMAGES = 8
FIXTURE_UPSCALED = 2  # the first N of the fixture images again, upscaled x3 (nearest)


def _entry(D, model, img, meta):
    dets = D.detect(img)
    e = dict(meta)
    e.update({"width": int(img.shape[1]), "height": int(img.shape[0]), "decoded_sha256": _sha(img),
              "detections": [{"rect": list(r), "confidence": c} for r, c in dets]})
    if not dets:
        return e
    best = int(np.argmax([c for _, c in dets]))
    rect = dets[best][0]
    det = D.shape(img, rect)
    pts = _parts(det)
    assert np.array_equal(pts, lm.predict(img, rect, model)), meta
    dx, dy = SHIFTS[0]
    srect = (rect[0] + dx, rect[1] + dy, rect[2] + dx, rect[3] + dy)
    spts = _parts(D.shape(img, srect))
    assert np.array_equal(spts, lm.predict(img, srect, model)), meta
    chip = np.asarray(D.dlib.get_face_chip(img, det, 150, 0.25))
    dd = D.dlib.get_face_chip_details(det, 150, 0.25)
    d = chipmod.chip_details([tuple(p) for p in pts])
    mine = chipmod.extract_chip(img, d, 150)
    assert np.abs(mine.astype(int) - chip).max() <= 1, meta
    plan = chipmod.chip_plan(img.shape, d)
    desc = np.array(D.fr.compute_face_descriptor(chip), dtype=np.float64)
    e.update({
        "best": best,
        "landmarks": pts.tolist(),
        "landmarks_shifted": {"rect": list(srect), "points": spts.tolist()},
        "chip_details": {
            "rect": list(_rect_t(dd.rect)), "angle": dd.angle, "rows": dd.rows, "cols": dd.cols,
            "center": list(d.center), "width": d.width, "height": d.height,
            "crop_box": list(plan["bbox"]), "pyramid_level": plan["level"],
        },
        "chip_sha256": _sha(chip),
        "chip_equals_reference": bool(np.array_equal(mine, chip)),
        "chip_mean": [float(v) for v in chip.reshape(-1, 3).mean(axis=0)],
        "chip_samples": [[r, c, [int(v) for v in chip[r, c]]] for r, c in SAMPLE_POSITIONS],
        "descriptor": [float(np.float32(v)) for v in desc],
    })
    return e


def write_fixture(path, lfw) -> dict:
    import dlib
    D = _Dlib(descriptor=True)
    model = lm.load_dat()
    md = lm.models_dir()
    files = lfw_files(lfw, FIXTURE_IMAGES)
    if len(files) < FIXTURE_IMAGES:
        raise FileNotFoundError(f"need {FIXTURE_IMAGES} LFW images under {lfw}")
    entries = []
    for rel in files:
        img = dlib.load_rgb_image(str(Path(lfw) / rel))
        entries.append(_entry(D, model, img, {"path": rel, "scale": 1}))
    for rel in files[:FIXTURE_UPSCALED]:
        img = upscale(dlib.load_rgb_image(str(Path(lfw) / rel)), 3)
        entries.append(_entry(D, model, img, {"path": rel, "scale": 3}))
    g = gradient_image()
    ge = _entry(D, model, g, {"path": None, "scale": 1, "synthetic": "gradient"})
    assert not ge["detections"], "the gradient image should have no detections"
    entries.append(ge)
    doc = {
        "format": "twin-face-align-ref-v1",
        "generated_by": "python -m twin_train.face.landmarks --fixture <this file> --lfw <LFW images dir>",
        "dlib_version": dlib.__version__,
        "models": {name: _file_sha(md / name) for name in (
            "mmod_human_face_detector.dat", "shape_predictor_5_face_landmarks.dat",
            "dlib_face_recognition_resnet_model_v1.dat")},
        "notes": {
            "decode": "images decoded with dlib.load_rgb_image (libjpeg); decoded_sha256 = sha256 of the "
                      "RGB uint8 row-major pixels after any upscale",
            "scale": "scale k > 1: nearest-neighbour upscale of the decoded image, out[y][x] = in[y//k][x//k]",
            "synthetic_gradient": "height 200, width 240: R = x*255//239, G = y*255//199, B = 128",
            "detections": "dlib.cnn_face_detection_model_v1(mmod_human_face_detector.dat)(img, 0): "
                          "rect [left, top, right, bottom] inclusive, confidence",
            "landmarks": "dlib.shape_predictor(shape_predictor_5_face_landmarks.dat)(img, rect of the best "
                         "(highest-confidence) detection); landmarks_shifted: the same with that rect moved by "
                         f"{list(SHIFTS[0])} (dx, dy)",
            "chip": "dlib.get_face_chip(img, shape, 150, 0.25): chip_sha256 = sha256 of the 150x150x3 uint8 "
                    "RGB row-major bytes; chip_samples = [row, col, [R, G, B]]; chip_details from "
                    "dlib.get_face_chip_details (rect = drectangle [l, t, r, b], angle in radians), plus "
                    "centre/width/height and the crop box / pyramid level of extract_image_chip",
            "descriptor": "dlib.face_recognition_model_v1(dlib_face_recognition_resnet_model_v1.dat)"
                          ".compute_face_descriptor(chip), float32 values",
        },
        "sample_positions": [list(p) for p in SAMPLE_POSITIONS],
        "images": entries,
    }
    text = json.dumps(doc, separators=(",", ":"))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")
    print(f"wrote {path}: {len(entries)} images, {len(text)} bytes")
    return doc
