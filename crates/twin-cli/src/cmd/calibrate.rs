//! `twin calibrate DIR --model M`: chooses the threshold for each target FAR on a labelled
//! folder (the model's native metric; `threshold_at_far`, as `evaluate.py calibrate` does)
//! and writes them into `M/manifest.toml` as its operating points, everything else kept.
//! With `--references 1,3,5,10` it calibrates the subject-level points instead (simulated
//! enrolment, one point per reference count, aggregation and target FAR; the pairwise
//! points stay as they are). `--per-collection` calibrates a folder of several collections
//! so that the mean of their FARs meets each target (`threshold_for_mean_far`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use twin_core::decision::{far_name, OperatingPoint, SubjectOperatingPoint};
use twin_core::evaluation::{
    best_accuracy_threshold, classification, far_frr, threshold_at_far, threshold_for_mean_far,
    Rates,
};
use twin_core::manifest::{ModelManifest, MANIFEST_FILE};
use twin_core::metric::DEFAULT_RBF_SIGMA;

use super::client;
use super::face_pairs::{self, LfwPairs};
use super::labelled::{load_model, model_json, FolderArgs, Listed, Scored};
use super::plot::percent;
use super::sentence_pairs::{self, PairFile};
use super::subject_level::{self, EnrolmentArgs};

/// Target FARs closer than this are the same operating point (as `resolve_threshold` matches).
const FAR_TOLERANCE: f64 = 1e-9;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    twin calibrate demo-data --model models/my-model --dry-run\n  \
    twin calibrate data/val-writers --model models/my-model --target-far 0.1,0.01,0.001 \\\n      \
    --calibrated-on \"BHSig260-Bengali writers 51-60, skilled forgeries\"\n  \
    twin calibrate data/val-writers --model models/my-model --references 1,3,5,10   # VerifySubject")]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Model directory whose manifest.toml receives the thresholds.
    #[arg(long)]
    pub model: PathBuf,
    /// Target false-accept rates, comma-separated, each in (0, 1); must include the model's
    /// default_target_far unless --dry-run.
    #[arg(long, value_delimiter = ',', default_values_t = [0.1, 0.01, 0.001])]
    pub target_far: Vec<f64>,
    /// Negatives the FAR is measured on: skilled forgeries of the subject, or other
    /// subjects' genuine images.
    #[arg(long, value_enum, default_value = "skilled")]
    pub negatives: Negatives,
    /// What the thresholds were calibrated on, recorded in the manifest and shown in every
    /// decision's audit (default: the folder, its size and the negatives).
    #[arg(long)]
    pub calibrated_on: Option<String>,
    /// Print the thresholds without changing the manifest.
    #[arg(long)]
    pub dry_run: bool,
    /// The metric calibrated (default: the model's native one); `learned` for a model with
    /// a joint head. The points of other metrics stay.
    #[arg(long)]
    pub metric: Option<twin_core::Metric>,
    #[command(flatten)]
    pub enrolment: EnrolmentArgs,
    /// With --pairs: add the threshold of highest accuracy on the pairs as an operating
    /// point (its target FAR is the FAR it measures there) and make it the model's default,
    /// for tasks judged by accuracy such as paraphrase scoring.
    #[arg(long)]
    pub accuracy_default: bool,
    /// The folder argument is LFW's `pairs.txt`: a face model calibrated on its pairs
    /// (mismatched pairs are the negatives). `twin eval --lfw` measures each threshold
    /// on held-out folds.
    #[arg(long, conflicts_with = "pairs")]
    pub lfw: bool,
    /// The images folder of --lfw; default: `images` beside pairs.txt.
    #[arg(long, requires = "lfw")]
    pub lfw_images: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Negatives {
    Skilled,
    Random,
}

impl Negatives {
    fn name(self) -> &'static str {
        match self {
            Negatives::Skilled => "skilled",
            Negatives::Random => "random",
        }
    }
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let targets = targets(&args.target_far)?;
    if args.folder.pairs || args.lfw {
        return run_pairs(&args, &targets);
    }
    if args.accuracy_default {
        anyhow::bail!("--accuracy-default applies to --pairs and --lfw calibrations");
    }
    let listed = Listed::read(&args.folder.for_model(&args.model))?;
    let embedder = load_model(&args.model, args.folder.config.as_deref())?;
    let manifest = embedder.manifest().clone();
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let scored = Scored::compute(&args.folder, listed, &embedder, metric, DEFAULT_RBF_SIGMA)?;
    drop(embedder);
    let negatives = match args.negatives {
        Negatives::Skilled => &scored.skilled,
        Negatives::Random => &scored.random,
    };
    if scored.positive.is_empty() || negatives.is_empty() {
        anyhow::bail!(
            "cannot calibrate on {}: {} genuine pairs and {} {} forgery pairs; a threshold \
             needs both (subjects with two or more genuine images{}; naming: {})",
            scored.dir.display(),
            scored.positive.len(),
            negatives.len(),
            args.negatives.name(),
            match args.negatives {
                Negatives::Skilled => ", and forgeries",
                Negatives::Random => ", and two or more subjects",
            },
            scored.naming.describe()
        );
    }
    let calibrated_on = args.calibrated_on.clone().unwrap_or_else(|| {
        format!(
            "{} ({} subjects, {} images), genuine vs {} forgeries",
            scored.dir.display(),
            scored.subjects,
            scored.images(),
            args.negatives.name()
        )
    });
    if args.enrolment.wanted() {
        return run_subject_level(&args, &manifest, &scored, &targets, &calibrated_on, started);
    }
    // (positives, negatives) per collection under --per-collection, else the whole folder.
    let groups: Vec<(Vec<f64>, Vec<f64>)> = if args.enrolment.per_collection {
        scored
            .by_collection(args.folder.random())?
            .into_iter()
            .map(|c| {
                let negatives = match args.negatives {
                    Negatives::Skilled => c.skilled,
                    Negatives::Random => c.random,
                };
                if c.positive.is_empty() || negatives.is_empty() {
                    anyhow::bail!(
                        "collection {:?} has no genuine or no {} forgery pairs to calibrate on",
                        c.name,
                        args.negatives.name()
                    );
                }
                Ok((c.positive, negatives))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        vec![(scored.positive.clone(), negatives.clone())]
    };
    let mean = |rate: &dyn Fn(&Rates) -> f64, threshold: f64| -> anyhow::Result<f64> {
        let mut sum = 0.0;
        for (positive, negative) in &groups {
            sum += rate(&far_frr(positive, negative, threshold)?);
        }
        Ok(sum / groups.len() as f64)
    };
    let calibrated_on = if groups.len() > 1 {
        format!("{calibrated_on}, mean FAR of the collections")
    } else {
        calibrated_on
    };
    let mut points = Vec::with_capacity(targets.len());
    for &target in &targets {
        let negatives: Vec<&[f64]> = groups.iter().map(|(_, n)| n.as_slice()).collect();
        let threshold = threshold_for_mean_far(&negatives, target)?;
        points.push(OperatingPoint {
            name: far_name(target),
            metric,
            target_far: target,
            threshold,
            measured_far: mean(&|r| r.far, threshold)?,
            measured_frr: mean(&|r| r.frr, threshold)?,
            calibrated_on: calibrated_on.clone(),
        });
    }

    let manifest_path = args.model.join(MANIFEST_FILE);
    let covers_default = covers_default(&targets, &manifest);
    let written = if args.dry_run {
        false
    } else {
        if !covers_default {
            anyhow::bail!(
                "the model's default operating point (default_target_far = {}) would have no \
                 threshold and requests without one would fail; add {} to --target-far",
                manifest.default_target_far,
                manifest.default_target_far
            );
        }
        write_points(&args.model, &manifest, &points)?;
        true
    };

    let previous = |target: f64| {
        manifest
            .operating_points
            .iter()
            .find(|p| p.metric == metric && (p.target_far - target).abs() <= FAR_TOLERANCE)
            .map(|p| p.threshold)
    };
    let finest = 1.0 / negatives.len() as f64;
    if args.folder.json {
        let mut report = scored.json();
        report["model"] = model_json(&args.model, &manifest);
        report["manifest"] = json!(manifest_path.display().to_string());
        report["written"] = json!(written);
        report["metric"] = json!(metric);
        report["negatives"] = json!(args.negatives.name());
        report["calibrated_on"] = json!(calibrated_on);
        report["finest_far"] = json!(finest);
        report["operating_points"] = points
            .iter()
            .map(|p| {
                let mut value = json!(p);
                value["previous_threshold"] = json!(previous(p.target_far));
                value
            })
            .collect();
        report["seconds"] = json!(started.elapsed().as_secs_f64());
        client::print_json(&report);
        return Ok(());
    }
    let short_id: String = manifest.id.chars().take(12).collect();
    println!(
        "twin calibrate {}: model {} ({short_id}), metric {metric}, genuine vs {} forgeries",
        scored.dir.display(),
        manifest.name,
        args.negatives.name()
    );
    print!("{}", scored.summary());
    println!();
    println!(
        "  {:<16}{:>14}{:>14}{:>14}{:>14}",
        "operating point", "threshold", "measured FAR", "measured FRR", "was"
    );
    for p in &points {
        let was = previous(p.target_far).map_or_else(|| "-".to_owned(), |t| format!("{t:.6}"));
        println!(
            "  {:<16}{:>14.6}{:>14}{:>14}{:>14}",
            p.name,
            p.threshold,
            percent(p.measured_far),
            percent(p.measured_frr),
            was
        );
    }
    if targets.iter().any(|&t| t < finest) {
        println!(
            "  note: {} {} pairs cannot measure a FAR below 1/{} = {}; those thresholds sit \
             just above the highest forgery score",
            negatives.len(),
            args.negatives.name(),
            negatives.len(),
            percent(finest)
        );
    }
    println!();
    if written {
        println!(
            "wrote {} operating points for {metric} to {} (calibrated on {calibrated_on:?})",
            points.len(),
            manifest_path.display()
        );
    } else {
        println!("dry run: {} not changed", manifest_path.display());
        if !covers_default {
            println!(
                "note: without {} in --target-far the default operating point would be lost",
                manifest.default_target_far
            );
        }
    }
    Ok(())
}

/// `--references`: subject-level points for every count, aggregation and target, written
/// in place of the metric's previous subject-level points.
fn run_subject_level(
    args: &CalibrateArgs,
    manifest: &ModelManifest,
    scored: &Scored,
    targets: &[f64],
    calibrated_on: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let simulated = subject_level::simulate_all(scored, &args.enrolment, args.folder.seed)?;
    let mut points = Vec::new();
    for s in &simulated {
        points.extend(subject_level::calibrate(
            s,
            targets,
            calibrated_on,
            metric,
            args.negatives == Negatives::Random,
        )?);
    }
    let covers_default = covers_default(targets, manifest);
    let manifest_path = args.model.join(MANIFEST_FILE);
    let written = if args.dry_run {
        false
    } else {
        if !covers_default {
            anyhow::bail!(
                "subject decisions at the model's default operating point (default_target_far = \
                 {}) would have no threshold; add {} to --target-far",
                manifest.default_target_far,
                manifest.default_target_far
            );
        }
        let mut updated = manifest.clone();
        updated
            .subject_operating_points
            .retain(|p| p.metric != metric);
        updated
            .subject_operating_points
            .splice(0..0, points.iter().cloned());
        write_manifest(&args.model, &updated)?;
        true
    };
    if args.folder.json {
        let mut report = scored.json();
        report["model"] = model_json(&args.model, manifest);
        report["manifest"] = json!(manifest_path.display().to_string());
        report["written"] = json!(written);
        report["metric"] = json!(metric);
        report["calibrated_on"] = json!(calibrated_on);
        report["draws"] = json!(args.enrolment.draws);
        report["subject_operating_points"] = json!(points);
        report["seconds"] = json!(started.elapsed().as_secs_f64());
        client::print_json(&report);
        return Ok(());
    }
    println!(
        "twin calibrate {} --references: model {}, metric {metric}, genuine vs {} forgeries",
        scored.dir.display(),
        manifest.name,
        args.negatives.name()
    );
    print!("{}", scored.summary());
    println!();
    println!(
        "  {:<26}{:>10}{:>12}{:>14}{:>14}{:>14}",
        "operating point", "subjects", "threshold", "measured FAR", "measured FRR", "FAR random"
    );
    let subjects = |p: &SubjectOperatingPoint| {
        simulated
            .iter()
            .find(|s| s.aggregation == p.aggregation && s.references == p.references as usize)
            .map_or(0, |s| s.scores.subjects)
    };
    for p in &points {
        println!(
            "  {:<26}{:>10}{:>12.6}{:>14}{:>14}{:>14}",
            p.name,
            subjects(p),
            p.threshold,
            percent(p.measured_far),
            percent(p.measured_frr),
            percent(p.measured_far_random)
        );
    }
    println!();
    if written {
        println!(
            "wrote {} subject-level operating points for {metric} to {} (pairwise points kept)",
            points.len(),
            manifest_path.display()
        );
    } else {
        println!("dry run: {} not changed", manifest_path.display());
    }
    Ok(())
}

/// Whether `targets` include the model's default target FAR (requests naming no operating
/// point need a threshold there).
/// `twin calibrate --pairs FILE`: the FAR operating points of a text model on sentence
/// pairs (the non-paraphrases are the negatives), and with `--accuracy-default` the point
/// of highest accuracy, made the default.
fn run_pairs(args: &CalibrateArgs, targets: &[f64]) -> anyhow::Result<()> {
    let embedder = load_model(&args.model, args.folder.config.as_deref())?;
    let mut manifest = embedder.manifest().clone();
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let (positive, negative, described) = if args.lfw {
        let file = LfwPairs::read(&args.folder.dir)?;
        let images = args.lfw_images.clone().unwrap_or_else(|| {
            args.folder
                .dir
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("images")
        });
        let scored = face_pairs::score(&file, &images, &embedder, metric, DEFAULT_RBF_SIGMA)?;
        let (positive, negative) = face_pairs::all(&file, &scored.scores);
        let described = format!(
            "{} ({} pairs of {} images: {} matched, {} mismatched; {} images without a usable \
             face, their pairs rejected)",
            args.folder.dir.display(),
            positive.len() + negative.len(),
            file.images.len(),
            positive.len(),
            negative.len(),
            scored.failed.len()
        );
        (positive, negative, described)
    } else {
        let file = PairFile::read(&args.folder.dir)?;
        let scored = sentence_pairs::score(&file, &embedder, metric, DEFAULT_RBF_SIGMA)?;
        let described = format!(
            "{} ({} pairs: {} paraphrases, {} not)",
            args.folder.dir.display(),
            scored.positive.len() + scored.negative.len(),
            scored.positive.len(),
            scored.negative.len()
        );
        (scored.positive, scored.negative, described)
    };
    drop(embedder);
    // Thresholds are chosen on the pairs that could be scored; rates are measured on all.
    let (scored_positive, scored_negative) = (
        face_pairs::scored_only(&positive),
        face_pairs::scored_only(&negative),
    );
    let (positive, negative) = (&positive, &negative);
    let calibrated_on = args.calibrated_on.clone().unwrap_or(described);
    let point = |name: String, target_far: f64, threshold: f64| -> anyhow::Result<OperatingPoint> {
        let rates = far_frr(positive, negative, threshold)?;
        Ok(OperatingPoint {
            name,
            metric,
            target_far,
            threshold,
            measured_far: rates.far,
            measured_frr: rates.frr,
            calibrated_on: calibrated_on.clone(),
        })
    };
    let mut points = Vec::with_capacity(targets.len() + 1);
    if args.accuracy_default {
        let threshold = best_accuracy_threshold(&scored_positive, &scored_negative)?;
        let far = far_frr(positive, negative, threshold)?.far;
        if !(far > 0.0 && far < 1.0) {
            anyhow::bail!(
                "the best-accuracy threshold accepts {} of the non-paraphrases; it cannot be                  an operating point (a FAR in (0, 1))",
                percent(far)
            );
        }
        points.push(point("best accuracy".to_owned(), far, threshold)?);
        manifest.default_target_far = far;
    }
    for &target in targets {
        points.push(point(
            far_name(target),
            target,
            threshold_at_far(&scored_negative, target)?,
        )?);
    }
    let covered = points
        .iter()
        .any(|p| (p.target_far - manifest.default_target_far).abs() <= FAR_TOLERANCE);
    if !args.dry_run {
        if !covered {
            anyhow::bail!(
                "the model's default operating point (default_target_far = {}) would have no \
                 threshold; add it to --target-far or pass --accuracy-default",
                manifest.default_target_far
            );
        }
        write_points(&args.model, &manifest, &points)?;
    }
    if args.folder.json {
        client::print_json(&json!({
            "file": args.folder.dir.display().to_string(),
            "model": model_json(&args.model, &manifest),
            "metric": metric,
            "written": !args.dry_run,
            "calibrated_on": calibrated_on,
            "default_target_far": manifest.default_target_far,
            "operating_points": points,
        }));
        return Ok(());
    }
    println!(
        "twin calibrate {} {}: model {}, metric {metric}, {} pairs",
        if args.lfw { "--lfw" } else { "--pairs" },
        args.folder.dir.display(),
        manifest.name,
        positive.len() + negative.len()
    );
    println!(
        "  {:<16}{:>14}{:>12}{:>14}{:>14}",
        "operating point", "threshold", "accuracy", "measured FAR", "measured FRR"
    );
    for p in &points {
        let accuracy = classification(positive, negative, p.threshold)?.accuracy;
        println!(
            "  {:<16}{:>14.6}{:>12}{:>14}{:>14}",
            p.name,
            p.threshold,
            percent(accuracy),
            percent(p.measured_far),
            percent(p.measured_frr)
        );
    }
    if args.dry_run {
        println!(
            "dry run: {} not changed",
            args.model.join(MANIFEST_FILE).display()
        );
    } else {
        println!(
            "wrote {} operating points for {metric} to {} (default_target_far = {})",
            points.len(),
            args.model.join(MANIFEST_FILE).display(),
            manifest.default_target_far
        );
    }
    Ok(())
}

fn covers_default(targets: &[f64], manifest: &ModelManifest) -> bool {
    targets
        .iter()
        .any(|t| (t - manifest.default_target_far).abs() <= FAR_TOLERANCE)
}

/// The target FARs checked and de-duplicated, highest first.
fn targets(given: &[f64]) -> anyhow::Result<Vec<f64>> {
    let mut targets = Vec::with_capacity(given.len());
    for &t in given {
        if !(t > 0.0 && t < 1.0) {
            anyhow::bail!("--target-far {t} is not a rate in (0, 1); write 1 % as 0.01");
        }
        if !targets
            .iter()
            .any(|&u: &f64| (u - t).abs() <= FAR_TOLERANCE)
        {
            targets.push(t);
        }
    }
    if targets.is_empty() {
        anyhow::bail!("--target-far needs at least one rate, e.g. 0.01");
    }
    targets.sort_by(|a, b| b.total_cmp(a));
    Ok(targets)
}

/// Replaces the operating points of the points' metric (those of other metrics stay) and
/// writes the manifest.
fn write_points(
    dir: &Path,
    manifest: &ModelManifest,
    points: &[OperatingPoint],
) -> anyhow::Result<()> {
    let mut updated = manifest.clone();
    updated
        .operating_points
        .retain(|p| !points.iter().any(|q| q.metric == p.metric));
    updated
        .operating_points
        .splice(0..0, points.iter().cloned());
    write_manifest(dir, &updated)
}

/// Writes `updated` as the manifest of `dir` through a temporary file and reads it back the
/// way models are loaded; on any failure the previous manifest is put back.
fn write_manifest(dir: &Path, updated: &ModelManifest) -> anyhow::Result<()> {
    updated.validate().map_err(|message| {
        anyhow::anyhow!("the calibrated manifest would be invalid: {message}")
    })?;
    let path = dir.join(MANIFEST_FILE);
    let previous = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let temporary = dir.join(format!("{MANIFEST_FILE}.calibrate.tmp"));
    std::fs::write(&temporary, updated.to_toml())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| {
            format!(
                "cannot write {} (is the model folder writable?)",
                path.display()
            )
        })?;
    match ModelManifest::load(dir) {
        Ok(read) if &read == updated => Ok(()),
        outcome => {
            let _ = std::fs::write(&path, previous);
            let why = match outcome {
                Ok(_) => "it reads back differently".to_owned(),
                Err(error) => error.to_string(),
            };
            anyhow::bail!(
                "the rewritten {} did not load back ({why}); the previous manifest was restored",
                path.display()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_deduplicated_and_sorted() {
        assert_eq!(
            targets(&[0.01, 0.1, 0.001, 0.01]).expect("valid"),
            vec![0.1, 0.01, 0.001]
        );
        assert!(targets(&[1.0]).is_err());
        assert!(targets(&[0.0]).is_err());
        assert!(targets(&[f64::NAN]).is_err());
        assert!(targets(&[]).is_err());
    }

    #[test]
    fn only_the_calibrated_metric_is_replaced_and_the_rest_kept() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/signature-v1");
        let manifest = ModelManifest::load(&source).expect("shipped manifest");
        let dir = std::env::temp_dir().join(format!("twin-calibrate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut with_l2 = manifest.clone();
        with_l2.operating_points.push(OperatingPoint {
            name: "FAR 1 %".to_owned(),
            metric: twin_core::Metric::L2,
            target_far: 0.01,
            threshold: -0.5,
            measured_far: 0.01,
            measured_frr: 0.2,
            calibrated_on: "elsewhere".to_owned(),
        });
        std::fs::write(dir.join(MANIFEST_FILE), with_l2.to_toml()).expect("write");
        let new = OperatingPoint {
            name: far_name(0.01),
            metric: twin_core::Metric::Cosine,
            target_far: 0.01,
            threshold: 0.987_654_321_012_345_6,
            measured_far: 0.0,
            measured_frr: 0.5,
            calibrated_on: "test".to_owned(),
        };
        write_points(&dir, &with_l2, std::slice::from_ref(&new)).expect("written");
        let read = ModelManifest::load(&dir).expect("loads");
        assert_eq!(read.operating_points.len(), 2);
        assert_eq!(
            read.operating_points[0], new,
            "thresholds survive the round trip exactly"
        );
        assert_eq!(read.operating_points[1].metric, twin_core::Metric::L2);
        assert_eq!(read.id, manifest.id);
        assert_eq!(read.evaluation, manifest.evaluation);
        assert!(!dir.join(format!("{MANIFEST_FILE}.calibrate.tmp")).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
