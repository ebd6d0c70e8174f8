//! The model contract: a model is a directory holding `model.onnx` and `manifest.toml`.
//! This module reads and checks the manifest on its own; checks against the ONNX graph
//! itself (input rank, dimensions) happen where the graph is loaded (twin-embed).
//! The format is documented in `models/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decision::{OperatingPoint, SubjectOperatingPoint};
use crate::metric::Metric;

/// File names inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.toml";
pub const ONNX_FILE: &str = "model.onnx";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Short name, e.g. "signature-v1"; what requests use in `model`.
    pub name: String,
    pub version: String,
    /// sha256 of `model.onnx`, lowercase hex. Checked at load.
    pub id: String,
    /// False for development models with random weights.
    pub trained: bool,
    #[serde(default)]
    pub description: String,
    pub input: InputSpec,
    pub preprocess: PreprocessSpec,
    pub output: OutputSpec,
    /// The metric the model was trained for; the store's collection uses it.
    pub native_metric: Metric,
    /// Target FAR of the operating point used when a request names none.
    pub default_target_far: f64,
    /// Pairwise operating points (`Verify`, `Search` with a target FAR).
    #[serde(default)]
    pub operating_points: Vec<OperatingPoint>,
    /// Probe-vs-subject operating points per aggregation and reference count
    /// (`VerifySubject`); see [`SubjectOperatingPoint`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_operating_points: Vec<SubjectOperatingPoint>,
    /// The seed's joint layers: a second, small graph that scores two embeddings
    /// (`Metric::Learned`). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joint: Option<JointSpec>,
    /// Evaluation figures, e.g. `eer_skilled_test = 0.087`.
    #[serde(default)]
    pub evaluation: BTreeMap<String, f64>,
}

/// A learned similarity head: an ONNX graph in the model directory with two f32 inputs
/// `[N, D]` (the two embeddings) and one output `[N]`, a score in which higher means more
/// similar. It works from stored vectors, so enrolled references need no re-embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointSpec {
    /// File name inside the model directory, e.g. "joint.onnx".
    pub file: String,
    /// sha256 of the file, lowercase hex. Checked at load.
    pub sha256: String,
    pub input_a: String,
    pub input_b: String,
    pub output: String,
    #[serde(default)]
    pub description: String,
}

/// The ONNX input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    /// Channels, height, width; the batch axis N is dynamic.
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

/// How an image becomes the input tensor (see `twin_core::preprocess`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    /// Binarize with Otsu's threshold and drop the background.
    #[serde(default = "default_true")]
    pub binarize: bool,
    /// Crop to the ink's bounding box before resizing.
    #[serde(default = "default_true")]
    pub crop_to_ink: bool,
    /// Margin around the ink box, as a fraction of its larger side.
    #[serde(default)]
    pub margin: f32,
    /// After scaling pixels to [0, 1] (ink = 1, background = 0), `(x - mean) / std`.
    #[serde(default)]
    pub mean: f32,
    #[serde(default = "default_one")]
    pub std: f32,
}

/// The ONNX output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub embedding_size: u32,
    /// Whether the graph already L2-normalizes its output.
    pub l2_normalized: bool,
}

fn default_true() -> bool {
    true
}

fn default_one() -> f32 {
    1.0
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("model directory {dir}: {file} is missing")]
    MissingFile { dir: PathBuf, file: &'static str },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid manifest: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ModelManifest {
    /// Reads `dir/manifest.toml` and checks it on its own terms.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Err(ManifestError::MissingFile {
                dir: dir.to_owned(),
                file: MANIFEST_FILE,
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io {
            path: path.clone(),
            source,
        })?;
        let manifest: ModelManifest = toml::from_str(&text).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid { path, message })?;
        Ok(manifest)
    }

    /// Serializes to TOML (for `twin calibrate` and the training export).
    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings and numbers to TOML cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks what can be checked without the graph.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name is empty".to_owned());
        }
        if self.id.len() != 64 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "id must be the sha256 of model.onnx (64 hex characters), got {:?}",
                self.id
            ));
        }
        let i = &self.input;
        if i.channels == 0 || i.height == 0 || i.width == 0 {
            return Err(format!(
                "input shape [N, {}, {}, {}] has a zero dimension",
                i.channels, i.height, i.width
            ));
        }
        if self.output.embedding_size == 0 {
            return Err("output.embedding_size is 0".to_owned());
        }
        if self.preprocess.std <= 0.0 || !self.preprocess.std.is_finite() {
            return Err(format!(
                "preprocess.std must be > 0, got {}",
                self.preprocess.std
            ));
        }
        if !(self.default_target_far > 0.0 && self.default_target_far < 1.0) {
            return Err(format!(
                "default_target_far must be in (0, 1), got {}",
                self.default_target_far
            ));
        }
        for point in &self.operating_points {
            let usable =
                point.target_far > 0.0 && point.target_far < 1.0 && point.threshold.is_finite();
            if !usable {
                return Err(format!(
                    "operating point {:?}: target_far must be in (0, 1) and threshold finite",
                    point.name
                ));
            }
        }
        if let Some(joint) = &self.joint {
            let plain = !joint.file.is_empty()
                && !joint.file.contains(['/', '\\'])
                && joint.file != ".."
                && joint.file != ONNX_FILE;
            if !plain {
                return Err(format!(
                    "joint.file must name a file of the model directory other than {ONNX_FILE}, \
                     got {:?}",
                    joint.file
                ));
            }
            if joint.sha256.len() != 64 || !joint.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "joint.sha256 must be the sha256 of {} (64 hex characters), got {:?}",
                    joint.file, joint.sha256
                ));
            }
            if [&joint.input_a, &joint.input_b, &joint.output]
                .iter()
                .any(|name| name.is_empty())
                || joint.input_a == joint.input_b
            {
                return Err(
                    "joint.input_a, input_b and output must be non-empty, the inputs distinct"
                        .to_owned(),
                );
            }
        }
        for point in &self.subject_operating_points {
            let usable = point.target_far > 0.0
                && point.target_far < 1.0
                && point.threshold.is_finite()
                && point.references >= 1;
            if !usable {
                return Err(format!(
                    "subject operating point {:?}: target_far must be in (0, 1), threshold \
                     finite and references at least 1",
                    point.name
                ));
            }
            let least = point.aggregation.min_references();
            if (point.references as usize) < least {
                return Err(format!(
                    "subject operating point {:?}: {} needs at least {least} references, it \
                     has {}",
                    point.name, point.aggregation, point.references
                ));
            }
        }
        Ok(())
    }
}
