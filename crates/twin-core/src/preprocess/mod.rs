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

mod decode;
mod error;
mod ink;
mod limits;
mod resize;

use crate::manifest::{ImageInput, PreprocessSpec};

pub(crate) use decode::decode_checked;
pub use decode::{decode_gray, GrayImage};
pub use error::PreprocessError;
use ink::{ink_bounding_box, otsu_split, InkBox, InkReading};
pub use limits::ImageLimits;
use resize::{resize_area_into, Window};

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

#[cfg(test)]
mod tests {
    use super::decode::*;
    use super::ink::*;
    use super::resize::*;
    use super::*;
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat, Luma, Rgba};

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
