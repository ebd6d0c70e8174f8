//! The MMOD face detector's arithmetic around its network, as dlib 20 does it for
//! `cnn_face_detection_model_v1(img, 0)`: the image pyramid (each level 5/6 of the one
//! before, bilinear, chained) packed into one tiled image, one run of the network on it,
//! each score cell above the threshold mapped back through its nearest tile to a box in
//! the image, then dlib's non-maximum suppression. Running the levels one by one would be
//! simpler but is not dlib: a cell near a tile's border also sees the next tile (measured:
//! 59 of 73 detections within a pixel per level, 73 of 73 exact tiled).
//!
//! Parameters come from the model directory's `detector.json` (`"format":
//! "twin-mmod-v1"`), written by `training/twin_train/face/convert.py` from dlib's
//! `mmod_human_face_detector.dat`; `training/twin_train/face/detect.py` is the reference
//! this module follows line by line.

use serde::Deserialize;

use super::landmarks::FaceBox;
use super::RgbImage;

/// One detector window (dlib `mmod_options::detector_windows`), a channel of the output.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Window {
    pub width: f64,
    pub height: f64,
}

/// dlib's `test_box_overlap` thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Overlap {
    pub iou_thresh: f64,
    pub percent_covered_thresh: f64,
}

/// Output cell (row r, column c) has its centre at tiled-image pixel
/// `(scale_x·c + offset_x, scale_y·r + offset_y)`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct OutputToInput {
    pub scale_x: f64,
    pub offset_x: f64,
    pub scale_y: f64,
    pub offset_y: f64,
}

/// dlib's `pyramid_down<den>` and tiling: levels stop before the first with fewer than
/// `min_side` rows; tiles are `tile_padding` apart inside an outer border of
/// `tile_outer_padding`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Pyramid {
    pub num: u32,
    pub den: u32,
    pub min_side: u32,
    pub tile_padding: i64,
    pub tile_outer_padding: i64,
    /// The smallest side the network takes (it yields no cell below it).
    pub net_min_input: usize,
}

/// `detector.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetectorConfig {
    pub format: String,
    pub windows: Vec<Window>,
    pub adjust_threshold: f64,
    pub nms: Overlap,
    pub output_to_input: OutputToInput,
    pub pyramid: Pyramid,
    /// The colour of the canvas around the tiles (the network's zero after normalizing).
    pub input_mean: [f32; 3],
}

impl DetectorConfig {
    /// Reads and checks `detector.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| format!("detector config is not twin-mmod-v1 JSON: {e}"))?;
        if config.format != "twin-mmod-v1" {
            return Err(format!(
                "detector config format {:?}, expected \"twin-mmod-v1\"",
                config.format
            ));
        }
        let p = config.pyramid;
        if config.windows.is_empty() || p.num == 0 || p.num >= p.den || p.min_side == 0 {
            return Err(
                "detector config needs windows and a shrinking pyramid (0 < num < den, min_side > 0)"
                    .to_owned(),
            );
        }
        Ok(config)
    }
}

/// A detected face: dlib's inclusive integer rectangle and the network's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub face: FaceBox,
    pub score: f32,
}

fn area(b: &FaceBox) -> i64 {
    if b.right < b.left || b.bottom < b.top {
        0
    } else {
        b.width() * b.height()
    }
}

impl Overlap {
    /// dlib's `test_box_overlap::operator()`: the intersection over the bounding box of
    /// both (dlib's "iou"), or over either box, past its threshold.
    pub fn overlaps(&self, a: &FaceBox, b: &FaceBox) -> bool {
        let inner = area(&FaceBox {
            left: a.left.max(b.left),
            top: a.top.max(b.top),
            right: a.right.min(b.right),
            bottom: a.bottom.min(b.bottom),
        }) as f64;
        if inner == 0.0 {
            return false;
        }
        let outer = area(&FaceBox {
            left: a.left.min(b.left),
            top: a.top.min(b.top),
            right: a.right.max(b.right),
            bottom: a.bottom.max(b.bottom),
        }) as f64;
        inner / outer > self.iou_thresh
            || inner / area(a) as f64 > self.percent_covered_thresh
            || inner / area(b) as f64 > self.percent_covered_thresh
    }
}

/// The sizes (rows, cols) of the pyramid's levels, the image first: each `floor(num/den ·
/// n)` of the one before, computed in f64 as dlib does.
pub fn level_sizes(rows: usize, cols: usize, pyramid: &Pyramid) -> Vec<(usize, usize)> {
    if rows * cols == 0 {
        return Vec::new();
    }
    let rate = f64::from(pyramid.num) / f64::from(pyramid.den);
    let mut sizes = vec![(rows, cols)];
    let (mut r, mut c) = (rows, cols);
    loop {
        r = (rate * r as f64).floor() as usize;
        c = (rate * c as f64).floor() as usize;
        if r * c == 0 || r < pyramid.min_side as usize {
            return sizes;
        }
        sizes.push((r, c));
    }
}

fn rect_height(r: &FaceBox) -> i64 {
    r.bottom - r.top + 1
}

fn rect_width(r: &FaceBox) -> i64 {
    r.right - r.left + 1
}

fn intersects(a: &FaceBox, b: &FaceBox) -> bool {
    a.left.max(b.left) <= a.right.min(b.right) && a.top.max(b.top) <= a.bottom.min(b.bottom)
}

/// dlib's `compute_tiled_image_pyramid_details`: where each level sits in the tiled image
/// (a first column top to bottom, then the small levels bottom-up at the right edge), and
/// the tiled image's size (rows, cols). Levels that do not fit are dropped, as dlib drops
/// them.
pub fn tile_layout(rows: usize, cols: usize, pyramid: &Pyramid) -> (Vec<FaceBox>, (usize, usize)) {
    let sizes = level_sizes(rows, cols, pyramid);
    if sizes.is_empty() {
        return (Vec::new(), (0, 0));
    }
    let (padding, outer) = (pyramid.tile_padding, pyramid.tile_outer_padding);
    let mut rects: Vec<FaceBox> = sizes
        .iter()
        .map(|&(h, w)| FaceBox {
            left: 0,
            top: 0,
            right: w as i64 - 1,
            bottom: h as i64 - 1,
        })
        .collect();
    let first = rects[0];
    let total_height: i64 =
        rects.iter().map(|r| rect_height(r) + padding).sum::<i64>() - padding * 2;
    let (mut h, mut prev_width) = (0i64, 0i64);
    for r in &rects {
        if rect_width(r) <= rect_width(&first) - prev_width - padding
            && (h - rect_height(&first)) * 2 >= total_height - rect_height(&first)
        {
            break;
        }
        h += rect_height(r) + padding;
        prev_width = rect_width(r);
    }
    h -= padding;
    let width = rect_width(&first);
    let size = (
        (h + outer * 2).max(0) as usize,
        (width + outer * 2).max(0) as usize,
    );
    let mut y = outer;
    let mut i = 0;
    while y < h + outer && i < rects.len() {
        let r = rects[i];
        rects[i] = FaceBox {
            left: r.left + outer,
            top: r.top + y,
            right: r.right + outer,
            bottom: r.bottom + y,
        };
        y += rect_height(&rects[i]) + padding;
        i += 1;
    }
    y -= padding;
    while i < rects.len() {
        let (p1x, p1y) = (outer + width - 1, y - 1);
        let (p2x, p2y) = (p1x - rects[i].right, p1y - rects[i].bottom);
        let rect = FaceBox {
            left: p1x.min(p2x),
            top: p1y.min(p2y),
            right: p1x.max(p2x),
            bottom: p1y.max(p2y),
        };
        if intersects(&rects[0], &rect) {
            break;
        }
        rects[i] = rect;
        y -= rect_height(&rect) + padding;
        i += 1;
    }
    rects.truncate(i);
    (rects, size)
}

/// dlib's `nearest_rect`: the first tile holding the (rounded) point, else the nearest.
fn nearest_rect(rects: &[FaceBox], x: f64, y: f64) -> usize {
    let (px, py) = ((x + 0.5).floor() as i64, (y + 0.5).floor() as i64);
    let (mut best, mut index) = (f64::INFINITY, 0);
    for (i, r) in rects.iter().enumerate() {
        if r.left <= px && px <= r.right && r.top <= py && py <= r.bottom {
            return i;
        }
        let nx = px.clamp(r.left, r.right);
        let ny = py.clamp(r.top, r.bottom);
        let d = ((nx - px) as f64).hypot((ny - py) as f64);
        if d < best {
            best = d;
            index = i;
        }
    }
    index
}

/// dlib's `resize_image` (bilinear, corners aligned) of planar f32 `[3, h, w]`.
fn resize_planes(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let mut out = vec![0f32; 3 * out_h * out_w];
    let ry = (h as f64 - 1.0) / (out_h.max(2) - 1) as f64;
    let rx = (w as f64 - 1.0) / (out_w.max(2) - 1) as f64;
    let xs: Vec<(usize, usize, f64)> = (0..out_w)
        .map(|c| {
            let x = c as f64 * rx;
            let left = x.floor() as usize;
            (left.min(w - 1), (left + 1).min(w - 1), x - left as f64)
        })
        .collect();
    for r in 0..out_h {
        let y = r as f64 * ry;
        let top = (y.floor() as usize).min(h - 1);
        let bottom = (top + 1).min(h - 1);
        let fy = y - top as f64;
        for ch in 0..3 {
            let plane = &src[ch * h * w..(ch + 1) * h * w];
            let row = &mut out[ch * out_h * out_w + r * out_w..][..out_w];
            for (o, &(left, right, fx)) in row.iter_mut().zip(&xs) {
                let at = |yy: usize, xx: usize| f64::from(plane[yy * w + xx]);
                let v = (1.0 - fy) * ((1.0 - fx) * at(top, left) + fx * at(top, right))
                    + fy * ((1.0 - fx) * at(bottom, left) + fx * at(bottom, right));
                *o = v as f32;
            }
        }
    }
    out
}

/// The tiled pyramid image the network runs on, `[3, rows, cols]` f32 RGB, and where each
/// level lies in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiled {
    pub planes: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    pub tiles: Vec<FaceBox>,
}

impl DetectorConfig {
    /// Builds the tiled pyramid of `image` (canvas in the mean colour, each level pasted
    /// at its tile, level l+1 resized from level l in f32).
    /// An image too small for the network (its tiled image under `net_min_input`) has
    /// no tiles: no face can be found on it.
    pub fn tile(&self, image: &RgbImage) -> Tiled {
        let (h0, w0) = (image.height as usize, image.width as usize);
        let (mut tiles, (rows, cols)) = tile_layout(h0, w0, &self.pyramid);
        if rows.min(cols) < self.pyramid.net_min_input {
            tiles.clear();
        }
        let sizes = level_sizes(h0, w0, &self.pyramid);
        let mut planes = vec![0f32; 3 * rows * cols];
        for ch in 0..3 {
            planes[ch * rows * cols..(ch + 1) * rows * cols].fill(self.input_mean[ch]);
        }
        let mut level: Vec<f32> = vec![0f32; 3 * h0 * w0];
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                level[ch * h0 * w0 + i] = f32::from(px[ch]);
            }
        }
        let (mut lh, mut lw) = (h0, w0);
        for (k, tile) in tiles.iter().enumerate() {
            if k > 0 {
                let (nh, nw) = sizes[k];
                level = resize_planes(&level, lh, lw, nh, nw);
                (lh, lw) = (nh, nw);
            }
            for ch in 0..3 {
                for r in 0..lh {
                    let dst =
                        ch * rows * cols + (tile.top as usize + r) * cols + tile.left as usize;
                    planes[dst..dst + lw].copy_from_slice(&level[ch * lh * lw + r * lw..][..lw]);
                }
            }
        }
        Tiled {
            planes,
            rows,
            cols,
            tiles,
        }
    }

    /// The faces in the score map of a tiled image (`[windows, rows, cols]`), best first,
    /// after non-maximum suppression, in the image's pixels.
    pub fn detections(
        &self,
        scores: &[f32],
        rows: usize,
        cols: usize,
        tiles: &[FaceBox],
    ) -> Vec<Detection> {
        let m = self.output_to_input;
        let ratio = f64::from(self.pyramid.den) / f64::from(self.pyramid.num);
        // pyramid_down's rect_up, once per level: p ↦ p·den/num + 0.3.
        let up = |v: f64, levels: usize| (0..levels).fold(v, |v, _| v * ratio + 0.3);
        // dlib's drectangle → rectangle: to the nearest, halves away from zero (−4.5 → −5).
        let round = |v: f64| v.round() as i64;
        let mut found = Vec::new();
        if tiles.is_empty() {
            return found;
        }
        for (k, window) in self.windows.iter().enumerate() {
            let Some(map) = scores.get(k * rows * cols..(k + 1) * rows * cols) else {
                break;
            };
            for r in 0..rows {
                for c in 0..cols {
                    let score = map[r * cols + c];
                    if f64::from(score) <= self.adjust_threshold {
                        continue;
                    }
                    let (tx, ty) = (
                        m.scale_x * c as f64 + m.offset_x,
                        m.scale_y * r as f64 + m.offset_y,
                    );
                    let level = nearest_rect(tiles, tx, ty);
                    let (x, y) = (tx - tiles[level].left as f64, ty - tiles[level].top as f64);
                    let (hw, hh) = ((window.width - 1.0) / 2.0, (window.height - 1.0) / 2.0);
                    found.push(Detection {
                        face: FaceBox {
                            left: round(up(x - hw, level)),
                            top: round(up(y - hh, level)),
                            right: round(up(x + hw, level)),
                            bottom: round(up(y + hh, level)),
                        },
                        score,
                    });
                }
            }
        }
        // Best first (a stable sort, as dlib's), then drop what overlaps a box kept.
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Detection> = Vec::new();
        for candidate in found {
            if !kept
                .iter()
                .any(|k| self.nms.overlaps(&k.face, &candidate.face))
            {
                kept.push(candidate);
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DetectorConfig {
        DetectorConfig::from_json(
            r#"{"format": "twin-mmod-v1", "windows": [{"width": 80, "height": 80}],
                "adjust_threshold": 0.0, "nms": {"iou_thresh": 0.338, "percent_covered_thresh": 1.0},
                "output_to_input": {"scale_x": 8, "offset_x": 14, "scale_y": 8, "offset_y": 14},
                "pyramid": {"num": 5, "den": 6, "min_side": 5, "tile_padding": 10,
                            "tile_outer_padding": 11, "net_min_input": 29, "extra": "ignored"},
                "input_mean": [122.782, 117.001, 104.298]}"#,
        )
        .expect("valid")
    }

    #[test]
    fn levels_shrink_by_five_sixths_and_tile_into_one_image() {
        let c = config();
        let sizes = level_sizes(250, 250, &c.pyramid);
        assert_eq!(&sizes[..3], &[(250, 250), (208, 208), (173, 173)]);
        assert!(sizes.last().is_some_and(|s| s.0 >= 5));
        let (tiles, (rows, cols)) = tile_layout(250, 250, &c.pyramid);
        assert_eq!(cols, 250 + 22);
        assert_eq!(
            tiles[0],
            FaceBox {
                left: 11,
                top: 11,
                right: 260,
                bottom: 260
            }
        );
        // Level 1 right under level 0, 10 pixels apart.
        assert_eq!(tiles[1].top, 271);
        assert!(tiles
            .iter()
            .all(|t| t.bottom < rows as i64 && t.right < cols as i64));
        for (a, t) in tiles.iter().enumerate() {
            for b in &tiles[a + 1..] {
                assert!(!intersects(t, b), "{t:?} {b:?}");
            }
        }
        let image = RgbImage {
            width: 250,
            height: 250,
            pixels: vec![200; 250 * 250 * 3],
        };
        let tiled = c.tile(&image);
        assert_eq!((tiled.rows, tiled.cols), (rows, cols));
        assert_eq!(tiled.planes[0], 122.782);
        assert_eq!(tiled.planes[11 * cols + 11], 200.0);
    }

    #[test]
    fn cells_map_through_their_tile_and_overlaps_are_suppressed() {
        let c = config();
        let (tiles, _) = tile_layout(250, 250, &c.pyramid);
        let (rows, cols) = (60, 34);
        let mut scores = vec![-1.0f32; rows * cols];
        scores[10 * cols + 10] = 2.0; // tiled (94, 94) = level 0 (83, 83): box 43.5..122.5
        scores[10 * cols + 11] = 1.0; // centre (102, 94): overlaps the first
        let found = c.detections(&scores, rows, cols, &tiles);
        assert_eq!(found.len(), 1, "{found:?}");
        let face = found[0].face;
        assert_eq!(
            (face.left, face.top, face.right, face.bottom),
            (44, 44, 123, 123)
        );
        assert_eq!(found[0].score, 2.0);
        assert!(DetectorConfig::from_json("{}").is_err());
    }
}
