"""dlib face models -> ONNX (twin_train.face): parsing sanity, dlib_format primitives, and small
parity slices against dlib itself (descriptor on synthetic chips, detector on one image)."""
import importlib.util
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from twin_train.face.dlib_format import DlibFormatError, Reader


# ----------------------------------------------------------------------------------------
# dlib_format: encoders written from dlib/serialize.h, decoded back


def _pack_int(v: int) -> bytes:
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little") if mag else b""
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def _pack_float(v: float, digits: int = 24) -> bytes:
    m, e = math.frexp(v)
    mant = int(m * (1 << digits))
    exp = e - digits
    for _ in range(8):
        if mant & 0xFF:
            break
        mant >>= 8
        exp += 8
    return _pack_int(mant) + _pack_int(exp)


def _pack_str(s: str) -> bytes:
    return _pack_int(len(s)) + s.encode()


def test_reader_primitives():
    data = (_pack_int(0) + _pack_int(5) + _pack_int(-300) + _pack_int(2**40)
            + _pack_float(1.5) + _pack_float(-0.1, 53) + _pack_float(122.782)
            + _pack_str("con_5") + b"10"
            + _pack_int(2) + b"".join(_pack_int(v) for v in (1, 2, 1, 3))
            + struct.pack("<6f", *range(6))
            + _pack_int(-2) + _pack_int(-2) + b"".join(_pack_float(v) for v in (1.0, 2.0, 3.0, 4.0)))
    r = Reader(data)
    assert [r.int(), r.int(), r.int(), r.int()] == [0, 5, -300, 2**40]
    assert r.float() == 1.5
    assert r.double() == -0.1
    assert r.float() == float(np.float32(122.782))
    assert r.string() == "con_5"
    assert r.bool() is True and r.bool() is False
    t = r.tensor()
    assert t.shape == (1, 2, 1, 3) and t.dtype == np.float32 and t.ravel().tolist() == list(range(6))
    m = r.matrix()
    assert m.shape == (2, 2) and m.tolist() == [[1, 2], [3, 4]]
    assert r.eof()
    with pytest.raises(DlibFormatError):
        r.int()
    vals = [0.0, -2.25, 3.0e-5, 1.0e30, 7.0]
    buf = b"".join(_pack_float(v) for v in vals) + b"".join(_pack_float(v, 53) for v in vals)
    r1, r2 = Reader(buf), Reader(buf)
    assert r1.floats(5).tolist() == [r2.float() for _ in range(5)]
    assert r1.floats(5, double=True).tolist() == [r2.double() for _ in range(5)] == vals
    assert r1.eof() and r2.eof()
    with pytest.raises(DlibFormatError):
        Reader(bytes([0x81, 0x01])).uint()  # negative flag on an unsigned


# ----------------------------------------------------------------------------------------
# the real model files


def _models():
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face_recognition_models (face-recognition-models 0.3.0) is not installed")
    d = Path(list(spec.submodule_search_locations)[0]) / "models"
    need = ["dlib_face_recognition_resnet_model_v1.dat", "mmod_human_face_detector.dat"]
    if not all((d / n).is_file() for n in need):
        pytest.skip(f"model files missing under {d}")
    return d


@pytest.fixture(scope="module")
def nets():
    from twin_train.face import dnn

    d = _models()
    return (dnn.parse_file(d / "dlib_face_recognition_resnet_model_v1.dat"),
            dnn.parse_file(d / "mmod_human_face_detector.dat"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory, nets):
    from twin_train.face import convert

    out = tmp_path_factory.mktemp("face")
    cfg = convert.convert(out)
    return out, cfg


@pytest.fixture(scope="module")
def dlib_mod():
    try:
        import dlib  # noqa: F401
    except Exception as exc:  # pragma: no cover - environment dependent
        pytest.skip(f"dlib is not importable: {exc}")
    return dlib


def test_parse_descriptor_net(nets):
    desc, _ = nets
    assert desc.loss["kind"] == "loss_metric_2"
    assert desc.input["kind"] == "input_rgb_image_sized"
    assert (desc.input["nr"], desc.input["nc"]) == (150, 150)
    assert np.allclose(desc.input["mean"], [122.782, 117.001, 104.298], atol=1e-4)
    assert desc.kinds() == {"con": 29, "affine": 29, "relu": 29, "max_pool": 1, "tag": 18,
                            "add_prev": 14, "skip": 4, "avg_pool": 5, "fc": 1}
    first, last = desc.layers[0], desc.layers[-1]
    assert first.kind == "con" and first.params["weight"].shape == (32, 3, 7, 7)
    assert first.params["stride"] == 2 and first.params["pad"] == 0
    assert last.kind == "fc" and last.params["weight"].shape == (256, 128) and last.params["bias"] is None
    n_params = sum(v.size for l in desc.layers for v in l.params.values() if isinstance(v, np.ndarray))
    assert n_params == 5_614_592  # conv weights+biases, affine gamma+beta, fc weights
    assert all(np.isfinite(v).all() for l in desc.layers for v in l.params.values()
               if isinstance(v, np.ndarray))


def test_parse_detector_net(nets):
    from twin_train.face import dnn

    _, det = nets
    assert det.loss["kind"] == "loss_mmod_"
    assert det.loss["detector_windows"] == [{"width": 80, "height": 80}]
    assert 0.3 < det.loss["overlaps_nms"]["iou_thresh"] < 0.4
    assert det.loss["overlaps_nms"]["percent_covered_thresh"] == 1.0
    assert det.input["kind"] == "input_rgb_image_pyramid"
    assert det.kinds() == {"con": 7, "affine": 6, "relu": 6}
    cons = [l for l in det.layers if l.kind == "con"]
    assert [c.params["weight"].shape for c in cons] == [
        (16, 3, 5, 5), (32, 16, 5, 5), (32, 32, 5, 5), (45, 32, 5, 5), (45, 45, 5, 5),
        (45, 45, 5, 5), (1, 45, 9, 9)]
    assert [c.params["stride"] for c in cons] == [2, 2, 2, 1, 1, 1, 1]
    assert [c.params["pad"] for c in cons] == [0, 0, 0, 2, 2, 2, 4]
    assert all(l.params["source"] == "bn_con2" for l in det.layers if l.kind == "affine")
    assert dnn.output_to_input(det) == (8.0, 14.0)


def test_detector_json(converted):
    out, cfg = converted
    assert cfg["format"] == "twin-mmod-v1"
    assert cfg["windows"] == [{"width": 80, "height": 80}]
    assert cfg["adjust_threshold"] == 0.0
    assert cfg["output_to_input"] == {"scale_x": 8.0, "offset_x": 14.0, "scale_y": 8.0, "offset_y": 14.0}
    assert cfg["pyramid"]["num"] == 5 and cfg["pyramid"]["den"] == 6
    assert cfg["input_divisor"] == 256.0
    for f in ("face_descriptor.onnx", "face_detector.onnx", "detector.json"):
        assert (out / f).stat().st_size > 0


def test_onnx_contracts(converted):
    import onnx

    out, _ = converted
    m = onnx.load(str(out / "face_descriptor.onnx"))
    assert m.opset_import[0].version >= 17
    (i,), (o,) = m.graph.input, m.graph.output
    assert i.name == "chip" and o.name == "embedding"
    dims = [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
    assert dims[1:] == [3, 150, 150] and isinstance(dims[0], str)
    m = onnx.load(str(out / "face_detector.onnx"))
    (i,), (o,) = m.graph.input, m.graph.output
    assert i.name == "image" and o.name == "scores"
    dims = [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


def test_tile_layout_and_nms():
    from twin_train.face import detect

    rects, size = detect.tile_layout(250, 250)
    assert size == (957, 272)
    assert rects[0] == (11, 11, 260, 260) and rects[1] == (11, 271, 218, 478)
    assert detect.level_sizes(250, 250)[:4] == [(250, 250), (208, 208), (173, 173), (144, 144)]
    # dlib test_box_overlap: bounding-box "union"
    assert detect.box_overlap((0, 0, 9, 9), (5, 0, 14, 9), 0.33, 1.0)  # 50/150 > 0.33
    assert not detect.box_overlap((0, 0, 9, 9), (5, 5, 14, 14), 0.33, 1.0)  # 25/225
    kept = detect.nms([(0, 0, 9, 9, 1.0), (1, 0, 10, 9, 2.0), (50, 50, 60, 60, 0.5)], 0.33, 1.0)
    assert kept == [(1, 0, 10, 9, 2.0), (50, 50, 60, 60, 0.5)]


def test_descriptor_matches_dlib(converted, dlib_mod):
    import onnxruntime as ort

    out, _ = converted
    rec = dlib_mod.face_recognition_model_v1(str(_models() / "dlib_face_recognition_resnet_model_v1.dat"))
    rng = np.random.default_rng(1)
    chips = rng.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    chips[1] = np.clip(chips[1] // 4 + 100, 0, 255)  # low-contrast chip
    chips[2] = np.linspace(0, 255, 150, dtype=np.uint8)[None, :, None]  # smooth ramp
    s = ort.InferenceSession(str(out / "face_descriptor.onnx"), providers=["CPUExecutionProvider"])
    ours = s.run(None, {"chip": chips.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    ref = np.array([np.array(rec.compute_face_descriptor(c)) for c in chips], np.float32)
    assert ours.shape == (3, 128)
    assert np.abs(ours - ref).max() <= 1e-4
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999


LFW_SAMPLE = Path("/work/shared/data/lfw/images/AJ_Lamas/AJ_Lamas_0001.jpg")


def test_detector_matches_dlib(converted, dlib_mod):
    from twin_train.face.detect import Detector

    out, _ = converted
    cnn = dlib_mod.cnn_face_detection_model_v1(str(_models() / "mmod_human_face_detector.dat"))
    if LFW_SAMPLE.is_file():
        img = dlib_mod.load_rgb_image(str(LFW_SAMPLE))
    else:  # no face to find, but the (empty) result must still agree
        img = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ref = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
           for d in cnn(img, 0)]
    det = Detector(out / "face_detector.onnx", out / "detector.json")
    for ours in (det.detect(img), det.detect_tiled(img)):
        assert len(ours) == len(ref)
        for a, b in zip(sorted(ref), sorted(ours)):
            assert max(abs(x - y) for x, y in zip(a[:4], b[:4])) <= 1
            assert abs(a[4] - b[4]) < 1e-3
    if LFW_SAMPLE.is_file():
        assert len(ref) == 1
