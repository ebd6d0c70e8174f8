"""The detection reference: dlib's cnn_face_detection_model_v1(img, 0), per pyramid level, on
face_detector.onnx.  This is the specification the Rust side implements.

Everything below is what dlib 20.0.1 does (dlib/dnn/input.h input_rgb_image_pyramid,
dlib/image_transforms/image_pyramid.h, dlib/dnn/loss.h loss_mmod_::to_label), except that dlib
packs all levels into one tiled image and runs the network once, while `detect_reference`
runs the network on each level separately (see "Per-level run" for what that changes).

1. Levels (pyramid_down<6>, compute_tiled_image_pyramid_details):
   sizes: level 0 is the image (H0, W0) = (rows, cols).  Level l+1 has
   (floor(5/6 * H_l), floor(5/6 * W_l)) computed in double as floor(((6-1.0)/6) * n) from the
   previous level's size; stop before the first level with H*W == 0 or H < 5 (rows only).
   dlib then lays the levels out in one tiled image (padding 10 between tiles, outer padding
   11) and drops any trailing level that would not fit beside the first column
   (`tile_layout` reproduces that exactly, including the drop); the tile origins (L_i, T_i)
   are needed below.
   pixels: level 0 is the image as float32 RGB.  Level l+1 is a bilinear resize of level l
   (NOT of the original; dlib chains them), in float (no re-quantization to uint8), with
   dlib's resize_image convention ("align corners"): output pixel (r, c) samples the input at
   y = r*(Hin-1)/max(Hout-1,1), x = c*(Win-1)/max(Wout-1,1);
   top = floor(y), bottom = min(top+1, Hin-1), fy = y-top; same for x;
   v = (1-fy)*((1-fx)*I[top,left] + fx*I[top,right]) + fy*((1-fx)*I[bottom,left] + fx*I[bottom,right]).
   (dlib resizes the normalized tensor; resize and (x-mean)/256 commute up to float rounding.)

2. Per-level run: level l is padded with the mean colour (122.782, 117.001, 104.298), i.e. with
   zeros after the graph's normalization, exactly as dlib's tiled tensor is zero around the
   tiles: pad_left = 11 + ((L_l - 11) mod 8), pad_top = 11 + ((T_l - 11) mod 8),
   pad_right = pad_bottom = 11 (grown on the right/bottom until each padded side is >= 29,
   the smallest input that yields one output cell).  The mod-8 terms put the output cells on
   the same pixel grid as dlib's (the net has stride 8); level 0 is then identical to its dlib
   tile context (11 px of zeros on every side), other levels differ from dlib only where a
   cell's receptive field (189 px) reaches a neighbouring tile in dlib's tiled image.
   face_detector.onnx runs on the padded level: scores [1, K, H2, W2].

3. Cells -> rectangles: keep cells with score > adjust_threshold (0).  Cell (r, c) of channel
   k is centred at padded-level pixel (8c + 14, 8r + 14) (detector.json output_to_input), i.e.
   at level pixel (x, y) = (8c + 14 - pad_left, 8r + 14 - pad_top); a cell is kept only if,
   in dlib's tiled coordinates (x + L_l, y + T_l), the nearest tile (dlib nearest_rect: the
   first tile containing the point, else the smallest Euclidean distance) is level l itself.
   rect (level coords, dlib centered_drect): [x - (w-1)/2, y - (h-1)/2, x + (w-1)/2, y + (h-1)/2]
   with (w, h) = detector window k (80x80).  Back to the image (pyramid_down<6>::rect_up,
   applied l times to both corners): p -> p*1.2 + 0.3 (1.2 == 6/5.0 in double).  Then dlib's
   drectangle -> rectangle conversion: each side rounded to the nearest, halves away from zero.  Score = the float cell value.

4. NMS (loss_mmod_::to_label): sort all candidates of all levels by score, descending; walk
   them, dropping a box that overlaps an already kept box per test_box_overlap on the integer
   rectangles: rectangles are inclusive (width = right-left+1, empty if right < left);
   inner = area(intersection); overlap iff inner > 0 and (inner / area(bounding box of both)
   > iou_thresh or inner/area(a) > percent_covered_thresh or inner/area(b) > percent_covered_thresh).
   Note dlib's "iou" denominator is the bounding box of the union, not the union area.

Result: list of (left, top, right, bottom, score) in the original image, dlib's inclusive
integer rectangles, highest score first.

`detect_reference` is the per-level contract.  `detect_reference_tiled` (Detector.detect_tiled)
builds dlib's tiled image itself (tile_layout's canvas filled with the mean colour, level l
pasted at its tile) and runs the net once; every cell is mapped through its nearest tile.

Measured against dlib 20.0.1 (`python -m twin_train.face.convert --out DIR --check`, 50 LFW
images, 10 upscaled 2x, 10 cropped to 250x170 / 190x250): the tiled run reproduces every dlib
detection exactly (73/73, 0 px, |score diff| <= 2.5e-6); the per-level run matches 59/73
within 1 px (45/53 at 250x250, 9/10 upscaled, 5/10 cropped).  Per-level cannot be exact: in
dlib's tiled image a cell's 189 px receptive field also sees the neighbouring tiles 10 px away,
which moves scores near a tile's border by up to ~2e-2 and flips some NMS choices (typically
the winning scale: a 96 px box vs a 115 px box over the same face).  The geometry itself
(grid, rect mapping, rounding, NMS) is exact in both modes.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

PYR_N = 6
TILE_PADDING = 10
TILE_OUTER_PADDING = 11
MIN_ROWS = 5
NET_MIN_INPUT = 29  # smallest side with one output cell (3 valid 5x5 convs, stride 2)
BASE_PAD = 11


# ----------------------------------------------------------------------------------------
# pyramid geometry


def level_sizes(nr: int, nc: int):
    """dlib's pyramid_down<6> chain before the tiling (find_pyramid_down_output_image_size)."""
    sizes = [(nr, nc)]
    if nr * nc == 0:
        return []
    rate = (PYR_N - 1.0) / PYR_N
    while True:
        nr = math.floor(rate * nr)
        nc = math.floor(rate * nc)
        if nr * nc == 0 or nr < MIN_ROWS:
            break
        sizes.append((nr, nc))
    return sizes


def _intersects(a, b):
    return max(a[0], b[0]) <= min(a[2], b[2]) and max(a[1], b[1]) <= min(a[3], b[3])


def tile_layout(nr: int, nc: int, padding: int = TILE_PADDING, outer: int = TILE_OUTER_PADDING):
    """impl::compute_tiled_image_pyramid_details: tile rectangles (left, top, right, bottom),
    inclusive, and the tiled image size (rows, cols)."""
    sizes = level_sizes(nr, nc)
    if not sizes:
        return [], (0, 0)
    rects = [(0, 0, w - 1, h - 1) for (h, w) in sizes]

    def height(r):
        return r[3] - r[1] + 1

    def width(r):
        return r[2] - r[0] + 1

    total_height = sum(height(r) + padding for r in rects) - padding * 2
    h = 0
    prev_width = 0
    for r in rects:
        if width(r) <= width(rects[0]) - prev_width - padding and \
                (h - height(rects[0])) * 2 >= (total_height - height(rects[0])):
            break
        h += height(r) + padding
        prev_width = width(r)
    h -= padding
    W = width(rects[0])
    out_nr, out_nc = h + outer * 2, W + outer * 2
    y = outer
    i = 0
    while y < h + outer and i < len(rects):
        r = rects[i]
        rects[i] = (r[0] + outer, r[1] + y, r[2] + outer, r[3] + y)
        y += height(rects[i]) + padding
        i += 1
    y -= padding
    while i < len(rects):
        p1 = (outer + W - 1, y - 1)
        br = (rects[i][2], rects[i][3])
        p2 = (p1[0] - br[0], p1[1] - br[1])
        rect = (min(p1[0], p2[0]), min(p1[1], p2[1]), max(p1[0], p2[0]), max(p1[1], p2[1]))
        if _intersects(rects[0], rect):
            break
        rects[i] = rect
        y -= height(rect) + padding
        i += 1
    return rects[:i], (out_nr, out_nc)


def nearest_rect(rects, x: float, y: float) -> int:
    """dlib nearest_rect(rects, point): the dpoint is first converted to an integer point
    (dlib vector<double> -> vector<long> rounds: floor(v + 0.5))."""
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)
    best, idx = math.inf, 0
    for i, (l, t, r, b) in enumerate(rects):
        if l <= px <= r and t <= py <= b:
            return i
        nx = min(max(px, l), r)
        ny = min(max(py, t), b)
        d = math.hypot(nx - px, ny - py)
        if d < best:
            best, idx = d, i
    return idx


def resize_bilinear(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib resize_image (interpolate_bilinear) on a float [C, H, W] array."""
    c, ih, iw = img.shape
    ys = np.arange(out_h, dtype=np.float64) * ((ih - 1) / max(out_h - 1, 1))
    xs = np.arange(out_w, dtype=np.float64) * ((iw - 1) / max(out_w - 1, 1))
    top = np.floor(ys).astype(np.int64)
    bot = np.minimum(top + 1, ih - 1)
    fy = (ys - top)[None, :, None]
    left = np.floor(xs).astype(np.int64)
    right = np.minimum(left + 1, iw - 1)
    fx = (xs - left)[None, None, :]
    src = img.astype(np.float64)
    tl = src[:, top][:, :, left]
    tr = src[:, top][:, :, right]
    bl = src[:, bot][:, :, left]
    br = src[:, bot][:, :, right]
    out = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    return out.astype(np.float32)


def build_levels(rgb: np.ndarray, n_levels: int):
    """float32 [3, h, w] RGB levels, level l+1 resized from level l."""
    lv = [np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32)]
    for h, w in level_sizes(rgb.shape[0], rgb.shape[1])[1:n_levels]:
        lv.append(resize_bilinear(lv[-1], h, w))
    return lv


def point_up(v: float, levels: int) -> float:
    ratio = PYR_N / (PYR_N - 1.0)
    for _ in range(levels):
        v = v * ratio + 0.3
    return v


def dround(v: float) -> int:
    """dlib drectangle -> rectangle: to the nearest integer, halves away from zero (std::round:
    -4.5 -> -5; found by twin's parity check on boxes that leave the image)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def _area(r):
    w = r[2] - r[0] + 1
    h = r[3] - r[1] + 1
    return 0 if (w <= 0 or h <= 0) else w * h


def box_overlap(a, b, iou_thresh: float, percent_covered_thresh: float) -> bool:
    """dlib test_box_overlap::operator() on inclusive integer rectangles."""
    inter = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    inner = float(_area(inter))
    if inner == 0:
        return False
    outer = float(_area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))))
    return (inner / outer > iou_thresh or inner / _area(a) > percent_covered_thresh
            or inner / _area(b) > percent_covered_thresh)


def nms(cands, iou_thresh: float, percent_covered_thresh: float):
    """cands: list of (l, t, r, b, score); sorted by score descending (stable), greedy."""
    order = sorted(range(len(cands)), key=lambda i: -cands[i][4])
    kept = []
    for i in order:
        c = cands[i]
        if any(box_overlap(k[:4], c[:4], iou_thresh, percent_covered_thresh) for k in kept):
            continue
        kept.append(c)
    return kept


# ----------------------------------------------------------------------------------------
# the detector


class Detector:
    def __init__(self, onnx_path, config_path, threads: int = 0):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.cfg = json.loads(Path(config_path).read_text())
        assert self.cfg["format"] == "twin-mmod-v1"
        self.mean = np.array(self.cfg["input_mean"], np.float32)
        o2i = self.cfg["output_to_input"]
        self.sx, self.ox = o2i["scale_x"], o2i["offset_x"]
        self.sy, self.oy = o2i["scale_y"], o2i["offset_y"]
        self.windows = [(w["width"], w["height"]) for w in self.cfg["windows"]]
        self.thresh = self.cfg["adjust_threshold"]
        self.iou = self.cfg["nms"]["iou_thresh"]
        self.pcov = self.cfg["nms"]["percent_covered_thresh"]

    def scores(self, padded_rgb: np.ndarray) -> np.ndarray:
        """[3, h, w] float RGB -> [K, H2, W2]."""
        return self.session.run(None, {"image": padded_rgb[None].astype(np.float32)})[0][0]

    def _pad(self, level: np.ndarray, left: int, top: int, right: int, bottom: int):
        c, h, w = level.shape
        out = np.empty((c, h + top + bottom, w + left + right), np.float32)
        out[:] = self.mean[:, None, None]
        out[:, top:top + h, left:left + w] = level
        return out

    def _cells(self, sc, level_idx, ox_level, oy_level, rects, cands):
        """cells of score map `sc` whose centre is at level pixel (sx*c + ox_level, ...)."""
        K = sc.shape[0]
        L, T = rects[level_idx][0], rects[level_idx][1]
        for k in range(K):
            w, h = self.windows[k]
            rs, cs = np.nonzero(sc[k] > self.thresh)
            for r, c in zip(rs.tolist(), cs.tolist()):
                x = self.sx * c + ox_level
                y = self.sy * r + oy_level
                if nearest_rect(rects, x + L, y + T) != level_idx:
                    continue
                hw, hh = (w - 1) / 2, (h - 1) / 2
                box = (dround(point_up(x - hw, level_idx)), dround(point_up(y - hh, level_idx)),
                       dround(point_up(x + hw, level_idx)), dround(point_up(y + hh, level_idx)))
                cands.append(box + (float(sc[k, r, c]),))

    def detect(self, rgb: np.ndarray, return_candidates: bool = False):
        """The per-level reference (module docstring)."""
        rgb = np.asarray(rgb)
        assert rgb.ndim == 3 and rgb.shape[2] == 3
        rects, _ = tile_layout(rgb.shape[0], rgb.shape[1])
        levels = build_levels(rgb, len(rects))
        cands = []
        for i, lv in enumerate(levels):
            L, T = rects[i][0], rects[i][1]
            pl = BASE_PAD + (L - TILE_OUTER_PADDING) % 8
            pt = BASE_PAD + (T - TILE_OUTER_PADDING) % 8
            h, w = lv.shape[1:]
            pr = max(BASE_PAD, NET_MIN_INPUT - pl - w)
            pb = max(BASE_PAD, NET_MIN_INPUT - pt - h)
            sc = self.scores(self._pad(lv, pl, pt, pr, pb))
            self._cells(sc, i, self.ox - pl, self.oy - pt, rects, cands)
        dets = nms(cands, self.iou, self.pcov)
        return (dets, cands) if return_candidates else dets

    def detect_tiled(self, rgb: np.ndarray):
        """Diagnostic: dlib's own tiled image, one run (must equal dlib up to float noise)."""
        rgb = np.asarray(rgb)
        rects, (NR, NC) = tile_layout(rgb.shape[0], rgb.shape[1])
        levels = build_levels(rgb, len(rects))
        img = np.empty((3, NR, NC), np.float32)
        img[:] = self.mean[:, None, None]
        for (l, t, r, b), lv in zip(rects, levels):
            img[:, t:b + 1, l:r + 1] = lv
        sc = self.scores(img)
        cands = []
        for k in range(sc.shape[0]):
            w, h = self.windows[k]
            rs, cs = np.nonzero(sc[k] > self.thresh)
            for r, c in zip(rs.tolist(), cs.tolist()):
                X, Y = self.sx * c + self.ox, self.sy * r + self.oy
                i = nearest_rect(rects, X, Y)
                x, y = X - rects[i][0], Y - rects[i][1]
                hw, hh = (w - 1) / 2, (h - 1) / 2
                box = (dround(point_up(x - hw, i)), dround(point_up(y - hh, i)),
                       dround(point_up(x + hw, i)), dround(point_up(y + hh, i)))
                cands.append(box + (float(sc[k, r, c]),))
        return nms(cands, self.iou, self.pcov)


@lru_cache(maxsize=4)
def _default_detector(onnx_path: str, config_path: str) -> Detector:
    return Detector(onnx_path, config_path)


def _paths(onnx_path, config_path):
    import os

    d = Path(os.environ.get("TWIN_FACE_DIR", "/tmp/face-v1"))
    return str(onnx_path or d / "face_detector.onnx"), str(config_path or d / "detector.json")


def detect_reference(rgb_uint8_image, onnx_path=None, config_path=None):
    """-> [(left, top, right, bottom, score)], dlib cnn_face_detection_model_v1(img, 0)'s
    result computed per pyramid level on face_detector.onnx (see the module docstring).
    Paths default to $TWIN_FACE_DIR (or /tmp/face-v1)/face_detector.onnx, detector.json."""
    return _default_detector(*_paths(onnx_path, config_path)).detect(rgb_uint8_image)


def detect_reference_tiled(rgb_uint8_image, onnx_path=None, config_path=None):
    """Same result type; dlib's own tiled pyramid image, one network run (exact dlib parity):
    canvas of tile_layout()'s size filled with the mean colour, level l pasted at its tile,
    one run, every cell above the threshold mapped through the tile nearest to its centre
    (tiled pixel (8c + 14, 8r + 14)), rect_up, rounding and NMS as in steps 3-4."""
    return _default_detector(*_paths(onnx_path, config_path)).detect_tiled(rgb_uint8_image)
