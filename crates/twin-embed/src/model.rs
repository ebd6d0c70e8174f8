//! Loading a model directory under the model contract (`models/README.md`): the manifest
//! on its own terms, the ONNX file against the manifest's `id`, and the graph's input and
//! output against the manifest's shapes. Each check fails with a message naming the
//! model, the field and both values.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::ValueType;
use twin_core::ids::sha256_hex;
use twin_core::manifest::{ImageInput, InputSpec, ModelManifest, TextInput, ONNX_FILE};

use crate::error::EmbedError;

/// A model whose manifest and ONNX bytes agree; sessions are created from `onnx`.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub manifest: ModelManifest,
    pub onnx: Vec<u8>,
}

impl ModelFiles {
    /// Reads `dir/manifest.toml` and `dir/model.onnx` and checks the file's sha256
    /// against the manifest's `id`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let model_error = |message: String| EmbedError::Model {
            dir: dir.to_owned(),
            message,
        };
        let manifest = ModelManifest::load(dir).map_err(|e| model_error(e.to_string()))?;
        let onnx_path = dir.join(ONNX_FILE);
        if !onnx_path.is_file() {
            return Err(model_error(format!("{ONNX_FILE} is missing")));
        }
        let onnx = std::fs::read(&onnx_path)
            .map_err(|e| model_error(format!("cannot read {}: {e}", onnx_path.display())))?;
        let actual = sha256_hex(&onnx);
        if actual != manifest.id.to_ascii_lowercase() {
            return Err(model_error(format!(
                "{ONNX_FILE} has sha256 {actual} but the manifest's id is {}; the file was \
                 replaced without updating the manifest (or the reverse)",
                manifest.id
            )));
        }
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
            onnx,
        })
    }

    pub(crate) fn error(&self, message: String) -> EmbedError {
        EmbedError::Model {
            dir: self.dir.clone(),
            message,
        }
    }

    /// Number of f32 values of one input image (C·H·W); 0 for a text model.
    pub fn tensor_len(&self) -> usize {
        match &self.manifest.input {
            InputSpec::Image(i) => i.channels as usize * i.height as usize * i.width as usize,
            InputSpec::Text(_) => 0,
        }
    }

    pub fn embedding_size(&self) -> usize {
        self.manifest.output.embedding_size as usize
    }

    /// Checks the session's graph against the manifest: the inputs of the model's kind
    /// ([`Self::check_image_input`], [`Self::check_text_inputs`]); an f32 output of rank 2
    /// `[N, D]` with D = embedding size.
    pub fn check_graph(&self, session: &Session) -> Result<(), EmbedError> {
        let m = &self.manifest;
        match &m.input {
            InputSpec::Image(input) => self.check_image_input(session, input)?,
            InputSpec::Text(text) => self.check_text_inputs(session, text)?,
        }
        self.check_output(session)
    }

    /// A text model's graph takes exactly the manifest's named inputs, each an i64 tensor
    /// `[N, S]` with both axes dynamic (batches are padded to their longest text).
    fn check_text_inputs(&self, session: &Session, text: &TextInput) -> Result<(), EmbedError> {
        let mut wanted = vec![text.input_ids.as_str(), text.attention_mask.as_str()];
        wanted.extend(text.token_type_ids.as_deref());
        let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        let mut sorted_wanted = wanted.clone();
        sorted_wanted.sort_unstable();
        if sorted_names != sorted_wanted {
            return Err(self.error(format!(
                "the graph's inputs are {names:?} but the manifest names {wanted:?} \
                 (input.input_ids, attention_mask, token_type_ids)"
            )));
        }
        for input in session.inputs() {
            let dims = match input.dtype() {
                ValueType::Tensor { ty, shape, .. }
                    if *ty == ort::value::TensorElementType::Int64 =>
                {
                    shape.iter().copied().collect::<Vec<i64>>()
                }
                _ => {
                    return Err(self.error(format!(
                        "input {:?} is not an i64 tensor; token ids and masks are int64",
                        input.name()
                    )))
                }
            };
            if dims.len() != 2 || dims.iter().any(|&d| d > 0) {
                return Err(self.error(format!(
                    "input {:?} has shape {dims:?}; a text input is [N, S] with both axes \
                     dynamic",
                    input.name()
                )));
            }
        }
        Ok(())
    }

    /// An image model's graph takes one f32 input named as the manifest says, of rank 4
    /// `[N, C, H, W]` with a dynamic batch axis and C, H, W as stated (or dynamic).
    fn check_image_input(&self, session: &Session, image: &ImageInput) -> Result<(), EmbedError> {
        let inputs = session.inputs();
        let [input] = inputs else {
            let names: Vec<&str> = inputs.iter().map(|o| o.name()).collect();
            return Err(self.error(format!(
                "the graph has {} inputs {names:?}; the contract needs exactly one, {:?}",
                inputs.len(),
                image.name
            )));
        };
        if input.name() != image.name {
            return Err(self.error(format!(
                "the graph's input is named {:?} but the manifest says input.name = {:?}",
                input.name(),
                image.name
            )));
        }
        let dims = f32_tensor_dims(input.dtype())
            .ok_or_else(|| self.error(format!("input {:?} is not an f32 tensor", input.name())))?;
        if dims.len() != 4 {
            return Err(self.error(format!(
                "input {:?} has rank {} (shape {dims:?}); the contract needs rank 4 [N, C, H, W]",
                input.name(),
                dims.len()
            )));
        }
        if dims[0] > 0 {
            return Err(self.error(format!(
                "input {:?} has a fixed batch size {}; export it with a dynamic batch axis",
                input.name(),
                dims[0]
            )));
        }
        let expected = [image.channels, image.height, image.width];
        for ((axis, &got), want) in ["C", "H", "W"].iter().zip(&dims[1..]).zip(expected) {
            if got > 0 && got != i64::from(want) {
                return Err(self.error(format!(
                    "input {:?} has {axis} = {got} in the graph but the manifest says {want} \
                     (graph shape {dims:?}, manifest [N, {}, {}, {}])",
                    input.name(),
                    expected[0],
                    expected[1],
                    expected[2]
                )));
            }
        }
        Ok(())
    }

    fn check_output(&self, session: &Session) -> Result<(), EmbedError> {
        let m = &self.manifest;
        let output = session
            .outputs()
            .iter()
            .find(|o| o.name() == m.output.name)
            .ok_or_else(|| {
                let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
                self.error(format!(
                    "the graph has no output named {:?} (output.name); it has {names:?}",
                    m.output.name
                ))
            })?;
        let dims = f32_tensor_dims(output.dtype()).ok_or_else(|| {
            self.error(format!("output {:?} is not an f32 tensor", output.name()))
        })?;
        if dims.len() != 2 {
            return Err(self.error(format!(
                "output {:?} has rank {} (shape {dims:?}); the contract needs [N, D]",
                output.name(),
                dims.len()
            )));
        }
        if dims[1] > 0 && dims[1] != i64::from(m.output.embedding_size) {
            return Err(self.error(format!(
                "output {:?} has D = {} in the graph but the manifest says embedding_size = {}",
                output.name(),
                dims[1],
                m.output.embedding_size
            )));
        }
        Ok(())
    }
}

/// The dimensions of an f32 tensor type (-1 where dynamic), or `None` for other types.
pub(crate) fn f32_tensor_dims(dtype: &ValueType) -> Option<Vec<i64>> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } if *ty == ort::value::TensorElementType::Float32 => {
            Some(shape.iter().copied().collect())
        }
        _ => None,
    }
}
