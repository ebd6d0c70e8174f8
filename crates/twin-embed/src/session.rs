//! ONNX sessions of one model: choosing the execution provider (`auto`, `cuda`, `cpu`),
//! sizing the pool to the hardware, and running one batch. The micro-batcher and the
//! benchmark's raw baseline both run batches through [`ModelSession::run`], so they
//! measure the same code.

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;
use twin_core::config::{EmbedConfig, ProviderChoice};
use twin_core::manifest::InputSpec;

use crate::error::EmbedError;
use crate::model::ModelFiles;
use crate::runtime::Runtime;

/// The execution provider the sessions run on, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveProvider {
    /// "cuda" or "cpu".
    pub name: &'static str,
    /// Why: the configuration asked for it, or why CUDA was not used under `auto`.
    pub reason: String,
}

/// How many sessions run in parallel and how many threads each uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSize {
    pub sessions: usize,
    pub intra_threads: usize,
}

impl PoolSize {
    /// Sizes the pool: explicit configuration wins; otherwise single-threaded sessions,
    /// one per core on CPU, and two on CUDA so that one batch's host work overlaps the
    /// other's GPU work.
    ///
    /// Why one thread per session: with spinning off (see [`builder`]) every parallel
    /// section of a multi-threaded run wakes the session's pool threads, once per
    /// operator. Measured on the 2-core VM (`twin bench embed`, signature-v1): one
    /// single-threaded session runs a batch of 1 in 1.46 ms where one session on two
    /// threads needs 1.19 ms, and a batch of 2 in 2.47 ms against 2.11 ms; two
    /// single-threaded sessions side by side run 1,300 images/s at a batch of 64 against
    /// 1,100 for one session on both cores, and embed a verification pair (one image
    /// each) in one image's time.
    pub fn plan(config: &EmbedConfig, provider: &ActiveProvider) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let intra_threads = Self::intra_threads(config);
        let sessions = match (config.sessions, provider.name) {
            (0, "cuda") => 2,
            (0, _) => (cores / intra_threads).max(1),
            (n, _) => n,
        };
        Self {
            sessions,
            intra_threads,
        }
    }

    /// The most images one ONNX run takes: the configured `max_batch`, or when it is 0,
    /// 32 on CUDA (a GPU is busy only with large batches) and 2 on CPU (a verification
    /// pair: the largest job the gateway makes).
    ///
    /// Why small on CPU: ONNX Runtime runs a batch one operator at a time over all its
    /// images, so the activations in flight grow with the batch and soon no longer fit in
    /// the core's cache; a single-threaded session's fixed cost per run is small beside an
    /// image's inference, so a batch buys little and costs memory traffic. Raw images/s
    /// on the 2-core VMs (signature-v1, one single-threaded session per core, both busy):
    /// on an AVX-512 Xeon 880-910 per core at batches of 1 to 8, 870 at 16, 805 at 64; on
    /// an AMD EPYC (Zen 5, `twin bench embed --sizes 1,2,4,8,16,64`) 2,954 and 2,971 in all
    /// at batches of 1 and 2, 2,797 at 4, 2,711 at 8, 2,460 at 16, 2,364 at 64. There,
    /// `twin bench verify` at concurrency 32 served 1,004-1,012 pairs/s with batches of 2,
    /// 977 with 4 and 907-908 with 8 (alternating runs), and `twin bench ingest` (10,000
    /// jobs, 2 workers) 1,495-1,520 images/s end to end against 1,421.
    pub fn max_batch(config: &EmbedConfig, provider: &ActiveProvider) -> usize {
        match (config.max_batch, provider.name) {
            (0, "cuda") => 32,
            (0, _) => 2,
            (n, _) => n,
        }
    }

    /// Intra-op threads of every session, whatever the provider (0 in the configuration
    /// = 1, see [`PoolSize::plan`]).
    pub fn intra_threads(config: &EmbedConfig) -> usize {
        config.intra_threads.max(1)
    }
}

/// One sample made ready for the graph: an image's tensor (C·H·W f32 values, CHW order)
/// or a text's token ids. Samples of one model are all of its input kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    Image(Vec<f32>),
    Text(Vec<i64>),
}

/// The graph's inputs as the manifest names them.
enum GraphInputs {
    /// One `[N, C, H, W]` f32 tensor.
    Image { name: String, dims: [usize; 3] },
    /// `[N, S]` i64 tensors: token ids, the attention mask and, when the graph takes them,
    /// segment ids (all 0: one sentence per sample).
    Text {
        input_ids: String,
        attention_mask: String,
        token_type_ids: Option<String>,
    },
}

/// One ONNX session of a model; `run` takes `&mut self` as ONNX Runtime requires.
pub struct ModelSession {
    session: Session,
    inputs: GraphInputs,
    output_name: String,
    embedding_size: usize,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession")
            .field("output", &self.output_name)
            .finish_non_exhaustive()
    }
}

impl ModelSession {
    /// Creates the first session of a model, choosing the provider as `choice` says, and
    /// checks the graph against the manifest.
    pub fn create_first(
        runtime: &Runtime,
        model: &ModelFiles,
        choice: ProviderChoice,
        intra_threads: usize,
    ) -> Result<(Self, ActiveProvider), EmbedError> {
        let (session, provider) = match choice {
            ProviderChoice::Cpu => (
                cpu_session(runtime, model, intra_threads)?,
                ActiveProvider {
                    name: "cpu",
                    reason: "embed.provider = cpu".to_owned(),
                },
            ),
            ProviderChoice::Cuda => (
                cuda_session(runtime, model, intra_threads).map_err(EmbedError::CudaUnavailable)?,
                ActiveProvider {
                    name: "cuda",
                    reason: "embed.provider = cuda".to_owned(),
                },
            ),
            ProviderChoice::Auto => match cuda_session(runtime, model, intra_threads) {
                Ok(session) => (
                    session,
                    ActiveProvider {
                        name: "cuda",
                        reason: "embed.provider = auto and the CUDA execution provider started"
                            .to_owned(),
                    },
                ),
                Err(why) => (
                    cpu_session(runtime, model, intra_threads)?,
                    ActiveProvider {
                        name: "cpu",
                        reason: format!("embed.provider = auto, CUDA not used: {why}"),
                    },
                ),
            },
        };
        model.check_graph(&session)?;
        Ok((Self::wrap(session, model), provider))
    }

    /// Creates another session on an already chosen provider (pool members, benchmark).
    pub fn create_like(
        runtime: &Runtime,
        model: &ModelFiles,
        provider: &ActiveProvider,
        intra_threads: usize,
    ) -> Result<Self, EmbedError> {
        let session = if provider.name == "cuda" {
            cuda_session(runtime, model, intra_threads).map_err(EmbedError::CudaUnavailable)?
        } else {
            cpu_session(runtime, model, intra_threads)?
        };
        Ok(Self::wrap(session, model))
    }

    fn wrap(session: Session, model: &ModelFiles) -> Self {
        let inputs = match &model.manifest.input {
            InputSpec::Image(i) => GraphInputs::Image {
                name: i.name.clone(),
                dims: [i.channels as usize, i.height as usize, i.width as usize],
            },
            InputSpec::Text(t) => GraphInputs::Text {
                input_ids: t.input_ids.clone(),
                attention_mask: t.attention_mask.clone(),
                token_type_ids: t.token_type_ids.clone(),
            },
        };
        Self {
            session,
            inputs,
            output_name: model.manifest.output.name.clone(),
            embedding_size: model.embedding_size(),
        }
    }

    /// Runs prepared samples as one batch; returns their embeddings, count·D values in
    /// order, exactly as the graph produced them. Images are stacked (a lone one without a
    /// copy, `buffer` holds the stack); texts are padded to the longest one of the batch.
    pub fn run_prepared(
        &mut self,
        samples: &[&Prepared],
        buffer: &mut Vec<f32>,
    ) -> Result<Vec<f32>, EmbedError> {
        match samples.first() {
            Some(Prepared::Image(_)) => {
                let mut tensors = Vec::with_capacity(samples.len());
                for sample in samples {
                    match sample {
                        Prepared::Image(tensor) => tensors.push(tensor.as_slice()),
                        Prepared::Text(_) => return Err(mixed_kinds()),
                    }
                }
                let input = stack(&tensors, buffer);
                self.run(input, samples.len())
            }
            Some(Prepared::Text(_)) => {
                let mut texts = Vec::with_capacity(samples.len());
                for sample in samples {
                    match sample {
                        Prepared::Text(ids) => texts.push(ids.as_slice()),
                        Prepared::Image(_) => return Err(mixed_kinds()),
                    }
                }
                self.run_texts(&texts)
            }
            None => Err(EmbedError::InvalidInput("an empty batch".to_owned())),
        }
    }

    /// Runs `count` images stacked in `input` (count·C·H·W values); returns count·D
    /// values, exactly as the graph produced them.
    pub fn run(&mut self, input: &[f32], count: usize) -> Result<Vec<f32>, EmbedError> {
        let GraphInputs::Image { name, dims } = &self.inputs else {
            return Err(EmbedError::InvalidInput(
                "this model takes text, not image tensors".to_owned(),
            ));
        };
        let [c, h, w] = *dims;
        if count == 0 || input.len() != count * c * h * w {
            return Err(EmbedError::InvalidInput(format!(
                "{} values do not make {count} images of [{c}, {h}, {w}]",
                input.len()
            )));
        }
        let tensor = TensorRef::from_array_view(([count, c, h, w], input))
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![name.as_str() => tensor])
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        extract(&outputs, &self.output_name, count, self.embedding_size)
    }

    /// Runs token-id sequences as one batch, padded with 0 (and mask 0) to the longest;
    /// returns count·D values. Padding to the batch's longest, not to the model's
    /// maximum, is what keeps short sentences cheap.
    pub fn run_texts(&mut self, texts: &[&[i64]]) -> Result<Vec<f32>, EmbedError> {
        let GraphInputs::Text {
            input_ids,
            attention_mask,
            token_type_ids,
        } = &self.inputs
        else {
            return Err(EmbedError::InvalidInput(
                "this model takes image tensors, not text".to_owned(),
            ));
        };
        let count = texts.len();
        let longest = texts.iter().map(|t| t.len()).max().unwrap_or(0);
        if count == 0 || longest == 0 {
            return Err(EmbedError::InvalidInput(
                "a text batch needs at least one token in each text".to_owned(),
            ));
        }
        let mut ids = vec![0i64; count * longest];
        let mut mask = vec![0i64; count * longest];
        for (row, text) in texts.iter().enumerate() {
            ids[row * longest..][..text.len()].copy_from_slice(text);
            mask[row * longest..][..text.len()].fill(1);
        }
        let shape = [count, longest];
        let mut feed = ort::inputs![
            input_ids.as_str() => id_tensor(shape, &ids)?,
            attention_mask.as_str() => id_tensor(shape, &mask)?,
        ];
        let segments = vec![0i64; count * longest];
        if let Some(name) = token_type_ids {
            feed.push((name.as_str().into(), id_tensor(shape, &segments)?.into()));
        }
        let outputs = self
            .session
            .run(feed)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        extract(&outputs, &self.output_name, count, self.embedding_size)
    }
}

/// Samples made into one run's input ahead of time (the benchmarks' raw baselines run the
/// same batch again and again): images stacked, texts kept apart (padded at each run,
/// as the batcher's runs are).
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    Images { values: Vec<f32>, count: usize },
    Texts(Vec<Vec<i64>>),
}

impl Batch {
    /// The samples as one batch; all of one kind, at least one.
    pub fn of(samples: &[Prepared]) -> Result<Self, EmbedError> {
        match samples.first() {
            Some(Prepared::Image(_)) => {
                let mut values = Vec::new();
                for sample in samples {
                    let Prepared::Image(tensor) = sample else {
                        return Err(mixed_kinds());
                    };
                    values.extend_from_slice(tensor);
                }
                Ok(Batch::Images {
                    values,
                    count: samples.len(),
                })
            }
            Some(Prepared::Text(_)) => samples
                .iter()
                .map(|sample| match sample {
                    Prepared::Text(ids) => Ok(ids.clone()),
                    Prepared::Image(_) => Err(mixed_kinds()),
                })
                .collect::<Result<_, _>>()
                .map(Batch::Texts),
            None => Err(EmbedError::InvalidInput("an empty batch".to_owned())),
        }
    }

    /// Samples in the batch.
    pub fn len(&self) -> usize {
        match self {
            Batch::Images { count, .. } => *count,
            Batch::Texts(texts) => texts.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch cut into consecutive parts of at most `size` samples.
    pub fn chunks(&self, size: usize) -> Vec<Batch> {
        let size = size.max(1);
        match self {
            Batch::Images { values, count } => {
                let per = values.len() / (*count).max(1);
                values
                    .chunks(size * per.max(1))
                    .map(|part| Batch::Images {
                        values: part.to_vec(),
                        count: part.len() / per.max(1),
                    })
                    .collect()
            }
            Batch::Texts(texts) => texts
                .chunks(size)
                .map(|c| Batch::Texts(c.to_vec()))
                .collect(),
        }
    }
}

impl ModelSession {
    /// One run of a prepared [`Batch`]; count·D values.
    pub fn run_batch(&mut self, batch: &Batch) -> Result<Vec<f32>, EmbedError> {
        match batch {
            Batch::Images { values, count } => self.run(values, *count),
            Batch::Texts(texts) => {
                let slices: Vec<&[i64]> = texts.iter().map(Vec::as_slice).collect();
                self.run_texts(&slices)
            }
        }
    }
}

/// An `[N, S]` i64 tensor viewing `values`.
fn id_tensor(shape: [usize; 2], values: &[i64]) -> Result<TensorRef<'_, i64>, EmbedError> {
    TensorRef::from_array_view((shape, values)).map_err(|e| EmbedError::Inference(e.to_string()))
}

fn mixed_kinds() -> EmbedError {
    EmbedError::InvalidInput("a batch mixes image and text samples".to_owned())
}

/// ONNX Runtime takes one contiguous batch: the images one after another in `buffer`,
/// or a lone image as it is, without a copy.
fn stack<'a>(tensors: &[&'a [f32]], buffer: &'a mut Vec<f32>) -> &'a [f32] {
    if let [tensor] = tensors {
        return tensor;
    }
    buffer.clear();
    for tensor in tensors {
        buffer.extend_from_slice(tensor);
    }
    buffer
}

/// The `[count, D]` f32 output named `name`, checked and copied out.
fn extract(
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
    count: usize,
    embedding_size: usize,
) -> Result<Vec<f32>, EmbedError> {
    {
        let value = outputs
            .get(name)
            .ok_or_else(|| EmbedError::Inference(format!("the run produced no output {name:?}")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        if shape.len() != 2
            || shape[0] != count as i64
            || shape[1] != embedding_size as i64
            || data.len() != count * embedding_size
        {
            return Err(EmbedError::Inference(format!(
                "output {name:?} has shape {shape:?}, expected [{count}, {embedding_size}]"
            )));
        }
        Ok(data.to_vec())
    }
}

/// Session options shared by every provider. Intra-op threads do not spin while they
/// wait for work: twin decodes and preprocesses images on the same cores (gateway
/// requests, worker batches), and a spinning ONNX Runtime worker holds a core between
/// runs (measured under `twin bench verify` at concurrency 1 on 2 cores: the worker
/// thread used 98 % of a core with spinning, 54 % without, the difference being time
/// the requests' preprocessing waited for).
pub(crate) fn builder(
    runtime: &Runtime,
    intra_threads: usize,
) -> Result<SessionBuilder, EmbedError> {
    let session_error = |e: String| EmbedError::Session(e);
    Session::builder(&runtime.environment)
        .map_err(|e| session_error(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| session_error(e.to_string()))?
        .with_intra_threads(intra_threads)
        .map_err(|e| session_error(e.to_string()))?
        .with_intra_op_spinning(false)
        .map_err(|e| session_error(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| session_error(e.to_string()))
}

fn cpu_session(
    runtime: &Runtime,
    model: &ModelFiles,
    intra_threads: usize,
) -> Result<Session, EmbedError> {
    builder(runtime, intra_threads)?
        .commit_from_memory(&model.onnx)
        .map_err(|e| model.error(format!("onnx runtime cannot load model.onnx: {e}")))
}

/// CUDA settings chosen for verification rather than peak speed:
/// - full FP32 (no TF32): enrolment (worker batches) and queries (gateway singles) must
///   score alike, and TF32 convolutions drift by ~1e-3 between algorithms;
/// - heuristic cuDNN algorithm choice: micro-batches come in every size up to
///   `max_batch`, and the default exhaustive search would stall the first run of each.
fn cuda_provider() -> ep::CUDA {
    ep::CUDA::default()
        .with_tf32(false)
        .with_conv_algorithm_search(ep::cuda::ConvAlgorithmSearch::Heuristic)
}

/// A session on the CUDA execution provider, or why there can be none.
fn cuda_session(
    runtime: &Runtime,
    model: &ModelFiles,
    intra_threads: usize,
) -> Result<Session, String> {
    match ep::CUDA::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "the onnx runtime library {} has no CUDA execution provider (it is the \
                 CPU-only build)",
                runtime.library().display()
            ))
        }
        Err(e) => return Err(format!("cannot list execution providers: {e}")),
    }
    let builder = builder(runtime, intra_threads).map_err(|e| e.to_string())?;
    builder
        .with_execution_providers([cuda_provider().build().error_on_failure()])
        .map_err(|e| format!("registering the CUDA execution provider failed: {e}"))?
        .commit_from_memory(&model.onnx)
        .map_err(|e| format!("creating a session on CUDA failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &'static str) -> ActiveProvider {
        ActiveProvider {
            name,
            reason: String::new(),
        }
    }

    #[test]
    fn max_batch_is_sized_to_the_provider_unless_configured() {
        let auto = EmbedConfig::default();
        assert_eq!(PoolSize::max_batch(&auto, &provider("cpu")), 2);
        assert_eq!(PoolSize::max_batch(&auto, &provider("cuda")), 32);
        let explicit = EmbedConfig {
            max_batch: 64,
            ..EmbedConfig::default()
        };
        assert_eq!(PoolSize::max_batch(&explicit, &provider("cpu")), 64);
        assert_eq!(PoolSize::max_batch(&explicit, &provider("cuda")), 64);
    }
}
