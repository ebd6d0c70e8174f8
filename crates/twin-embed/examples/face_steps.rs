//! Prints what face-v1's pipeline finds in each image given: every detection, the face
//! used, its landmarks, the chip's sha256 and the descriptor, as JSON lines; with
//! `FACE_STEPS_DUMP=DIR` also the decoded pixels (`DIR/<image>.npy`), so that dlib can be
//! run on exactly the pixels twin decoded (`training/twin_train/face/parity.py`).
//!
//! ```text
//! cargo run -p twin-embed --example face_steps -- models/face-v1 IMAGE...
//! ```

use std::path::PathBuf;

use twin_core::config::EmbedConfig;
use twin_core::face::chip::chip_tensor;
use twin_core::face::decode_rgb;
use twin_core::preprocess::ImageLimits;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model: PathBuf = args
        .next()
        .ok_or("usage: face_steps MODEL_DIR IMAGE...")?
        .into();
    let config = EmbedConfig::default();
    let embedder = twin_embed::Embedder::load(&model, &config)?;
    let face = embedder.face().ok_or("not a face model")?;
    let limits = ImageLimits::from(&config);
    for path in args {
        let bytes = std::fs::read(&path)?;
        let image = decode_rgb(&bytes, &limits)?;
        if let Ok(dir) = std::env::var("FACE_STEPS_DUMP") {
            // The decoded pixels, to run dlib on exactly what twin decoded.
            let pixels: Vec<f32> = image.pixels.iter().map(|&v| f32::from(v)).collect();
            let name = std::path::Path::new(&path)
                .file_name()
                .ok_or("image name")?;
            let out =
                std::fs::File::create(std::path::Path::new(&dir).join(name).with_extension("npy"))?;
            twin_core::npy::write_f32(
                out,
                &[image.height as usize, image.width as usize, 3],
                &pixels,
            )?;
        }
        let detections: Vec<_> = face
            .detect(&image)?
            .iter()
            .map(|d| {
                (
                    d.face.left,
                    d.face.top,
                    d.face.right,
                    d.face.bottom,
                    d.score,
                )
            })
            .collect();
        let line = match face.find(&bytes, &limits) {
            Ok(found) => {
                let tensor = chip_tensor(&found.chip, face.spec().chip_size);
                let descriptor = embedder.embed_batch(&[twin_embed::Prepared::Image(tensor)])?;
                serde_json::json!({
                    "image": path, "detections": detections,
                    "face": [found.face.left, found.face.top, found.face.right, found.face.bottom],
                    "landmarks": found.landmarks,
                    "chip_sha256": twin_core::ids::sha256_hex(&found.chip),
                    "descriptor": descriptor.first(),
                })
            }
            Err(e) => {
                serde_json::json!({"image": path, "detections": detections, "error": e.to_string()})
            }
        };
        println!("{line}");
    }
    Ok(())
}
