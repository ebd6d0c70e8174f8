//! `twin enqueue DIR`: batch-enrols a folder of images through the gateway's
//! client-streaming `Enrollment.EnqueueBatch` RPC, reading files only as the stream is
//! polled so memory stays flat for thousands of files. Re-running is cheap: the server
//! answers `already_stored` for images whose deterministic point id exists.
//! `twin enqueue --texts FILE` enrols sentences for a text model the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use twin_proto::v1::{EnqueueItem, GetJobRequest, JobStatus, Label};

use super::client::{self, ClientArgs, Connection};

pub(super) const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// Folder of images: DIR/<subject>/<image>.png (png, jpg, jpeg, tif, tiff, bmp),
    /// searched recursively; the subject is the image's folder relative to DIR.
    pub dir: PathBuf,
    /// CSV manifest instead of folder names: `path,subject[,key=value;key=value]` per line,
    /// paths relative to DIR (or absolute); a first line `path,subject,...` is a header, and
    /// a header's third column name labels plain values (`twin synth`'s labels.csv works).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// DIR is a file of texts for a text model, `subject<TAB>text` per line (`#` lines and
    /// blank lines skipped); each line is one sample, its client_ref `FILE:LINE`.
    #[arg(long, conflicts_with = "manifest")]
    pub texts: bool,
    /// Skip files whose path (relative to DIR) contains PATTERN, e.g. `--exclude -F-` to
    /// leave out skilled forgeries; repeat for several.
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    pub exclude: Vec<String>,
    /// Model name or id; default: the server's default model.
    #[arg(long, default_value = "")]
    pub model: String,
    /// Items per streaming call (bounds the size of one request and its answer).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chunk: u64,
    /// After enqueueing, wait until every accepted job is stored or failed.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One file to enrol.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    /// Path relative to DIR, sent as the item's `client_ref`.
    client_ref: String,
    subject: String,
    labels: Vec<Label>,
    /// The sample itself, for a text model (`--texts`); `path` is then the texts file.
    text: Option<String>,
}

/// What became of one file.
#[derive(Debug, Default)]
struct Summary {
    files: usize,
    accepted: Vec<(String, String, String)>,
    already_stored: usize,
    /// (file, reason)
    rejected: Vec<(String, String)>,
    stored: usize,
    failed: Vec<(String, String)>,
}

pub fn run(args: EnqueueArgs) -> anyhow::Result<()> {
    client::block_on(enqueue(args))
}

async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (entries, mut summary) = list_entries(&args)?;
    if entries.is_empty() && summary.rejected.is_empty() {
        anyhow::bail!(
            "no images found under {} (looked for {}); check the folder or --exclude",
            args.dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    let connection = args.client.connect().await?;
    let progress = progress_bar(entries.len() as u64, args.client.json, "enqueue");
    let chunk = usize::try_from(args.chunk).unwrap_or(usize::MAX);
    for batch in entries.chunks(chunk) {
        send_chunk(&connection, &args.model, batch, &progress, &mut summary).await?;
    }
    progress.finish_and_clear();
    if args.wait && !summary.accepted.is_empty() {
        wait_for_jobs(&connection, &mut summary, args.client.json).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    report(&args, &summary, seconds);
    if summary.rejected.is_empty() && summary.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} images were rejected or failed (listed above); fix them and re-run: \
             stored images are skipped",
            summary.rejected.len() + summary.failed.len(),
            summary.files
        )
    }
}

/// Streams one chunk of entries in one `EnqueueBatch` call; files are read as the
/// stream is polled. A file that cannot be read is recorded as rejected locally.
async fn send_chunk(
    connection: &Connection,
    model: &str,
    batch: &[Entry],
    progress: &ProgressBar,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let unreadable = Arc::new(Mutex::new(Vec::new()));
    let model = model.to_owned();
    let stream = {
        let unreadable = Arc::clone(&unreadable);
        let progress = progress.clone();
        futures::stream::iter(batch.to_vec()).filter_map(move |entry| {
            let unreadable = Arc::clone(&unreadable);
            let progress = progress.clone();
            let model = model.clone();
            async move {
                progress.inc(1);
                let sample = match entry.text {
                    Some(text) => Ok(twin_proto::v1::Image::from_text(text, "")),
                    None => client::read_image(&entry.path).await,
                };
                match sample {
                    Ok(image) => Some(EnqueueItem {
                        client_ref: entry.client_ref,
                        subject_id: entry.subject,
                        image: Some(image),
                        labels: entry.labels,
                        model,
                    }),
                    Err(error) => {
                        if let Ok(mut list) = unreadable.lock() {
                            list.push((entry.client_ref, format!("{error:#}")));
                        }
                        None
                    }
                }
            }
        })
    };
    let response = connection
        .enrollment()
        .enqueue_batch(stream)
        .await
        .map_err(|status| connection.error("enqueue", status))?
        .into_inner();
    if let Ok(mut list) = unreadable.lock() {
        summary.rejected.append(&mut list);
    }
    for result in response.results {
        if result.already_stored {
            summary.already_stored += 1;
        } else if result.accepted {
            summary
                .accepted
                .push((result.client_ref, result.job_id, result.point_id));
        } else {
            summary.rejected.push((result.client_ref, result.reason));
        }
    }
    Ok(())
}

/// Polls `GetJob` for every accepted job until each is DONE or FAILED.
async fn wait_for_jobs(
    connection: &Connection,
    summary: &mut Summary,
    quiet: bool,
) -> anyhow::Result<()> {
    let progress = progress_bar(summary.accepted.len() as u64, quiet, "stored");
    let mut pending: Vec<(String, String)> = summary
        .accepted
        .iter()
        .map(|(file, job, _)| (file.clone(), job.clone()))
        .collect();
    while !pending.is_empty() {
        let checks = futures::stream::iter(pending.clone())
            .map(|(file, job_id)| {
                let mut enrollment = connection.enrollment();
                async move {
                    let job = enrollment
                        .get_job(GetJobRequest {
                            job_id: job_id.clone(),
                        })
                        .await;
                    (file, job_id, job)
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        pending.clear();
        for (file, job_id, job) in checks {
            let job = job
                .map_err(|status| connection.error("waiting for jobs", status))?
                .into_inner();
            match JobStatus::try_from(job.status) {
                Ok(JobStatus::Done) => {
                    summary.stored += 1;
                    progress.inc(1);
                }
                Ok(JobStatus::Failed) => {
                    summary.failed.push((file, job.error));
                    progress.inc(1);
                }
                _ => pending.push((file, job_id)),
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    progress.finish_and_clear();
    Ok(())
}

pub(super) fn progress_bar(len: u64, hidden: bool, what: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>8} [{bar:30}] {pos}/{len} images  {elapsed} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The files to enrol, in a stable order, with subject and labels; files that
/// cannot be enrolled (no subject) come back as rejections.
fn list_entries(args: &EnqueueArgs) -> anyhow::Result<(Vec<Entry>, Summary)> {
    let mut summary = Summary::default();
    let mut entries = match &args.manifest {
        Some(manifest) => read_manifest(&args.dir, manifest)?,
        None if args.texts => read_texts(&args.dir)?,
        None => {
            let mut files = Vec::new();
            walk(&args.dir, &mut files)?;
            files.sort();
            let mut entries = Vec::new();
            for path in files {
                let client_ref = relative(&args.dir, &path);
                match folder_subject(&args.dir, &path) {
                    Some(subject) => entries.push(Entry {
                        path,
                        client_ref,
                        subject,
                        labels: Vec::new(),
                        text: None,
                    }),
                    None => summary.rejected.push((
                        client_ref,
                        "no subject: the file lies directly in DIR; put it in a folder named \
                         after its subject or use --manifest"
                            .to_owned(),
                    )),
                }
            }
            entries
        }
    };
    let excluded = |reference: &str| args.exclude.iter().any(|p| reference.contains(p.as_str()));
    entries.retain(|entry| !excluded(&entry.client_ref));
    summary
        .rejected
        .retain(|(reference, _)| !excluded(reference));
    summary.files = entries.len() + summary.rejected.len();
    Ok((entries, summary))
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The image files below `dir`. Symbolic links are followed (a folder of links to the subjects
/// of a split is a common way to name one); a folder reached twice through links is read once,
/// so a link loop ends.
pub(super) fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    walk_inner(dir, files, &mut seen)
}

fn walk_inner(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> anyhow::Result<()> {
    let canonical = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let reader =
        std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    for entry in reader {
        let entry = entry.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        // a link is what it points to; a dangling one stays a file, whose read then says why
        let is_dir = kind.is_dir()
            || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|target| target.is_dir()));
        if is_dir {
            walk_inner(&path, files, seen)?;
        } else if is_image(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// `path` relative to `dir`, with `/` separators.
pub(super) fn relative(dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    client::truncate_utf8(parts.join("/"), 1024)
}

/// The subject of DIR/<subject...>/<file>: the folder path relative to DIR.
fn folder_subject(dir: &Path, path: &Path) -> Option<String> {
    let reference = relative(dir, path);
    let (folder, _file) = reference.rsplit_once('/')?;
    Some(folder.to_owned())
}

/// Reads `path,subject[,key=value;...]` lines.
fn read_manifest(dir: &Path, manifest: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let mut entries = Vec::new();
    let mut column: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(3, ',').map(str::trim);
        let file = fields.next().unwrap_or_default();
        let subject = fields.next().unwrap_or_default();
        if number == 0 && file.eq_ignore_ascii_case("path") {
            // A named third column (e.g. `twin synth`'s `kind`) labels plain values.
            column = fields
                .next()
                .filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("labels"))
                .map(str::to_owned);
            continue;
        }
        let place = || format!("{}:{}", manifest.display(), number + 1);
        if file.is_empty() || subject.is_empty() {
            anyhow::bail!("{}: expected `path,subject[,key=value;...]`", place());
        }
        let mut labels = Vec::new();
        for pair in fields
            .next()
            .unwrap_or_default()
            .split(';')
            .filter(|p| !p.trim().is_empty())
        {
            let Some((key, value)) = pair
                .split_once('=')
                .or_else(|| column.as_deref().map(|name| (name, pair)))
            else {
                anyhow::bail!("{}: label {pair:?} is not key=value", place());
            };
            labels.push(Label {
                key: key.trim().to_owned(),
                value: value.trim().to_owned(),
            });
        }
        let path = dir.join(file);
        entries.push(Entry {
            client_ref: relative(dir, &path),
            path,
            subject: subject.to_owned(),
            labels,
            text: None,
        });
    }
    Ok(entries)
}

/// `subject<TAB>text` lines of a texts file (`--texts`).
fn read_texts(file: &Path) -> anyhow::Result<Vec<Entry>> {
    let content = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the texts file {} (UTF-8 text)", file.display()))?;
    let mut entries = Vec::new();
    for (number, line) in content.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let place = format!("{}:{}", file.display(), number + 1);
        let Some((subject, text)) = line.split_once('\t') else {
            anyhow::bail!("{place}: expected `subject<TAB>text`");
        };
        let subject = subject.trim();
        if subject.is_empty() {
            anyhow::bail!("{place}: the subject before the tab is empty");
        }
        entries.push(Entry {
            path: file.to_owned(),
            client_ref: place,
            subject: subject.to_owned(),
            labels: Vec::new(),
            text: Some(text.to_owned()),
        });
    }
    Ok(entries)
}

fn report(args: &EnqueueArgs, summary: &Summary, seconds: f64) {
    let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (file, reason) in summary.rejected.iter().chain(&summary.failed) {
        reasons.entry(reason.as_str()).or_default().push(file);
    }
    if args.client.json {
        let rejected: Vec<_> = summary
            .rejected
            .iter()
            .map(|(file, reason)| serde_json::json!({"file": file, "reason": reason}))
            .collect();
        let failed: Vec<_> = summary
            .failed
            .iter()
            .map(|(file, reason)| serde_json::json!({"file": file, "reason": reason}))
            .collect();
        let jobs: Vec<_> = summary
            .accepted
            .iter()
            .map(|(file, job, point)| serde_json::json!({"file": file, "job_id": job, "point_id": point}))
            .collect();
        let mut value = serde_json::json!({
            "dir": args.dir.display().to_string(),
            "files": summary.files,
            "accepted": summary.accepted.len(),
            "already_stored": summary.already_stored,
            "rejected": summary.rejected.len(),
            "rejections": rejected,
            "jobs": jobs,
            "seconds": seconds,
        });
        if args.wait {
            value["stored"] = summary.stored.into();
            value["failed"] = summary.failed.len().into();
            value["failures"] = failed.into();
        }
        client::print_json(&value);
        return;
    }
    println!(
        "enqueue {}: {} {} in {seconds:.1} s",
        args.dir.display(),
        summary.files,
        if args.texts { "texts" } else { "images" }
    );
    println!("  accepted        {:>7}", summary.accepted.len());
    println!("  already stored  {:>7}", summary.already_stored);
    println!("  rejected        {:>7}", summary.rejected.len());
    if args.wait {
        println!("  stored          {:>7}", summary.stored);
        println!("  failed          {:>7}", summary.failed.len());
    }
    for (reason, files) in &reasons {
        println!("{} × {reason}", files.len());
        for file in files {
            println!("    {file}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_the_folder_relative_to_dir() {
        let dir = Path::new("/data/set");
        assert_eq!(
            folder_subject(dir, Path::new("/data/set/alice/1.png")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            folder_subject(dir, Path::new("/data/set/a/b/1.png")).as_deref(),
            Some("a/b")
        );
        assert_eq!(folder_subject(dir, Path::new("/data/set/1.png")), None);
    }

    #[test]
    fn texts_files_give_one_sample_per_line_and_name_bad_lines() {
        let dir = tempfile_dir();
        let file = dir.join("sentences.tsv");
        std::fs::write(
            &file,
            "# subject, text\nq1\tThe cat sat.\n\nq2\tA dog ran\tfast.\n",
        )
        .expect("write texts");
        let entries = read_texts(&file).expect("texts parse");
        let got: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|e| (e.subject.as_str(), e.text.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("q1", Some("The cat sat.")),
                ("q2", Some("A dog ran\tfast."))
            ]
        );
        assert!(entries[1].client_ref.ends_with("sentences.tsv:4"));
        std::fs::write(&file, "q1 no tab here\n").expect("write texts");
        let err = read_texts(&file).expect_err("no tab").to_string();
        assert!(
            err.contains("sentences.tsv:1") && err.contains("TAB"),
            "{err}"
        );
    }

    #[test]
    fn manifest_lines_give_subject_and_labels() {
        let dir = tempfile_dir();
        let manifest = dir.join("m.csv");
        std::fs::write(
            &manifest,
            "path,subject,labels\nx/1.png,alice,session=2024;scanner=A\n2.png,bob\n",
        )
        .expect("write manifest");
        let entries = read_manifest(&dir, &manifest).expect("manifest parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].subject, "alice");
        assert_eq!(entries[0].client_ref, "x/1.png");
        assert_eq!(entries[0].labels.len(), 2);
        assert_eq!(entries[0].labels[1].value, "A");
        assert_eq!(entries[1].subject, "bob");
        assert!(entries[1].labels.is_empty());
        std::fs::write(&manifest, "path,subject,kind\nw1/a.png,w1,genuine\n").expect("write");
        let entries = read_manifest(&dir, &manifest).expect("synth labels.csv parses");
        assert_eq!(entries[0].labels[0].key, "kind");
        assert_eq!(entries[0].labels[0].value, "genuine");
        std::fs::write(&manifest, "1.png\n").expect("write manifest");
        assert!(read_manifest(&dir, &manifest).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("twin-enqueue-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn only_image_extensions_are_listed() {
        assert!(is_image(Path::new("a/b.PNG")));
        assert!(is_image(Path::new("a/b.tiff")));
        assert!(!is_image(Path::new("a/labels.csv")));
        assert!(!is_image(Path::new("a/noext")));
    }
}
