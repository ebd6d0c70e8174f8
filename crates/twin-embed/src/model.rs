//! Loading a model directory under the model contract (`models/README.md`): the manifest
//! on its own terms, the ONNX file against the manifest's `id`, and the graph's input and
//! output against the manifest's shapes. Each check fails with a message naming the
//! model, the field and both values.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::ValueType;
use twin_core::ids::sha256_hex;
use twin_core::manifest::{ModelManifest, ONNX_FILE};

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

    /// Number of f32 values of one input image (C·H·W).
    pub fn tensor_len(&self) -> usize {
        let i = &self.manifest.input;
        i.channels as usize * i.height as usize * i.width as usize
    }

    pub fn embedding_size(&self) -> usize {
        self.manifest.output.embedding_size as usize
    }

    /// Checks the session's graph against the manifest: one f32 input named as the
    /// manifest says, of rank 4 `[N, C, H, W]` with a dynamic batch axis and C, H, W as
    /// stated (or dynamic); an f32 output of rank 2 `[N, D]` with D = embedding size.
    pub fn check_graph(&self, session: &Session) -> Result<(), EmbedError> {
        let m = &self.manifest;
        let inputs = session.inputs();
        let [input] = inputs else {
            let names: Vec<&str> = inputs.iter().map(|o| o.name()).collect();
            return Err(self.error(format!(
                "the graph has {} inputs {names:?}; the contract needs exactly one, {:?}",
                inputs.len(),
                m.input.name
            )));
        };
        if input.name() != m.input.name {
            return Err(self.error(format!(
                "the graph's input is named {:?} but the manifest says input.name = {:?}",
                input.name(),
                m.input.name
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
        let expected = [m.input.channels, m.input.height, m.input.width];
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
