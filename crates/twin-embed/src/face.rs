//! A face model's preprocessing (`[face]` in the manifest): decode upright as RGB, run
//! the detector graph on each level of an image pyramid, keep one face (the largest, or
//! refuse several), find its five landmarks and cut the aligned chip. The arithmetic is
//! `twin_core::face`'s; this module owns the detector's ONNX sessions.
//!
//! Detection runs on the thread that prepares the sample (a helper thread or a blocking
//! task), on one of a few single-threaded sessions, so that several images are detected
//! at once without oversubscribing the cores the descriptor's sessions use.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;
use twin_core::face::chip::{chip_details, chip_tensor, extract_chip};
use twin_core::face::detect::{Detection, DetectorConfig};
use twin_core::face::landmarks::{FaceBox, ShapePredictor};
use twin_core::face::{decode_rgb, RgbImage, DETECT_MAX_SIDE};
use twin_core::ids::sha256_hex;
use twin_core::manifest::{FaceSpec, MultipleFaces};
use twin_core::preprocess::{ImageLimits, PreprocessError};

use crate::error::EmbedError;
use crate::runtime::Runtime;

/// What face preprocessing found, besides the chip.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceFound {
    /// The face used, in image pixels (the whole image for a cropped model).
    pub face: FaceBox,
    /// Its five landmarks, in image pixels.
    pub landmarks: Vec<(i64, i64)>,
    /// Faces the detector found (1 for a cropped model).
    pub faces: usize,
    /// The aligned chip, RGB row-major.
    pub chip: Vec<u8>,
}

struct Detector {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    config: DetectorConfig,
}

/// A loaded face pipeline.
pub struct FacePipeline {
    spec: FaceSpec,
    detector: Detector,
    landmarks: ShapePredictor,
}

impl std::fmt::Debug for FacePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacePipeline")
            .field("detector", &self.spec.detector)
            .field("sessions", &self.detector.sessions.len())
            .field("cropped", &self.spec.cropped)
            .finish_non_exhaustive()
    }
}

fn read_checked(dir: &Path, file: &str, sha256: Option<&str>) -> Result<Vec<u8>, EmbedError> {
    let error = |message: String| EmbedError::Model {
        dir: dir.to_owned(),
        message,
    };
    let path = dir.join(file);
    let bytes = std::fs::read(&path).map_err(|e| {
        error(format!(
            "the manifest's [face] names {}, which cannot be read: {e}",
            path.display()
        ))
    })?;
    if let Some(expected) = sha256 {
        let actual = sha256_hex(&bytes);
        if actual != expected.to_ascii_lowercase() {
            return Err(error(format!(
                "{file} has sha256 {actual} but the manifest says {expected}"
            )));
        }
    }
    Ok(bytes)
}

impl FacePipeline {
    /// Loads the detector graph (`sessions` single-threaded sessions), its config and the
    /// landmark model named by `spec`, checking the sha256s the manifest gives.
    pub fn load(
        runtime: &Runtime,
        dir: &Path,
        spec: &FaceSpec,
        sessions: usize,
    ) -> Result<Self, EmbedError> {
        let error = |message: String| EmbedError::Model {
            dir: dir.to_owned(),
            message,
        };
        let onnx = read_checked(dir, &spec.detector, Some(&spec.detector_sha256))?;
        let config_text = read_checked(dir, &spec.detector_config, None)?;
        let config = DetectorConfig::from_json(&String::from_utf8_lossy(&config_text))
            .map_err(|m| error(format!("{}: {m}", spec.detector_config)))?;
        let landmarks_text = read_checked(dir, &spec.landmarks, Some(&spec.landmarks_sha256))?;
        let landmarks = ShapePredictor::from_json(&String::from_utf8_lossy(&landmarks_text))
            .map_err(|e| error(format!("{}: {e}", spec.landmarks)))?;
        if landmarks.parts() != 5 {
            return Err(error(format!(
                "{}: a {}-point model; face alignment needs dlib's 5-point model",
                spec.landmarks,
                landmarks.parts()
            )));
        }
        let mut all = Vec::with_capacity(sessions.max(1));
        for _ in 0..sessions.max(1) {
            let session = crate::session::builder(runtime, 1)?
                .commit_from_memory(&onnx)
                .map_err(|e| error(format!("onnx runtime cannot load {}: {e}", spec.detector)))?;
            all.push(Mutex::new(session));
        }
        Ok(Self {
            spec: spec.clone(),
            detector: Detector {
                sessions: all,
                next: AtomicUsize::new(0),
                config,
            },
            landmarks,
        })
    }

    pub fn spec(&self) -> &FaceSpec {
        &self.spec
    }

    /// The chip tensor of the one face in an encoded image (`3 × size × size`, RGB values
    /// 0..=255), or why there is none. Blocking (runs the detector).
    pub fn prepare(&self, bytes: &[u8], limits: &ImageLimits) -> Result<Vec<f32>, PreprocessError> {
        self.find(bytes, limits)
            .map(|found| chip_tensor(&found.chip, self.spec.chip_size))
    }

    /// The whole pipeline, with what it found along the way.
    pub fn find(&self, bytes: &[u8], limits: &ImageLimits) -> Result<FaceFound, PreprocessError> {
        let image = decode_rgb(bytes, limits)?;
        let (face, faces) = if self.spec.cropped {
            (FaceBox::whole(&image), 1)
        } else {
            let found = self.detect(&image)?;
            let count = found.len();
            if count > 1 && self.spec.multiple == MultipleFaces::Refuse {
                return Err(PreprocessError::SeveralFaces { count });
            }
            // Boxes come best first; only a strictly better box under the policy replaces
            // the one kept, so ties go to the higher score.
            let (cx, cy) = (f64::from(image.width) / 2.0, f64::from(image.height) / 2.0);
            let off_centre = |f: &FaceBox| {
                let (x, y) = (
                    (f.left + f.right) as f64 / 2.0,
                    (f.top + f.bottom) as f64 / 2.0,
                );
                (x - cx).hypot(y - cy)
            };
            let better = |f: &FaceBox, kept: &FaceBox| match self.spec.multiple {
                MultipleFaces::Central => off_centre(f) < off_centre(kept),
                _ => f.width() * f.height() > kept.width() * kept.height(),
            };
            let face = found
                .into_iter()
                .map(|d| d.face)
                .reduce(|kept, f| if better(&f, &kept) { f } else { kept })
                .ok_or(PreprocessError::NoFace)?;
            if face.width() < i64::from(self.spec.min_face) {
                return Err(PreprocessError::FaceTooSmall {
                    size: face.width().max(0) as u32,
                    min: self.spec.min_face,
                });
            }
            (face, count)
        };
        let landmarks = self.landmarks.predict(&image, &face);
        let details = chip_details(&landmarks, self.spec.chip_size, self.spec.padding);
        let chip = extract_chip(&image, &details);
        Ok(FaceFound {
            face,
            landmarks,
            faces,
            chip,
        })
    }

    /// Every face the detector finds, after non-maximum suppression, best first: dlib's
    /// tiled pyramid, one run of the detector graph.
    /// A photo larger than [`DETECT_MAX_SIDE`] is detected scaled down, its boxes scaled
    /// back.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, PreprocessError> {
        let config = &self.detector.config;
        let scaled = image.fit_within(DETECT_MAX_SIDE);
        let (searched, factor) = match &scaled {
            Some((small, factor)) => (small, *factor),
            None => (image, 1.0),
        };
        let tiled = config.tile(searched);
        if tiled.tiles.is_empty() {
            return Ok(Vec::new());
        }
        let (rows, cols, scores) = self.run_detector(&tiled.planes, tiled.cols, tiled.rows)?;
        let mut found = config.detections(&scores, rows, cols, &tiled.tiles);
        if factor != 1.0 {
            let back = |v: i64| (v as f64 / factor).round() as i64;
            for d in &mut found {
                d.face = FaceBox {
                    left: back(d.face.left),
                    top: back(d.face.top),
                    right: back(d.face.right),
                    bottom: back(d.face.bottom),
                };
            }
        }
        Ok(found)
    }

    fn run_detector(
        &self,
        planes: &[f32],
        width: usize,
        height: usize,
    ) -> Result<(usize, usize, Vec<f32>), PreprocessError> {
        let failed = |e: String| PreprocessError::Corrupt(format!("face detector failed: {e}"));
        let sessions = &self.detector.sessions;
        let start = self.detector.next.fetch_add(1, Ordering::Relaxed);
        // Take a free session if there is one, else wait for ours.
        let mut guard = None;
        for i in 0..sessions.len() {
            if let Ok(g) = sessions[(start + i) % sessions.len()].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut session = match guard {
            Some(g) => g,
            None => sessions[start % sessions.len()]
                .lock()
                .map_err(|_| failed("a detector session was poisoned".into()))?,
        };
        let input = TensorRef::from_array_view(([1usize, 3, height, width], planes))
            .map_err(|e| failed(e.to_string()))?;
        let outputs = session
            .run(ort::inputs!["image" => input])
            .map_err(|e| failed(e.to_string()))?;
        let value = outputs
            .get("scores")
            .ok_or_else(|| failed("the detector graph has no output \"scores\"".into()))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| failed(e.to_string()))?;
        if shape.len() != 4 {
            return Err(failed(format!(
                "scores have shape {shape:?}, expected [1, K, H, W]"
            )));
        }
        let (rows, cols) = (shape[2].max(0) as usize, shape[3].max(0) as usize);
        Ok((rows, cols, data.to_vec()))
    }
}
