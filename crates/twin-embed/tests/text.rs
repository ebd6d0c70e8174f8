//! The text branch in Rust (the model's own tokenizer.json + ONNX Runtime) against
//! onnxruntime-Python on the same sentences (`models/paraphrase-v1/rust_parity.json`,
//! written by `training/run.sh text-ship`), and the text contract: padding to the batch's
//! longest, truncation at max_tokens, the refusals.

use std::path::{Path, PathBuf};

use twin_core::config::{EmbedConfig, ProviderChoice};
use twin_core::input::Input;
use twin_core::manifest::InputKind;
use twin_core::preprocess::PreprocessError;
use twin_embed::{Embedder, Prepared};

/// Rust must match onnxruntime-Python this closely (the bound).
const TOLERANCE: f32 = 1e-5;

fn text_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/paraphrase-v1")
}

fn embedder() -> Embedder {
    let config = EmbedConfig {
        provider: ProviderChoice::Cpu,
        ..EmbedConfig::default()
    };
    Embedder::load(&text_model(), &config).expect("paraphrase-v1 loads on cpu")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

struct Reference {
    text: String,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = text_model().join("rust_parity.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| Reference {
            text: item["text"].as_str().expect("text").to_owned(),
            embedding: item["embedding"]
                .as_array()
                .expect("embedding")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect(),
        })
        .collect()
}

fn prepare(embedder: &Embedder, text: &str) -> Prepared {
    embedder
        .prepare(&Input::Text(text.to_owned()))
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn rust_text_embeddings_equal_onnxruntime_python() {
    let embedder = embedder();
    assert_eq!(embedder.input_kind(), InputKind::Text);
    let references = references();
    assert!(references.len() >= 20, "{} references", references.len());
    let mut worst = 0.0f32;
    for (i, reference) in references.iter().enumerate() {
        let got = embedder
            .embed_batch(&[prepare(&embedder, &reference.text)])
            .expect("embed")
            .remove(0);
        let diff = max_abs_diff(&got, &reference.embedding);
        worst = worst.max(diff);
        assert!(
            diff <= TOLERANCE,
            "sentence {i} {:?}: max diff {diff}",
            reference.text
        );
    }
    eprintln!(
        "{} sentences, max |rust - python| = {worst:e}",
        references.len()
    );
}

#[test]
fn a_padded_batch_embeds_each_text_as_alone() {
    let embedder = embedder();
    let texts: Vec<String> = references().into_iter().map(|r| r.text).collect();
    let prepared: Vec<Prepared> = texts.iter().map(|t| prepare(&embedder, t)).collect();
    let alone: Vec<Vec<f32>> = prepared
        .iter()
        .map(|p| {
            embedder
                .embed_batch(std::slice::from_ref(p))
                .expect("alone")
                .remove(0)
        })
        .collect();
    // Mixed lengths in one ONNX run: padded to the longest of the run, masked.
    let config = EmbedConfig {
        provider: ProviderChoice::Cpu,
        max_batch: 8,
        ..EmbedConfig::default()
    };
    let batched = Embedder::load(&text_model(), &config).expect("loads");
    let together = batched.embed_batch(&prepared).expect("together");
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        let diff = max_abs_diff(a, b);
        assert!(
            diff <= TOLERANCE,
            "text {i} {:?}: batched differs by {diff}",
            texts[i]
        );
    }
}

#[test]
fn long_texts_are_truncated_and_said_so_bad_ones_refused() {
    let embedder = embedder();
    let long = "The committee approved the budget after a long debate. ".repeat(80);
    let tokens = embedder.tokenize(&long).expect("tokenize");
    assert!(tokens.truncated);
    assert_eq!(
        tokens.ids.len(),
        embedder.max_tokens().expect("a text model")
    );
    let input = Input::Text(long);
    let warning = embedder.truncation_warning("a", &input).expect("a warning");
    assert!(
        warning.starts_with("a: ") && warning.contains("256 tokens"),
        "{warning}"
    );
    let short = embedder.tokenize("A short sentence.").expect("tokenize");
    assert!(!short.truncated && short.ids.len() < 10, "{short:?}");
    assert!(embedder
        .truncation_warning("a", &Input::Text("A short sentence.".into()))
        .is_none());

    assert_eq!(embedder.tokenize(""), Err(PreprocessError::EmptyText));
    assert_eq!(embedder.tokenize(" \n\t"), Err(PreprocessError::EmptyText));
    let huge = "x".repeat(EmbedConfig::default().max_text_bytes + 1);
    assert!(matches!(
        embedder.tokenize(&huge),
        Err(PreprocessError::TextTooLarge { .. })
    ));
    let err = embedder
        .prepare(&Input::Image(vec![0x89, b'P', b'N', b'G']))
        .expect_err("an image to a text model");
    assert_eq!(
        err.to_string(),
        "model paraphrase-v1 takes text input, this request sent image"
    );
}
