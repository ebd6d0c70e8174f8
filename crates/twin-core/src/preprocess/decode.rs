//! Steps 1–2: the limits, checked before any pixel is decoded, then decoding and the
//! conversion to 8-bit grayscale on white paper.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use super::error::PreprocessError;
use super::limits::ImageLimits;

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
