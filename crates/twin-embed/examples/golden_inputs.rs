//! Writes the golden test's inputs: a few synthetic signature images in every supported
//! format, and the tensors twin's Rust preprocessing makes of them (`tensors.npy`), which
//! `scripts/make_golden.py` feeds to onnxruntime-Python. Run through that script:
//!
//!     .venv/bin/python scripts/make_golden.py
//!
//! Usage: `cargo run -p twin-embed --example golden_inputs -- <model dir> <golden dir>`.

use std::io::Cursor;
use std::path::PathBuf;

use image::{DynamicImage, ImageFormat, Luma, Rgba};
use twin_core::manifest::ModelManifest;
use twin_core::preprocess::{preprocess_image, ImageLimits};

/// A pen stroke: a smooth curve through the page, `seed` choosing its shape.
fn stroke(seed: u32, width: u32, height: u32) -> Vec<(f32, f32)> {
    let s = seed as f32;
    (0..600)
        .map(|i| {
            let t = i as f32 / 599.0;
            let x = 0.1 + 0.8 * t + 0.04 * (std::f32::consts::TAU * (2.0 + s * 0.7) * t).sin();
            let y = 0.5
                + 0.28
                    * (std::f32::consts::TAU * ((1.3 + s * 0.45) * t + s * 0.1)).sin()
                    * (std::f32::consts::TAU * (0.6 + s * 0.2) * t).cos();
            (x * width as f32, y * height as f32)
        })
        .collect()
}

/// Ink darkness in [0, 1] at each pixel of a `width`×`height` page.
fn ink(seed: u32, width: u32, height: u32, pen: f32) -> Vec<f32> {
    let points = stroke(seed, width, height);
    let mut page = vec![0.0f32; (width * height) as usize];
    for (px, py) in points {
        let (x0, x1) = ((px - pen).floor().max(0.0) as u32, (px + pen).ceil() as u32);
        let (y0, y1) = ((py - pen).floor().max(0.0) as u32, (py + pen).ceil() as u32);
        for y in y0..y1.min(height) {
            for x in x0..x1.min(width) {
                let d = ((x as f32 + 0.5 - px).powi(2) + (y as f32 + 0.5 - py).powi(2)).sqrt();
                let v = (pen - d + 0.5).clamp(0.0, 1.0);
                let cell = &mut page[(y * width + x) as usize];
                *cell = cell.max(v);
            }
        }
    }
    page
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .expect("encoding a generated image");
    out.into_inner()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let model_dir = PathBuf::from(args.next().unwrap_or_else(|| "models/signature-dev".into()));
    let golden = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "crates/twin-embed/tests/golden".into()),
    );
    let manifest = ModelManifest::load(&model_dir).expect("model manifest");
    std::fs::create_dir_all(golden.join("images")).expect("golden/images");

    let (w, h) = (300u32, 120u32);
    let gray = |seed: u32, paper: u8, ink_level: u8| {
        let page = ink(seed, w, h, 2.2);
        image::ImageBuffer::from_fn(w, h, |x, y| {
            let v = page[(y * w + x) as usize];
            Luma([(f32::from(paper) * (1.0 - v) + f32::from(ink_level) * v).round() as u8])
        })
    };
    let images: Vec<(String, Vec<u8>)> = vec![
        (
            "pen-gray.png".into(),
            encode(
                &DynamicImage::ImageLuma8(gray(1, 240, 20)),
                ImageFormat::Png,
            ),
        ),
        (
            "scan-rgb.jpg".into(),
            encode(
                &DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(gray(2, 230, 40)).to_rgb8()),
                ImageFormat::Jpeg,
            ),
        ),
        (
            "gray.bmp".into(),
            encode(&DynamicImage::ImageLuma8(gray(3, 250, 0)), ImageFormat::Bmp),
        ),
        (
            "gray.tiff".into(),
            encode(
                &DynamicImage::ImageLuma8(gray(4, 235, 30)),
                ImageFormat::Tiff,
            ),
        ),
        ("transparent.png".into(), {
            let page = ink(5, w, h, 1.8);
            let rgba = image::ImageBuffer::from_fn(w, h, |x, y| {
                let v = page[(y * w + x) as usize];
                Rgba([10, 20, 120, (v * 255.0).round() as u8])
            });
            encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png)
        }),
    ];

    let mut tensors = Vec::new();
    let mut names = Vec::new();
    for (name, bytes) in &images {
        std::fs::write(golden.join("images").join(name), bytes).expect("write image");
        let (input, spec) = manifest.image().expect("the golden model takes images");
        let tensor = preprocess_image(bytes, spec, input, &ImageLimits::default())
            .unwrap_or_else(|e| panic!("preprocessing {name}: {e}"));
        tensors.extend(tensor);
        names.push(name.clone());
    }
    let (i, _) = manifest.image().expect("the golden model takes images");
    let shape = [
        names.len(),
        i.channels as usize,
        i.height as usize,
        i.width as usize,
    ];
    let file = std::fs::File::create(golden.join("tensors.npy")).expect("tensors.npy");
    twin_core::npy::write_f32(std::io::BufWriter::new(file), &shape, &tensors)
        .expect("write tensors.npy");
    let listing = serde_json::json!({ "model_id": manifest.id, "images": names });
    std::fs::write(
        golden.join("inputs.json"),
        serde_json::to_string_pretty(&listing).expect("json") + "\n",
    )
    .expect("inputs.json");
    println!(
        "golden_inputs: {} images -> {}",
        names.len(),
        golden.display()
    );
}
