"""dlib's face chip extraction in plain numpy: get_face_chip_details (5-point branch) and
extract_image_chip (bilinear, with its pyramid_down<2> step), as dlib 20.0.1 does them
(dlib/image_transforms/interpolation.h, image_pyramid.h, geometry/drectangle.h,
point_transforms.h).  Written to be ported line by line: every quantity is a double unless
said otherwise, and operations are done in dlib's order.

Conventions (the ones a port must copy):

* Image coordinates: pixel (x=c, y=r) is the *centre* of column c / row r; a chip pixel (c, r)
  maps to the image point trns(c, r) and is sampled there (no half-pixel offset anywhere).
* drectangle (l, t, r, b): width = r - l + 1, height = b - t + 1 (0 when t > b or l > r),
  area = width * height, centre = ((l + r)/2, (t + b)/2).
  drectangle -> rectangle rounds each side with floor(v + 0.5).
* Bilinear (interpolate_bilinear): x0 = floor(x), y0 = floor(y); the sample is "outside" (the
  chip pixel is set to 0, black) unless x0 >= 0, y0 >= 0, x0+1 < src_w, y0+1 < src_h, i.e.
  the whole 2x2 neighbourhood is inside the *source* image (the cropped sub-image or pyramid
  level, see below).  fx = x - x0, fy = y - y0, per channel in double:
      v = (1-fy)*((1-fx)*I[y0][x0] + fx*I[y0][x0+1]) + fy*((1-fx)*I[y0+1][x0] + fx*I[y0+1][x0+1])
  and the uint8 result is assign_pixel(uint8, double): 0 if v < 0, 255 if v > 255, else
  trunc(v) (truncation toward zero, NOT rounding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MEAN_FACE_5", "ChipDetails", "find_similarity_transform", "chip_details",
    "pyramid_down2", "chip_plan", "extract_chip",
]

# get_face_chip_details' 5-point mean face, in the unit square of the chip (before padding);
# part order is dlib's 5-point predictor's: 0/1 = one eye's outer/inner corner, 2/3 = the other
# eye's outer/inner corner, 4 = bottom of the nose.
MEAN_FACE_5 = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)


# ---------------------------------------------------------------------------------------------
# geometry helpers (drectangle as a 4-tuple (l, t, r, b) of floats)

def _is_empty(r):
    return r[1] > r[3] or r[0] > r[2]


def _width(r):
    return 0.0 if _is_empty(r) else r[2] - r[0] + 1


def _height(r):
    return 0.0 if _is_empty(r) else r[3] - r[1] + 1


def _area(r):
    return _width(r) * _height(r)


def _center(r):
    return ((r[0] + r[2]) / 2.0, (r[1] + r[3]) / 2.0)


def _round_rect(r):
    """drectangle -> rectangle: floor(v + 0.5) on each side."""
    return tuple(int(math.floor(v + 0.5)) for v in r)


def _point_down(p):
    """pyramid_down<2>::point_down: p/2 - (1.25, 0.75)."""
    return (p[0] / 2.0 - 1.25, p[1] / 2.0 - 0.75)


def _rect_down(r):
    """pyramid_down<2>::rect_down: the bounding box of point_down(tl) and point_down(br)."""
    a = _point_down((r[0], r[1]))
    b = _point_down((r[2], r[3]))
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))


def _rotate_point(c, p, angle):
    """rotate_point(center, p, angle) = R(angle) (p - center) + center."""
    s, co = math.sin(angle), math.cos(angle)
    px, py = p[0] - c[0], p[1] - c[1]
    return (co * px - s * py + c[0], s * px + co * py + c[1])


def find_similarity_transform(from_pts, to_pts):
    """dlib::find_similarity_transform (Umeyama) for 2-D points, in double.

    Returns (m, t): to ~= m @ from + t with m = c*R (R a rotation, never a reflection).
    dlib computes R from an SVD of the 2x2 covariance; for 2-D the result is, in closed form,
        mf = mean(from), mt = mean(to)            (sums in point order, then / n)
        sigma = mean(|from_i - mf|^2)
        cov[j][k] = mean((to_i - mt)[j] * (from_i - mf)[k])
        a = cov00 + cov11,  b = cov10 - cov01
        m = [[a, -b], [b, a]] / sigma             (m = identity*(a/|a,b|) .. if sigma == 0: c = 1)
        t = mt - m @ mf
    which equals dlib's u*s*v^T*trace(d*s)/sigma in every case (det(cov) < 0 included) up to
    rounding in the last bits.
    """
    n = len(from_pts)
    mfx = mfy = mtx = mty = 0.0
    for (fx, fy), (tx, ty) in zip(from_pts, to_pts):
        mfx += float(fx); mfy += float(fy)
        mtx += float(tx); mty += float(ty)
    mfx /= n; mfy /= n; mtx /= n; mty /= n
    sigma = 0.0
    c00 = c01 = c10 = c11 = 0.0
    for (fx, fy), (tx, ty) in zip(from_pts, to_pts):
        dfx, dfy = float(fx) - mfx, float(fy) - mfy
        dtx, dty = float(tx) - mtx, float(ty) - mty
        sigma += dfx * dfx + dfy * dfy
        c00 += dtx * dfx; c01 += dtx * dfy
        c10 += dty * dfx; c11 += dty * dfy
    sigma /= n
    c00 /= n; c01 /= n; c10 /= n; c11 /= n
    a = c00 + c11
    b = c10 - c01
    if sigma != 0:
        m00, m10 = a / sigma, b / sigma
    else:  # dlib: c = 1, R from the SVD
        nrm = math.hypot(a, b)
        m00, m10 = (a / nrm, b / nrm) if nrm != 0 else (1.0, 0.0)
    m = np.array([[m00, -m10], [m10, m00]], dtype=np.float64)
    t = np.array([mtx - (m[0, 0] * mfx + m[0, 1] * mfy), mty - (m[1, 0] * mfx + m[1, 1] * mfy)])
    return m, t


# ---------------------------------------------------------------------------------------------

@dataclass
class ChipDetails:
    """dlib::chip_details: rect = (l, t, r, b) drectangle in image pixels, angle in radians
    (the chip is rect rotated by angle about its centre), rows x cols output pixels."""
    rect: tuple
    angle: float
    rows: int
    cols: int

    @property
    def center(self):
        return _center(self.rect)

    @property
    def width(self):
        return _width(self.rect)

    @property
    def height(self):
        return _height(self.rect)

    def as_tuple(self):
        """(centre x, centre y, angle, rect width, rect height)."""
        cx, cy = self.center
        return (cx, cy, self.angle, self.width, self.height)

    def affine(self):
        """2x3 chip->image transform at full resolution (x, y) = A @ (c, r, 1), i.e. what
        extract_chip samples when no pyramid level is used (before the sub-image shift)."""
        return _chip_to_src_affine(self.rect, self.angle, self.rows, self.cols)


def chip_details(points5, size: int = 150, padding: float = 0.25) -> ChipDetails:
    """get_face_chip_details(det, size, padding) for a 5-point detection.

    from_i = ((padding + MEAN_FACE_5[i]) / (2*padding + 1)) * size   (chip pixels, per coord)
    to_i   = the detection's integer part i
    (m, t) = find_similarity_transform(from, to)            # chip -> image
    angle  = atan2(m10, m00);  scale = sqrt(m00^2 + m10^2)   # = |m @ (1, 0)|
    centre = m @ (size/2, size/2) + t        (point(size, size)/2.0: 75.0 for 150)
    rect   = centered_drect(centre, size*scale, size*scale)
           = (cx - (w-1)/2, cy - (h-1)/2, cx + (w-1)/2, cy + (h-1)/2) with w = h = size*scale
    rows = cols = size
    """
    if len(points5) != 5:
        raise ValueError("chip_details needs the 5 landmarks of dlib's 5-point predictor")
    frm = []
    for (mx, my) in MEAN_FACE_5:
        px = (padding + mx) / (2 * padding + 1)
        py = (padding + my) / (2 * padding + 1)
        frm.append((px * size, py * size))
    to = [(float(x), float(y)) for x, y in points5]
    m, t = find_similarity_transform(frm, to)
    p = (m[0, 0] * 1.0 + m[0, 1] * 0.0, m[1, 0] * 1.0 + m[1, 1] * 0.0)
    angle = math.atan2(p[1], p[0])
    scale = math.sqrt(p[0] * p[0] + p[1] * p[1])
    half = int(size) / 2.0  # point(cols, rows)/2.0
    cx = m[0, 0] * half + m[0, 1] * half + t[0]
    cy = m[1, 0] * half + m[1, 1] * half + t[1]
    w = size * scale - 1
    h = size * scale - 1
    rect = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return ChipDetails(rect=rect, angle=angle, rows=int(size), cols=int(size))


# ---------------------------------------------------------------------------------------------

def pyramid_down2(img: np.ndarray) -> np.ndarray:
    """dlib pyramid_down<2> (impl::pyramid_down_2_1) on an RGB (or gray) uint8 image.

    Output (nr-3)//2 x (nc-3)//2 (empty when nr <= 8 or nc <= 8).  Integer arithmetic:
        row pass:  T[r][c] = I[r][2c] + 4 I[r][2c+1] + 6 I[r][2c+2] + 4 I[r][2c+3] + I[r][2c+4]
                   for r in 0..nr-1, c in 0..(nc-3)//2 - 1
        col pass:  O[d][c] = (T[2d][c] + 4 T[2d+1][c] + 6 T[2d+2][c] + 4 T[2d+3][c] + T[2d+4][c]) // 256
                   for d in 0..(nr-3)//2 - 1
    i.e. output (d, c) is the [1 4 6 4 1]^2/256 blur centred on input (2d+2, 2c+2), truncated.
    """
    nr, nc = img.shape[:2]
    if nr <= 8 or nc <= 8:
        return np.zeros((0, 0) + img.shape[2:], dtype=np.uint8)
    oc = (nc - 3) // 2
    orr = (nr - 3) // 2
    x = img.astype(np.int32)
    t = (x[:, 0:2 * oc:2] + 4 * x[:, 1:2 * oc + 1:2] + 6 * x[:, 2:2 * oc + 2:2]
         + 4 * x[:, 3:2 * oc + 3:2] + x[:, 4:2 * oc + 4:2])
    o = (t[0:2 * orr:2] + 4 * t[1:2 * orr + 1:2] + 6 * t[2:2 * orr + 2:2]
         + 4 * t[3:2 * orr + 3:2] + t[4:2 * orr + 4:2]) // 256
    return o.astype(np.uint8)


def _chip_to_src_affine(rect, angle, rows, cols):
    """find_affine_transform({(0,0), (cols-1,0), (0,rows-1)} -> rotated tl, tr, bl of rect),
    solved exactly: A = [[(tr-tl).x/(cols-1), (bl-tl).x/(rows-1), tl.x],
                         [(tr-tl).y/(cols-1), (bl-tl).y/(rows-1), tl.y]]."""
    c = _center(rect)
    tl = _rotate_point(c, (rect[0], rect[1]), angle)
    tr = _rotate_point(c, (rect[2], rect[1]), angle)
    bl = _rotate_point(c, (rect[0], rect[3]), angle)
    dc = max(cols - 1, 1)
    dr = max(rows - 1, 1)
    return np.array([[(tr[0] - tl[0]) / dc, (bl[0] - tl[0]) / dr, tl[0]],
                     [(tr[1] - tl[1]) / dc, (bl[1] - tl[1]) / dr, tl[1]]], dtype=np.float64)


def chip_plan(img_shape, d: ChipDetails) -> dict:
    """The bookkeeping of extract_image_chips for one chip (no pixels): the crop box, the
    pyramid depth, the level used and the final chip->source affine.

        size = rows*cols
        depth = 0; grow = 2; r = rect_down(rect)
        while area(r) > size: r = rect_down(r); depth += 1; grow = 2*grow + 2
        rot = bounding box of the 4 corners of rect rotated by angle about centre(rect)
        bbox = round(intersect(grow_rect(rot, grow), (0, 0, W-1, H-1)))      # rectangle
        levels: L[0] = pyramid_down2(img[bbox]), L[k] = pyramid_down2(L[k-1]), k < depth
        r = rect translated by -bbox.tl; level = -1
        while area(rect_down(r)) > size: level += 1; r = rect_down(r)
        source = img[bbox] if level == -1 else L[level]
        A = chip->source affine of (r, angle) (see _chip_to_src_affine)
    (level == depth-1 always, since translation does not change areas.)
    """
    H, W = img_shape[:2]
    size = d.rows * d.cols
    depth = 0
    grow = 2.0
    r = _rect_down(d.rect)
    while _area(r) > size:
        r = _rect_down(r)
        depth += 1
        grow = grow * 2 + 2
    c = _center(d.rect)
    corners = [_rotate_point(c, p, d.angle) for p in
               ((d.rect[0], d.rect[1]), (d.rect[2], d.rect[1]), (d.rect[0], d.rect[3]),
                (d.rect[2], d.rect[3]))]
    rot = (min(p[0] for p in corners), min(p[1] for p in corners),
           max(p[0] for p in corners), max(p[1] for p in corners))
    g = (rot[0] - grow, rot[1] - grow, rot[2] + grow, rot[3] + grow)
    inter = (max(g[0], 0.0), max(g[1], 0.0), min(g[2], W - 1.0), min(g[3], H - 1.0))
    bbox = _round_rect(inter)
    if bbox[1] > bbox[3] or bbox[0] > bbox[2]:
        bbox = (0, 0, -1, -1)  # empty rectangle (+= of an empty rect keeps the empty default)
    r = (d.rect[0] - bbox[0], d.rect[1] - bbox[1], d.rect[2] - bbox[0], d.rect[3] - bbox[1])
    level = -1
    while _area(_rect_down(r)) > size:
        level += 1
        r = _rect_down(r)
    return {"depth": depth, "grow": grow, "bbox": bbox, "level": level, "src_rect": r,
            "affine": _chip_to_src_affine(r, d.angle, d.rows, d.cols)}


def _bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """interpolate_bilinear + assign_pixel(uint8, double), black outside."""
    h, w = src.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    xi = np.where(inside, x0, 0).astype(np.int64)
    yi = np.where(inside, y0, 0).astype(np.int64)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    s = src.astype(np.float64)
    if s.ndim == 2:
        s = s[..., None]
    xi1 = np.minimum(xi + 1, w - 1)
    yi1 = np.minimum(yi + 1, h - 1)
    tl, tr = s[yi, xi], s[yi, xi1]
    bl, br = s[yi1, xi], s[yi1, xi1]
    v = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    v = np.where(v > 255, 255.0, np.where(v < 0, 0.0, v))
    out = np.trunc(v).astype(np.uint8)
    out[~inside] = 0
    return out if src.ndim == 3 else out[..., 0]


def extract_chip(rgb: np.ndarray, details: ChipDetails, size: int | None = 150) -> np.ndarray:
    """dlib::extract_image_chip(img, details, chip) with interpolate_bilinear; returns a
    details.rows x details.cols (x3) uint8 array.  `size` (None: no check) must equal
    rows == cols.

    * Fast path (dlib's too): angle == 0 and rows == height(rect) and cols == width(rect):
      a plain copy of the rounded rect, zeros outside the image.
    * Otherwise see chip_plan(): crop box, pyramid_down<2> levels, then for each chip pixel
      (c, r): (x, y) = A @ (c, r, 1) in the chosen source, bilinear as in the module doc.
      The pyramid kicks in when area(rect_down(rect)) > rows*cols, i.e. (roughly) when the
      chip's source rect is more than twice the chip's side.
    """
    if size is not None and not (details.rows == size and details.cols == size):
        raise ValueError(f"details are {details.rows}x{details.cols}, not {size}x{size}")
    img = np.ascontiguousarray(rgb)
    H, W = img.shape[:2]
    rows, cols = details.rows, details.cols
    if details.angle == 0 and rows == details.height and cols == details.width:
        l, t, r, b = _round_rect(details.rect)
        out = np.zeros((b - t + 1, r - l + 1) + img.shape[2:], dtype=np.uint8)
        il, it, ir, ib = max(l, 0), max(t, 0), min(r, W - 1), min(b, H - 1)
        if il <= ir and it <= ib:
            out[it - t:ib - t + 1, il - l:ir - l + 1] = img[it:ib + 1, il:ir + 1]
        return out
    plan = chip_plan(img.shape, details)
    bl, bt, br, bb = plan["bbox"]
    src = img[bt:bb + 1, bl:br + 1] if (bt <= bb and bl <= br) else img[0:0, 0:0]
    for _ in range(plan["level"] + 1):
        src = pyramid_down2(src)
    a = plan["affine"]
    cc, rr = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    x = (a[0, 0] * cc + a[0, 1] * rr) + a[0, 2]
    y = (a[1, 0] * cc + a[1, 1] * rr) + a[1, 2]
    if src.shape[0] == 0 or src.shape[1] == 0:
        return np.zeros((rows, cols) + img.shape[2:], dtype=np.uint8)
    return _bilinear(src, x, y)
