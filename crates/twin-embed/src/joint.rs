//! The manifest's joint head (`[joint]`): a second, small ONNX graph that scores pairs of
//! embeddings, the seed's joint layers over both branches' outputs. It runs on one
//! single-threaded CPU session: a few thousand multiply-adds a pair, far below what a GPU
//! transfer would cost.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;
use twin_core::ids::sha256_hex;
use twin_core::manifest::JointSpec;

use crate::error::EmbedError;
use crate::model::f32_tensor_dims;
use crate::runtime::Runtime;

/// A loaded joint head.
pub struct JointHead {
    spec: JointSpec,
    dim: usize,
    session: Mutex<Session>,
}

impl std::fmt::Debug for JointHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JointHead")
            .field("file", &self.spec.file)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl JointHead {
    /// Reads `dir/<spec.file>`, checks its sha256 against the manifest and its graph
    /// against the contract (inputs `[N, dim]` named as declared, one output `[N]`).
    pub fn load(
        runtime: &Runtime,
        dir: &Path,
        spec: &JointSpec,
        dim: usize,
    ) -> Result<Self, EmbedError> {
        let error = |message: String| EmbedError::Model {
            dir: dir.to_owned(),
            message,
        };
        let path = dir.join(&spec.file);
        let bytes = std::fs::read(&path).map_err(|e| {
            error(format!(
                "the manifest declares a joint head {}, which cannot be read: {e}",
                path.display()
            ))
        })?;
        let actual = sha256_hex(&bytes);
        if actual != spec.sha256.to_ascii_lowercase() {
            return Err(error(format!(
                "{} has sha256 {actual} but the manifest's joint.sha256 is {}",
                spec.file, spec.sha256
            )));
        }
        let session = crate::session::builder(runtime, 1)?
            .commit_from_memory(&bytes)
            .map_err(|e| error(format!("onnx runtime cannot load {}: {e}", spec.file)))?;
        check_graph(&session, spec, dim).map_err(|m| error(format!("{}: {m}", spec.file)))?;
        Ok(Self {
            spec: spec.clone(),
            dim,
            session: Mutex::new(session),
        })
    }

    pub fn spec(&self) -> &JointSpec {
        &self.spec
    }

    /// Scores `a[i]` against `b[i]` for every i in one run. Blocking: call it off the async
    /// executor (`Embedder::joint_scores` does).
    pub fn score(&self, a: &[&[f32]], b: &[&[f32]]) -> Result<Vec<f64>, EmbedError> {
        if a.len() != b.len() {
            return Err(EmbedError::InvalidInput(format!(
                "{} left and {} right embeddings: the joint head scores pairs",
                a.len(),
                b.len()
            )));
        }
        if a.is_empty() {
            return Ok(Vec::new());
        }
        let stack = |side: &[&[f32]]| -> Result<Vec<f32>, EmbedError> {
            let mut out = Vec::with_capacity(side.len() * self.dim);
            for v in side {
                if v.len() != self.dim {
                    return Err(EmbedError::InvalidInput(format!(
                        "an embedding has {} dimensions, the joint head takes {}",
                        v.len(),
                        self.dim
                    )));
                }
                out.extend_from_slice(v);
            }
            Ok(out)
        };
        let (left, right) = (stack(a)?, stack(b)?);
        let n = a.len();
        let inference = |e: ort::Error| EmbedError::Inference(e.to_string());
        let left =
            TensorRef::from_array_view(([n, self.dim], left.as_slice())).map_err(inference)?;
        let right =
            TensorRef::from_array_view(([n, self.dim], right.as_slice())).map_err(inference)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| EmbedError::Inference("the joint head's session was poisoned".into()))?;
        let outputs = session
            .run(ort::inputs![
                self.spec.input_a.as_str() => left,
                self.spec.input_b.as_str() => right,
            ])
            .map_err(inference)?;
        let value = outputs.get(&self.spec.output).ok_or_else(|| {
            EmbedError::Inference(format!("the joint head produced no {:?}", self.spec.output))
        })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(inference)?;
        if data.len() != n {
            return Err(EmbedError::Inference(format!(
                "the joint head's output has shape {shape:?}, expected [{n}]"
            )));
        }
        Ok(data.iter().map(|&s| f64::from(s)).collect())
    }
}

fn check_graph(session: &Session, spec: &JointSpec, dim: usize) -> Result<(), String> {
    let inputs = session.inputs();
    for name in [&spec.input_a, &spec.input_b] {
        let input = inputs
            .iter()
            .find(|i| i.name() == name.as_str())
            .ok_or_else(|| {
                let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
                format!("no input {name:?} (the graph has {names:?})")
            })?;
        match f32_tensor_dims(input.dtype()) {
            Some(dims) if dims.len() == 2 && (dims[1] == dim as i64 || dims[1] < 0) => {}
            other => {
                return Err(format!(
                    "input {name:?} has shape {other:?}, expected f32 [N, {dim}]"
                ))
            }
        }
    }
    if inputs.len() != 2 {
        return Err(format!(
            "the graph has {} inputs; a joint head has two",
            inputs.len()
        ));
    }
    if !session
        .outputs()
        .iter()
        .any(|o| o.name() == spec.output.as_str())
    {
        return Err(format!("no output {:?}", spec.output));
    }
    Ok(())
}
