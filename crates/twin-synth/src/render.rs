//! Ink on paper: rasterises pen paths of varying width as anti-aliased strokes, dark ink on a
//! white page, the way a scanned signature looks.

use image::{GrayImage, Luma};

/// A pen-down path in pixels: centre points with the pen radius and ink darkness (0..1) there.
#[derive(Debug, Clone, Default)]
pub(crate) struct InkPath {
    x: Vec<f32>,
    y: Vec<f32>,
    radius: Vec<f32>,
    ink: Vec<f32>,
}

impl InkPath {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            radius: Vec::with_capacity(n),
            ink: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, x: f32, y: f32, radius: f32, ink: f32) {
        self.x.push(x);
        self.y.push(y);
        self.radius.push(radius);
        self.ink.push(ink);
    }

    fn len(&self) -> usize {
        self.x.len()
    }
}

/// Points closer than this (pixels) are merged: slow pens sample the same spot many times.
const MIN_STEP: f32 = 0.35;

/// Renders the paths onto a white `width` × `height` page.
pub(crate) fn render(paths: &[InkPath], width: u32, height: u32) -> GrayImage {
    let mut ink = Canvas {
        width: width as usize,
        height: height as usize,
        darkness: vec![0.0; width as usize * height as usize],
    };
    for path in paths {
        if path.len() == 0 {
            continue;
        }
        let mut last = 0;
        ink.segment(path, 0, 0);
        for i in 1..path.len() {
            let far = (path.x[i] - path.x[last]).hypot(path.y[i] - path.y[last]) >= MIN_STEP;
            let grows = path.radius[i] - path.radius[last] > 0.15;
            if far || grows || i + 1 == path.len() {
                ink.segment(path, last, i);
                last = i;
            }
        }
    }
    let pixels = ink
        .darkness
        .iter()
        .map(|&d| (255.0 * (1.0 - d.clamp(0.0, 1.0))).round() as u8)
        .collect();
    GrayImage::from_raw(width, height, pixels).unwrap_or_else(|| {
        // Unreachable: the buffer has exactly width * height pixels.
        GrayImage::from_pixel(width, height, Luma([255]))
    })
}

struct Canvas {
    width: usize,
    height: usize,
    darkness: Vec<f32>,
}

impl Canvas {
    /// A capsule from point `a` to point `b` of `path` with the radius interpolated along it.
    /// Darkness is combined by maximum, so overlapping samples of one stroke do not build up.
    fn segment(&mut self, path: &InkPath, a: usize, b: usize) {
        let (ax, ay, bx, by) = (path.x[a], path.y[a], path.x[b], path.y[b]);
        let (ra, rb) = (path.radius[a], path.radius[b]);
        let (ia, ib) = (path.ink[a], path.ink[b]);
        let reach = ra.max(rb) + 1.0;
        let x0 = (ax.min(bx) - reach).floor().max(0.0) as usize;
        let y0 = (ay.min(by) - reach).floor().max(0.0) as usize;
        let x1 = ((ax.max(bx) + reach).ceil().max(0.0) as usize).min(self.width);
        let y1 = ((ay.max(by) + reach).ceil().max(0.0) as usize).min(self.height);
        let (dx, dy) = (bx - ax, by - ay);
        let length2 = dx * dx + dy * dy;
        for py in y0..y1 {
            let cy = py as f32 + 0.5;
            let row = py * self.width;
            for px in x0..x1 {
                let cx = px as f32 + 0.5;
                let t = if length2 > 1e-12 {
                    (((cx - ax) * dx + (cy - ay) * dy) / length2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (nx, ny) = (ax + t * dx - cx, ay + t * dy - cy);
                let distance = (nx * nx + ny * ny).sqrt();
                let radius = ra + t * (rb - ra);
                let coverage = (radius + 0.5 - distance).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    let value = coverage * (ia + t * (ib - ia));
                    let cell = &mut self.darkness[row + px];
                    if value > *cell {
                        *cell = value;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_dark_on_its_centre_and_white_away_from_it() {
        let mut path = InkPath::default();
        path.push(10.0, 20.0, 1.5, 1.0);
        path.push(50.0, 20.0, 1.5, 1.0);
        let image = render(&[path], 64, 40);
        assert_eq!(image.get_pixel(30, 19)[0], 0, "on the stroke");
        assert_eq!(image.get_pixel(30, 5)[0], 255, "off the stroke");
        let edge = image.get_pixel(30, 21)[0];
        assert!(edge < 255, "anti-aliased edge pixel {edge}");
    }

    #[test]
    fn paths_off_the_page_are_clipped_not_fatal() {
        let mut path = InkPath::default();
        path.push(-100.0, -5.0, 3.0, 1.0);
        path.push(500.0, 90.0, 3.0, 1.0);
        let image = render(&[path], 32, 16);
        assert_eq!(image.dimensions(), (32, 16));
        let _ = render(&[InkPath::default()], 1, 1);
    }
}
