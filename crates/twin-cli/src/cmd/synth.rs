//! `twin synth`: writes a synthetic signature dataset (genuine samples and skilled forgeries per
//! writer, with labels.csv) so tests, benchmarks and the demo need no private data.

use std::path::PathBuf;

use anyhow::Context;
use twin_synth::{write_dataset, SynthSpec};

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder (created if missing): <out>/<writer>/<writer>-G-NN.png, -F-NN.png, labels.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of writers (subjects), named w0001, w0002, ...
    #[arg(long, default_value_t = 20)]
    pub writers: usize,
    /// Genuine samples per writer.
    #[arg(long, default_value_t = 12)]
    pub genuine: usize,
    /// Skilled forgeries per writer.
    #[arg(long, default_value_t = 12)]
    pub forgeries: usize,
    /// Seed: the same seed writes byte-identical images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image width in pixels.
    #[arg(long, default_value_t = 600)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 200)]
    pub height: u32,
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let spec = SynthSpec {
        writers: args.writers,
        genuine_per_writer: args.genuine,
        forgeries_per_writer: args.forgeries,
        seed: args.seed,
        width: args.width,
        height: args.height,
    };
    let started = std::time::Instant::now();
    let summary = write_dataset(&spec, &args.out)
        .with_context(|| format!("writing a synthetic dataset to {}", args.out.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "wrote {} images ({} genuine, {} skilled forgeries) of {} writers to {} in {:.2} s",
        summary.images(),
        summary.genuine,
        summary.forgeries,
        summary.writers,
        args.out.display(),
        seconds
    );
    println!("labels: {}", summary.labels.display());
    Ok(())
}
