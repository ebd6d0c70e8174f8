//! Shared plumbing of the client subcommands (enqueue, verify, search, jobs, health):
//! connection options, the API-key interceptor, decision-policy flags, reading image
//! files and turning gRPC statuses into readable errors. Lives once, here.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use twin_proto::v1::{decision_policy, DecisionPolicy, Image, Metric};

/// Largest gRPC message the client sends or accepts (the gateway's limit).
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Where the server is and how to talk to it; flattened into every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Gateway address (http:// or https://).
    #[arg(long, env = "TWIN_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// API key, sent as `authorization: Bearer <key>` (not needed when the server has no keys).
    #[arg(long, env = "TWIN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print one JSON document instead of a readable table.
    #[arg(long)]
    pub json: bool,
    /// PEM file of the CA that signed the gateway's certificate, for an https:// address
    /// (default: the system's trusted roots).
    #[arg(long, env = "TWIN_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Threshold choice shared by `verify` and `search`; default: the model's default
/// operating point.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Target false-accept rate of a calibrated operating point, e.g. 0.01 for 1 %.
    #[arg(long, conflicts_with = "threshold")]
    pub far: Option<f64>,
    /// Explicit threshold in score units (higher = more similar; match when score >= threshold).
    #[arg(long, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
}

impl PolicyArgs {
    pub fn policy(&self) -> Option<DecisionPolicy> {
        let threshold = match (self.far, self.threshold) {
            (Some(far), _) => decision_policy::Threshold::TargetFar(far),
            (None, Some(threshold)) => decision_policy::Threshold::ExplicitThreshold(threshold),
            (None, None) => return None,
        };
        Some(DecisionPolicy {
            threshold: Some(threshold),
        })
    }
}

/// Adds `authorization: Bearer <key>` to every request when a key is set.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connected, authenticated channel: wrap it in any `twin_proto::v1::*_client`.
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// A connection to the gateway, made with [`ClientArgs::connect`].
#[derive(Debug, Clone)]
pub struct Connection {
    pub channel: AuthChannel,
    pub addr: String,
}

macro_rules! client_constructor {
    ($name:ident, $module:ident, $client:ident) => {
        pub fn $name(&self) -> twin_proto::v1::$module::$client<AuthChannel> {
            twin_proto::v1::$module::$client::new(self.channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
        }
    };
}

impl Connection {
    client_constructor!(enrollment, enrollment_client, EnrollmentClient);
    client_constructor!(verification, verification_client, VerificationClient);
    client_constructor!(similarity, similarity_client, SimilarityClient);
    client_constructor!(audit_trail, audit_trail_client, AuditTrailClient);
    client_constructor!(api_keys, api_keys_client, ApiKeysClient);

    /// The error for a failed call: the server's message, the status code, and a hint
    /// when the server could not be reached.
    pub fn error(&self, what: &str, status: tonic::Status) -> anyhow::Error {
        status_error(what, &self.addr, &status)
    }
}

/// `what failed: message (Code)`, plus a hint for the status codes a person can act on.
pub fn status_error(what: &str, addr: &str, status: &tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::Unavailable => format!(" — is the twin server running at {addr}?"),
        tonic::Code::Unauthenticated => " — pass --api-key or set TWIN_API_KEY".to_owned(),
        tonic::Code::PermissionDenied => " — this API key may only read".to_owned(),
        _ => String::new(),
    };
    let message = if status.message().is_empty() {
        "no message from the server"
    } else {
        status.message()
    };
    anyhow::anyhow!("{what} failed: {message} ({:?}){hint}", status.code())
}

impl ClientArgs {
    /// Connects (at most 10 s) to `--addr` and installs the API key.
    /// TLS for an https:// gateway: the system's roots, and `--ca-cert` when given.
    fn tls(&self) -> anyhow::Result<ClientTlsConfig> {
        let tls = ClientTlsConfig::new().with_native_roots();
        let Some(path) = &self.ca_cert else {
            return Ok(tls);
        };
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
        Ok(tls.ca_certificate(Certificate::from_pem(pem)))
    }

    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let endpoint = Endpoint::from_shared(self.addr.clone())
            .with_context(|| {
                format!(
                    "invalid --addr {:?}: expected a URL such as http://127.0.0.1:50051",
                    self.addr
                )
            })?
            .connect_timeout(Duration::from_secs(10));
        let endpoint = if self.addr.starts_with("https://") {
            endpoint
                .tls_config(self.tls()?)
                .with_context(|| format!("cannot set up TLS for {}", self.addr))?
        } else {
            if self.ca_cert.is_some() {
                anyhow::bail!(
                    "--ca-cert applies to https:// addresses; {} is plain http",
                    self.addr
                );
            }
            endpoint
        };
        let channel = endpoint.connect().await.with_context(|| {
            format!(
                "cannot connect to {}: is `twin serve` (or the gateway) running there?",
                self.addr
            )
        })?;
        let key = match self.api_key.as_deref().filter(|key| !key.is_empty()) {
            Some(key) => Some(
                MetadataValue::try_from(format!("Bearer {key}"))
                    .context("invalid --api-key: it must be printable ASCII")?,
            ),
            None => None,
        };
        Ok(Connection {
            channel: InterceptedService::new(channel, Auth(key)),
            addr: self.addr.clone(),
        })
    }
}

/// Runs a client command's future on a runtime made for it.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    future: F,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Reads an image file for a request; its file name becomes the image's `source`.
pub async fn read_image(path: &Path) -> anyhow::Result<Image> {
    let data = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read image {}", path.display()))?;
    if data.is_empty() {
        anyhow::bail!("image {} is empty", path.display());
    }
    Ok(Image::from_bytes(data, source_name(path)))
}

/// A request's sample from a command-line argument: the image file it names, or with
/// `text` the argument itself as a text.
pub async fn read_sample(arg: &Path, text: bool) -> anyhow::Result<Image> {
    if !text {
        return read_image(arg).await;
    }
    let text = arg
        .to_str()
        .with_context(|| format!("the text {arg:?} is not valid UTF-8"))?;
    Ok(Image::from_text(text, ""))
}

/// Prints what the server said about the request's samples (texts it truncated).
pub fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        println!("warning          {warning}");
    }
}

/// The `source` recorded for a file: its file name, cut to the API's 256 bytes.
pub fn source_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    truncate_utf8(name, 256)
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The short name of a metric as people write it (`cosine`, `l2`, ...).
pub fn metric_name(metric: i32) -> String {
    match Metric::try_from(metric) {
        Ok(Metric::Unspecified) | Err(_) => format!("metric#{metric}"),
        Ok(metric) => metric
            .as_str_name()
            .trim_start_matches("METRIC_")
            .to_ascii_lowercase()
            .replace('_', "-"),
    }
}

/// The audit record as JSON (shared by verify and search output).
pub fn audit_json(audit: Option<&twin_proto::v1::Audit>) -> serde_json::Value {
    let Some(audit) = audit else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "model_id": audit.model_id,
        "model_name": audit.model_name,
        "metric": metric_name(audit.metric),
        "score": audit.score,
        "threshold": audit.threshold,
        "operating_point": audit.operating_point,
        "target_far": audit.target_far,
        "calibrated_on": audit.calibrated_on,
        "matched_point_id": audit.matched_point_id,
        "request_id": audit.request_id,
    })
}

/// The audit record as aligned `key  value` lines (shared by verify and search).
pub fn print_audit(audit: Option<&twin_proto::v1::Audit>) {
    let Some(audit) = audit else {
        return;
    };
    let mut point = audit.operating_point.clone();
    if !audit.calibrated_on.is_empty() {
        point.push_str(&format!(" (calibrated on {})", audit.calibrated_on));
    }
    let short_id: String = audit.model_id.chars().take(12).collect();
    println!("threshold        {:.6}", audit.threshold);
    println!("operating point  {point}");
    println!("metric           {}", metric_name(audit.metric));
    println!("model            {} ({short_id})", audit.model_name);
    if !audit.matched_point_id.is_empty() {
        println!("matched point    {}", audit.matched_point_id);
    }
    println!("request id       {}", audit.request_id);
}

/// Prints a JSON value on one line.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
