//! Helpers for twin's end-to-end tests: find the built binaries, start them as real
//! processes on ephemeral ports, generate signature images, connect gRPC clients.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use twin_synth::{encode_png, generate_sample, SampleKind, SynthSpec};

/// The repository root (models/ and runtime/ are found from here).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The development model shipped in the repo (untrained, deterministic).
pub fn dev_model() -> PathBuf {
    repo_root().join("models/signature-dev")
}

/// A binary of the workspace, built next to this test executable
/// (`scripts/test.sh` builds them first: `cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A twin process, killed when dropped; its stderr is kept in a log file that a
/// failing test prints.
pub struct TwinProcess {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl TwinProcess {
    /// Starts `binary` with `args` and `envs`, waits (at most 120 s) for the stdout line
    /// containing `ready` and takes the address after `ready`.
    pub async fn start(
        binary: &Path,
        args: &[&str],
        envs: &[(&str, String)],
        ready: &str,
        log: PathBuf,
    ) -> Self {
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary);
        command
            .args(args)
            .current_dir(repo_root())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn twin process");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split(ready).nth(1) {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(addr) = addr else {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "{} did not become ready; its log:\n{text}",
                binary.display()
            );
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, addr, log }
    }

    /// `twin serve` (embedded store and queue under `dir/data`, log `dir/serve.log`) on
    /// an ephemeral port with `models` (the first is the default). The metrics endpoint is
    /// off unless `envs` sets `TWIN_GATEWAY__METRICS_ADDR`; `envs` come last and win.
    pub async fn serve(dir: &Path, models: &[&Path], envs: &[(&str, String)]) -> Self {
        let data = dir.join("data");
        let mut args = vec![
            "serve".to_owned(),
            "--addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        for model in models {
            args.extend(["--model".to_owned(), model.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut all_envs = vec![("TWIN_GATEWAY__METRICS_ADDR", String::new())];
        all_envs.extend(envs.iter().cloned());
        Self::start(
            &bin("twin"),
            &args,
            &all_envs,
            "twin serving on ",
            dir.join("serve.log"),
        )
        .await
    }

    /// A started process without an address to wait for (a worker); its stdout goes
    /// to `<log>.out`.
    pub async fn start_detached(binary: &Path, envs: &[(&str, String)], log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).expect("log file");
        let out_file = std::fs::File::create(log.with_extension("out")).expect("stdout file");
        let mut command = Command::new(binary);
        command
            .current_dir(repo_root())
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out_file))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn twin process");
        Self {
            child,
            addr: String::new(),
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// What the process printed on stdout so far (for detached processes).
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("out")).unwrap_or_default()
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (at most `timeout`) for a graceful exit; true if it exited.
    pub async fn terminate(&mut self, timeout: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_ok()
    }

    /// SIGKILL, no grace.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs the `twin` command against the server at `url` (`TWIN_ADDR`), quietly; its output.
pub async fn twin_command(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin("twin"))
        .args(args)
        .env("TWIN_ADDR", url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run twin")
}

/// A connected gRPC channel to `url`, retried for up to 10 s.
pub async fn channel(url: &str) -> tonic::transport::Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned()).expect("valid url");
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {url}");
}

/// A generated signature PNG: writer `writer`'s genuine sample or skilled forgery `index`.
pub fn signature(writer: usize, kind: SampleKind, index: usize) -> Vec<u8> {
    let spec = SynthSpec {
        seed: 7,
        ..SynthSpec::default()
    };
    encode_png(&generate_sample(&spec, writer, kind, index))
}

/// A genuine signature PNG.
pub fn genuine(writer: usize, index: usize) -> Vec<u8> {
    signature(writer, SampleKind::Genuine, index)
}

/// The bytes of a PNG whose header claims `width` × `height` pixels: a decompression
/// bomb's opening (IHDR, then a tiny IDAT), with almost no pixel data.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    push_chunk(&mut png, b"IHDR", &ihdr);
    // A zlib stream of one stored empty block: valid, and nowhere near the claimed size.
    push_chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 1],
    );
    push_chunk(&mut png, b"IEND", &[]);
    png
}

fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).expect("small chunk");
    png.extend_from_slice(&length.to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    png.extend_from_slice(&body);
    png.extend_from_slice(&crc32(&body).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

pub use twin_synth::SampleKind as Kind;

/// A request carrying `authorization: Bearer <key>` and a 60 s deadline.
pub fn authed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {key}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request.set_timeout(Duration::from_secs(60));
    request
}

/// A sample of encoded image bytes, no source name.
pub fn image(data: Vec<u8>) -> Option<twin_proto::v1::Image> {
    Some(twin_proto::v1::Image::from_bytes(data, String::new()))
}
