//! What can go wrong while loading a model or embedding; messages say what to do.

use std::path::PathBuf;

use twin_core::preprocess::PreprocessError;

/// Errors of the embedding runtime. `Clone` because one failed ONNX run is reported to
/// every request of its batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "onnx runtime library not found (looked for {}); run `bash scripts/setup.sh` to \
         install it into runtime/, or point TWIN_ORT_DYLIB or embed.ort_library at \
         libonnxruntime.so",
        display_paths(searched)
    )]
    LibraryNotFound { searched: Vec<PathBuf> },
    #[error(
        "{setting} points at {path}, which does not exist; run `bash scripts/setup.sh` or fix \
         the path"
    )]
    LibraryMissing {
        setting: &'static str,
        path: PathBuf,
    },
    #[error("cannot start onnx runtime from {path}: {message}")]
    Runtime { path: PathBuf, message: String },
    #[error("model {dir} is unusable: {message}")]
    Model { dir: PathBuf, message: String },
    #[error(
        "embed.provider = cuda but CUDA cannot be used: {0}; on a machine with an NVIDIA GPU \
         run `bash scripts/setup.sh --gpu`, or set embed.provider = auto or cpu"
    )]
    CudaUnavailable(String),
    #[error("cannot create an onnx runtime session: {0}")]
    Session(String),
    #[error("invalid input tensor: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("onnx runtime failed to run the model: {0}")]
    Inference(String),
    #[error("the embedding runtime is shutting down")]
    Closed,
}

/// Why [`crate::Embedder::embed_inputs`] failed: one of the samples (by position), or the
/// run itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodedError {
    #[error("input {index}: {source}")]
    Input {
        index: usize,
        #[source]
        source: PreprocessError,
    },
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
