//! twin-embed against the real ONNX Runtime library (runtime/libonnxruntime.so from
//! `bash scripts/setup.sh`) and the committed development model:
//! golden outputs of onnxruntime-Python, batched vs unbatched, providers, the model
//! contract's checks, and bad images failing alone.

use std::path::{Path, PathBuf};

use twin_core::config::{EmbedConfig, ProviderChoice};
use twin_core::manifest::InputSpec;
use twin_core::manifest::ModelManifest;
use twin_embed::{EmbedError, Embedder, EncodedError, Prepared};

/// Golden outputs must match onnxruntime-Python this closely.
const TOLERANCE: f32 = 1e-5;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dev_model() -> PathBuf {
    repo().join("models/signature-dev")
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn config(provider: ProviderChoice) -> EmbedConfig {
    EmbedConfig {
        provider,
        ..EmbedConfig::default()
    }
}

fn cpu_embedder() -> Embedder {
    Embedder::load(&dev_model(), &config(ProviderChoice::Cpu)).expect("dev model loads on cpu")
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    twin_core::npy::read_f32(&bytes).expect("npy")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn golden_images() -> Vec<String> {
    let text = std::fs::read_to_string(golden().join("inputs.json")).expect("inputs.json");
    let listing: serde_json::Value = serde_json::from_str(&text).expect("json");
    listing["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn outputs_equal_onnxruntime_python_golden() {
    let embedder = cpu_embedder();
    let (shape, tensors) = read_npy(&golden().join("tensors.npy"));
    let (out_shape, expected) = read_npy(&golden().join("outputs.npy"));
    assert_eq!(shape[0], out_shape[0]);
    let len = embedder.tensor_len();
    let inputs: Vec<Prepared> = tensors
        .chunks_exact(len)
        .map(|t| Prepared::Image(t.to_vec()))
        .collect();
    let got = embedder.embed_batch(&inputs).expect("embed");
    for (i, (g, e)) in got
        .iter()
        .zip(expected.chunks_exact(out_shape[1]))
        .enumerate()
    {
        let diff = max_abs_diff(g, e);
        assert!(
            diff <= TOLERANCE,
            "image {i}: max |twin - ort python| = {diff}"
        );
    }
}

#[test]
fn rust_preprocessing_still_makes_the_golden_tensors() {
    let embedder = cpu_embedder();
    let (_, tensors) = read_npy(&golden().join("tensors.npy"));
    let len = embedder.tensor_len();
    for (name, expected) in golden_images().iter().zip(tensors.chunks_exact(len)) {
        let bytes = std::fs::read(golden().join("images").join(name)).expect("image");
        let tensor = embedder.preprocess(&bytes).expect("preprocess");
        let diff = max_abs_diff(&tensor, expected);
        assert!(
            diff <= 1e-6,
            "{name}: preprocessing changed (max diff {diff}); if on purpose, rerun \
             .venv/bin/python scripts/make_golden.py"
        );
    }
}

#[test]
fn batched_and_unbatched_embeddings_are_equal() {
    let embedder = cpu_embedder();
    let (_, tensors) = read_npy(&golden().join("tensors.npy"));
    let len = embedder.tensor_len();
    let inputs: Vec<Prepared> = tensors
        .chunks_exact(len)
        .map(|t| Prepared::Image(t.to_vec()))
        .collect();

    // One at a time, each its own ONNX run of batch 1.
    let alone: Vec<Vec<f32>> = inputs
        .iter()
        .map(|t| {
            embedder
                .embed_batch(std::slice::from_ref(t))
                .expect("single")
                .remove(0)
        })
        .collect();
    // All images repeated to fill larger batches, through the sync API.
    let many: Vec<Prepared> = inputs.iter().cycle().take(40).cloned().collect();
    let together = embedder.embed_batch(&many).expect("batch");
    for (i, v) in together.iter().enumerate() {
        let diff = max_abs_diff(v, &alone[i % alone.len()]);
        assert!(diff <= TOLERANCE, "sync batch, item {i}: {diff}");
    }

    // Concurrent async callers gathered by the micro-batcher.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let before = embedder.stats();
    let gathered = runtime.block_on(async {
        let calls = many.iter().map(|t| {
            let (embedder, tensor) = (embedder.clone(), t.clone());
            async move { embedder.embed(tensor).await }
        });
        join_all(calls).await
    });
    for (i, v) in gathered.into_iter().enumerate() {
        let v = v.expect("embed");
        let diff = max_abs_diff(&v, &alone[i % alone.len()]);
        assert!(diff <= TOLERANCE, "micro-batched, item {i}: {diff}");
    }
    let after = embedder.stats();
    assert!(
        after.batches - before.batches < many.len() as u64,
        "40 concurrent calls should share ONNX runs, got {} runs",
        after.batches - before.batches
    );
}

/// Spawns every future as its own task (so they run concurrently) and awaits them in order.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[test]
fn a_lone_caller_takes_the_express_lane_with_the_same_embeddings() {
    // Two sessions whatever the machine, so that the pair is spread: one image each.
    let embedder = Embedder::load(
        &dev_model(),
        &EmbedConfig {
            sessions: 2,
            ..config(ProviderChoice::Cpu)
        },
    )
    .expect("dev model loads on cpu");
    let names = golden_images();
    let images: Vec<Vec<u8>> = names[..2]
        .iter()
        .map(|n| std::fs::read(golden().join("images").join(n)).expect("image"))
        .collect();
    let tensors: Vec<Prepared> = images
        .iter()
        .map(|i| Prepared::Image(embedder.preprocess(i).expect("preprocess")))
        .collect();
    let through_queue = embedder.embed_batch(&tensors).expect("batcher");

    // The express lane works on either kind of tokio runtime: the job goes to the
    // helper threads, the caller only awaits.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let single = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    for runtime in [&multi, &single] {
        let before = embedder.stats();
        let express = runtime
            .block_on(embedder.embed_encoded(images.clone()))
            .expect("express");
        let after = embedder.stats();
        assert_eq!(
            after.express_runs - before.express_runs,
            2,
            "idle batcher: the express lane, one run per session"
        );
        assert_eq!(after.images - before.images, 2, "one image per run");
        // One image alone or beside another: the same convolutions on the same pixels.
        for (alone, beside) in express.iter().zip(&through_queue) {
            assert!(
                max_abs_diff(alone, beside) <= 1e-6,
                "express {alone:?} vs queue {beside:?}"
            );
        }
    }

    // A bad image is reported by its position, whichever session's share it is in.
    for bad in 0..images.len() {
        let mut with_bad = images.clone();
        with_bad[bad] = b"not an image".to_vec();
        for runtime in [&multi, &single] {
            match runtime.block_on(embedder.embed_encoded(with_bad.clone())) {
                Err(EncodedError::Input { index, .. }) if index == bad => {}
                other => panic!("expected image {bad} to be rejected, got {other:?}"),
            }
        }
    }
}

#[test]
fn bad_images_fail_alone_and_batch_mates_succeed() {
    let embedder = cpu_embedder();
    let good = std::fs::read(golden().join("images/pen-gray.png")).expect("image");
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let results = runtime.block_on(async {
        let inputs = vec![
            good.clone(),
            Vec::new(),
            truncated,
            b"just some text".to_vec(),
            good.clone(),
        ];
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|bytes| {
                let embedder = embedder.clone();
                tokio::spawn(async move { embedder.embed_image(bytes).await })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("task"));
        }
        out
    });
    assert!(results[0].is_ok() && results[4].is_ok(), "{results:?}");
    for (i, r) in results[1..4].iter().enumerate() {
        assert!(
            matches!(r, Err(EmbedError::Preprocess(_))),
            "input {}: {r:?}",
            i + 1
        );
    }
}

#[test]
fn cpu_provider_is_reported() {
    let embedder = cpu_embedder();
    assert_eq!(embedder.provider().name, "cpu");
    assert!(embedder.provider().reason.contains("cpu"));
}

#[test]
fn auto_without_gpu_falls_back_to_cpu_and_says_why() {
    let embedder = Embedder::load(&dev_model(), &config(ProviderChoice::Auto)).expect("auto loads");
    if embedder.provider().name == "cuda" {
        eprintln!("skipping: this machine runs CUDA");
        return;
    }
    let reason = &embedder.provider().reason;
    eprintln!("auto: {} ({reason})", embedder.provider().name);
    assert_eq!(embedder.provider().name, "cpu");
    assert!(reason.contains("CUDA not used"), "{reason}");
    // The embedder works on the fallback.
    let (_, tensors) = read_npy(&golden().join("tensors.npy"));
    let first = Prepared::Image(tensors[..embedder.tensor_len()].to_vec());
    assert_eq!(embedder.embed_batch(&[first]).expect("embed")[0].len(), 128);
}

#[test]
fn cuda_without_gpu_fails_loudly() {
    match Embedder::load(&dev_model(), &config(ProviderChoice::Cuda)) {
        Ok(embedder) => assert_eq!(embedder.provider().name, "cuda"),
        Err(error) => {
            assert!(matches!(error, EmbedError::CudaUnavailable(_)), "{error:?}");
            let message = error.to_string();
            eprintln!("cuda: {message}");
            assert!(message.contains("embed.provider = cuda"), "{message}");
            assert!(message.contains("setup.sh --gpu"), "{message}");
        }
    }
}

#[test]
fn wrong_tensor_length_is_an_invalid_input() {
    let embedder = cpu_embedder();
    let err = embedder
        .embed_batch(&[Prepared::Image(vec![0.0; 10])])
        .expect_err("short");
    assert!(matches!(err, EmbedError::InvalidInput(_)), "{err:?}");
}

fn image_input(m: &mut ModelManifest) -> &mut twin_core::manifest::ImageInput {
    match &mut m.input {
        InputSpec::Image(input) => input,
        InputSpec::Text(_) => panic!("the dev model takes images"),
    }
}

/// A copy of the dev model with its manifest edited by `edit`.
fn model_variant(edit: impl FnOnce(&mut ModelManifest), onnx: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let onnx_source = onnx.map_or_else(|| dev_model().join("model.onnx"), Path::to_path_buf);
    let bytes = std::fs::read(onnx_source).expect("onnx");
    std::fs::write(dir.path().join("model.onnx"), &bytes).expect("copy");
    let mut manifest = ModelManifest::load(&dev_model()).expect("manifest");
    manifest.id = twin_core::ids::sha256_hex(&bytes);
    edit(&mut manifest);
    std::fs::write(dir.path().join("manifest.toml"), manifest.to_toml()).expect("manifest");
    dir
}

fn load_error(dir: &Path) -> String {
    match Embedder::load(dir, &config(ProviderChoice::Cpu)) {
        Ok(_) => panic!("model in {} should be refused", dir.display()),
        Err(e) => {
            assert!(matches!(e, EmbedError::Model { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn model_contract_violations_are_explained() {
    let wrong_id = model_variant(|m| m.id = "ab".repeat(32), None);
    assert!(load_error(wrong_id.path()).contains("sha256"));

    let wrong_name = model_variant(|m| image_input(m).name = "pixels".into(), None);
    let message = load_error(wrong_name.path());
    assert!(
        message.contains("\"pixels\"") && message.contains("\"image\""),
        "{message}"
    );

    let wrong_height = model_variant(|m| image_input(m).height = 64, None);
    let message = load_error(wrong_height.path());
    assert!(
        message.contains("H = 80") && message.contains("64"),
        "{message}"
    );

    let wrong_size = model_variant(|m| m.output.embedding_size = 64, None);
    let message = load_error(wrong_size.path());
    assert!(message.contains("embedding_size = 64"), "{message}");

    let wrong_output = model_variant(|m| m.output.name = "features".into(), None);
    assert!(load_error(wrong_output.path()).contains("no output named"));

    let rank3 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rank3.onnx");
    let wrong_rank = model_variant(|_| {}, Some(&rank3));
    let message = load_error(wrong_rank.path());
    assert!(message.contains("rank 3"), "{message}");

    let missing = model_variant(|_| {}, None);
    std::fs::remove_file(missing.path().join("model.onnx")).expect("rm");
    assert!(load_error(missing.path()).contains("model.onnx is missing"));
}

#[test]
fn false_l2_normalized_claim_is_caught() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unnormalized.onnx");
    let claimed = model_variant(|m| m.output.l2_normalized = true, Some(&fixture));
    assert!(load_error(claimed.path()).contains("l2_normalized = true"));
    // Stating the truth is fine: twin returns the graph's outputs as they are.
    let honest = model_variant(|m| m.output.l2_normalized = false, Some(&fixture));
    let embedder = Embedder::load(honest.path(), &config(ProviderChoice::Cpu)).expect("loads");
    let v = &embedder
        .embed_batch(&[Prepared::Image(vec![1.0; embedder.tensor_len()])])
        .expect("embed")[0];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 0.1, "norm {norm} was not left alone");
}

#[test]
fn missing_library_names_the_setup_command() {
    let err =
        twin_embed::runtime::find_library("/nonexistent/libonnxruntime.so").expect_err("missing");
    assert!(err.to_string().contains("bash scripts/setup.sh"), "{err}");
    let not_found = EmbedError::LibraryNotFound {
        searched: vec![PathBuf::from("/x/runtime/libonnxruntime.so")],
    };
    let message = not_found.to_string();
    assert!(message.contains("bash scripts/setup.sh") && message.contains("TWIN_ORT_DYLIB"));
}

/// signature-v2's joint head scores the embeddings `training/twin_train/joint.py` saved with
/// PyTorch's scores (`joint.json`) as PyTorch does, and symmetrically.
#[test]
fn the_joint_head_scores_as_pytorch_did() {
    let dir = repo().join("models/signature-v2");
    let embedder = Embedder::load(&dir, &config(ProviderChoice::Cpu)).expect("signature-v2 loads");
    let head = embedder
        .joint()
        .expect("signature-v2 declares a joint head");
    let text = std::fs::read_to_string(dir.join("joint.json")).expect("joint.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let vectors = |side: &str| -> Vec<Vec<f32>> {
        report["parity"][side]
            .as_array()
            .expect("parity vectors")
            .iter()
            .map(|v| {
                v.as_array()
                    .expect("a vector")
                    .iter()
                    .map(|x| x.as_f64().expect("a number") as f32)
                    .collect()
            })
            .collect()
    };
    let (a, b) = (vectors("a"), vectors("b"));
    let torch: Vec<f64> = report["parity"]["torch"]
        .as_array()
        .expect("torch scores")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect();
    assert!(!torch.is_empty() && torch.len() == a.len());
    let left: Vec<&[f32]> = a.iter().map(Vec::as_slice).collect();
    let right: Vec<&[f32]> = b.iter().map(Vec::as_slice).collect();
    let rust = head.score(&left, &right).expect("scores");
    let worst = rust
        .iter()
        .zip(&torch)
        .map(|(r, t)| (r - t).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-5, "joint head differs from PyTorch by {worst}");
    let swapped = head.score(&right, &left).expect("scores");
    assert!(rust
        .iter()
        .zip(&swapped)
        .all(|(x, y)| (x - y).abs() <= 1e-6));
    assert!(rust.iter().all(|s| (0.0..=1.0).contains(s)));
    // A pair of the wrong size is refused, not run.
    let short = [0.5f32; 3];
    assert!(head.score(&[&short[..]], &[&short[..]]).is_err());
}

#[test]
fn a_joint_head_that_does_not_match_its_manifest_is_refused_at_load() {
    let source = repo().join("models/signature-v2");
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["manifest.toml", "model.onnx", "joint.onnx"] {
        std::fs::copy(source.join(file), dir.path().join(file)).expect("copy");
    }
    let manifest = ModelManifest::load(dir.path()).expect("manifest");
    let mut wrong = manifest.clone();
    if let Some(joint) = wrong.joint.as_mut() {
        joint.sha256 = "0".repeat(64);
    }
    std::fs::write(dir.path().join("manifest.toml"), wrong.to_toml()).expect("write");
    let error = load_error(dir.path());
    assert!(error.contains("joint.sha256"), "{error}");
    let mut renamed = manifest;
    if let Some(joint) = renamed.joint.as_mut() {
        joint.input_a = "left".into();
    }
    std::fs::write(dir.path().join("manifest.toml"), renamed.to_toml()).expect("write");
    let error = load_error(dir.path());
    assert!(error.contains("no input \"left\""), "{error}");
}
