//! Limits on what an image may cost before and while it is decoded.

use crate::config::EmbedConfig;

/// Limits on what an image may cost before and while it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded image accepted, in bytes.
    pub max_bytes: usize,
    /// Largest width or height accepted, in pixels (checked from the header).
    pub max_side: u32,
    /// Largest decoded pixel buffer accepted, in bytes (e.g. 16-bit RGBA needs 8 per pixel).
    pub max_decoded_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_side: 8192,
            max_decoded_bytes: 512 * 1024 * 1024,
        }
    }
}

impl From<&EmbedConfig> for ImageLimits {
    fn from(config: &EmbedConfig) -> Self {
        Self {
            max_bytes: config.max_image_bytes,
            max_side: config.max_image_side,
            ..Self::default()
        }
    }
}
