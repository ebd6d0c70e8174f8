//! `twin bench <name>`: benchmarks anyone can run. Each prints a readable table on
//! stdout, then ONE JSON line with the figures (for scripts and the README).
//! The measuring code lives in the crate it measures; this module only wires it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use twin_core::input::Input;
use twin_core::manifest::InputKind;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub bench: Bench,
}

#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Vector store (embedded engine): upsert throughput, HNSW build time, search
    /// latency p50/p99 with and without a subject filter.
    Store(StoreArgs),
    /// Embedding runtime: images/s through the micro-batcher under concurrent callers
    /// against raw ONNX Runtime batches, same model, provider and threads.
    Embed(EmbedArgs),
    /// Ingest pipeline: enqueue -> broker -> worker(s) -> stored throughput with 1 and 2
    /// workers, against raw preprocess + embed on the same model (needs RabbitMQ).
    Ingest(IngestArgs),
    /// Verify over gRPC: latency p50/p99 and pairs/s at concurrency 1-64 against raw
    /// inference of a batch of 2 and of 64 on the same model, same run. Starts a gateway
    /// unless --addr names one.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Model directory (model.onnx + manifest.toml); a targeted gateway must serve it.
    #[arg(long, default_value = "models/signature-v2")]
    pub model: PathBuf,
    /// Configuration file (embed and gateway sections apply; TWIN_* variables override).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Measure a running gateway at this URL instead of starting one here.
    #[arg(long)]
    pub addr: Option<String>,
    /// API key for a targeted gateway, sent as `authorization: Bearer <key>`.
    #[arg(long, env = "TWIN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Concurrent clients per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32, 64])]
    pub concurrency: Vec<usize>,
    /// Reference counts of the VerifySubject case, comma-separated (embedded target only;
    /// measured at concurrency 1 beside Verify's p99 there).
    #[arg(long, value_delimiter = ',', default_values_t = [5usize, 20])]
    pub subject_references: Vec<usize>,
    /// Seconds measured per level and per raw figure (after a warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Rounds of raw figures, every level, raw figures again; each figure keeps its best.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Distinct pairs the clients cycle through (signature-sized synthetic PNGs, or for a
    /// text model generated sentences of 8 to 40 words, as long as MRPC's).
    #[arg(long, default_value_t = 64)]
    pub pairs: usize,
    /// For a text model: send these sentence pairs instead (MRPC's format, as `twin eval
    /// --pairs` reads), the first --pairs of them.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// For a face model: send the image pairs of this LFW `pairs.txt` (images in `images`
    /// beside it), the first --pairs matched pairs of each fold in turn.
    #[arg(long)]
    pub lfw: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Model directory (model.onnx + manifest.toml).
    #[arg(long, default_value = "models/signature-v2")]
    pub model: PathBuf,
    /// Configuration file (queue.url, embed and worker sections apply).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Jobs per run (signature-sized synthetic images).
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Worker counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    pub workers: Vec<usize>,
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Model directory (model.onnx + manifest.toml).
    #[arg(long, default_value = "models/signature-dev")]
    pub model: PathBuf,
    /// Configuration file (the embed section applies; TWIN_EMBED__* variables override).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Raw batch sizes = concurrent batched callers, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32, 64])]
    pub sizes: Vec<usize>,
    /// Seconds measured per point and side (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Alternating raw / batched slices the seconds are split into (best slice each).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Collection sizes in points, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
    pub sizes: Vec<usize>,
    /// Vector size (the model's embedding size).
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Metric the collection is built for (cosine, dot, l2, l1).
    #[arg(long, default_value = "cosine")]
    pub metric: twin_core::Metric,
    /// Searches timed per size, with and without the filter each.
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Points per upsert call (each waits until durable).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Points per subject (the filtered search selects one subject).
    #[arg(long, default_value_t = 10)]
    pub points_per_subject: usize,
    /// Directory for the benchmark stores (default: the system temp directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Store(store) => run_store(store),
        Bench::Embed(embed) => run_embed(embed),
        Bench::Ingest(ingest) => run_ingest(ingest),
        Bench::Verify(verify) => run_verify(verify),
    }
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let mut config = twin_core::config::TwinConfig::from_env(args.config.as_deref())?;
    let kind = twin_core::manifest::ModelManifest::load(&args.model)?.input_kind();
    config.models.dirs = vec![args.model];
    config.models.default = String::new();
    let pairs = match (kind, &args.lfw) {
        (InputKind::Image, Some(lfw)) => face_pairs(args.pairs, lfw)?,
        (InputKind::Image, None) => image_pairs(args.pairs),
        (InputKind::Text, _) => text_pairs(args.pairs, args.texts.as_deref())?,
    };
    let target = match args.addr {
        Some(addr) => twin_bench::verify::VerifyTarget::Remote(addr),
        None => twin_bench::verify::VerifyTarget::Embedded,
    };
    let options = twin_bench::verify::VerifyBenchOptions {
        concurrency: args.concurrency,
        seconds: args.seconds,
        rounds: args.rounds,
        api_key: args.api_key,
        subject_references: args.subject_references,
    };
    let report = twin_bench::verify::run_verify_bench(&config, &target, &pairs, &options)
        .context("verify benchmark failed")?;
    print!("{}", report.table());
    let mut line: serde_json::Value =
        serde_json::from_str(&report.json_line()).context("the report's JSON line")?;
    if let Some(stages) = face_stages(&config, &pairs)? {
        print!("{}", stages.table());
        line["face_stages"] = stages.json();
    }
    println!("{line}");
    Ok(())
}

/// Where a face model's time goes, image by image, on one thread: decoding and detection
/// (the tiled pyramid and the detector graph), landmarks and chip, the descriptor graph.
struct FaceStages {
    images: usize,
    detect_ms: f64,
    prepare_ms: f64,
    descriptor_ms: f64,
}

impl FaceStages {
    fn detector_share(&self) -> f64 {
        self.detect_ms / (self.prepare_ms + self.descriptor_ms)
    }

    fn table(&self) -> String {
        format!(
            "face stages (median of {} images, one thread each): decode + detect {:.1} ms, whole \
             preprocessing (+ landmarks, chip) {:.1} ms, descriptor graph {:.1} ms; the detector's \
             share of an image's time: {:.0} %\n",
            self.images,
            self.detect_ms,
            self.prepare_ms,
            self.descriptor_ms,
            100.0 * self.detector_share()
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "images": self.images,
            "decode_detect_ms_p50": self.detect_ms,
            "preprocess_ms_p50": self.prepare_ms,
            "descriptor_ms_p50": self.descriptor_ms,
            "detector_share": self.detector_share(),
        })
    }
}

fn face_stages(
    config: &twin_core::config::TwinConfig,
    pairs: &[(Input, Input)],
) -> anyhow::Result<Option<FaceStages>> {
    let Some(dir) = config.models.dirs.first() else {
        return Ok(None);
    };
    let embedder = twin_embed::Embedder::load(dir, &config.embed)?;
    let Some(face) = embedder.face() else {
        return Ok(None);
    };
    let limits = twin_core::preprocess::ImageLimits::from(&config.embed);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (mut detect, mut prepare, mut descriptor) = (Vec::new(), Vec::new(), Vec::new());
    for input in pairs.iter().flat_map(|(a, b)| [a, b]).take(64) {
        let Input::Image(bytes) = input else { continue };
        let started = std::time::Instant::now();
        let image = twin_core::face::decode_rgb(bytes, &limits)?;
        face.detect(&image)?;
        detect.push(started.elapsed().as_secs_f64() * 1e3);
        let started = std::time::Instant::now();
        let Ok(tensor) = face.prepare(bytes, &limits) else {
            continue;
        };
        prepare.push(started.elapsed().as_secs_f64() * 1e3);
        let started = std::time::Instant::now();
        embedder.embed_batch(&[twin_embed::Prepared::Image(tensor)])?;
        descriptor.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Some(FaceStages {
        images: prepare.len(),
        detect_ms: median(detect),
        prepare_ms: median(prepare),
        descriptor_ms: median(descriptor),
    }))
}

/// Face photo pairs from LFW's pairs file, spread over its folds.
fn face_pairs(count: usize, file: &Path) -> anyhow::Result<Vec<(Input, Input)>> {
    let read = super::face_pairs::LfwPairs::read(file)?;
    let images = file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("images");
    let load = |k: usize| -> anyhow::Result<Input> {
        let path = images.join(&read.images[k]);
        std::fs::read(&path)
            .map(Input::Image)
            .with_context(|| format!("cannot read {}", path.display()))
    };
    let step = (read.pairs.len() / count.max(1)).max(1);
    read.pairs
        .iter()
        .step_by(step)
        .take(count.max(1))
        .map(|p| Ok((load(p.a)?, load(p.b)?)))
        .collect()
}

/// Sentence pairs for a text model: the file's (`--texts`), or generated ones.
fn text_pairs(count: usize, file: Option<&Path>) -> anyhow::Result<Vec<(Input, Input)>> {
    let count = count.max(1);
    if let Some(file) = file {
        let read = super::sentence_pairs::PairFile::read(file)?;
        return Ok(read
            .pairs
            .iter()
            .take(count)
            .map(|&(a, b, _)| {
                (
                    Input::Text(read.sentences[a].clone()),
                    Input::Text(read.sentences[b].clone()),
                )
            })
            .collect());
    }
    Ok((0..count)
        .map(|i| {
            (
                Input::Text(sentence(2 * i)),
                Input::Text(sentence(2 * i + 1)),
            )
        })
        .collect())
}

/// A deterministic news-like sentence of 8 to 40 words (a 64-bit LCG over a small
/// vocabulary): token counts like MRPC's, which is what inference time depends on.
fn sentence(seed: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "company",
        "said",
        "on",
        "tuesday",
        "that",
        "its",
        "quarterly",
        "profit",
        "rose",
        "percent",
        "after",
        "sales",
        "of",
        "new",
        "phones",
        "in",
        "europe",
        "and",
        "asia",
        "officials",
        "announced",
        "a",
        "plan",
        "to",
        "cut",
        "costs",
        "by",
        "march",
        "while",
        "analysts",
        "expected",
        "shares",
        "fell",
        "sharply",
        "court",
        "ruled",
        "government",
        "would",
        "appeal",
        "decision",
        "million",
        "dollars",
        "police",
        "reported",
        "storm",
        "flooded",
        "streets",
        "city",
        "council",
        "voted",
        "against",
    ];
    let mut state = (seed as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let length = 8 + next() % 33;
    let words: Vec<&str> = (0..length).map(|_| WORDS[next() % WORDS.len()]).collect();
    format!("{}.", words.join(" "))
}

/// Half genuine pairs, half genuine vs skilled forgery, all distinct synthetic PNGs.
fn image_pairs(count: usize) -> Vec<(Input, Input)> {
    let spec = twin_synth::SynthSpec::default();
    let png = |writer, kind, index| {
        twin_synth::encode_png(&twin_synth::generate_sample(&spec, writer, kind, index))
    };
    (0..count.max(1))
        .map(|i| {
            let (writer, index) = (i % 16, i / 16);
            let b = if i % 2 == 0 {
                png(writer, twin_synth::SampleKind::Genuine, index + 1000)
            } else {
                png(writer, twin_synth::SampleKind::Forgery, index)
            };
            (
                Input::Image(png(writer, twin_synth::SampleKind::Genuine, index)),
                Input::Image(b),
            )
        })
        .collect()
}

fn run_embed(args: EmbedArgs) -> anyhow::Result<()> {
    let config = twin_core::config::TwinConfig::from_env(args.config.as_deref())?;
    let embedder = twin_embed::Embedder::load(&args.model, &config.embed)
        .with_context(|| format!("cannot load the model in {}", args.model.display()))?;
    let options = twin_bench::embed::BenchOptions {
        sizes: args.sizes,
        seconds: args.seconds,
        rounds: args.rounds,
    };
    let report = twin_bench::embed::run_embed_bench(&embedder, &options)
        .context("embed benchmark failed")?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}

fn run_store(args: StoreArgs) -> anyhow::Result<()> {
    let options = twin_bench::store::StoreBenchOptions {
        sizes: args.sizes,
        dim: args.dim,
        metric: args.metric,
        queries: args.queries,
        top_k: args.top_k,
        batch: args.batch,
        points_per_subject: args.points_per_subject,
        data_dir: args.data_dir,
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime
        .block_on(twin_bench::store::run_store_bench(&options))
        .context("store benchmark failed")?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}

fn run_ingest(args: IngestArgs) -> anyhow::Result<()> {
    let config = twin_core::config::TwinConfig::from_env(args.config.as_deref())?;
    let models =
        twin_embed::ModelRegistry::load(std::slice::from_ref(&args.model), "", &config.embed)
            .with_context(|| format!("cannot load the model in {}", args.model.display()))?;
    // 64 distinct signature-sized images, reused across subjects (distinct points).
    let spec = twin_synth::SynthSpec::default();
    let images: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            twin_synth::encode_png(&twin_synth::generate_sample(
                &spec,
                i % 16,
                twin_synth::SampleKind::Genuine,
                i / 16,
            ))
        })
        .collect();
    let mut queue = config.queue.clone();
    queue.backend = "rabbitmq".to_owned();
    let options = twin_bench::ingest::IngestOptions {
        jobs: args.jobs,
        workers: args.workers,
        queue,
        worker: config.worker.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime
        .block_on(twin_bench::ingest::run_ingest_bench(
            models, images, options,
        ))
        .context("ingest benchmark failed")?;
    print!("{}", report.table());
    println!("{}", report.json_line());
    Ok(())
}
