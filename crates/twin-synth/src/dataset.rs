//! Writes a synthetic dataset as a labelled folder (layout in the crate docs). Samples are
//! independent, so they are rendered on all cores; the output does not depend on the thread count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, GrayImage, ImageEncoder};

use crate::{generate_sample, sample_file_name, writer_id, SampleKind, SynthError, SynthSpec};

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub writers: usize,
    pub genuine: usize,
    pub forgeries: usize,
    /// The `labels.csv` listing every image.
    pub labels: PathBuf,
}

impl Summary {
    pub fn images(&self) -> usize {
        self.genuine + self.forgeries
    }
}

/// One image to produce.
struct Job {
    writer: usize,
    kind: SampleKind,
    index: usize,
}

impl Job {
    fn relative_path(&self) -> String {
        format!(
            "{}/{}",
            writer_id(self.writer),
            sample_file_name(self.writer, self.kind, self.index)
        )
    }
}

/// Generates `spec` into `out_dir` (created if missing; existing files of the same names are
/// overwritten, others are left alone) and writes `labels.csv` last, so a folder with a labels
/// file is complete.
pub fn write_dataset(spec: &SynthSpec, out_dir: &Path) -> Result<Summary, SynthError> {
    spec.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SynthError::Io { path, source }
    };
    let mut jobs =
        Vec::with_capacity(spec.writers * (spec.genuine_per_writer + spec.forgeries_per_writer));
    for writer in 0..spec.writers {
        let folder = out_dir.join(writer_id(writer));
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        for (kind, count) in [
            (SampleKind::Genuine, spec.genuine_per_writer),
            (SampleKind::Forgery, spec.forgeries_per_writer),
        ] {
            jobs.extend((0..count).map(|index| Job {
                writer,
                kind,
                index,
            }));
        }
    }

    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len())
        .max(1);
    let results: Vec<Result<(), SynthError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| loop {
                    let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return Ok(());
                    };
                    let path = out_dir.join(job.relative_path());
                    let image = generate_sample(spec, job.writer, job.kind, job.index);
                    let bytes = png_bytes(&image).map_err(|source| SynthError::Encode {
                        path: path.clone(),
                        source,
                    })?;
                    std::fs::write(&path, bytes).map_err(io(&path))?;
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.into_iter().collect::<Result<(), _>>()?;

    let mut csv = String::from("path,subject,kind\n");
    for job in &jobs {
        csv.push_str(&format!(
            "{},{},{}\n",
            job.relative_path(),
            writer_id(job.writer),
            job.kind.label()
        ));
    }
    let labels = out_dir.join("labels.csv");
    std::fs::write(&labels, csv).map_err(io(&labels))?;
    tracing::info!(
        out = %out_dir.display(),
        writers = spec.writers,
        images = jobs.len(),
        threads,
        "synthetic dataset written"
    );
    Ok(Summary {
        writers: spec.writers,
        genuine: spec.writers * spec.genuine_per_writer,
        forgeries: spec.writers * spec.forgeries_per_writer,
        labels,
    })
}

pub(crate) fn png_bytes(image: &GrayImage) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::with_capacity(16 * 1024);
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::L8,
        )?;
    Ok(bytes)
}
