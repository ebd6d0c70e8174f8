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
    /// What the graph takes: an image or a text, and what that kind needs.
    pub input: InputSpec,
    /// How a signature image becomes the input tensor (ink preprocessing). An image model
    /// has this table or `[face]`; a text model neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<PreprocessSpec>,
    /// How a photo becomes the aligned face chip the graph takes (face preprocessing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceSpec>,
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

/// What a model takes. In the manifest the `[input]` table's `kind` says which
/// (`"image"` when absent, so image manifests written before text models stay valid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawInput", into = "RawInput")]
pub enum InputSpec {
    Image(ImageInput),
    Text(TextInput),
}

/// The two input kinds, for messages and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Image,
    Text,
}

impl InputKind {
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Image => "image",
            InputKind::Text => "text",
        }
    }
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl InputSpec {
    pub fn kind(&self) -> InputKind {
        match self {
            InputSpec::Image(_) => InputKind::Image,
            InputSpec::Text(_) => InputKind::Text,
        }
    }
}

/// An image model's ONNX input tensor, `[N, channels, height, width]` f32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInput {
    pub name: String,
    /// Channels, height, width; the batch axis N is dynamic.
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

/// A text model's inputs: token ids from the model's own tokenizer, `[N, S]` i64 tensors
/// with both axes dynamic (a batch is padded to its longest text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextInput {
    /// The tokenizer file (Hugging Face `tokenizer.json`) in the model directory.
    pub tokenizer: String,
    /// Longest token sequence the graph takes; longer texts are truncated, and the answer
    /// says so.
    pub max_tokens: u32,
    /// Graph input names.
    pub input_ids: String,
    pub attention_mask: String,
    /// Present when the graph takes segment ids (BERT-style); all zeros for one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_ids: Option<String>,
}

/// The `[input]` table as written: one flat table whose `kind` picks the fields that apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channels: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokenizer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_ids: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attention_mask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_type_ids: Option<String>,
}

impl TryFrom<RawInput> for InputSpec {
    type Error = String;

    fn try_from(raw: RawInput) -> Result<Self, String> {
        fn need<T>(value: Option<T>, kind: &str, field: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("input: a {kind} input needs `{field}`"))
        }
        fn refuse<T>(value: &Option<T>, kind: &str, field: &str) -> Result<(), String> {
            match value {
                Some(_) => Err(format!("input: `{field}` does not apply to a {kind} input")),
                None => Ok(()),
            }
        }
        match raw.kind.as_deref().unwrap_or("image") {
            "image" => {
                refuse(&raw.tokenizer, "image", "tokenizer")?;
                refuse(&raw.max_tokens, "image", "max_tokens")?;
                refuse(&raw.input_ids, "image", "input_ids")?;
                refuse(&raw.attention_mask, "image", "attention_mask")?;
                refuse(&raw.token_type_ids, "image", "token_type_ids")?;
                Ok(InputSpec::Image(ImageInput {
                    name: need(raw.name, "image", "name")?,
                    channels: need(raw.channels, "image", "channels")?,
                    height: need(raw.height, "image", "height")?,
                    width: need(raw.width, "image", "width")?,
                }))
            }
            "text" => {
                refuse(&raw.name, "text", "name")?;
                refuse(&raw.channels, "text", "channels")?;
                refuse(&raw.height, "text", "height")?;
                refuse(&raw.width, "text", "width")?;
                Ok(InputSpec::Text(TextInput {
                    tokenizer: need(raw.tokenizer, "text", "tokenizer")?,
                    max_tokens: need(raw.max_tokens, "text", "max_tokens")?,
                    input_ids: need(raw.input_ids, "text", "input_ids")?,
                    attention_mask: need(raw.attention_mask, "text", "attention_mask")?,
                    token_type_ids: raw.token_type_ids,
                }))
            }
            other => Err(format!(
                "input.kind must be \"image\" or \"text\", got {other:?}"
            )),
        }
    }
}

impl From<InputSpec> for RawInput {
    fn from(spec: InputSpec) -> Self {
        match spec {
            // No `kind` for images: their manifests read exactly as before.
            InputSpec::Image(i) => RawInput {
                name: Some(i.name),
                channels: Some(i.channels),
                height: Some(i.height),
                width: Some(i.width),
                ..RawInput::default()
            },
            InputSpec::Text(t) => RawInput {
                kind: Some("text".to_owned()),
                tokenizer: Some(t.tokenizer),
                max_tokens: Some(t.max_tokens),
                input_ids: Some(t.input_ids),
                attention_mask: Some(t.attention_mask),
                token_type_ids: t.token_type_ids,
                ..RawInput::default()
            },
        }
    }
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

/// Face preprocessing: detect the face with a second graph, find five landmarks, cut the
/// aligned chip (dlib's pipeline; see `twin_core::face`). The graph's input is the chip:
/// 3 × `chip_size` × `chip_size`, RGB values 0..=255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceSpec {
    /// The detector graph in the model directory, and its sha256 (checked at load).
    pub detector: String,
    pub detector_sha256: String,
    /// How the detector's scores become boxes (JSON, `"format": "twin-mmod-v1"`).
    pub detector_config: String,
    /// The 5-point landmark model (JSON, `"format": "twin-ert-v1"`), and its sha256.
    pub landmarks: String,
    pub landmarks_sha256: String,
    /// Chip side in pixels and padding around the mean face (dlib: 150 and 0.25).
    pub chip_size: u32,
    pub padding: f64,
    /// Smallest face accepted: the detected box's width in pixels.
    pub min_face: u32,
    /// Several faces in one image: use the largest, or refuse the image.
    #[serde(default)]
    pub multiple: MultipleFaces,
    /// True when every image is already a face crop: no detection, the landmarks are
    /// found in the whole image.
    #[serde(default)]
    pub cropped: bool,
}

/// What face preprocessing does with an image showing several faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultipleFaces {
    /// Use the largest face (by detected box area).
    #[default]
    Largest,
    /// Use the face whose box centre is nearest the image's centre: the subject of a
    /// portrait or of a photo cropped around one person, even beside a larger bystander.
    Central,
    /// Refuse the image (INVALID_ARGUMENT), so nobody is enrolled by a bystander's face.
    Refuse,
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

/// Whether `file` names a file directly inside the model directory (no path, no `..`).
fn plain_file_name(file: &str) -> bool {
    !file.is_empty() && !file.contains(['/', '\\']) && file != ".." && file != "."
}

impl ModelManifest {
    pub fn input_kind(&self) -> InputKind {
        self.input.kind()
    }

    /// The image input and its preprocessing, for an image model (validated: both present).
    pub fn image(&self) -> Option<(&ImageInput, &PreprocessSpec)> {
        match (&self.input, &self.preprocess) {
            (InputSpec::Image(input), Some(spec)) => Some((input, spec)),
            _ => None,
        }
    }

    /// The image input tensor of an image model, ink or face.
    pub fn image_input(&self) -> Option<&ImageInput> {
        match &self.input {
            InputSpec::Image(input) => Some(input),
            InputSpec::Text(_) => None,
        }
    }

    /// The image input and its face preprocessing, for a face model.
    pub fn face(&self) -> Option<(&ImageInput, &FaceSpec)> {
        match (&self.input, &self.face) {
            (InputSpec::Image(input), Some(spec)) => Some((input, spec)),
            _ => None,
        }
    }

    /// The text input, for a text model.
    pub fn text(&self) -> Option<&TextInput> {
        match &self.input {
            InputSpec::Text(t) => Some(t),
            InputSpec::Image(_) => None,
        }
    }

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

    fn validate_face(&self, face: &FaceSpec) -> Result<(), String> {
        let InputSpec::Image(input) = &self.input else {
            return Err("[face] applies to image models only; this one takes text".to_owned());
        };
        if self.preprocess.is_some() {
            return Err("a model has [preprocess] (ink) or [face], not both".to_owned());
        }
        if input.channels != 3 || input.height != face.chip_size || input.width != face.chip_size {
            return Err(format!(
                "a face model takes [N, 3, {s}, {s}] chips (face.chip_size = {s}), the input \
                 says [N, {}, {}, {}]",
                input.channels,
                input.height,
                input.width,
                s = face.chip_size
            ));
        }
        if !(16..=1024).contains(&face.chip_size) {
            return Err(format!(
                "face.chip_size must be 16..=1024, got {}",
                face.chip_size
            ));
        }
        if !(0.0..=2.0).contains(&face.padding) {
            return Err(format!("face.padding must be 0..=2, got {}", face.padding));
        }
        for (field, file) in [
            ("face.detector", &face.detector),
            ("face.detector_config", &face.detector_config),
            ("face.landmarks", &face.landmarks),
        ] {
            if !plain_file_name(file) {
                return Err(format!(
                    "{field} must name a file of the model directory, got {file:?}"
                ));
            }
        }
        for (field, sha) in [
            ("face.detector_sha256", &face.detector_sha256),
            ("face.landmarks_sha256", &face.landmarks_sha256),
        ] {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{field} must be 64 hex characters, got {sha:?}"));
            }
        }
        Ok(())
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
        match (&self.input, &self.preprocess) {
            _ if self.face.is_some() => {
                if let Some(face) = &self.face {
                    self.validate_face(face)?;
                }
            }
            (InputSpec::Image(i), Some(spec)) => {
                if i.channels == 0 || i.height == 0 || i.width == 0 {
                    return Err(format!(
                        "input shape [N, {}, {}, {}] has a zero dimension",
                        i.channels, i.height, i.width
                    ));
                }
                if spec.std <= 0.0 || !spec.std.is_finite() {
                    return Err(format!("preprocess.std must be > 0, got {}", spec.std));
                }
            }
            (InputSpec::Image(_), None) => {
                return Err(
                    "an image model needs a [preprocess] table (signature ink) or a [face] \
                     table"
                        .to_owned(),
                );
            }
            (InputSpec::Text(_), Some(_)) => {
                return Err(
                    "[preprocess] applies to image models only; this one takes text".to_owned(),
                );
            }
            (InputSpec::Text(t), None) => {
                if !plain_file_name(&t.tokenizer) {
                    return Err(format!(
                        "input.tokenizer must name a file of the model directory, got {:?}",
                        t.tokenizer
                    ));
                }
                if t.max_tokens < 2 {
                    return Err(format!(
                        "input.max_tokens must be at least 2, got {}",
                        t.max_tokens
                    ));
                }
                let mut names = vec![&t.input_ids, &t.attention_mask];
                names.extend(t.token_type_ids.as_ref());
                if names.iter().any(|n| n.is_empty())
                    || names
                        .iter()
                        .enumerate()
                        .any(|(k, n)| names[..k].contains(n))
                {
                    return Err(
                        "input.input_ids, attention_mask and token_type_ids must be \
                                non-empty and distinct"
                            .to_owned(),
                    );
                }
            }
        }
        if self.output.embedding_size == 0 {
            return Err("output.embedding_size is 0".to_owned());
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
            let plain = plain_file_name(&joint.file) && joint.file != ONNX_FILE;
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
