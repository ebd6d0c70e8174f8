//! Small PNG thumbnails of enrolled images, kept with each reference so that a person
//! (the console's examiner) can see what a probe was compared with.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageEncoder};

/// Longest side of a stored thumbnail, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 160;

/// A PNG of `encoded` (an image that already passed preprocessing, so within the
/// decoding limits) scaled to fit `max_side`, grey when the image is grey; the error
/// says why there is none.
pub fn thumbnail_png(encoded: &[u8], max_side: u32) -> Result<Vec<u8>, String> {
    let image = image::load_from_memory(encoded).map_err(|e| e.to_string())?;
    let (width, height) = (image.width(), image.height());
    let small = if width.max(height) > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image
    };
    let small = match small {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLuma8(small.to_luma8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    };
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            small.as_bytes(),
            small.width(),
            small.height(),
            small.color().into(),
        )
        .map_err(|e| e.to_string())?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_fit_the_side_and_keep_grey() {
        let grey = image::GrayImage::from_fn(640, 200, |x, _| image::Luma([(x % 256) as u8]));
        let mut encoded = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageLuma8(grey)
            .write_to(&mut encoded, image::ImageFormat::Png)
            .expect("png");
        let png = thumbnail_png(encoded.get_ref(), 160).expect("thumbnail");
        let back = image::load_from_memory(&png).expect("decodes");
        assert_eq!((back.width(), back.height()), (160, 50));
        assert!(matches!(back, DynamicImage::ImageLuma8(_)));
        assert!(thumbnail_png(b"not an image", 160).is_err());
    }
}
