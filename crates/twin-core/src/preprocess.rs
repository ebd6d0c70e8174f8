//! Turning an encoded image into the model's input tensor: the ONE preprocessing used by
//! serving (gateway, worker) and by training (through `twin preprocess`), so the two can
//! never drift apart.
//!
//! The steps, in order (see [`preprocess_image`]):
//! 1. **limits** on the encoded size, then on width and height as the format's header
//!    states them, before any pixel is decoded (decompression bombs stop here);
//! 2. **decode** PNG, JPEG, TIFF or BMP and convert to 8-bit grayscale, compositing any
//!    transparency onto white paper;
//! 3. **Otsu's threshold** splits ink from background; the smaller class is the ink, so
//!    dark-on-light and light-on-dark scans both work;
//! 4. **ink on black**: ink = 1, background = 0 (binarized), or the polarity-normalized
//!    intensity when the model asks for no binarization;
//! 5. **crop** to the ink's bounding box plus a margin;
//! 6. **aspect-preserving resize** (area averaging) and **centred padding** to H×W;
//! 7. **normalize** `(x - mean) / std` and replicate the plane over the input channels.
//!
//! Every failure is a [`PreprocessError`] saying what was wrong with the image; no input
//! makes these functions panic.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use crate::config::EmbedConfig;
use crate::manifest::{ImageInput, PreprocessSpec};

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

/// What was wrong with an image (or, for `InvalidSpec`, with the model's manifest).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    #[error("image is empty (0 bytes)")]
    Empty,
    #[error("image is {bytes} bytes, more than the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "image is {width}x{height} pixels, more than the limit of {max} pixels on a side; \
         scale it down before sending"
    )]
    DimensionsTooLarge { width: u32, height: u32, max: u32 },
    #[error("image would need {bytes} bytes once decoded, more than the limit of {max} bytes")]
    DecodedTooLarge { bytes: u64, max: u64 },
    #[error("image has no pixels ({width}x{height})")]
    ZeroSize { width: u32, height: u32 },
    #[error("unsupported image format: {0}; send PNG, JPEG, TIFF or BMP")]
    UnsupportedFormat(String),
    #[error("image data is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error(
        "no ink found: the image is blank or has too little contrast to separate ink from paper"
    )]
    NoInk,
    #[error("model manifest gives unusable preprocessing parameters: {0}")]
    InvalidSpec(String),
    #[error("text is empty (or only white space)")]
    EmptyText,
    #[error("text is {bytes} bytes, more than the limit of {max} bytes")]
    TextTooLarge { bytes: usize, max: usize },
    #[error("model {model} takes {expected} input, this request sent {sent}")]
    WrongKind {
        model: String,
        expected: crate::manifest::InputKind,
        sent: crate::manifest::InputKind,
    },
    #[error("cannot tokenize the text: {0}")]
    Tokenizer(String),
    #[error("no face found in the image")]
    NoFace,
    #[error(
        "{count} faces found in the image and this model refuses several (face.multiple = \"refuse\"); \
         send an image of one face"
    )]
    SeveralFaces { count: usize },
    #[error(
        "the face found is {size} pixels wide, smaller than the model's minimum of {min}; \
         send a closer or larger image"
    )]
    FaceTooSmall { size: u32, min: u32 },
}

/// Gray levels that must separate the mean of ink and the mean of paper; below this the
/// image is treated as blank (scanner noise on an empty page would otherwise be "ink").
const MIN_CONTRAST: f64 = 16.0;

/// Largest input tensor (C·H·W) a manifest may ask for; far above any sensible model.
const MAX_TENSOR_ELEMENTS: u64 = 64 * 1024 * 1024;

/// Preprocesses one encoded image into the model's input tensor, `C·H·W` f32 values in
/// channel-major (CHW) order, ready to be stacked into an `[N, C, H, W]` batch.
///
/// ```
/// use twin_core::manifest::{ImageInput, PreprocessSpec};
/// use twin_core::preprocess::{preprocess_image, ImageLimits, PreprocessError};
///
/// let input = ImageInput { name: "image".into(), channels: 1, height: 32, width: 64 };
/// let spec = PreprocessSpec { binarize: true, crop_to_ink: true, margin: 0.0, mean: 0.0, std: 1.0 };
/// let err = preprocess_image(b"not an image", &spec, &input, &ImageLimits::default());
/// assert!(matches!(err, Err(PreprocessError::UnsupportedFormat(_))));
/// ```
pub fn preprocess_image(
    bytes: &[u8],
    spec: &PreprocessSpec,
    input: &ImageInput,
    limits: &ImageLimits,
) -> Result<Vec<f32>, PreprocessError> {
    check_spec(spec, input)?;
    let gray = decode_gray(bytes, limits)?;
    preprocess_gray(&gray, spec, input)
}

/// An 8-bit grayscale image, row-major; 0 is black, 255 is white.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Steps 1–2: checks the limits, decodes and converts to grayscale on white.
pub fn decode_gray(bytes: &[u8], limits: &ImageLimits) -> Result<GrayImage, PreprocessError> {
    decode_checked(bytes, limits, false).map(to_gray_on_white)
}

/// Checks the limits and decodes, turning the image upright first when
/// `apply_orientation` (its EXIF orientation: phones store photos sideways).
pub(crate) fn decode_checked(
    bytes: &[u8],
    limits: &ImageLimits,
    apply_orientation: bool,
) -> Result<DynamicImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(PreprocessError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(PreprocessError::UnsupportedFormat(
            "the data starts with no known image signature".to_owned(),
        ));
    }
    // No width/height limits here: the decoder only reads the header, and the check
    // below reports the dimensions it found. `max_alloc` bounds what header parsing
    // itself may allocate (TIFF tag arrays, PNG text chunks).
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoded_bytes);
    let mut reader = reader;
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(image_error)?;

    let (width, height) = decoder.dimensions();
    if width > limits.max_side || height > limits.max_side {
        return Err(PreprocessError::DimensionsTooLarge {
            width,
            height,
            max: limits.max_side,
        });
    }
    if width == 0 || height == 0 {
        return Err(PreprocessError::ZeroSize { width, height });
    }
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(PreprocessError::DecodedTooLarge {
            bytes: decoded_bytes,
            max: limits.max_decoded_bytes,
        });
    }

    let mut image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    if apply_orientation {
        // Read from a second decoder, after the pixels: asking a decoder for its metadata
        // first lets some (PNG) skip the data they would fail on. A missing or unreadable
        // orientation tag means "as stored".
        let orientation = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_decoder().ok())
            .and_then(|mut d| d.orientation().ok());
        if let Some(orientation) = orientation {
            image.apply_orientation(orientation);
        }
    }
    Ok(image)
}

fn image_error(error: ImageError) -> PreprocessError {
    match error {
        ImageError::Unsupported(e) => PreprocessError::UnsupportedFormat(e.to_string()),
        ImageError::Limits(e) => PreprocessError::Corrupt(format!("decoder limit reached: {e}")),
        ImageError::Decoding(e) => PreprocessError::Corrupt(e.to_string()),
        ImageError::IoError(e) => PreprocessError::Corrupt(e.to_string()),
        other => PreprocessError::Corrupt(other.to_string()),
    }
}

/// Grayscale with alpha composited onto white paper, so transparent PNGs whose hidden
/// colour is black do not turn into a black page.
fn to_gray_on_white(image: DynamicImage) -> GrayImage {
    let (width, height) = (image.width(), image.height());
    let pixels = if let DynamicImage::ImageLuma8(luma) = image {
        // Most scans are 8-bit gray already: keep the decoder's buffer, no copy.
        luma.into_raw()
    } else if image.color().has_alpha() {
        image
            .to_luma_alpha8()
            .pixels()
            .map(|p| {
                let [l, a] = p.0;
                let (l, a) = (u32::from(l), u32::from(a));
                // a = 255 keeps l, a = 0 gives white; the result never exceeds 255.
                ((l * a + 255 * (255 - a) + 127) / 255) as u8
            })
            .collect()
    } else {
        image.to_luma8().into_raw()
    };
    GrayImage {
        width,
        height,
        pixels,
    }
}

fn check_spec(spec: &PreprocessSpec, input: &ImageInput) -> Result<(), PreprocessError> {
    let invalid = |m: String| Err(PreprocessError::InvalidSpec(m));
    if input.channels == 0 || input.height == 0 || input.width == 0 {
        return invalid(format!(
            "input shape [N, {}, {}, {}] has a zero dimension",
            input.channels, input.height, input.width
        ));
    }
    let elements = u64::from(input.channels) * u64::from(input.height) * u64::from(input.width);
    if elements > MAX_TENSOR_ELEMENTS {
        return invalid(format!(
            "input shape [N, {}, {}, {}] is larger than {MAX_TENSOR_ELEMENTS} values",
            input.channels, input.height, input.width
        ));
    }
    if !(spec.std.is_finite() && spec.std > 0.0) {
        return invalid(format!("preprocess.std must be > 0, got {}", spec.std));
    }
    if !spec.mean.is_finite() {
        return invalid(format!("preprocess.mean must be finite, got {}", spec.mean));
    }
    if !(spec.margin.is_finite() && (0.0..=1.0).contains(&spec.margin)) {
        return invalid(format!(
            "preprocess.margin must be in [0, 1], got {}",
            spec.margin
        ));
    }
    Ok(())
}

/// Steps 3–7 on an already decoded grayscale image.
pub fn preprocess_gray(
    gray: &GrayImage,
    spec: &PreprocessSpec,
    input: &ImageInput,
) -> Result<Vec<f32>, PreprocessError> {
    check_spec(spec, input)?;
    let (w, h) = (gray.width as usize, gray.height as usize);
    if w == 0 || h == 0 || gray.pixels.len() != w * h {
        return Err(PreprocessError::ZeroSize {
            width: gray.width,
            height: gray.height,
        });
    }

    let split = otsu_split(&gray.pixels).ok_or(PreprocessError::NoInk)?;
    let ink = InkReading::new(&split, spec.binarize);

    let full = InkBox {
        x0: 0,
        y0: 0,
        x1: w as i64,
        y1: h as i64,
    };
    let region = if spec.crop_to_ink {
        ink_bounding_box(&gray.pixels, w, &split)
            .ok_or(PreprocessError::NoInk)?
            .with_margin(spec.margin)
    } else {
        full
    };

    let (out_h, out_w) = (input.height as usize, input.width as usize);
    let (box_w, box_h) = (region.width() as f64, region.height() as f64);
    let scale = (out_w as f64 / box_w).min(out_h as f64 / box_h);
    let scaled_w = ((box_w * scale).round() as usize).clamp(1, out_w);
    let scaled_h = ((box_h * scale).round() as usize).clamp(1, out_h);
    // Centred on a background (0) canvas, the resize writing straight into its window;
    // then normalization of every pixel.
    let (left, top) = ((out_w - scaled_w) / 2, (out_h - scaled_h) / 2);
    let mut plane = vec![0.0f32; out_w * out_h];
    resize_area_into(
        &gray.pixels,
        (w, h),
        &ink,
        &region,
        Window {
            values: &mut plane[top * out_w + left..],
            stride: out_w,
            width: scaled_w,
            height: scaled_h,
        },
    );
    // (v - 0) / 1 is v exactly: the common identity normalization skips the pass.
    if spec.mean != 0.0 || spec.std != 1.0 {
        for v in &mut plane {
            *v = (*v - spec.mean) / spec.std;
        }
    }

    let channels = input.channels as usize;
    if channels == 1 {
        return Ok(plane);
    }
    let mut tensor = Vec::with_capacity(plane.len() * channels);
    for _ in 0..channels {
        tensor.extend_from_slice(&plane);
    }
    Ok(tensor)
}

/// Otsu's split of the gray levels into ink and paper.
#[derive(Debug, Clone, Copy, PartialEq)]
struct InkSplit {
    /// Levels `<= threshold` form the dark class.
    threshold: u8,
    /// The ink is the dark class (dark ink on light paper); false for light-on-dark.
    ink_is_dark: bool,
}

impl InkSplit {
    fn is_ink(&self, level: u8) -> bool {
        (level <= self.threshold) == self.ink_is_dark
    }
}

/// Otsu's threshold over the 256-level histogram; `None` when the image has one level
/// or too little contrast to hold ink.
fn otsu_split(pixels: &[u8]) -> Option<InkSplit> {
    let histogram = histogram(pixels);
    let total = pixels.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(level, &n)| level as f64 * n as f64)
        .sum();

    let (mut best, mut best_variance) = (None, -1.0f64);
    let (mut dark_count, mut dark_sum) = (0.0f64, 0.0f64);
    for (level, &n) in histogram.iter().enumerate().take(255) {
        dark_count += n as f64;
        dark_sum += level as f64 * n as f64;
        let light_count = total - dark_count;
        if dark_count == 0.0 || light_count == 0.0 {
            continue;
        }
        let dark_mean = dark_sum / dark_count;
        let light_mean = (sum_all - dark_sum) / light_count;
        let variance = dark_count * light_count * (dark_mean - light_mean).powi(2);
        if variance > best_variance {
            best_variance = variance;
            best = Some((level as u8, dark_count, dark_mean, light_count, light_mean));
        }
    }
    let (threshold, dark_count, dark_mean, light_count, light_mean) = best?;
    if light_mean - dark_mean < MIN_CONTRAST {
        return None;
    }
    Some(InkSplit {
        threshold,
        // The ink is the smaller class: a signature covers a small part of its page.
        ink_is_dark: dark_count <= light_count,
    })
}

/// Pixels looked at together when skipping paper: a run of one level in the histogram, a
/// run without ink in the resize. Long enough for the comparisons to be vectorized, short
/// enough that a stroke leaves most runs of its row untouched.
const RUN: usize = 32;

/// The 256-level histogram of `pixels`.
fn histogram(pixels: &[u8]) -> [u64; 256] {
    // A scan is mostly paper of one level: a run of equal pixels is counted at once.
    // Other runs go through four interleaved histograms, as consecutive pixels of one
    // level would otherwise wait on each other's increment.
    let mut partial = [[0u32; 256]; 4];
    let mut runs = pixels.chunks_exact(RUN);
    for run in &mut runs {
        let first = run[0];
        if run.iter().fold(0u8, |acc, &p| acc | (p ^ first)) == 0 {
            partial[0][first as usize] += RUN as u32;
        } else {
            count_interleaved(&mut partial, run);
        }
    }
    count_interleaved(&mut partial, runs.remainder());
    let mut histogram = [0u64; 256];
    for (level, count) in histogram.iter_mut().enumerate() {
        *count = partial.iter().map(|lane| u64::from(lane[level])).sum();
    }
    histogram
}

fn count_interleaved(partial: &mut [[u32; 256]; 4], pixels: &[u8]) {
    let mut quads = pixels.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &p) in partial.iter_mut().zip(quad) {
            lane[p as usize] += 1;
        }
    }
    for &p in quads.remainder() {
        partial[0][p as usize] += 1;
    }
}

/// How each gray level reads as ink.
#[derive(Debug, Clone)]
struct InkReading {
    /// The ink value of each level: ink = 1, background = 0; binary when binarizing,
    /// else the intensity with the paper's polarity removed (dark ink on white gives
    /// 1 − level/255). A table, so the image is never converted to floats as a whole.
    values: [f32; 256],
    /// The levels whose value is 0, tested without the table.
    paper: Paper,
}

impl InkReading {
    fn new(split: &InkSplit, binarize: bool) -> Self {
        let values = std::array::from_fn(|level| {
            let p = level as u8;
            if binarize {
                if split.is_ink(p) {
                    1.0
                } else {
                    0.0
                }
            } else if split.ink_is_dark {
                1.0 - f32::from(p) / 255.0
            } else {
                f32::from(p) / 255.0
            }
        });
        Self {
            values,
            paper: Paper::new(split, binarize),
        }
    }
}

/// A half-open pixel rectangle; may reach outside the image (margins), where the
/// canvas is background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InkBox {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl InkBox {
    fn width(&self) -> i64 {
        self.x1 - self.x0
    }

    fn height(&self) -> i64 {
        self.y1 - self.y0
    }

    fn with_margin(self, margin: f32) -> Self {
        let m = (f64::from(margin) * self.width().max(self.height()) as f64).round() as i64;
        Self {
            x0: self.x0 - m,
            y0: self.y0 - m,
            x1: self.x1 + m,
            y1: self.y1 + m,
        }
    }
}

fn ink_bounding_box(pixels: &[u8], width: usize, split: &InkSplit) -> Option<InkBox> {
    // Branch-free passes (ORing ink flags into a column mask) that the compiler
    // vectorizes, instead of searching every row for its first and last ink pixel.
    let (threshold, dark) = (split.threshold, split.ink_is_dark);
    let mut columns = vec![0u8; width];
    let (mut y0, mut y1) = (None, 0);
    for (y, row) in pixels.chunks_exact(width).enumerate() {
        let mut any = 0u8;
        for (column, &p) in columns.iter_mut().zip(row) {
            let ink = u8::from((p <= threshold) == dark);
            *column |= ink;
            any |= ink;
        }
        if any != 0 {
            y0.get_or_insert(y);
            y1 = y + 1;
        }
    }
    let y0 = y0?;
    let x0 = columns.iter().position(|&c| c != 0)?;
    let x1 = columns.iter().rposition(|&c| c != 0)? + 1;
    Some(InkBox {
        x0: x0 as i64,
        y0: y0 as i64,
        x1: x1 as i64,
        y1: y1 as i64,
    })
}

/// Area-averaging weights along one axis: for each output index, the first source index
/// it covers and the weight of each covered source pixel (weights sum to 1), kept in one
/// buffer (a resize would otherwise allocate a vector per output pixel).
struct AreaWeights {
    first: Vec<i64>,
    /// Output `t`'s weights are `weights[ends[t - 1]..ends[t]]` (from 0 for `t = 0`).
    ends: Vec<usize>,
    weights: Vec<f32>,
}

impl AreaWeights {
    fn new(source_len: usize, target_len: usize) -> Self {
        let step = source_len as f64 / target_len as f64;
        let mut this = Self {
            first: Vec::with_capacity(target_len),
            ends: Vec::with_capacity(target_len),
            weights: Vec::with_capacity(target_len * (step.ceil() as usize + 1)),
        };
        for t in 0..target_len {
            let start = t as f64 * step;
            let end = start + step;
            let first = start.floor() as i64;
            // `end` of the last output can round up past the source (11.2 + 0.8 =
            // 12.000000000000002): such a tap would cover ~1e-15 of a pixel beyond it.
            let last = (end.ceil() as i64).min(source_len as i64).max(first + 1);
            this.weights.extend((first..last).map(|s| {
                let covered = (end.min(s as f64 + 1.0) - start.max(s as f64)).max(0.0);
                (covered / step) as f32
            }));
            this.first.push(first);
            this.ends.push(this.weights.len());
        }
        this
    }

    /// Output `t`'s first source index and weights.
    fn taps(&self, t: usize) -> (i64, &[f32]) {
        let begin = if t == 0 { 0 } else { self.ends[t - 1] };
        (self.first[t], &self.weights[begin..self.ends[t]])
    }

    fn len(&self) -> usize {
        self.first.len()
    }
}

/// Which gray levels read as no ink at all (value 0), tested without the table so that
/// runs of paper are skipped with vectorized comparisons.
#[derive(Debug, Clone, Copy)]
enum Paper {
    /// Binarized: every level outside the ink class.
    Class(InkSplit),
    /// Intensity: only the extreme paper level (white under dark ink, black under light).
    Level(u8),
}

impl Paper {
    fn new(split: &InkSplit, binarize: bool) -> Self {
        match (binarize, split.ink_is_dark) {
            (true, _) => Paper::Class(*split),
            (false, true) => Paper::Level(u8::MAX),
            (false, false) => Paper::Level(0),
        }
    }

    fn is_all_paper(self, run: &[u8]) -> bool {
        match self {
            Paper::Class(split) => {
                let (threshold, dark) = (split.threshold, split.ink_is_dark);
                run.iter()
                    .fold(0u8, |acc, &p| acc | u8::from((p <= threshold) == dark))
                    == 0
            }
            Paper::Level(level) => run.iter().fold(0u8, |acc, &p| acc | (p ^ level)) == 0,
        }
    }
}

/// Where a resize writes: `height` rows of `width` values, row `r` starting at
/// `values[r * stride]` (a window of a larger canvas).
struct Window<'a> {
    values: &'a mut [f32],
    stride: usize,
    width: usize,
    height: usize,
}

/// For each source index of `lo..hi`, the outputs it feeds and with what weight, in output
/// order: the inverse of [`AreaWeights`], so that a source pixel (or row) is spread onto
/// its outputs. `origin` is the source index of the weights' index 0 (a region may start
/// outside the image, where there is no source).
struct Scatter {
    /// Source `lo + i` feeds `targets[reach[i]..reach[i + 1]]`.
    reach: Vec<usize>,
    targets: Vec<(usize, f32)>,
}

impl Scatter {
    fn new(weights: &AreaWeights, origin: i64, (lo, hi): (usize, usize)) -> Self {
        let mut reach = vec![0usize; hi - lo + 1];
        let mut taps = Vec::with_capacity(weights.weights.len());
        for output in 0..weights.len() {
            let (first, covered) = weights.taps(output);
            for (k, &weight) in covered.iter().enumerate() {
                let source = origin + first + k as i64;
                if (lo as i64..hi as i64).contains(&source) {
                    let i = source as usize - lo;
                    reach[i + 1] += 1;
                    taps.push((i, output, weight));
                }
            }
        }
        for i in 1..reach.len() {
            reach[i] += reach[i - 1];
        }
        let mut targets = vec![(0usize, 0.0f32); taps.len()];
        let mut filled = reach.clone();
        // `taps` is in output order, so each source's targets stay in output order.
        for (i, output, weight) in taps {
            targets[filled[i]] = (output, weight);
            filled[i] += 1;
        }
        Self { reach, targets }
    }

    /// The outputs source `lo + i` feeds.
    fn of(&self, i: usize) -> &[(usize, f32)] {
        &self.targets[self.reach[i]..self.reach[i + 1]]
    }
}

/// Area-averaging resize of `region` of the `width`×`height` image into `out` (which holds
/// zeros), each pixel read through `ink` (its level's value); pixels of the region outside
/// the image count as background (0).
///
/// Every output value is the sum, in source order, of `weight × ink` over the pixels it
/// covers. Pixels of value 0 add nothing to such a sum, so they are skipped (runs of
/// paper at once) and only ink is spread onto the outputs it covers: the result is the
/// plain weighted sum, bit for bit, at a fraction of the work on a mostly blank page.
/// Rows are resized one at a time and spread onto their output rows at once, in source
/// order, so no intermediate image is kept.
fn resize_area_into(
    pixels: &[u8],
    (width, height): (usize, usize),
    ink: &InkReading,
    region: &InkBox,
    out: Window<'_>,
) {
    let x_lo = region.x0.clamp(0, width as i64) as usize;
    let x_hi = region.x1.clamp(0, width as i64) as usize;
    let y_lo = region.y0.clamp(0, height as i64) as usize;
    let y_hi = region.y1.clamp(0, height as i64) as usize;
    let columns = Scatter::new(
        &AreaWeights::new(region.width() as usize, out.width),
        region.x0,
        (x_lo, x_hi),
    );
    let rows = Scatter::new(
        &AreaWeights::new(region.height() as usize, out.height),
        region.y0,
        (y_lo, y_hi),
    );

    let mut row = vec![0.0f32; out.width];
    let mut row_is_clear = true;
    for y in y_lo..y_hi {
        if !row_is_clear {
            row.fill(0.0);
            row_is_clear = true;
        }
        let src = &pixels[y * width..][x_lo..x_hi];
        for (r, run) in src.chunks(RUN).enumerate() {
            if ink.paper.is_all_paper(run) {
                continue;
            }
            for (i, &p) in run.iter().enumerate() {
                let value = ink.values[p as usize];
                if value == 0.0 {
                    continue;
                }
                row_is_clear = false;
                for &(ox, weight) in columns.of(r * RUN + i) {
                    row[ox] += weight * value;
                }
            }
        }
        if row_is_clear {
            continue;
        }
        for &(oy, weight) in rows.of(y - y_lo) {
            let dst = &mut out.values[oy * out.stride..][..out.width];
            for (d, s) in dst.iter_mut().zip(&row) {
                *d += weight * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Luma, Rgba};

    fn input(height: u32, width: u32) -> ImageInput {
        ImageInput {
            name: "image".into(),
            channels: 1,
            height,
            width,
        }
    }

    fn spec() -> PreprocessSpec {
        PreprocessSpec {
            binarize: true,
            crop_to_ink: true,
            margin: 0.0,
            mean: 0.0,
            std: 1.0,
        }
    }

    /// A white page with a black rectangle of ink at (x, y, w, h).
    fn page_with_ink(
        width: u32,
        height: u32,
        ink: (u32, u32, u32, u32),
    ) -> image::ImageBuffer<Luma<u8>, Vec<u8>> {
        image::ImageBuffer::from_fn(width, height, |x, y| {
            let inside = x >= ink.0 && x < ink.0 + ink.2 && y >= ink.1 && y < ink.1 + ink.3;
            Luma([if inside { 10 } else { 245 }])
        })
    }

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).expect("encode");
        bytes.into_inner()
    }

    fn run(bytes: &[u8]) -> Result<Vec<f32>, PreprocessError> {
        preprocess_image(bytes, &spec(), &input(16, 32), &ImageLimits::default())
    }

    /// A PNG whose IHDR claims `width`×`height`, followed by a tiny IDAT and IEND, as a
    /// decompression bomb would start.
    fn png_header(width: u32, height: u32, with_data: bool) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, deflate, no interlace
        chunk(&mut png, b"IHDR", &ihdr);
        if with_data {
            // zlib header + an empty stored block: valid framing, no pixels.
            chunk(
                &mut png,
                b"IDAT",
                &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff],
            );
            chunk(&mut png, b"IEND", &[]);
        }
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn empty_input_is_empty_error() {
        assert_eq!(run(&[]), Err(PreprocessError::Empty));
    }

    #[test]
    fn text_file_is_unsupported_format() {
        let err = run(b"name,subject\nalice,1\n").expect_err("text is not an image");
        assert!(
            matches!(err, PreprocessError::UnsupportedFormat(_)),
            "{err}"
        );
        assert!(err.to_string().contains("PNG, JPEG, TIFF or BMP"));
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let limits = ImageLimits {
            max_bytes: 10,
            ..ImageLimits::default()
        };
        let err = preprocess_image(&[0u8; 11], &spec(), &input(16, 32), &limits);
        assert_eq!(err, Err(PreprocessError::TooLarge { bytes: 11, max: 10 }));
    }

    #[test]
    fn huge_png_header_is_rejected_by_dimensions() {
        let err = run(&png_header(100_000, 100_000, true)).expect_err("bomb");
        assert_eq!(
            err,
            PreprocessError::DimensionsTooLarge {
                width: 100_000,
                height: 100_000,
                max: 8192
            }
        );
        assert!(err.to_string().contains("100000x100000"));
    }

    #[test]
    fn huge_bmp_header_is_rejected_by_dimensions() {
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&(54u32 + 12).to_le_bytes()); // file size
        bmp.extend_from_slice(&[0; 4]);
        bmp.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
        bmp.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
                                                     // 20000 px: under the BMP decoder's own 65535 limit, over ours.
        bmp.extend_from_slice(&20_000i32.to_le_bytes());
        bmp.extend_from_slice(&20_000i32.to_le_bytes());
        bmp.extend_from_slice(&1u16.to_le_bytes()); // planes
        bmp.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
        bmp.extend_from_slice(&[0; 24]); // no compression, sizes, resolution, palette
        bmp.extend_from_slice(&[0; 12]);
        let err = run(&bmp).expect_err("bomb");
        assert_eq!(
            err,
            PreprocessError::DimensionsTooLarge {
                width: 20_000,
                height: 20_000,
                max: 8192
            }
        );
    }

    #[test]
    fn header_only_png_is_a_typed_error() {
        let err = run(&png_header(100_000, 100_000, false)).expect_err("no data");
        assert!(
            matches!(
                err,
                PreprocessError::Corrupt(_) | PreprocessError::DimensionsTooLarge { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let page = DynamicImage::ImageLuma8(page_with_ink(64, 32, (10, 10, 30, 5)));
        let bytes = encode(&page, ImageFormat::Png);
        for cut in [8, 20, 33, bytes.len() / 2, bytes.len() - 13] {
            let err = run(&bytes[..cut]).expect_err("truncated");
            assert!(
                matches!(err, PreprocessError::Corrupt(_)),
                "cut at {cut}: {err:?}"
            );
        }
    }

    #[test]
    fn zero_sized_png_is_a_typed_error() {
        let err = run(&png_header(0, 10, true)).expect_err("zero width");
        assert!(
            matches!(
                err,
                PreprocessError::ZeroSize { .. } | PreprocessError::Corrupt(_)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn blank_page_has_no_ink() {
        let blank = DynamicImage::ImageLuma8(image::ImageBuffer::from_pixel(40, 20, Luma([250])));
        assert_eq!(
            run(&encode(&blank, ImageFormat::Png)),
            Err(PreprocessError::NoInk)
        );
        // Faint noise is not ink either.
        let noisy = DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(40, 20, |x, y| {
            Luma([245 + ((x * 7 + y * 3) % 5) as u8])
        }));
        assert_eq!(
            run(&encode(&noisy, ImageFormat::Png)),
            Err(PreprocessError::NoInk)
        );
    }

    #[test]
    fn every_supported_format_gives_the_same_tensor() {
        let page = DynamicImage::ImageLuma8(page_with_ink(200, 100, (40, 30, 80, 20)));
        let reference = run(&encode(&page, ImageFormat::Png)).expect("png");
        for format in [ImageFormat::Bmp, ImageFormat::Tiff] {
            let tensor = run(&encode(&page, format)).expect("lossless format");
            assert_eq!(tensor, reference, "{format:?}");
        }
        // JPEG is lossy but the ink box survives binarization.
        let rgb = DynamicImage::ImageRgb8(page.to_rgb8());
        let jpeg = run(&encode(&rgb, ImageFormat::Jpeg)).expect("jpeg");
        let differing = jpeg
            .iter()
            .zip(&reference)
            .filter(|(a, b)| (*a - *b).abs() > 0.5)
            .count();
        assert!(
            differing <= reference.len() / 20,
            "{differing} pixels differ"
        );
    }

    #[test]
    fn ink_is_cropped_resized_and_centred() {
        // Ink 80x20 (aspect 4) into 16x32 (aspect 2): width-limited, 32x8, rows 4..12.
        let page = DynamicImage::ImageLuma8(page_with_ink(200, 100, (40, 30, 80, 20)));
        let tensor = run(&encode(&page, ImageFormat::Png)).expect("png");
        assert_eq!(tensor.len(), 16 * 32);
        for (i, &v) in tensor.iter().enumerate() {
            let y = i / 32;
            let expected = if (4..12).contains(&y) { 1.0 } else { 0.0 };
            assert!((v - expected).abs() < 1e-6, "pixel {i} = {v}");
        }
    }

    #[test]
    fn light_ink_on_dark_paper_gives_the_same_tensor() {
        let page = page_with_ink(200, 100, (40, 30, 80, 20));
        let mut inverted = page.clone();
        for p in inverted.pixels_mut() {
            p.0[0] = 255 - p.0[0];
        }
        let a = run(&encode(&DynamicImage::ImageLuma8(page), ImageFormat::Png)).expect("a");
        let b = run(&encode(
            &DynamicImage::ImageLuma8(inverted),
            ImageFormat::Png,
        ))
        .expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn transparent_background_counts_as_paper() {
        // Ink is opaque black; the "paper" is fully transparent black.
        let image = image::ImageBuffer::from_fn(100, 50, |x, y| {
            if (20..80).contains(&x) && (20..30).contains(&y) {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        });
        let tensor =
            run(&encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png)).expect("rgba png");
        let ink: f32 = tensor.iter().sum();
        // 60x10 ink → width-limited 32x5.33: about 171 ink pixels of 512.
        assert!(ink > 100.0 && ink < 250.0, "ink sum {ink}");
    }

    #[test]
    fn normalization_and_channels_follow_the_manifest() {
        let page = DynamicImage::ImageLuma8(page_with_ink(200, 100, (40, 30, 80, 20)));
        let bytes = encode(&page, ImageFormat::Png);
        let spec = PreprocessSpec {
            mean: 0.5,
            std: 0.25,
            ..spec()
        };
        let input = ImageInput {
            channels: 3,
            ..input(16, 32)
        };
        let tensor =
            preprocess_image(&bytes, &spec, &input, &ImageLimits::default()).expect("tensor");
        assert_eq!(tensor.len(), 3 * 16 * 32);
        // Background (0 - 0.5) / 0.25 = -2, ink (1 - 0.5) / 0.25 = 2.
        assert!((tensor[0] + 2.0).abs() < 1e-6);
        assert!((tensor[5 * 32 + 16] - 2.0).abs() < 1e-6);
        assert_eq!(tensor[..512], tensor[512..1024]);
        assert_eq!(tensor[..512], tensor[1024..]);
    }

    #[test]
    fn margin_shrinks_the_ink() {
        let page = DynamicImage::ImageLuma8(page_with_ink(200, 100, (40, 30, 80, 20)));
        let bytes = encode(&page, ImageFormat::Png);
        let tight: f32 = run(&bytes).expect("tight").iter().sum();
        let spec = PreprocessSpec {
            margin: 0.25,
            ..spec()
        };
        let loose: f32 = preprocess_image(&bytes, &spec, &input(16, 32), &ImageLimits::default())
            .expect("margin")
            .iter()
            .sum();
        assert!(loose < tight * 0.6, "tight {tight}, with margin {loose}");
    }

    #[test]
    fn unusable_spec_is_reported() {
        let page = DynamicImage::ImageLuma8(page_with_ink(20, 10, (5, 5, 10, 2)));
        let bytes = encode(&page, ImageFormat::Png);
        let bad = PreprocessSpec { std: 0.0, ..spec() };
        assert!(matches!(
            preprocess_image(&bytes, &bad, &input(16, 32), &ImageLimits::default()),
            Err(PreprocessError::InvalidSpec(_))
        ));
    }

    #[test]
    fn area_weights_sum_to_one() {
        for (s, t) in [(7, 3), (3, 7), (100, 32), (1, 1), (1, 5), (5, 1)] {
            let weights = AreaWeights::new(s, t);
            for target in 0..t {
                let sum: f32 = weights.taps(target).1.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{s}->{t}: {sum}");
            }
        }
    }

    #[test]
    fn area_weights_never_reach_past_the_source() {
        // 12 → 15: the last output's end computes as 12.000000000000002.
        for (s, t) in [(12, 15), (7, 3), (3, 7), (100, 32), (1, 5), (299, 89)] {
            let weights = AreaWeights::new(s, t);
            for target in 0..t {
                let (first, taps) = weights.taps(target);
                assert!(
                    first + taps.len() as i64 <= s as i64,
                    "{s}->{t}: output {target} reads up to {}",
                    first + taps.len() as i64
                );
            }
        }
    }

    /// The resize into a canvas of its own size.
    fn resize_area(
        pixels: &[u8],
        dims: (usize, usize),
        ink: &InkReading,
        region: &InkBox,
        (out_w, out_h): (usize, usize),
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; out_w * out_h];
        let window = Window {
            values: &mut out,
            stride: out_w,
            width: out_w,
            height: out_h,
        };
        resize_area_into(pixels, dims, ink, region, window);
        out
    }

    #[test]
    fn sparse_resize_ignores_the_image_past_the_region() {
        // proptest's minimal case: light ink on dark paper, read as intensity, cropped with
        // a margin; a faint pixel just right of the region once leaked into the last output
        // of the plain gather through a tap of weight ~3e-15.
        let pixels = sparse_page(16, 2, 0, &[(704, 12, 236, 2)]);
        let split = otsu_split(&pixels).expect("ink");
        let ink = InkReading::new(&split, false);
        let region = ink_bounding_box(&pixels, 16, &split)
            .expect("ink")
            .with_margin(0.076_089_43);
        let fast = resize_area(&pixels, (16, 2), &ink, &region, (15, 1));
        let plain = gathered_resize(&pixels, &ink.values, (16, 2), &region, (15, 1));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&plain));
    }

    /// The resize as a plain gather, every covered pixel of every output summed in source
    /// order: what `resize_area` must equal bit for bit.
    fn gathered_resize(
        pixels: &[u8],
        ink: &[f32; 256],
        (width, height): (usize, usize),
        region: &InkBox,
        (out_w, out_h): (usize, usize),
    ) -> Vec<f32> {
        let value = |x: i64, y: i64| {
            if (0..width as i64).contains(&x) && (0..height as i64).contains(&y) {
                ink[pixels[y as usize * width + x as usize] as usize]
            } else {
                0.0
            }
        };
        let (columns, rows) = (
            AreaWeights::new(region.width() as usize, out_w),
            AreaWeights::new(region.height() as usize, out_h),
        );
        let horizontal: Vec<Vec<f32>> = (region.y0..region.y1)
            .map(|y| {
                (0..out_w)
                    .map(|ox| {
                        let (first, weights) = columns.taps(ox);
                        let mut acc = 0.0f32;
                        for (k, w) in weights.iter().enumerate() {
                            acc += w * value(region.x0 + first + k as i64, y);
                        }
                        acc
                    })
                    .collect()
            })
            .collect();
        let mut out = vec![0.0f32; out_w * out_h];
        for oy in 0..out_h {
            let (first, weights) = rows.taps(oy);
            for (k, w) in weights.iter().enumerate() {
                let Some(row) = usize::try_from(first + k as i64)
                    .ok()
                    .and_then(|ry| horizontal.get(ry))
                else {
                    continue;
                };
                for (d, s) in out[oy * out_w..][..out_w].iter_mut().zip(row) {
                    *d += w * s;
                }
            }
        }
        out
    }

    /// A page of paper at `paper` with `strokes` random ink segments of random levels,
    /// as scans look: long runs of one level, ink here and there.
    fn sparse_page(w: usize, h: usize, paper: u8, strokes: &[(u16, u16, u8, u8)]) -> Vec<u8> {
        let mut pixels = vec![paper; w * h];
        for &(at, len, level, noise) in strokes {
            let start = at as usize % pixels.len();
            let end = (start + len as usize).min(pixels.len());
            for (i, p) in pixels[start..end].iter_mut().enumerate() {
                *p = level.wrapping_add((i as u8).wrapping_mul(noise));
            }
        }
        pixels
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = run(&bytes);
        }

        #[test]
        fn mangled_png_never_panics(flip in 0usize..4096, value in proptest::num::u8::ANY, cut in 0usize..4096) {
            let page = DynamicImage::ImageLuma8(page_with_ink(64, 32, (10, 10, 30, 5)));
            let mut bytes = encode(&page, ImageFormat::Png);
            let i = flip % bytes.len();
            bytes[i] = value;
            bytes.truncate(cut.max(1));
            let _ = run(&bytes);
        }

        #[test]
        fn histogram_counts_every_pixel_once(
            w in 1usize..200, h in 1usize..50, paper in proptest::num::u8::ANY,
            strokes in proptest::collection::vec((0u16..10_000, 0u16..300, proptest::num::u8::ANY, 0u8..4), 0..12),
        ) {
            let pixels = sparse_page(w, h, paper, &strokes);
            let mut expected = [0u64; 256];
            for &p in &pixels {
                expected[p as usize] += 1;
            }
            proptest::prop_assert_eq!(histogram(&pixels), expected);
        }

        #[test]
        fn sparse_resize_equals_the_plain_gather_bit_for_bit(
            w in 1usize..300, h in 1usize..80, dark_paper in proptest::bool::ANY,
            strokes in proptest::collection::vec((0u16..20_000, 0u16..200, proptest::num::u8::ANY, 0u8..4), 1..12),
            binarize in proptest::bool::ANY, crop in proptest::bool::ANY, margin in 0.0f32..0.5,
            out_w in 1usize..90, out_h in 1usize..40,
        ) {
            let paper_level = if dark_paper { 0 } else { 255 };
            let pixels = sparse_page(w, h, paper_level, &strokes);
            let Some(split) = otsu_split(&pixels) else { return Ok(()) };
            let ink = InkReading::new(&split, binarize);
            let full = InkBox { x0: 0, y0: 0, x1: w as i64, y1: h as i64 };
            let region = if crop {
                let Some(found) = ink_bounding_box(&pixels, w, &split) else { return Ok(()) };
                found.with_margin(margin)
            } else {
                full
            };
            let fast = resize_area(&pixels, (w, h), &ink, &region, (out_w, out_h));
            let plain = gathered_resize(&pixels, &ink.values, (w, h), &region, (out_w, out_h));
            let (fast, plain): (Vec<u32>, Vec<u32>) = (
                fast.iter().map(|v| v.to_bits()).collect(),
                plain.iter().map(|v| v.to_bits()).collect(),
            );
            proptest::prop_assert_eq!(fast, plain);
        }

        #[test]
        fn random_pages_give_finite_tensors(
            w in 1u32..120, h in 1u32..120, seed in proptest::num::u32::ANY,
            margin in 0.0f32..1.0, binarize in proptest::bool::ANY, crop in proptest::bool::ANY,
        ) {
            let gray = GrayImage {
                width: w,
                height: h,
                pixels: (0..w * h).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8).collect(),
            };
            let spec = PreprocessSpec { binarize, crop_to_ink: crop, margin, mean: 0.1, std: 0.3 };
            if let Ok(t) = preprocess_gray(&gray, &spec, &input(16, 32)) {
                proptest::prop_assert_eq!(t.len(), 512);
                proptest::prop_assert!(t.iter().all(|v| v.is_finite()));
            }
        }
    }
}
