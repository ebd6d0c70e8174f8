//! face-v1's pipeline in Rust (decode, tiled MMOD detection, 5-point landmarks, aligned
//! chip, descriptor) against dlib 20 run on the very pixels twin decodes
//! (`tests/fixtures/face/dlib_on_twin_pixels.json`, written by `training/run.sh
//! face-parity`): the same boxes, the same landmarks, the same chip byte for byte, the same
//! descriptor to float rounding. Needs the LFW images (../shared/data/lfw); says "skipped"
//! without them. The model-free parts (bad inputs) run everywhere.

use std::path::{Path, PathBuf};

use twin_core::config::{EmbedConfig, ProviderChoice};
use twin_core::preprocess::{ImageLimits, PreprocessError};
use twin_embed::{Embedder, Prepared};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn embedder() -> Embedder {
    let config = EmbedConfig {
        provider: ProviderChoice::Cpu,
        ..EmbedConfig::default()
    };
    Embedder::load(&root().join("models/face-v1"), &config).expect("face-v1 loads on cpu")
}

#[test]
fn the_pipeline_finds_what_dlib_finds_on_the_same_pixels() {
    let lfw = root().join("../shared/data/lfw/images");
    if !lfw.is_dir() {
        println!("skipped: ../shared/data/lfw is missing");
        return;
    }
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/face/dlib_on_twin_pixels.json"))
            .expect("fixture"),
    )
    .expect("fixture json");
    let embedder = embedder();
    let face = embedder.face().expect("a face model");
    let limits = ImageLimits::from(embedder.config());
    let images = fixture["images"].as_array().expect("images");
    assert!(images.len() >= 8);
    let mut several = 0;
    for entry in images {
        let name = entry["image"].as_str().expect("name");
        let bytes = std::fs::read(lfw.join(name)).expect("lfw image");
        let image = twin_core::face::decode_rgb(&bytes, &limits).expect("decodes");
        let boxes: Vec<[i64; 4]> = face
            .detect(&image)
            .expect("detects")
            .iter()
            .map(|d| [d.face.left, d.face.top, d.face.right, d.face.bottom])
            .collect();
        let expected: Vec<[i64; 4]> = entry["detections"]
            .as_array()
            .expect("detections")
            .iter()
            .map(|d| std::array::from_fn(|i| d[i].as_i64().expect("int")))
            .collect();
        assert_eq!(boxes, expected, "{name}: detections");
        several += usize::from(boxes.len() > 1);
        let found = face.find(&bytes, &limits).expect("a face");
        let used = [
            found.face.left,
            found.face.top,
            found.face.right,
            found.face.bottom,
        ];
        let expected_face: Vec<i64> = serde_json::from_value(entry["face"].clone()).expect("face");
        assert_eq!(
            used.to_vec(),
            expected_face,
            "{name}: the face used (largest)"
        );
        let landmarks: Vec<[i64; 2]> = found.landmarks.iter().map(|&(x, y)| [x, y]).collect();
        let expected_landmarks: Vec<[i64; 2]> =
            serde_json::from_value(entry["landmarks"].clone()).expect("landmarks");
        assert_eq!(landmarks, expected_landmarks, "{name}: landmarks");
        assert_eq!(
            twin_core::ids::sha256_hex(&found.chip),
            entry["chip_sha256"].as_str().expect("sha"),
            "{name}: the aligned chip"
        );
        let tensor = face.prepare(&bytes, &limits).expect("prepares");
        let descriptor = embedder
            .embed_batch(&[Prepared::Image(tensor)])
            .expect("embeds")
            .remove(0);
        let reference: Vec<f32> =
            serde_json::from_value(entry["descriptor"].clone()).expect("descriptor");
        let worst = descriptor
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-4, "{name}: descriptor off by {worst}");
    }
    assert!(
        several >= 1,
        "the fixture must hold an image of several faces"
    );
}

#[test]
fn images_without_a_usable_face_are_refused_with_the_reason() {
    let embedder = embedder();
    let face = embedder.face().expect("a face model");
    let limits = ImageLimits::from(embedder.config());
    let mut gradient = image::RgbImage::new(240, 200);
    for (x, y, p) in gradient.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 255 / 239) as u8, (y * 255 / 199) as u8, 128]);
    }
    let mut png = std::io::Cursor::new(Vec::new());
    gradient
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("png");
    assert_eq!(
        face.prepare(png.get_ref(), &limits),
        Err(PreprocessError::NoFace)
    );
    assert_eq!(face.prepare(&[], &limits), Err(PreprocessError::Empty));
    assert!(matches!(
        face.prepare(b"GIF89a not really", &limits),
        Err(PreprocessError::UnsupportedFormat(_))
    ));
    // A tiny image has no pyramid level a face could be found on.
    let mut tiny = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(3, 3)
        .write_to(&mut tiny, image::ImageFormat::Png)
        .expect("png");
    assert_eq!(
        face.prepare(tiny.get_ref(), &limits),
        Err(PreprocessError::NoFace)
    );
}
