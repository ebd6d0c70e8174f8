//! The 2-D transforms dlib's face alignment uses, in f64: points, affine maps, the
//! least-squares similarity between two point sets (Umeyama's, which for 2-D has a closed
//! form), and dlib's rounding of a point to a pixel.

/// A point in image (or normalized) coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    /// dlib's conversion of a real point to a pixel: each coordinate rounded to the
    /// nearest integer, halves up (`floor(v + 0.5)`).
    pub fn round(self) -> (i64, i64) {
        ((self.x + 0.5).floor() as i64, (self.y + 0.5).floor() as i64)
    }
}

/// `p ↦ m·p + b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Row-major 2×2: `[[m[0], m[1]], [m[2], m[3]]]`.
    pub m: [f64; 4],
    pub b: [f64; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        m: [1.0, 0.0, 0.0, 1.0],
        b: [0.0, 0.0],
    };

    #[inline]
    pub fn apply(&self, p: Point) -> Point {
        Point {
            x: self.m[0] * p.x + self.m[1] * p.y + self.b[0],
            y: self.m[2] * p.x + self.m[3] * p.y + self.b[1],
        }
    }

    /// The linear part alone applied to `p` (no translation).
    #[inline]
    pub fn apply_linear(&self, p: Point) -> Point {
        Point {
            x: self.m[0] * p.x + self.m[1] * p.y,
            y: self.m[2] * p.x + self.m[3] * p.y,
        }
    }

    /// `self ∘ other`: first `other`, then `self`.
    pub fn compose(&self, other: &Affine) -> Affine {
        let [a, b, c, d] = self.m;
        let [e, f, g, h] = other.m;
        Affine {
            m: [a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h],
            b: [
                a * other.b[0] + b * other.b[1] + self.b[0],
                c * other.b[0] + d * other.b[1] + self.b[1],
            ],
        }
    }
}

/// The similarity transform (rotation, uniform scale, translation) that maps `from` onto
/// `to` with the least squared error, as dlib's `find_similarity_transform` finds it. In
/// 2-D the optimum over scaled rotations is the complex ratio `Σ conj(f)·t / Σ |f|²` of the
/// centred point sets. Fewer than two distinct points give the identity's linear part.
pub fn similarity(from: &[Point], to: &[Point]) -> Affine {
    let n = from.len().min(to.len());
    if n == 0 {
        return Affine::IDENTITY;
    }
    let mean = |points: &[Point]| {
        let (sx, sy) = points[..n]
            .iter()
            .fold((0.0, 0.0), |(sx, sy), p| (sx + p.x, sy + p.y));
        Point::new(sx / n as f64, sy / n as f64)
    };
    let (mf, mt) = (mean(from), mean(to));
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (f, t) in from[..n].iter().zip(&to[..n]) {
        let (fx, fy) = (f.x - mf.x, f.y - mf.y);
        let (tx, ty) = (t.x - mt.x, t.y - mt.y);
        dot += fx * tx + fy * ty;
        cross += fx * ty - fy * tx;
        norm += fx * fx + fy * fy;
    }
    let (a, b) = if norm > 0.0 {
        (dot / norm, cross / norm)
    } else {
        (1.0, 0.0)
    };
    let m = [a, -b, b, a];
    Affine {
        m,
        b: [mt.x - (a * mf.x - b * mf.y), mt.y - (b * mf.x + a * mf.y)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (angle, scale, tx, ty) = (0.3_f64, 1.7, 12.0, -4.0);
        let known = Affine {
            m: [
                scale * angle.cos(),
                -scale * angle.sin(),
                scale * angle.sin(),
                scale * angle.cos(),
            ],
            b: [tx, ty],
        };
        let from = [
            Point::new(0.0, 0.0),
            Point::new(10.0, 2.0),
            Point::new(3.0, 9.0),
            Point::new(-4.0, 5.0),
        ];
        let to: Vec<Point> = from.iter().map(|p| known.apply(*p)).collect();
        let found = similarity(&from, &to);
        for (a, b) in found.m.iter().zip(known.m) {
            assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in found.b.iter().zip(known.b) {
            assert!((a - b).abs() < 1e-9);
        }
        let round_trip = found.compose(&Affine::IDENTITY).apply(from[1]);
        assert!((round_trip.x - to[1].x).abs() < 1e-9);
    }

    #[test]
    fn rounding_is_halves_up_like_dlib() {
        assert_eq!(Point::new(1.5, -1.5).round(), (2, -1));
        assert_eq!(Point::new(2.49, -2.51).round(), (2, -3));
    }
}
