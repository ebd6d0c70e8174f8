//! dlib's shape predictor (Kazemi & Sullivan's ensemble of regression trees), the
//! 5-point face model: a cascade of forests, each tree comparing pairs of pixel
//! intensities sampled around the current shape estimate and adding a correction to it.
//!
//! The model comes from dlib's own `shape_predictor_5_face_landmarks.dat`, exported by
//! `training/twin_train/face/landmarks.py` to JSON (`"format": "twin-ert-v1"`). The
//! arithmetic follows dlib's `shape_predictor::operator()` step by step (f32 shapes and
//! features, pixels as the integer mean of R, G and B, points rounded halves up), so the
//! landmarks are dlib's, pixel for pixel.

use serde::Deserialize;

use super::geometry::{similarity, Point};
use super::RgbImage;

/// A face box in pixels, dlib's `rectangle`: `right` and `bottom` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaceBox {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

impl FaceBox {
    /// Width in pixels (dlib: `right - left + 1`).
    pub fn width(&self) -> i64 {
        self.right - self.left + 1
    }

    pub fn height(&self) -> i64 {
        self.bottom - self.top + 1
    }

    /// The whole image, for an image that is already a face crop.
    pub fn whole(image: &RgbImage) -> Self {
        Self {
            left: 0,
            top: 0,
            right: i64::from(image.width) - 1,
            bottom: i64::from(image.height) - 1,
        }
    }

    /// dlib's `unnormalizing_tform`: the unit square onto the box's corners (the far
    /// corners are the inclusive `right`/`bottom` pixels).
    fn unnormalize(&self, x: f64, y: f64) -> Point {
        Point::new(
            self.left as f64 + (self.right - self.left) as f64 * x,
            self.top as f64 + (self.bottom - self.top) as f64 * y,
        )
    }
}

/// Why a landmark model file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum LandmarkModelError {
    #[error("landmark model is not valid JSON of format twin-ert-v1: {0}")]
    Parse(String),
    #[error("landmark model is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct RawModel {
    format: String,
    num_parts: usize,
    initial_shape: Vec<f32>,
    cascades: Vec<RawCascade>,
}

#[derive(Deserialize)]
struct RawCascade {
    anchor_idx: Vec<usize>,
    deltas: Vec<[f32; 2]>,
    trees: Vec<RawTree>,
}

#[derive(Deserialize)]
struct RawTree {
    splits: Vec<(usize, usize, f32)>,
    leaf_values: Vec<Vec<f32>>,
}

struct Tree {
    /// (idx1, idx2, threshold) per inner node, breadth first.
    splits: Vec<(usize, usize, f32)>,
    /// One correction of the whole shape (2 × parts) per leaf.
    leaves: Vec<Vec<f32>>,
}

impl Tree {
    fn leaf(&self, features: &[f32]) -> &[f32] {
        let mut i = 0;
        while i < self.splits.len() {
            let (a, b, threshold) = self.splits[i];
            i = if features[a] - features[b] > threshold {
                2 * i + 1
            } else {
                2 * i + 2
            };
        }
        &self.leaves[i - self.splits.len()]
    }
}

struct Cascade {
    anchors: Vec<usize>,
    deltas: Vec<[f32; 2]>,
    trees: Vec<Tree>,
}

/// A loaded shape predictor.
pub struct ShapePredictor {
    parts: usize,
    initial: Vec<f32>,
    cascades: Vec<Cascade>,
}

impl std::fmt::Debug for ShapePredictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapePredictor")
            .field("parts", &self.parts)
            .field("cascades", &self.cascades.len())
            .finish_non_exhaustive()
    }
}

impl ShapePredictor {
    /// Reads and checks a `twin-ert-v1` JSON model: every index in range, every tree
    /// complete, every leaf a whole shape.
    pub fn from_json(text: &str) -> Result<Self, LandmarkModelError> {
        let raw: RawModel =
            serde_json::from_str(text).map_err(|e| LandmarkModelError::Parse(e.to_string()))?;
        let invalid = |m: String| Err(LandmarkModelError::Invalid(m));
        if raw.format != "twin-ert-v1" {
            return invalid(format!("format {:?}, expected \"twin-ert-v1\"", raw.format));
        }
        let parts = raw.num_parts;
        if parts == 0 || raw.initial_shape.len() != 2 * parts {
            return invalid(format!(
                "initial_shape has {} values for {parts} parts",
                raw.initial_shape.len()
            ));
        }
        let mut cascades = Vec::with_capacity(raw.cascades.len());
        for (c, cascade) in raw.cascades.into_iter().enumerate() {
            let features = cascade.deltas.len();
            if cascade.anchor_idx.len() != features {
                return invalid(format!(
                    "cascade {c}: {} anchors for {features} deltas",
                    cascade.anchor_idx.len()
                ));
            }
            if let Some(a) = cascade.anchor_idx.iter().find(|&&a| a >= parts) {
                return invalid(format!("cascade {c}: anchor {a} of {parts} parts"));
            }
            let mut trees = Vec::with_capacity(cascade.trees.len());
            for (t, tree) in cascade.trees.into_iter().enumerate() {
                if tree.leaf_values.len() != tree.splits.len() + 1 {
                    return invalid(format!(
                        "cascade {c} tree {t}: {} leaves for {} splits",
                        tree.leaf_values.len(),
                        tree.splits.len()
                    ));
                }
                if tree
                    .splits
                    .iter()
                    .any(|&(a, b, _)| a >= features || b >= features)
                {
                    return invalid(format!(
                        "cascade {c} tree {t}: a split past {features} features"
                    ));
                }
                if tree.leaf_values.iter().any(|l| l.len() != 2 * parts) {
                    return invalid(format!("cascade {c} tree {t}: a leaf not of {parts} parts"));
                }
                trees.push(Tree {
                    splits: tree.splits,
                    leaves: tree.leaf_values,
                });
            }
            cascades.push(Cascade {
                anchors: cascade.anchor_idx,
                deltas: cascade.deltas,
                trees,
            });
        }
        Ok(Self {
            parts,
            initial: raw.initial_shape,
            cascades,
        })
    }

    /// Number of landmarks.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The landmarks of the face in `face`, as pixels (dlib's integer points).
    pub fn predict(&self, image: &RgbImage, face: &FaceBox) -> Vec<(i64, i64)> {
        let mut shape = self.initial.clone();
        let initial: Vec<Point> = points_of(&self.initial);
        let mut features = Vec::new();
        for cascade in &self.cascades {
            // The rotation and scale that take the mean shape to the current estimate,
            // kept in f32 as dlib does (`matrix_cast<float>`).
            let tform = similarity(&initial, &points_of(&shape));
            let m = tform.m.map(|v| v as f32);
            features.clear();
            for (&anchor, delta) in cascade.anchors.iter().zip(&cascade.deltas) {
                let x = m[0] * delta[0] + m[1] * delta[1] + shape[2 * anchor];
                let y = m[2] * delta[0] + m[3] * delta[1] + shape[2 * anchor + 1];
                let (px, py) = face.unnormalize(f64::from(x), f64::from(y)).round();
                features.push(intensity(image, px, py));
            }
            for tree in &cascade.trees {
                for (s, d) in shape.iter_mut().zip(tree.leaf(&features)) {
                    *s += d;
                }
            }
        }
        (0..self.parts)
            .map(|i| {
                face.unnormalize(f64::from(shape[2 * i]), f64::from(shape[2 * i + 1]))
                    .round()
            })
            .collect()
    }
}

fn points_of(shape: &[f32]) -> Vec<Point> {
    shape
        .chunks_exact(2)
        .map(|p| Point::new(f64::from(p[0]), f64::from(p[1])))
        .collect()
}

/// dlib's `get_pixel_intensity` of an RGB pixel, the integer mean of its channels; 0
/// outside the image.
fn intensity(image: &RgbImage, x: i64, y: i64) -> f32 {
    if x < 0 || y < 0 || x >= i64::from(image.width) || y >= i64::from(image.height) {
        return 0.0;
    }
    let [r, g, b] = image.at(x as usize, y as usize);
    ((u32::from(r) + u32::from(g) + u32::from(b)) / 3) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-part, one-cascade model whose single split compares the pixel at the box's
    /// top-left with the one at its centre.
    fn tiny(threshold: f32) -> String {
        serde_json::json!({
            "format": "twin-ert-v1", "num_parts": 1, "initial_shape": [0.5, 0.5],
            "cascades": [{"anchor_idx": [0, 0], "deltas": [[-0.5, -0.5], [0.0, 0.0]],
                "trees": [{"splits": [[0, 1, threshold]],
                           "leaf_values": [[0.25, 0.0], [-0.25, 0.0]]}]}]
        })
        .to_string()
    }

    #[test]
    fn a_tree_moves_the_shape_by_the_leaf_its_pixels_choose() {
        let mut image = RgbImage {
            width: 11,
            height: 11,
            pixels: vec![0; 11 * 11 * 3],
        };
        image.pixels[..3].copy_from_slice(&[200, 200, 200]); // the top-left pixel
        let face = FaceBox::whole(&image);
        let model = ShapePredictor::from_json(&tiny(10.0)).expect("valid");
        // 200 − 0 > 10: left child, +0.25 of the width: 0.75 · 10 = 7.5 → 8.
        assert_eq!(model.predict(&image, &face), vec![(8, 5)]);
        let model = ShapePredictor::from_json(&tiny(250.0)).expect("valid");
        assert_eq!(model.predict(&image, &face), vec![(3, 5)]);
    }

    #[test]
    fn inconsistent_models_are_refused_with_a_reason() {
        let bad = tiny(1.0).replace("\"num_parts\":1", "\"num_parts\":2");
        let err = ShapePredictor::from_json(&bad).expect_err("two parts, two values");
        assert!(err.to_string().contains("initial_shape"), "{err}");
        assert!(ShapePredictor::from_json("{}").is_err());
        let bad = tiny(1.0).replace("[[0,1,1.0]]", "[[0,7,1.0]]");
        assert!(ShapePredictor::from_json(&bad).is_err());
    }
}
