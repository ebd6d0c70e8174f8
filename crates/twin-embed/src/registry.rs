//! The models a process serves, looked up by name or id: the gateway resolves a
//! request's `model` field here, the worker a job's `model_id`.

use std::path::PathBuf;

use twin_core::config::EmbedConfig;

use crate::{EmbedError, Embedder};

/// Every loaded model; the configured default (or the first) answers requests that
/// name no model. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    models: std::sync::Arc<Vec<Embedder>>,
    default: usize,
}

impl ModelRegistry {
    /// Loads each model directory; `default` names the default model (empty = the first).
    pub fn load(dirs: &[PathBuf], default: &str, config: &EmbedConfig) -> Result<Self, EmbedError> {
        let models = dirs
            .iter()
            .map(|dir| Embedder::load(dir, config))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(models, default)
    }

    pub fn new(models: Vec<Embedder>, default: &str) -> Result<Self, EmbedError> {
        let unusable = |message: String| EmbedError::Model {
            dir: PathBuf::from("(models.dirs)"),
            message,
        };
        if models.is_empty() {
            return Err(unusable(
                "no model configured: set models.dirs (TWIN_MODELS__DIRS)".to_owned(),
            ));
        }
        let default = if default.is_empty() {
            0
        } else {
            models
                .iter()
                .position(|m| m.manifest().name == default || m.manifest().id == default)
                .ok_or_else(|| {
                    unusable(format!(
                        "models.default = {default:?} is not among the loaded models"
                    ))
                })?
        };
        Ok(Self {
            models: std::sync::Arc::new(models),
            default,
        })
    }

    /// The model named `requested` (name or id); the default for an empty string.
    pub fn resolve(&self, requested: &str) -> Option<&Embedder> {
        if requested.is_empty() {
            return Some(&self.models[self.default]);
        }
        self.models
            .iter()
            .find(|m| m.manifest().name == requested || m.manifest().id == requested)
    }

    pub fn default_model(&self) -> &Embedder {
        &self.models[self.default]
    }

    pub fn all(&self) -> &[Embedder] {
        &self.models
    }

    /// Names of the served models, for error messages.
    pub fn names(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| m.manifest().name.clone())
            .collect()
    }
}
