//! `twin preprocess`: runs serving's own preprocessing over a list of images and writes the
//! tensors as an `.npy` cache plus a JSON index, so training consumes exactly what twin serves
//! and the two can never drift apart.
//!
//! The list is TSV, one image a line: `path[<TAB>subject[<TAB>kind]]` (`#` starts a comment;
//! relative paths are relative to the list file). Dataset layouts (BHSig, CEDAR, generic,
//! Omniglot) are read by `training/twin_train/readers.py`, which writes such lists.
//!
//! With `--embed` (and `--model`), the tensors also go through twin-embed, the serving
//! runtime, and the embeddings are written as `PREFIX.embeddings.npy` [N, D]: what the
//! training pipeline compares with ONNX Runtime in Python (Rust parity check).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::json;
use twin_core::config::EmbedConfig;
use twin_core::manifest::{ImageInput, ModelManifest, PreprocessSpec};
use twin_core::preprocess::{preprocess_image, ImageLimits};

#[derive(Debug, clap::Args)]
pub struct PreprocessArgs {
    /// TSV list of images: `path[<TAB>subject[<TAB>kind]]` per line.
    #[arg(long)]
    pub list: PathBuf,
    /// Output prefix: writes PREFIX.npy (float32 [N, C, H, W]) and PREFIX.json (specs + index).
    #[arg(long)]
    pub out: PathBuf,
    /// Take input shape and preprocessing from this model directory's manifest.toml.
    #[arg(long, conflicts_with_all = ["height", "width"])]
    pub model: Option<PathBuf>,
    /// Input height (without --model).
    #[arg(long, required_unless_present = "model")]
    pub height: Option<u32>,
    /// Input width (without --model).
    #[arg(long, required_unless_present = "model")]
    pub width: Option<u32>,
    /// Input channels (without --model).
    #[arg(long, default_value_t = 1)]
    pub channels: u32,
    /// Input tensor name recorded in the index (without --model).
    #[arg(long, default_value = "image")]
    pub input_name: String,
    /// Keep gray levels instead of binarizing with Otsu's threshold (without --model).
    #[arg(long)]
    pub no_binarize: bool,
    /// Do not crop to the ink's bounding box (without --model).
    #[arg(long)]
    pub no_crop: bool,
    /// Margin around the ink box, as a fraction of its larger side (without --model).
    #[arg(long, default_value_t = 0.0)]
    pub margin: f32,
    /// Normalization mean (without --model).
    #[arg(long, default_value_t = 0.0)]
    pub mean: f32,
    /// Normalization std (without --model).
    #[arg(long, default_value_t = 1.0)]
    pub std: f32,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Record unreadable images in the index and go on, instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// Also embed the tensors with the --model through twin-embed and write
    /// PREFIX.embeddings.npy ([N, embedding_size] float32).
    #[arg(long, requires = "model")]
    pub embed: bool,
}

/// One line of the list file.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    path: PathBuf,
    subject: String,
    kind: String,
}

fn parse_list(text: &str, base: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split('\t');
        let path = fields.next().unwrap_or_default();
        if path.is_empty() {
            bail!("list line {}: the path (first field) is empty", number + 1);
        }
        let path = PathBuf::from(path);
        entries.push(Entry {
            path: if path.is_absolute() {
                path
            } else {
                base.join(path)
            },
            subject: fields.next().unwrap_or_default().to_owned(),
            kind: fields.next().unwrap_or("genuine").to_owned(),
        });
    }
    Ok(entries)
}

fn specs(args: &PreprocessArgs) -> anyhow::Result<(ImageInput, PreprocessSpec)> {
    if let Some(dir) = &args.model {
        let manifest = ModelManifest::load(dir)?;
        let Some((input, spec)) = manifest.image() else {
            bail!(
                "model {} takes {} input; `twin preprocess` prepares images",
                manifest.name,
                manifest.input_kind()
            );
        };
        return Ok((input.clone(), spec.clone()));
    }
    let (Some(height), Some(width)) = (args.height, args.width) else {
        bail!("give --model DIR, or --height and --width");
    };
    Ok((
        ImageInput {
            name: args.input_name.clone(),
            channels: args.channels,
            height,
            width,
        },
        PreprocessSpec {
            binarize: !args.no_binarize,
            crop_to_ink: !args.no_crop,
            margin: args.margin,
            mean: args.mean,
            std: args.std,
        },
    ))
}

pub fn run(args: PreprocessArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.list)
        .with_context(|| format!("cannot read the image list {}", args.list.display()))?;
    let base = args.list.parent().unwrap_or(Path::new(".")).to_owned();
    let entries = parse_list(&text, &base)?;
    if entries.is_empty() {
        bail!("the image list {} names no images", args.list.display());
    }
    let (input, spec) = specs(&args)?;
    let per_image = (input.channels * input.height * input.width) as usize;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let results = preprocess_all(&entries, &spec, &input, per_image, threads);

    let mut data = Vec::with_capacity(entries.len() * per_image);
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for (entry, result) in entries.iter().zip(results) {
        match result {
            Ok(tensor) => {
                data.extend_from_slice(&tensor);
                samples.push(json!({
                    "path": entry.path.display().to_string(),
                    "subject": entry.subject,
                    "kind": entry.kind,
                }));
            }
            Err(error) if args.skip_bad => {
                tracing::warn!(path = %entry.path.display(), %error, "skipping image");
                skipped.push(json!({"path": entry.path.display().to_string(), "error": error}));
            }
            Err(error) => bail!(
                "{}: {error} (fix or drop it from the list, or pass --skip-bad)",
                entry.path.display()
            ),
        }
    }

    let npy_path = with_suffix(&args.out, "npy");
    let json_path = with_suffix(&args.out, "json");
    if let Some(dir) = npy_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    }
    let shape = [
        samples.len(),
        input.channels as usize,
        input.height as usize,
        input.width as usize,
    ];
    let file = std::fs::File::create(&npy_path)
        .with_context(|| format!("cannot create {}", npy_path.display()))?;
    let mut out = BufWriter::new(file);
    twin_core::npy::write_f32(&mut out, &shape, &data)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", npy_path.display()))?;
    let embedded = if args.embed {
        let dir = args.model.as_deref().context("--embed needs --model DIR")?;
        Some(embed_all(dir, &data, per_image, &args.out)?)
    } else {
        None
    };
    let index = json!({
        "input": input,
        "preprocess": spec,
        "count": samples.len(),
        "samples": samples,
        "skipped": skipped,
        "embeddings": embedded.map(|p| p.display().to_string()),
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&index)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    tracing::info!(
        images = shape[0],
        skipped = skipped.len(),
        threads,
        elapsed_s = started.elapsed().as_secs_f64(),
        npy = %npy_path.display(),
        "preprocessed"
    );
    println!(
        "{} images -> {} [{}, {}, {}, {}] ({} skipped) in {:.1}s",
        shape[0],
        npy_path.display(),
        shape[0],
        shape[1],
        shape[2],
        shape[3],
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Embeds the preprocessed tensors with twin-embed (the serving runtime) and writes them
/// next to the cache; returns the path written.
fn embed_all(dir: &Path, data: &[f32], per_image: usize, out: &Path) -> anyhow::Result<PathBuf> {
    let embedder = twin_embed::Embedder::load(dir, &EmbedConfig::default())
        .with_context(|| format!("cannot load the model in {}", dir.display()))?;
    let tensors: Vec<twin_embed::Prepared> = data
        .chunks(per_image)
        .map(|t| twin_embed::Prepared::Image(t.to_vec()))
        .collect();
    let vectors = embedder.embed_batch(&tensors)?;
    let size = embedder.manifest().output.embedding_size as usize;
    let flat: Vec<f32> = vectors.concat();
    let path = with_suffix(out, "embeddings.npy");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    twin_core::npy::write_f32(&mut writer, &[vectors.len(), size], &flat)
        .and_then(|()| writer.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(images = vectors.len(), provider = embedder.provider().name, path = %path.display(), "embedded with twin-embed");
    Ok(path)
}

/// Preprocesses every entry on `threads` threads, each taking an interleaved share.
fn preprocess_all(
    entries: &[Entry],
    spec: &PreprocessSpec,
    input: &ImageInput,
    per_image: usize,
    threads: usize,
) -> Vec<Result<Vec<f32>, String>> {
    let limits = ImageLimits::default();
    let one = |entry: &Entry| -> Result<Vec<f32>, String> {
        let bytes = std::fs::read(&entry.path).map_err(|e| format!("cannot read: {e}"))?;
        let tensor = preprocess_image(&bytes, spec, input, &limits).map_err(|e| e.to_string())?;
        debug_assert_eq!(tensor.len(), per_image);
        Ok(tensor)
    };
    let mut results: Vec<Option<Result<Vec<f32>, String>>> = vec![None; entries.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..entries.len())
                        .step_by(threads)
                        .map(|i| (i, one(&entries[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A panicking worker is a bug in preprocessing; its images are reported as failed below.
            if let Ok(done) = handle.join() {
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("preprocessing thread panicked".to_owned())))
        .collect()
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_with_and_without_labels() {
        let text = "# comment\n/abs/a.png\t001\tforged\nrel/b.png\t002\n\nc.png\n";
        let got = parse_list(text, Path::new("/base")).expect("parse");
        assert_eq!(
            got,
            vec![
                Entry {
                    path: "/abs/a.png".into(),
                    subject: "001".into(),
                    kind: "forged".into()
                },
                Entry {
                    path: "/base/rel/b.png".into(),
                    subject: "002".into(),
                    kind: "genuine".into()
                },
                Entry {
                    path: "/base/c.png".into(),
                    subject: String::new(),
                    kind: "genuine".into()
                },
            ]
        );
    }

    #[test]
    fn empty_path_is_an_error() {
        assert!(parse_list("\t001\tgenuine\n", Path::new(".")).is_err());
    }

    #[test]
    fn suffix_is_appended_not_replaced() {
        assert_eq!(
            with_suffix(Path::new("/tmp/bhsig.64x192"), "npy"),
            PathBuf::from("/tmp/bhsig.64x192.npy")
        );
    }
}
