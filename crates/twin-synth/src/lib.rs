//! Synthetic signatures, so tests, benchmarks and the demo need no private data: seeded writers
//! with their own hand, genuine samples with natural variation, and skilled forgeries that copy a
//! writer's shape with another hand's dynamics.
//!
//! # Model
//!
//! A writer is drawn from `(seed, writer number)`: a cursive name (a capital, letters from a small
//! copybook, pen lifts between words, i dots and t bars, maybe a flourish), deformed by the
//! writer's own way of forming letters, plus a hand: slant, baseline tilt, rhythm, pen width, ink
//! and size. Every movement is a sigma-lognormal stroke (Plamondon's kinematic theory) towards a
//! virtual target along a circular arc; overlapping strokes are summed and integrated into the
//! pen trajectory, which is rendered with a speed-dependent anti-aliased pen on white paper.
//!
//! - A **genuine** sample re-performs the template with small variation of targets, curvature,
//!   timing, slant, rotation, scale, pen width and position on the page.
//! - A **skilled forgery** of writer W follows W's targets (shape), slant and size, but with a
//!   forger's hand: slower, barely overlapping strokes (more angular), tremor, pauses that leave
//!   ink blobs, blunt stroke ends, the forger's pen and larger shape errors. They are hard
//!   negatives: closer to W than any other writer is, yet not W.
//!
//! Every image is a pure function of `(spec.seed, writer, kind, index, width, height)`: the same
//! seed gives byte-identical PNGs, and one sample can be regenerated without the rest.
//!
//! # Dataset layout ([`write_dataset`])
//!
//! ```text
//! <out>/labels.csv              header `path,subject,kind`; path relative to <out>,
//!                               subject = writer id, kind = `genuine` | `forgery`
//! <out>/w0001/w0001-G-01.png    genuine sample 1 of writer w0001
//! <out>/w0001/w0001-F-01.png    skilled forgery 1 of writer w0001 (by another hand)
//! <out>/w0002/...
//! ```
//!
//! Writer ids are `w` + the 1-based writer number on four digits (`w0001`…); sample numbers are
//! 1-based on at least two digits. A generic reader takes the subject from the folder name and
//! the kind from the file name: genuine matches `-G-\d+\.png$`, forged matches `-F-\d+\.png$`.
//! Images are 8-bit grayscale PNGs of `width` × `height` pixels (600 × 200 by default).
//!
//! ```
//! use twin_synth::{generate_sample, SampleKind, SynthSpec};
//! let spec = SynthSpec { writers: 3, ..SynthSpec::default() };
//! let image = generate_sample(&spec, 0, SampleKind::Genuine, 0);
//! assert_eq!(image.dimensions(), (spec.width, spec.height));
//! ```

mod dataset;
mod dice;
mod lognormal;
mod render;
mod sample;
mod writer;

pub use dataset::{write_dataset, Summary};
pub use image::GrayImage;

use std::path::PathBuf;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSpec {
    /// Number of writers (subjects).
    pub writers: usize,
    /// Genuine samples per writer.
    pub genuine_per_writer: usize,
    /// Skilled forgeries per writer.
    pub forgeries_per_writer: usize,
    /// Seed of the whole dataset.
    pub seed: u64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            writers: 20,
            genuine_per_writer: 12,
            forgeries_per_writer: 12,
            seed: 0,
            width: 600,
            height: 200,
        }
    }
}

/// Smallest page the generator draws on; smaller pages would not show a signature.
pub const MIN_SIDE: u32 = 32;
/// Largest page side, to keep a typo from allocating gigabytes.
pub const MAX_SIDE: u32 = 8192;

impl SynthSpec {
    /// Checks the spec before a dataset is written.
    pub fn validate(&self) -> Result<(), SynthError> {
        let invalid = |reason: String| Err(SynthError::InvalidSpec(reason));
        if self.writers == 0 {
            return invalid("writers must be at least 1".into());
        }
        if self.genuine_per_writer == 0 && self.forgeries_per_writer == 0 {
            return invalid("ask for at least one genuine sample or forgery per writer".into());
        }
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
                return invalid(format!(
                    "{name} {side} is out of range: use {MIN_SIDE}..={MAX_SIDE} pixels"
                ));
            }
        }
        Ok(())
    }
}

/// Genuine signature or skilled forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleKind {
    Genuine,
    Forgery,
}

impl SampleKind {
    /// The letter used in file names: `G` or `F`.
    pub fn code(self) -> char {
        match self {
            SampleKind::Genuine => 'G',
            SampleKind::Forgery => 'F',
        }
    }

    /// The label used in `labels.csv`: `genuine` or `forgery`.
    pub fn label(self) -> &'static str {
        match self {
            SampleKind::Genuine => "genuine",
            SampleKind::Forgery => "forgery",
        }
    }
}

/// The id of writer number `writer` (0-based): `w0001` for 0.
pub fn writer_id(writer: usize) -> String {
    format!("w{:04}", writer + 1)
}

/// The file name of sample `index` (0-based) of a writer: `w0001-G-01.png` for writer 0, index 0.
pub fn sample_file_name(writer: usize, kind: SampleKind, index: usize) -> String {
    format!("{}-{}-{:02}.png", writer_id(writer), kind.code(), index + 1)
}

/// Renders sample `index` (0-based) of `kind` for writer number `writer` (0-based), on a
/// `spec.width` × `spec.height` page (sides clamped to [`MIN_SIDE`]..=[`MAX_SIDE`]). Writers
/// beyond `spec.writers` exist too; only the seed and the page size matter.
pub fn generate_sample(
    spec: &SynthSpec,
    writer: usize,
    kind: SampleKind,
    index: usize,
) -> GrayImage {
    let canvas = (
        spec.width.clamp(MIN_SIDE, MAX_SIDE),
        spec.height.clamp(MIN_SIDE, MAX_SIDE),
    );
    let (writer, index) = (writer as u64, index as u64);
    let paths = match kind {
        SampleKind::Genuine => sample::genuine(spec.seed, writer, index, canvas),
        SampleKind::Forgery => sample::forgery(spec.seed, writer, index, canvas),
    };
    render::render(&paths, canvas.0, canvas.1)
}

/// Encodes an image as PNG in memory (fast compression; deterministic for equal images).
pub fn encode_png(image: &GrayImage) -> Vec<u8> {
    // Writing into a Vec cannot fail for a well-formed GrayImage, so no error is surfaced.
    dataset::png_bytes(image).unwrap_or_default()
}

/// Why a synthetic dataset could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth spec: {0}")]
    InvalidSpec(String),
    #[error("cannot write {path} (check that the output folder is writable)")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path} as png")]
    Encode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}
