//! Face preprocessing, the second preprocessing kind of the model contract (beside
//! signature ink): decode as RGB upright, detect the face, find its five landmarks, cut
//! the aligned chip, exactly as dlib does for its ResNet face descriptor. Pure functions
//! over pixels; the detector's network itself runs in twin-embed, which calls
//! [`detect::Decoder`] on its output.
//!
//! - [`geometry`]: similarity and affine transforms, dlib's rounding;
//! - [`landmarks`]: dlib's 5-point shape predictor (an ensemble of regression trees);
//! - [`chip`]: `get_face_chip_details` and `extract_image_chip` (the 150×150 aligned chip);
//! - [`detect`]: the MMOD detector's pyramid, score decoding and non-maximum suppression.

pub mod chip;
pub mod detect;
pub mod geometry;
pub mod landmarks;

use crate::preprocess::{decode_checked, ImageLimits, PreprocessError};

/// An 8-bit RGB image, row-major, 3 bytes a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The pixel at (x, y); callers keep inside the image.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width as usize + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// Decodes within `limits`, turns the image upright by its EXIF orientation and converts
/// to RGB (transparency composited onto black, as dlib's loaders drop alpha).
pub fn decode_rgb(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, PreprocessError> {
    let image = decode_checked(bytes, limits, true)?;
    let rgb = image.to_rgb8();
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        pixels: rgb.into_raw(),
    })
}

/// Larger side of the image the detector runs on. dlib runs it on the photo as given;
/// on a 12-megapixel photo its tiled pyramid alone would be ~250 MB of floats and the
/// network's activations several GB, so larger photos are scaled down for detection only
/// (faces far smaller than the photo stay findable down to ~80/1024 of its side) and the
/// landmarks and chip are taken from the full-resolution image.
pub const DETECT_MAX_SIDE: u32 = 1024;

impl RgbImage {
    /// This image scaled so that its larger side is at most `max_side` (a triangle filter),
    /// and the factor from its pixels to the scaled ones; `None` when it already fits.
    pub fn fit_within(&self, max_side: u32) -> Option<(RgbImage, f64)> {
        let side = self.width.max(self.height);
        if side <= max_side {
            return None;
        }
        let factor = f64::from(max_side) / f64::from(side);
        let (w, h) = (
            ((f64::from(self.width) * factor).round() as u32).max(1),
            ((f64::from(self.height) * factor).round() as u32).max(1),
        );
        let source = image::RgbImage::from_raw(self.width, self.height, self.pixels.clone())?;
        let scaled = image::imageops::resize(&source, w, h, image::imageops::FilterType::Triangle);
        Some((
            RgbImage {
                width: w,
                height: h,
                pixels: scaled.into_raw(),
            },
            f64::from(w) / f64::from(self.width),
        ))
    }
}
