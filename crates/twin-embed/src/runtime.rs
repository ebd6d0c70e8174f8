//! The process's one ONNX Runtime environment. ONNX Runtime allows a single environment
//! per process and `ort` loads the library once (`load-dynamic`), so the first caller
//! decides which `libonnxruntime.so` is used and every later caller shares it.
//!
//! Where the library is found, first match wins:
//! 1. `embed.ort_library` in the configuration (also `TWIN_EMBED__ORT_LIBRARY`);
//! 2. the `TWIN_ORT_DYLIB` environment variable;
//! 3. `runtime/libonnxruntime.so` under the working directory, then under each ancestor
//!    of the running executable (so `target/debug/twin` and test binaries find the
//!    repository's `runtime/`). `bash scripts/setup.sh` puts it there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::EmbedError;

/// Environment variable naming the ONNX Runtime library.
pub const ORT_DYLIB_ENV: &str = "TWIN_ORT_DYLIB";
/// Where `scripts/setup.sh` links the library, relative to the repository root.
pub const DEFAULT_LIBRARY: &str = "runtime/libonnxruntime.so";

/// The initialized runtime: the environment and the library it came from.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) environment: Environment,
    library: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// The `libonnxruntime.so` this process runs on.
    pub fn library(&self) -> &Path {
        &self.library
    }
}

static RUNTIME: OnceLock<Result<Runtime, EmbedError>> = OnceLock::new();

/// The process's runtime, initialized on first use from `configured_library` (empty = the
/// search described in the module documentation). Later calls return the same runtime;
/// a different `configured_library` then only earns a warning.
pub fn runtime(configured_library: &str) -> Result<&'static Runtime, EmbedError> {
    let result = RUNTIME.get_or_init(|| {
        let library = find_library(configured_library)?;
        init(&library)
    });
    let runtime = result.as_ref().map_err(Clone::clone)?;
    if !configured_library.is_empty() && Path::new(configured_library) != runtime.library {
        tracing::warn!(
            requested = configured_library,
            active = %runtime.library.display(),
            "onnx runtime already loaded from another library; one per process, keeping it"
        );
    }
    Ok(runtime)
}

fn init(library: &Path) -> Result<Runtime, EmbedError> {
    let runtime_error = |message: String| EmbedError::Runtime {
        path: library.to_owned(),
        message,
    };
    let environment = ort::init_from(library)
        .map_err(|e| runtime_error(e.to_string()))?
        .with_name("twin")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(e.to_string()))?;
    tracing::info!(library = %library.display(), "onnx runtime loaded");
    Ok(Runtime {
        environment,
        library: library.to_owned(),
    })
}

/// Finds `libonnxruntime.so` as the module documentation describes.
pub fn find_library(configured: &str) -> Result<PathBuf, EmbedError> {
    if !configured.is_empty() {
        return existing(PathBuf::from(configured), "embed.ort_library");
    }
    if let Some(from_env) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        return existing(PathBuf::from(from_env), ORT_DYLIB_ENV);
    }
    let mut searched = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        searched.push(cwd.join(DEFAULT_LIBRARY));
    }
    if let Ok(exe) = std::env::current_exe() {
        searched.extend(exe.ancestors().skip(1).map(|dir| dir.join(DEFAULT_LIBRARY)));
    }
    // `is_file` follows the symbolic link setup.sh makes, so a dangling link is skipped.
    match searched.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => Err(EmbedError::LibraryNotFound { searched }),
    }
}

fn existing(path: PathBuf, setting: &'static str) -> Result<PathBuf, EmbedError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmbedError::LibraryMissing { setting, path })
    }
}
