//! One configuration schema for every twin binary: defaults, then an optional TOML
//! file, then `TWIN_*` environment variables (`TWIN_QUEUE__URL` sets `queue.url`:
//! a double underscore separates sections). Validated once at start.
//!
//! Each section belongs to the crate that uses it; the sections live here so that
//! every binary, `twin config --show` and the deploy checks share one schema.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwinConfig {
    pub models: ModelsConfig,
    pub embed: EmbedConfig,
    pub store: StoreConfig,
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
    pub gateway: GatewayConfig,
    pub audit: AuditConfig,
}

/// Which models are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model directories (each with model.onnx and manifest.toml).
    pub dirs: Vec<PathBuf>,
    /// Name of the model used when a request names none; empty = the first of `dirs`.
    pub default: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            // The signature model (the default: the first), the text and the face models.
            dirs: vec![
                PathBuf::from("models/signature-v2"),
                PathBuf::from("models/paraphrase-v1"),
                PathBuf::from("models/face-v1"),
            ],
            default: String::new(),
        }
    }
}

/// Execution provider choice for ONNX Runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// Try CUDA, fall back to CPU and say why.
    #[default]
    Auto,
    /// CUDA or fail.
    Cuda,
    /// CPU only.
    Cpu,
}

/// Longest `embed.express_linger_us` accepted.
const MAX_EXPRESS_LINGER_US: u64 = 100_000;

/// ONNX Runtime and micro-batching (twin-embed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Path to libonnxruntime.so; empty = search the usual places (see twin-embed).
    pub ort_library: String,
    pub provider: ProviderChoice,
    /// Largest batch one ONNX run takes, and the most images in one embedding job (0 =
    /// sized to the provider: 2 on CPU, 32 on CUDA; see twin-embed's
    /// `PoolSize::max_batch`); at least 2.
    pub max_batch: usize,
    /// Longest a request waits for batch-mates, in microseconds.
    pub max_wait_us: u64,
    /// After a lone caller's request (the express lane), how long the helper threads keep
    /// their cores awake for the next one, in microseconds (0 = not at all). They yield
    /// to any other thread meanwhile; on a VM an idle core returns slowly.
    pub express_linger_us: u64,
    /// Number of ONNX sessions (0 = sized to the hardware).
    pub sessions: usize,
    /// Intra-op threads per session (0 = 1; parallelism comes from the sessions).
    pub intra_threads: usize,
    /// Largest encoded image accepted, in bytes.
    pub max_image_bytes: usize,
    /// Largest image width or height accepted, in pixels.
    pub max_image_side: u32,
    /// Largest text accepted, in UTF-8 bytes (before tokenizing; longer token sequences
    /// are truncated at the model's `max_tokens`).
    pub max_text_bytes: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            ort_library: String::new(),
            provider: ProviderChoice::Auto,
            max_batch: 0,
            max_wait_us: 2_000,
            express_linger_us: 2_000,
            sessions: 0,
            intra_threads: 0,
            max_image_bytes: 16 * 1024 * 1024,
            max_image_side: 8192,
            max_text_bytes: 64 * 1024,
        }
    }
}

/// Vector storage (twin-store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// "embedded" (Qdrant Edge under `data_dir`) or "qdrant" (a Qdrant server at `url`).
    pub backend: String,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// gRPC URL of a Qdrant server, e.g. http://qdrant:6334.
    pub url: String,
    /// Qdrant API key; secret, never logged.
    pub api_key: String,
    /// Per-call timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Timeout for connecting to the Qdrant server, in milliseconds.
    pub connect_timeout_ms: u64,
    /// PEM file of the CA that signed the Qdrant server's certificate (https:// URLs);
    /// empty = the system roots.
    pub tls_ca_cert: String,
    /// Retries of a call that failed as unavailable (server down, timeout); 0 = none.
    /// Every store call is idempotent, so retrying is safe.
    pub retries: u32,
    /// First retry delay in milliseconds; doubled on each further retry (capped at 5 s).
    pub retry_backoff_ms: u64,
    /// Embedded store: build the HNSW index (in the background) once this many points
    /// were written since the last build; 0 = only when asked (`twin bench`, tools).
    pub optimize_after_points: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: "embedded".to_owned(),
            data_dir: PathBuf::from(".twin/store"),
            url: String::new(),
            api_key: String::new(),
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            tls_ca_cert: String::new(),
            retries: 3,
            retry_backoff_ms: 100,
            optimize_after_points: 20_000,
        }
    }
}

/// The job queue (twin-queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// "inprocess" (no broker) or "rabbitmq".
    pub backend: String,
    /// AMQP URL; its password is a secret, never logged.
    pub url: String,
    /// Name of the embed-jobs queue; the dead-letter queue is `<queue>.dead`.
    pub queue: String,
    /// Failed deliveries (retries, crashed workers) a job may have before the queue
    /// dead-letters it as exhausted: a job is delivered at most `delivery_limit + 1`
    /// times. At least 1.
    pub delivery_limit: u32,
    /// Largest message accepted by the publisher, in bytes.
    pub max_message_bytes: usize,
    /// Directory where job statuses are kept.
    pub jobs_dir: PathBuf,
    /// Hours a finished job's status is kept (0 = forever).
    pub jobs_retention_hours: u64,
    /// Longest wait for the broker's publish confirmation (or, in-process, for room in
    /// a full queue), in milliseconds.
    pub confirm_timeout_ms: u64,
    /// Jobs the in-process queue holds (waiting + in flight) before publishers wait.
    pub inprocess_capacity: usize,
    /// Where the in-process queue journals accepted jobs until they are settled, so that
    /// they survive a crash or restart (fsync before a publish returns). Empty: memory
    /// only. `twin serve` puts it under its data directory.
    pub inprocess_dir: PathBuf,
    /// Name of this process's job-status feed (`<queue>.status.<status_feed>`); every
    /// gateway replica with its own `jobs_dir` needs its own name.
    pub status_feed: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: "inprocess".to_owned(),
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            queue: "twin.embed".to_owned(),
            delivery_limit: 5,
            max_message_bytes: 8 * 1024 * 1024,
            jobs_dir: PathBuf::from(".twin/jobs"),
            jobs_retention_hours: 24 * 7,
            confirm_timeout_ms: 10_000,
            inprocess_capacity: 10_000,
            inprocess_dir: PathBuf::new(),
            status_feed: "gateway".to_owned(),
        }
    }
}

/// The audit trail (twin-audit): every decision on record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record decisions (Verify, VerifySubject, Search with a threshold).
    pub enabled: bool,
    /// Where the log lives.
    pub dir: PathBuf,
    /// Days a record is kept (0 = forever).
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from(".twin/audit"),
            retention_days: 365,
        }
    }
}

/// The embedding worker (twin-worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Deliveries gathered into one embed + upsert. Every upsert waits until durable (a
    /// flush), so larger batches spread that cost: on the 2-core reference machine 64
    /// gave 0.81x raw throughput end to end, 32 gave 0.77x (`twin bench ingest`).
    pub batch_size: usize,
    /// Longest a partial batch waits, in milliseconds.
    pub batch_wait_ms: u64,
    /// Unacknowledged deliveries held (basic_qos prefetch); 0 = 2 × batch_size.
    pub prefetch: u16,
    /// Seconds a SIGTERM'd worker has to finish or requeue in-flight work.
    pub shutdown_deadline_s: u64,
    /// Address of the health and Prometheus endpoint; empty = off.
    pub metrics_addr: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            batch_wait_ms: 20,
            prefetch: 0,
            shutdown_deadline_s: 20,
            metrics_addr: String::new(),
        }
    }
}

/// The gRPC gateway (twin-gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// gRPC listen address.
    pub addr: String,
    /// Prometheus /metrics listen address; empty = off.
    pub metrics_addr: String,
    /// Largest gRPC message, in bytes.
    pub max_message_bytes: usize,
    /// Requests served at once before RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Per-request deadline, in milliseconds.
    pub request_timeout_ms: u64,
    /// File of API keys (`<scope> <key>` per line, scope read or write); empty = no auth.
    pub api_keys_file: String,
    /// TLS certificate and key (PEM); both empty = plaintext.
    pub tls_cert: String,
    pub tls_key: String,
    /// Seconds in-flight requests get on shutdown.
    pub shutdown_deadline_s: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:50051".to_owned(),
            metrics_addr: "127.0.0.1:9464".to_owned(),
            max_message_bytes: 32 * 1024 * 1024,
            max_concurrent_requests: 256,
            request_timeout_ms: 30_000,
            api_keys_file: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            shutdown_deadline_s: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "TWIN_";

impl TwinConfig {
    /// Defaults, then `file` (if given), then `TWIN_SECTION__KEY` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::try_from(TwinConfig::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.to_owned(),
                source,
            })?;
            let overlay: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            merge(&mut table, overlay);
        }
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let (section, key) = (section.to_lowercase(), key.to_lowercase());
            let Some(toml::Value::Table(section_table)) = table.get_mut(&section) else {
                return Err(ConfigError::Env {
                    var,
                    message: format!("no config section {section:?}"),
                });
            };
            let Some(current) = section_table.get(&key) else {
                return Err(ConfigError::Env {
                    var,
                    message: format!("section {section:?} has no key {key:?}"),
                });
            };
            let parsed = parse_like(current, &value).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            section_table.insert(key, parsed);
        }
        let config: TwinConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Loads with the process environment.
    pub fn from_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load(file, std::env::vars())
    }

    /// Embedded mode (`twin serve`, `twin bench verify`): whatever the file says about
    /// backends, this process is alone — Qdrant's engine under `data_dir/store` and the
    /// in-process queue, its journal under `data_dir/queue` and its job statuses under
    /// `data_dir/jobs`, and the audit trail under `data_dir/audit`.
    pub fn use_embedded(&mut self, data_dir: &Path) {
        self.store.backend = "embedded".to_owned();
        self.store.data_dir = data_dir.join("store");
        self.queue.backend = "inprocess".to_owned();
        self.queue.jobs_dir = data_dir.join("jobs");
        self.queue.inprocess_dir = data_dir.join("queue");
        self.audit.dir = data_dir.join("audit");
    }

    /// Cross-field checks made once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !matches!(self.store.backend.as_str(), "embedded" | "qdrant") {
            return invalid(format!(
                "store.backend must be \"embedded\" or \"qdrant\", got {:?}",
                self.store.backend
            ));
        }
        if self.store.backend == "qdrant" && self.store.url.is_empty() {
            return invalid("store.backend = \"qdrant\" needs store.url (TWIN_STORE__URL)".into());
        }
        if !matches!(self.queue.backend.as_str(), "inprocess" | "rabbitmq") {
            return invalid(format!(
                "queue.backend must be \"inprocess\" or \"rabbitmq\", got {:?}",
                self.queue.backend
            ));
        }
        if self.queue.delivery_limit == 0 {
            return invalid("queue.delivery_limit must be at least 1".into());
        }
        if self.queue.queue.is_empty() || self.queue.status_feed.is_empty() {
            return invalid("queue.queue and queue.status_feed must not be empty".into());
        }
        // AMQP names are at most 255 bytes; the longest derived one is the status feed.
        if self.queue.queue.len() + ".status.".len() + self.queue.status_feed.len() > 255 {
            return invalid(
                "queue.queue and queue.status_feed are too long: together at most 247 bytes".into(),
            );
        }
        if self.queue.max_message_bytes == 0 || self.queue.confirm_timeout_ms == 0 {
            return invalid(
                "queue.max_message_bytes and queue.confirm_timeout_ms must be at least 1".into(),
            );
        }
        // A verification pair is one embedding job, and a job never spans two runs.
        if self.embed.max_batch == 1 {
            return invalid(
                "embed.max_batch is 1, at least 2 needed (a verification pair is one job); \
                 0 sizes it to the provider"
                    .into(),
            );
        }
        if self.embed.express_linger_us > MAX_EXPRESS_LINGER_US {
            return invalid(format!(
                "embed.express_linger_us is {}, at most {MAX_EXPRESS_LINGER_US} (100 ms) allowed: \
                 it keeps cores busy after every lone request",
                self.embed.express_linger_us
            ));
        }
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size must be at least 1".into());
        }
        if self.gateway.tls_cert.is_empty() != self.gateway.tls_key.is_empty() {
            return invalid("gateway.tls_cert and gateway.tls_key must be set together".into());
        }
        Ok(())
    }

    /// The configuration as TOML with secrets replaced by "***".
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.store.api_key.is_empty() {
            shown.store.api_key = "***".to_owned();
        }
        shown.queue.url = redact_url_password(&shown.queue.url);
        toml::to_string_pretty(&shown).unwrap_or_default()
    }
}

/// `amqp://user:secret@host/` → `amqp://user:***@host/`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Parses an env value as the type the default has.
fn parse_like(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match current {
        toml::Value::Integer(_) => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        toml::Value::Float(_) => raw
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        toml::Value::Boolean(_) => raw
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| format!("expected true or false, got {raw:?}")),
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.trim().to_owned()))
                .collect(),
        )),
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}
