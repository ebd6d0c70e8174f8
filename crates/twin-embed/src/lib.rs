//! twin-embed turns images into vectors with one branch of a siamese network, exported
//! to ONNX and run by ONNX Runtime through `ort`. Both the gateway (single queries, low
//! latency) and the worker (enrolment batches, throughput) use the same [`Embedder`].
//!
//! - [`runtime`]: the process's one ONNX Runtime environment and where its library is found;
//! - [`model`]: the model contract checked at load (manifest, sha256, graph shapes);
//! - [`session`]: execution providers (`auto` / `cuda` / `cpu`) and pool sizing;
//! - [`joint`]: the manifest's joint head, scoring pairs of embeddings (`Metric::Learned`);
//! - `batcher`: the dynamic micro-batcher on dedicated session threads;
//! - [`bench`]: `twin bench embed`.
//!
//! **Outputs are returned exactly as the graph computes them.** Twin never renormalizes:
//! a manifest with `l2_normalized = true` is checked at load by probing the graph, and
//! for `cosine` the score does not depend on the norm anyway (Qdrant normalizes cosine
//! collections itself), while for `l2`/`dot` rescaling would silently change the model's
//! metric. Keeping outputs raw is also what lets the golden test compare twin with
//! onnxruntime-Python to 1e-5.

mod batcher;
pub mod error;
pub mod face;
mod helpers;
pub mod joint;
pub mod model;
mod registry;
pub mod runtime;
pub mod session;
pub mod text;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rayon::prelude::*;
use tokio::sync::oneshot;
use twin_core::config::EmbedConfig;
use twin_core::input::Input;
use twin_core::manifest::{InputKind, ModelManifest};
use twin_core::preprocess::{preprocess_image, ImageLimits, PreprocessError};

pub use batcher::{BatchObserver, BatchRun, BatcherStats};
pub use error::{EmbedError, EncodedError};
pub use face::{FaceFound, FacePipeline};
pub use joint::JointHead;
pub use model::ModelFiles;
pub use registry::ModelRegistry;
pub use session::{ActiveProvider, Batch, ModelSession, PoolSize, Prepared};
pub use text::{TextTokenizer, Tokens};

use batcher::Batcher;
use helpers::{Helpers, HELPER_FAILED};

/// Tolerance on the norm of outputs of a graph whose manifest says they are L2-normalized.
const NORM_TOLERANCE: f32 = 1e-3;

/// A loaded model with its session pool and micro-batcher.
///
/// ```no_run
/// # async fn demo(png: Vec<u8>) -> Result<(), twin_embed::EmbedError> {
/// use twin_core::config::EmbedConfig;
/// let embedder = twin_embed::Embedder::load("models/signature-dev".as_ref(), &EmbedConfig::default())?;
/// println!("running on {} ({})", embedder.provider().name, embedder.provider().reason);
/// let vector = embedder.embed_image(png).await?;
/// assert_eq!(vector.len(), embedder.manifest().output.embedding_size as usize);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: ModelFiles,
    provider: ActiveProvider,
    pool: PoolSize,
    limits: ImageLimits,
    config: EmbedConfig,
    runtime: &'static runtime::Runtime,
    batcher: Batcher,
    /// One thread pinned to each core: the express lane and `preprocess_many` run on them.
    helpers: Helpers,
    /// The manifest's joint head, when it declares one.
    joint: Option<Arc<JointHead>>,
    /// A text model's tokenizer.
    tokenizer: Option<TextTokenizer>,
    /// A face model's detector, landmarks and alignment.
    face: Option<Arc<FacePipeline>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.inner.model.manifest.name)
            .field("provider", &self.inner.provider)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads the model in `dir` (see `models/README.md`), creates the session pool on the
    /// configured provider, probes the graph once and starts the batcher.
    pub fn load(dir: &Path, config: &EmbedConfig) -> Result<Self, EmbedError> {
        let runtime = runtime::runtime(&config.ort_library)?;
        let model = ModelFiles::load(dir)?;
        let tokenizer = match model.manifest.text() {
            Some(text) => Some(TextTokenizer::load(
                &model.dir.join(&text.tokenizer),
                text.max_tokens as usize,
            )?),
            None => None,
        };
        let (mut first, provider) = ModelSession::create_first(
            runtime,
            &model,
            config.provider,
            PoolSize::intra_threads(config),
        )?;
        let pool = PoolSize::plan(config, &provider);
        let max_batch = PoolSize::max_batch(config, &provider);
        if provider.name == "cuda" {
            tracing::info!(model = %model.manifest.name, provider = provider.name, reason = %provider.reason, "embedding provider chosen");
        } else {
            tracing::warn!(model = %model.manifest.name, provider = provider.name, reason = %provider.reason, "embedding provider chosen");
        }
        probe(&mut first, &model, tokenizer.as_ref())?;

        let mut sessions = vec![first];
        for _ in 1..pool.sessions {
            sessions.push(ModelSession::create_like(
                runtime,
                &model,
                &provider,
                pool.intra_threads,
            )?);
        }
        let batcher = Batcher::start(
            sessions,
            max_batch,
            Duration::from_micros(config.max_wait_us),
            model.embedding_size(),
        )?;
        tracing::info!(
            model = %model.manifest.name,
            id = %model.manifest.id,
            trained = model.manifest.trained,
            sessions = pool.sessions,
            intra_threads = pool.intra_threads,
            max_batch,
            max_wait_us = config.max_wait_us,
            "embedding model loaded"
        );
        if !model.manifest.trained {
            tracing::warn!(model = %model.manifest.name, "model is UNTRAINED (development only); its decisions are meaningless");
        }
        let helpers = Helpers::start(Duration::from_micros(config.express_linger_us))?;
        let joint = match &model.manifest.joint {
            Some(spec) => Some(Arc::new(JointHead::load(
                runtime,
                &model.dir,
                spec,
                model.embedding_size(),
            )?)),
            None => None,
        };
        // One detector session per core: images are detected on the threads that
        // prepare them.
        let face = match model.manifest.face() {
            Some((_, spec)) => Some(Arc::new(FacePipeline::load(
                runtime,
                &model.dir,
                spec,
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?)),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                helpers,
                joint,
                tokenizer,
                face,
                limits: ImageLimits::from(config),
                model,
                provider,
                pool,
                config: config.clone(),
                runtime,
                batcher,
            }),
        })
    }

    /// A face model's pipeline (detector, landmarks, alignment); `None` for other models.
    pub fn face(&self) -> Option<&FacePipeline> {
        self.inner.face.as_deref()
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.inner.model.manifest
    }

    /// The model's directory (its card and plots live there).
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.model.dir
    }

    /// The provider the sessions run on and why (for health and metrics).
    pub fn provider(&self) -> &ActiveProvider {
        &self.inner.provider
    }

    pub fn pool(&self) -> PoolSize {
        self.inner.pool
    }

    /// The largest batch one ONNX run takes.
    pub fn max_batch(&self) -> usize {
        self.inner.batcher.max_batch()
    }

    /// Sets the function told of every ONNX run of this model (metrics); false when one
    /// was set already (the first stays).
    pub fn observe_runs(&self, observer: BatchObserver) -> bool {
        self.inner.batcher.observe(observer)
    }

    pub fn stats(&self) -> BatcherStats {
        self.inner.batcher.stats()
    }

    /// The joint head, when the manifest declares one.
    pub fn joint(&self) -> Option<Arc<JointHead>> {
        self.inner.joint.clone()
    }

    /// Scores `a[i]` against `b[i]` with the joint head, on the blocking pool.
    pub async fn joint_scores(
        &self,
        a: Vec<Vec<f32>>,
        b: Vec<Vec<f32>>,
    ) -> Result<Vec<f64>, EmbedError> {
        let joint = self.inner.joint.clone().ok_or_else(|| {
            EmbedError::InvalidInput(format!(
                "model {} declares no joint head ([joint] in its manifest), so it has no \
                 learned metric",
                self.inner.model.manifest.name
            ))
        })?;
        tokio::task::spawn_blocking(move || {
            let left: Vec<&[f32]> = a.iter().map(Vec::as_slice).collect();
            let right: Vec<&[f32]> = b.iter().map(Vec::as_slice).collect();
            joint.score(&left, &right)
        })
        .await
        .map_err(|e| EmbedError::Inference(format!("the joint head's task failed: {e}")))?
    }

    /// Number of f32 values of one preprocessed image (C·H·W); 0 for a text model.
    pub fn tensor_len(&self) -> usize {
        self.inner.model.tensor_len()
    }

    /// What the model takes: images or texts.
    pub fn input_kind(&self) -> InputKind {
        self.inner.model.manifest.input_kind()
    }

    /// A text model's longest token sequence (`input.max_tokens`); `None` for images.
    pub fn max_tokens(&self) -> Option<usize> {
        self.inner.tokenizer.as_ref().map(TextTokenizer::max_tokens)
    }

    fn wrong_kind(&self, sent: InputKind) -> PreprocessError {
        PreprocessError::WrongKind {
            model: self.inner.model.manifest.name.clone(),
            expected: self.input_kind(),
            sent,
        }
    }

    /// The model's preprocessing of one encoded image (CPU-heavy: call it off the async
    /// executor, as [`Embedder::embed_image`] does).
    pub fn preprocess(&self, image: &[u8]) -> Result<Vec<f32>, PreprocessError> {
        if let Some(face) = &self.inner.face {
            return face.prepare(image, &self.inner.limits);
        }
        let m = &self.inner.model.manifest;
        let (input, spec) = m.image().ok_or_else(|| self.wrong_kind(InputKind::Image))?;
        preprocess_image(image, spec, input, &self.inner.limits)
    }

    /// A text model's tokenizing of one text: refuses an empty (or blank) text and one over
    /// `embed.max_text_bytes`; cuts the tokens at `max_tokens` and says so in `truncated`.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, PreprocessError> {
        let tokenizer = self
            .inner
            .tokenizer
            .as_ref()
            .ok_or_else(|| self.wrong_kind(InputKind::Text))?;
        if text.trim().is_empty() {
            return Err(PreprocessError::EmptyText);
        }
        let max = self.inner.config.max_text_bytes;
        if text.len() > max {
            return Err(PreprocessError::TextTooLarge {
                bytes: text.len(),
                max,
            });
        }
        tokenizer.tokenize(text)
    }

    /// One sample made ready for the graph, whichever its kind; the other kind is refused.
    pub fn prepare(&self, input: &Input) -> Result<Prepared, PreprocessError> {
        match input {
            Input::Image(bytes) => self.preprocess(bytes).map(Prepared::Image),
            Input::Text(text) => self.tokenize(text).map(|t| Prepared::Text(t.ids)),
        }
    }

    /// [`Embedder::prepare`] of many samples, spread over the helper threads; results in
    /// input order. Blocking: call it from a blocking task or thread.
    pub fn prepare_many(&self, inputs: &[Input]) -> Vec<Result<Prepared, PreprocessError>> {
        self.map_on_helpers(inputs, |i| self.prepare(i))
    }

    /// `f` over `items` on the helper threads (the cores preprocessing runs on), results
    /// in input order: for per-image work beside preprocessing (the worker's thumbnails).
    /// Blocking: call it from a blocking task or thread.
    pub fn map_on_helpers<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> R + Sync + Send,
    ) -> Vec<R> {
        self.inner
            .helpers
            .install(|| items.par_iter().map(f).collect())
    }

    /// [`Embedder::preprocess`] of many images, spread over the helper threads; results
    /// in input order. Blocking: call it from a blocking task or thread.
    pub fn preprocess_many<I: AsRef<[u8]> + Sync>(
        &self,
        images: &[I],
    ) -> Vec<Result<Vec<f32>, PreprocessError>> {
        self.map_on_helpers(images, |i| self.preprocess(i.as_ref()))
    }

    /// What an answer says when the text in request field `which` is longer than the
    /// model's `max_tokens` and was embedded truncated; `None` for images and texts that
    /// fit. (Tokenizing again costs microseconds beside the embedding.)
    pub fn truncation_warning(&self, which: &str, input: &Input) -> Option<String> {
        let (Some(tokenizer), Input::Text(text)) = (self.inner.tokenizer.as_ref(), input) else {
            return None;
        };
        match tokenizer.tokenize(text) {
            Ok(tokens) if tokens.truncated => Some(format!(
                "{which}: the text is longer than model {}'s {} tokens; only its first {} \
                 tokens were embedded",
                self.inner.model.manifest.name,
                tokenizer.max_tokens(),
                tokenizer.max_tokens()
            )),
            _ => None,
        }
    }

    /// A new session on the same model and provider with `intra_threads` threads, outside
    /// the pool (the benchmarks' raw baselines).
    pub fn standalone_session(&self, intra_threads: usize) -> Result<ModelSession, EmbedError> {
        ModelSession::create_like(
            self.inner.runtime,
            &self.inner.model,
            &self.inner.provider,
            intra_threads,
        )
    }

    /// Embeds one prepared sample through the micro-batcher.
    pub async fn embed(&self, sample: Prepared) -> Result<Vec<f32>, EmbedError> {
        single(self.embed_together(vec![sample]).await)
    }

    /// Decodes, preprocesses and embeds encoded images as ONE job
    /// ([`Embedder::embed_inputs`] of images).
    pub async fn embed_encoded(&self, images: Vec<Vec<u8>>) -> Result<Vec<Vec<f32>>, EncodedError> {
        self.embed_inputs(images.into_iter().map(Input::Image).collect())
            .await
    }

    /// Prepares (decodes and preprocesses an image, tokenizes a text) and embeds samples
    /// as ONE job, in order (a verification pair, a probe). A caller that finds the
    /// batcher idle takes the express lane: the job goes to the helper threads, which
    /// borrow the idle sessions and give each its share of the samples (a pair: one per
    /// session) to prepare and embed at once — with single-threaded sessions a pair costs
    /// one sample's time. Otherwise the samples are prepared on the blocking pool and join
    /// the micro-batcher's queue. Must be called within a tokio runtime.
    pub async fn embed_inputs(&self, images: Vec<Input>) -> Result<Vec<Vec<f32>>, EncodedError> {
        self.check_job_size(images.len())?;
        let images = if self.inner.batcher.is_idle() {
            let (tx, rx) = oneshot::channel();
            let this = self.clone();
            self.inner.helpers.spawn(move || {
                let _ = tx.send(this.try_express(images));
            });
            match rx.await {
                Ok(Express::Done(result)) => return result,
                Ok(Express::Busy(images)) => images,
                Err(_) => return Err(EmbedError::Inference(HELPER_FAILED.to_owned()).into()),
            }
        } else {
            images
        };
        // One blocking task for the job's images: under load, parallelism comes from the
        // many concurrent jobs, and every extra task is one more thread to wake.
        let this = self.clone();
        let tensors = tokio::task::spawn_blocking(move || this.preprocess_job(&images))
            .await
            .map_err(|e| EmbedError::Inference(format!("preprocessing task failed: {e}")))??;
        Ok(self.embed_together(tensors).await?)
    }

    fn preprocess_job(&self, inputs: &[Input]) -> Result<Vec<Prepared>, EncodedError> {
        label_by_position(inputs.iter().map(|input| self.prepare(input)))
    }

    /// The express lane, on a helper thread: borrows the idle sessions, preprocesses the
    /// images on the helpers, then gives each session its share to embed, all at once;
    /// [`Express::Busy`] when the sessions are no longer idle. Every image is
    /// preprocessed before any session runs, so that a bad image fails the job without
    /// costing an inference.
    fn try_express(&self, images: Vec<Input>) -> Express {
        let Some(mut loan) = self.inner.batcher.express(images.len()) else {
            return Express::Busy(images);
        };
        let tensors = match label_by_position(self.prepare_many(&images)) {
            Ok(tensors) => tensors,
            Err(error) => return Express::Done(Err(error)),
        };
        let runners = loan.runners();
        let share = tensors.len().div_ceil(runners.len());
        let parts: Vec<_> = runners.into_iter().zip(tensors.chunks(share)).collect();
        let embedded: Result<Vec<Vec<Vec<f32>>>, EmbedError> = self.inner.helpers.install(|| {
            parts
                .into_par_iter()
                .map(|(mut runner, part)| runner.run(part))
                .collect()
        });
        drop(loan);
        // A lone caller often comes straight back: keep the cores awake for it.
        self.inner.helpers.linger(self.inner.batcher.busy_signal());
        Express::Done(
            embedded
                .map(|shares| shares.concat())
                .map_err(EncodedError::from),
        )
    }

    fn check_job_size(&self, count: usize) -> Result<(), EmbedError> {
        if count == 0 || count > self.max_batch() {
            return Err(EmbedError::InvalidInput(format!(
                "{count} images in one job; 1 to {} allowed",
                self.max_batch()
            )));
        }
        Ok(())
    }

    /// Queues one job; the receiver gets its answer, awaited or received blocking.
    fn submit(&self, tensors: Vec<Prepared>) -> oneshot::Receiver<JobResult> {
        let (tx, rx) = oneshot::channel();
        self.inner.batcher.submit(
            tensors,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx
    }

    /// Embeds prepared samples as ONE batcher job, in order: they share one ONNX run
    /// (with whatever other callers' samples fit beside them), so a caller with several
    /// (a verification pair) waits for one run, not one per sample, and never for
    /// batch-mates of its own. At most [`Embedder::max_batch`] samples.
    pub async fn embed_together(
        &self,
        tensors: Vec<Prepared>,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let count = tensors.len();
        self.check_job_size(count)?;
        for tensor in &tensors {
            self.check_len(tensor)?;
        }
        self.submit(tensors).await.map_err(|_| EmbedError::Closed)?
    }

    /// Decodes, preprocesses and embeds one encoded image ([`Embedder::embed_encoded`]);
    /// a bad image fails here, alone. Must be called within a tokio runtime.
    pub async fn embed_image(&self, image: Vec<u8>) -> Result<Vec<f32>, EmbedError> {
        self.embed_input(Input::Image(image)).await
    }

    /// Prepares and embeds one sample ([`Embedder::embed_inputs`]); a bad one fails here,
    /// alone. Must be called within a tokio runtime.
    pub async fn embed_input(&self, input: Input) -> Result<Vec<f32>, EmbedError> {
        let embedded = self.embed_inputs(vec![input]).await.map_err(|e| match e {
            EncodedError::Input { source, .. } => EmbedError::Preprocess(source),
            EncodedError::Embed(e) => e,
        });
        single(embedded)
    }

    /// Embeds prepared samples synchronously, in order, through the same batcher and
    /// sessions (batches larger than `max_batch` are split). Blocks the calling thread:
    /// call it from a worker thread or `spawn_blocking`, never on the async executor.
    pub fn embed_batch(&self, tensors: &[Prepared]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for tensor in tensors {
            self.check_len(tensor)?;
        }
        let pending: Vec<_> = tensors
            .chunks(self.max_batch())
            .map(|chunk| self.submit(chunk.to_vec()))
            .collect();
        let mut out = Vec::with_capacity(tensors.len());
        for rx in pending {
            out.extend(rx.blocking_recv().map_err(|_| EmbedError::Closed)??);
        }
        Ok(out)
    }

    /// Checks a prepared sample fits the model: an image tensor of C·H·W values, or
    /// 1 to `max_tokens` token ids.
    fn check_len(&self, sample: &Prepared) -> Result<(), EmbedError> {
        let m = &self.inner.model.manifest;
        match (sample, m.image_input(), self.max_tokens()) {
            (Prepared::Image(tensor), Some(i), _) => {
                let expected = self.tensor_len();
                if tensor.len() != expected {
                    return Err(EmbedError::InvalidInput(format!(
                        "tensor has {} values, model {:?} takes [{}, {}, {}] = {expected}",
                        tensor.len(),
                        m.name,
                        i.channels,
                        i.height,
                        i.width
                    )));
                }
                Ok(())
            }
            (Prepared::Text(ids), _, Some(max)) => {
                if ids.is_empty() || ids.len() > max {
                    return Err(EmbedError::InvalidInput(format!(
                        "{} token ids; model {:?} takes 1 to {max}",
                        ids.len(),
                        m.name
                    )));
                }
                Ok(())
            }
            (Prepared::Image(_), ..) => Err(self.wrong_kind(InputKind::Image).into()),
            (Prepared::Text(_), ..) => Err(self.wrong_kind(InputKind::Text).into()),
        }
    }

    /// The configuration the embedder was loaded with.
    pub fn config(&self) -> &EmbedConfig {
        &self.inner.config
    }
}

/// What the express lane did with a job.
enum Express {
    Done(Result<Vec<Vec<f32>>, EncodedError>),
    /// The sessions were busy by the time the helper looked: the samples, to be queued.
    Busy(Vec<Input>),
}

/// The embeddings of one batcher job, in order.
type JobResult = Result<Vec<Vec<f32>>, EmbedError>;

/// Preprocessing results of a job's images, the first failure labelled with its image's
/// position.
fn label_by_position(
    results: impl IntoIterator<Item = Result<Prepared, PreprocessError>>,
) -> Result<Vec<Prepared>, EncodedError> {
    results
        .into_iter()
        .enumerate()
        .map(|(index, sample)| sample.map_err(|source| EncodedError::Input { index, source }))
        .collect()
}

fn single(result: JobResult) -> Result<Vec<f32>, EmbedError> {
    result?
        .pop()
        .ok_or_else(|| EmbedError::Inference("the batch returned no embedding".to_owned()))
}

/// Runs one deterministic sample (an image, or a sentence through the tokenizer) through
/// the first session: checks the output is finite and, when the manifest says so,
/// L2-normalized; warms the session up.
fn probe(
    session: &mut ModelSession,
    model: &ModelFiles,
    tokenizer: Option<&TextTokenizer>,
) -> Result<(), EmbedError> {
    let sample = match tokenizer {
        Some(tokenizer) => Prepared::Text(
            tokenizer
                .tokenize("A probe sentence checks the graph once at load.")?
                .ids,
        ),
        None => Prepared::Image(
            (0..model.tensor_len())
                .map(|i| ((i * 7919) % 101) as f32 / 100.0)
                .collect(),
        ),
    };
    let output = session.run_prepared(&[&sample], &mut Vec::new())?;
    if output.iter().any(|v| !v.is_finite()) {
        return Err(model.error("the graph outputs non-finite values for a probe sample".into()));
    }
    if model.manifest.output.l2_normalized {
        let norm = output.iter().map(|v| v * v).sum::<f32>().sqrt();
        if (norm - 1.0).abs() > NORM_TOLERANCE {
            return Err(model.error(format!(
                "the manifest says output.l2_normalized = true but a probe output has norm \
                 {norm}; fix the manifest or add the normalization to the graph"
            )));
        }
    }
    Ok(())
}
