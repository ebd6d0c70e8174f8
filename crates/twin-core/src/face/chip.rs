//! The aligned face chip dlib's ResNet was trained on: `get_face_chip_details` (the
//! similarity transform that puts five landmarks onto dlib's mean face, with padding) and
//! `extract_image_chip` (bilinear sampling of the image through that transform).

use super::geometry::{similarity, Affine, Point};
use super::RgbImage;

/// dlib's 5-point mean face (`get_face_chip_details`), in a unit chip before padding:
/// right eye outer and inner corner, left eye outer and inner corner, below the nose.
const MEAN_FACE_5: [(f64, f64); 5] = [
    (0.859_567_459_599_2, 0.213_498_153_801_4),
    (0.646_060_476_410_4, 0.228_967_438_767_7),
    (0.120_575_062_078_9, 0.213_727_452_684_8),
    (0.334_085_061_371_2, 0.229_064_240_324_2),
    (0.490_112_313_567_9, 0.627_797_531_647_5),
];

/// Where a chip lies in the image: the rotated rectangle dlib's `chip_details` holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipDetails {
    /// Centre of the region in the image.
    pub centre: Point,
    /// Side of the (square) region in image pixels.
    pub side: f64,
    /// Rotation of the region, radians.
    pub angle: f64,
    /// Side of the chip in pixels.
    pub size: u32,
}

/// The chip for five landmarks (dlib's order), `size` pixels a side with `padding` around
/// the mean face (dlib: 150 and 0.25 for its ResNet).
pub fn chip_details(landmarks: &[(i64, i64)], size: u32, padding: f64) -> ChipDetails {
    let size_f = f64::from(size);
    let chip_points: Vec<Point> = MEAN_FACE_5
        .iter()
        .map(|&(x, y)| {
            Point::new(
                (padding + x) / (2.0 * padding + 1.0) * size_f,
                (padding + y) / (2.0 * padding + 1.0) * size_f,
            )
        })
        .collect();
    let image_points: Vec<Point> = landmarks
        .iter()
        .map(|&(x, y)| Point::new(x as f64, y as f64))
        .collect();
    let tform = similarity(&chip_points, &image_points);
    // The rotation and scale of the transform, then the region centred where the chip's
    // centre lands (dlib's chip_details constructor).
    let unit = tform.apply_linear(Point::new(1.0, 0.0));
    let scale = unit.x.hypot(unit.y);
    ChipDetails {
        centre: tform.apply(Point::new(size_f / 2.0, size_f / 2.0)),
        side: size_f * scale,
        angle: unit.y.atan2(unit.x),
        size,
    }
}

impl ChipDetails {
    /// The map from chip pixel (column, row) to image point, dlib's
    /// `get_mapping_to_chip` inverted: the chip's corner pixels land on the region's
    /// rotated corners. dlib's real rectangles are inclusive (`centered_drect` spans
    /// `side − 1` between its corners), so a chip pixel is `(side − 1)/(size − 1)` image
    /// pixels.
    pub fn chip_to_image(&self) -> Affine {
        let span = self.side - 1.0;
        let step = if self.size > 1 {
            span / f64::from(self.size - 1)
        } else {
            0.0
        };
        let (l, t) = (self.centre.x - span / 2.0, self.centre.y - span / 2.0);
        let (cos, sin) = (self.angle.cos(), self.angle.sin());
        // Rotate about the centre: p ↦ c + R·(p − c).
        let rotate = |x: f64, y: f64| {
            let (dx, dy) = (x - self.centre.x, y - self.centre.y);
            Point::new(
                self.centre.x + cos * dx - sin * dy,
                self.centre.y + sin * dx + cos * dy,
            )
        };
        let origin = rotate(l, t);
        let along_x = rotate(l + step, t);
        let along_y = rotate(l, t + step);
        Affine {
            m: [
                along_x.x - origin.x,
                along_y.x - origin.x,
                along_x.y - origin.y,
                along_y.y - origin.y,
            ],
            b: [origin.x, origin.y],
        }
    }
}

/// A real rectangle, dlib's `drectangle`: inclusive, so its width is `right − left + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    l: f64,
    t: f64,
    r: f64,
    b: f64,
}

impl Rect {
    fn area(&self) -> f64 {
        if self.t > self.b || self.l > self.r {
            0.0
        } else {
            (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
        }
    }

    /// `pyramid_down<2>::rect_down`: each corner `p/2 − (1.25, 0.75)`.
    fn down(&self) -> Rect {
        Rect {
            l: self.l / 2.0 - 1.25,
            t: self.t / 2.0 - 0.75,
            r: self.r / 2.0 - 1.25,
            b: self.b / 2.0 - 0.75,
        }
    }
}

/// dlib's `pyramid_down<2>` of an RGB image: a `[1 4 6 4 1]²/256` blur, every other pixel,
/// in integers, truncated; `(n − 3)/2` pixels a side.
fn pyramid_down2(src: &RgbImage) -> RgbImage {
    let (w, h) = (src.width as usize, src.height as usize);
    if w <= 8 || h <= 8 {
        return RgbImage {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
    }
    let (ow, oh) = ((w - 3) / 2, (h - 3) / 2);
    const K: [u32; 5] = [1, 4, 6, 4, 1];
    // Row pass over every row, then the column pass.
    let mut rows = vec![0u32; h * ow * 3];
    for y in 0..h {
        for c in 0..ow {
            for ch in 0..3 {
                let mut sum = 0;
                for (k, weight) in K.iter().enumerate() {
                    sum += weight * u32::from(src.pixels[(y * w + 2 * c + k) * 3 + ch]);
                }
                rows[(y * ow + c) * 3 + ch] = sum;
            }
        }
    }
    let mut pixels = vec![0u8; oh * ow * 3];
    for d in 0..oh {
        for c in 0..ow {
            for ch in 0..3 {
                let mut sum = 0;
                for (k, weight) in K.iter().enumerate() {
                    sum += weight * rows[((2 * d + k) * ow + c) * 3 + ch];
                }
                pixels[(d * ow + c) * 3 + ch] = (sum / 256) as u8;
            }
        }
    }
    RgbImage {
        width: ow as u32,
        height: oh as u32,
        pixels,
    }
}

fn crop(image: &RgbImage, l: i64, t: i64, r: i64, b: i64) -> RgbImage {
    let (w, h) = ((r - l + 1) as usize, (b - t + 1) as usize);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in t..=b {
        let start = (y as usize * image.width as usize + l as usize) * 3;
        pixels.extend_from_slice(&image.pixels[start..start + w * 3]);
    }
    RgbImage {
        width: w as u32,
        height: h as u32,
        pixels,
    }
}

/// Samples the chip, RGB row-major, `size × size × 3` bytes, as dlib's
/// `extract_image_chip` with bilinear interpolation does: the region's bounding box (grown
/// a little) is cut out of the image, halved by `pyramid_down<2>` while the region is over
/// twice the chip's side, then each chip pixel is interpolated from its four neighbours in
/// that source (black unless all four are inside it), each channel truncated to 0..=255.
pub fn extract_chip(image: &RgbImage, details: &ChipDetails) -> Vec<u8> {
    let size = details.size as usize;
    let mut chip = vec![0u8; size * size * 3];
    let chip_area = (size * size) as f64;
    let half = (details.side - 1.0) / 2.0;
    let (cx, cy) = (details.centre.x, details.centre.y);
    let rect = Rect {
        l: cx - half,
        t: cy - half,
        r: cx + half,
        b: cy + half,
    };
    let mut grow = 2.0;
    let mut down = rect.down();
    while down.area() > chip_area {
        down = down.down();
        grow = grow * 2.0 + 2.0;
    }
    let (cos, sin) = (details.angle.cos(), details.angle.sin());
    let rotate = |x: f64, y: f64| {
        let (dx, dy) = (x - cx, y - cy);
        (cos * dx - sin * dy + cx, sin * dx + cos * dy + cy)
    };
    let corners = [
        rotate(rect.l, rect.t),
        rotate(rect.r, rect.t),
        rotate(rect.l, rect.b),
        rotate(rect.r, rect.b),
    ];
    let min_x = corners.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let min_y = corners.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let max_x = corners
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let max_y = corners
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let round = |v: f64| (v + 0.5).floor() as i64;
    let (bl, bt) = (
        round((min_x - grow).max(0.0)),
        round((min_y - grow).max(0.0)),
    );
    let br = round((max_x + grow).min(f64::from(image.width) - 1.0));
    let bb = round((max_y + grow).min(f64::from(image.height) - 1.0));
    if bl > br || bt > bb {
        return chip;
    }
    let mut source = crop(image, bl, bt, br, bb);
    let mut region = Rect {
        l: rect.l - bl as f64,
        t: rect.t - bt as f64,
        r: rect.r - bl as f64,
        b: rect.b - bt as f64,
    };
    while region.down().area() > chip_area {
        region = region.down();
        source = pyramid_down2(&source);
    }
    let map = ChipDetails {
        centre: Point::new((region.l + region.r) / 2.0, (region.t + region.b) / 2.0),
        side: region.r - region.l + 1.0,
        ..*details
    }
    .chip_to_image();
    let (w, h) = (i64::from(source.width), i64::from(source.height));
    for row in 0..size {
        for col in 0..size {
            let p = map.apply(Point::new(col as f64, row as f64));
            let (left, top) = (p.x.floor() as i64, p.y.floor() as i64);
            if left < 0 || top < 0 || left + 1 >= w || top + 1 >= h {
                continue;
            }
            let (fx, fy) = (p.x - left as f64, p.y - top as f64);
            let (x0, y0) = (left as usize, top as usize);
            let tl = source.at(x0, y0);
            let tr = source.at(x0 + 1, y0);
            let bl = source.at(x0, y0 + 1);
            let br = source.at(x0 + 1, y0 + 1);
            let out = &mut chip[(row * size + col) * 3..][..3];
            for c in 0..3 {
                let top_mix = (1.0 - fx) * f64::from(tl[c]) + fx * f64::from(tr[c]);
                let bottom_mix = (1.0 - fx) * f64::from(bl[c]) + fx * f64::from(br[c]);
                let v = (1.0 - fy) * top_mix + fy * bottom_mix;
                out[c] = v.clamp(0.0, 255.0).trunc() as u8;
            }
        }
    }
    chip
}

/// The chip as the descriptor graph takes it: `3 × size × size` f32 planes (R, G, B) of
/// raw pixel values 0..=255 (the graph subtracts dlib's means itself).
pub fn chip_tensor(chip: &[u8], size: u32) -> Vec<f32> {
    let plane = (size * size) as usize;
    let mut tensor = vec![0f32; 3 * plane];
    for (i, px) in chip.chunks_exact(3).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = f32::from(px[c]);
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_on_the_mean_face_give_an_upright_chip_of_the_same_scale() {
        let size = 150;
        let padding = 0.25;
        let landmarks: Vec<(i64, i64)> = MEAN_FACE_5
            .iter()
            .map(|&(x, y)| {
                let s = f64::from(size);
                (
                    ((padding + x) / (2.0 * padding + 1.0) * s * 2.0).round() as i64 + 40,
                    ((padding + y) / (2.0 * padding + 1.0) * s * 2.0).round() as i64 + 10,
                )
            })
            .collect();
        let details = chip_details(&landmarks, size, padding);
        assert!(details.angle.abs() < 0.01, "{details:?}");
        assert!((details.side - 300.0).abs() < 1.5, "{details:?}");
        assert!((details.centre.x - 190.0).abs() < 1.5 && (details.centre.y - 160.0).abs() < 1.5);
    }

    #[test]
    fn a_chip_of_a_flat_image_is_flat_and_off_image_pixels_are_black() {
        let image = RgbImage {
            width: 40,
            height: 40,
            pixels: [10u8, 20, 30].repeat(1600),
        };
        let inside = ChipDetails {
            centre: Point::new(20.0, 20.0),
            side: 20.0,
            angle: 0.3,
            size: 10,
        };
        let chip = extract_chip(&image, &inside);
        assert!(chip.chunks(3).all(|p| p == [10, 20, 30]));
        let outside = ChipDetails {
            centre: Point::new(-100.0, 20.0),
            ..inside
        };
        assert!(extract_chip(&image, &outside).iter().all(|&v| v == 0));
        let tensor = chip_tensor(&chip, 10);
        assert_eq!(tensor[0], 10.0);
        assert_eq!(tensor[100], 20.0);
        assert_eq!(tensor[299], 30.0);
    }
}
