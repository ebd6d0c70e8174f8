//! `twin eval DIR`: writer-independent evaluation of a model on a labelled folder, as
//! `training/twin_train/evaluate.py` evaluates it: EER and ROC AUC with skilled and random
//! forgeries apart, FAR/FRR at the model's calibrated operating points, and ROC / DET plots.
//! With `--references 1,3,5,10`, subject-level figures too: enrolment simulated as
//! `VerifySubject` decides, for each reference count and aggregation.
//! A readable table by default, one JSON document with `--json`; report.json, roc.svg and
//! det.svg in `--out` either way.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use twin_core::decision::OperatingPoint;
use twin_core::evaluation::{classification, far_frr, figures, roc, Figures, Rates};
use twin_core::manifest::ModelManifest;
use twin_core::metric::{Metric, DEFAULT_RBF_SIGMA};

use super::client;
use super::face_pairs::{self, LfwPairs};
use super::labelled::{load_model, model_json, FolderArgs, Listed, Scored};
use super::plot::{det_svg, percent, roc_svg, Plot, Series};
use super::sentence_pairs::{self, PairFile};
use super::subject_level::{self, EnrolmentArgs};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  twin synth --out demo-data --writers 20 --genuine 6 --forgeries 2\n  \
    twin eval demo-data                       # table; eval-report/{report.json,roc.svg,det.svg}\n  \
    twin eval data/test-writers --json --out test-report\n  \
    twin eval scans --forged-pattern forged/ --random-pairs 0\n  \
    twin eval data/test-writers --references 1,3,5,10   # subject level, as VerifySubject decides"
)]
pub struct EvalArgs {
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Model directory (model.onnx + manifest.toml), loaded as serving loads it.
    #[arg(long, default_value = "models/signature-v2")]
    pub model: PathBuf,
    /// Folder for report.json, roc.svg and det.svg (created if missing).
    #[arg(long, default_value = "eval-report")]
    pub out: PathBuf,
    /// Metric (cosine, dot, l2, squared_l2, l1, rbf); default: the model's native metric.
    /// The operating points calibrated for it are reported.
    #[arg(long)]
    pub metric: Option<Metric>,
    /// sigma of the rbf metric (> 0).
    #[arg(long, default_value_t = DEFAULT_RBF_SIGMA)]
    pub rbf_sigma: f64,
    #[command(flatten)]
    pub enrolment: EnrolmentArgs,
    /// The folder argument is LFW's `pairs.txt`: a face model through the ten-fold
    /// protocol (a threshold chosen on nine folds, measured on the tenth).
    #[arg(long, conflicts_with = "pairs")]
    pub lfw: bool,
    /// The images folder of --lfw (`<name>/<name>_<NNNN>.jpg`); default: `images` beside
    /// pairs.txt.
    #[arg(long, requires = "lfw")]
    pub lfw_images: Option<PathBuf>,
    /// With --lfw: also write every image's descriptor, `vectors.npy` (rows of NaN for
    /// images refused) and `vectors.json` (the image paths, in row order), to --out; for
    /// parity checks against dlib.
    #[arg(long, requires = "lfw")]
    pub vectors: bool,
}

/// The figures of one kind of negatives.
struct Kind {
    /// "skilled" or "random".
    name: &'static str,
    figures: Figures,
    /// Rates at the model's operating points, in the manifest's order.
    at: Vec<(OperatingPoint, Rates)>,
    series: Series,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.folder.pairs {
        return run_pairs(&args);
    }
    if args.lfw {
        return run_lfw(&args);
    }
    let started = Instant::now();
    let listed = Listed::read(&args.folder.for_model(&args.model))?;
    let embedder = load_model(&args.model, args.folder.config.as_deref())?;
    let manifest = embedder.manifest().clone();
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let scored = Scored::compute(&args.folder, listed, &embedder, metric, args.rbf_sigma)?;
    drop(embedder);
    if scored.positive.is_empty() {
        anyhow::bail!(
            "no genuine pairs in {}: every subject has fewer than two genuine images ({} genuine \
             of {} images; naming: {}); check the folder or --genuine-pattern / --forged-pattern",
            scored.dir.display(),
            scored.genuine,
            scored.images(),
            scored.naming.describe()
        );
    }
    let points: Vec<OperatingPoint> = manifest
        .operating_points
        .iter()
        .filter(|p| p.metric == metric)
        .cloned()
        .collect();
    let kinds = [
        ("skilled", "skilled forgeries", "#d62728", &scored.skilled),
        ("random", "random forgeries", "#1f77b4", &scored.random),
    ]
    .into_iter()
    .filter(|(_, _, _, negatives)| !negatives.is_empty())
    .map(|(name, label, color, negatives)| {
        kind(name, label, color, &scored.positive, negatives, &points)
    })
    .collect::<anyhow::Result<Vec<Kind>>>()?;
    if kinds.is_empty() {
        anyhow::bail!(
            "no forgery pairs in {}: no subject has a forgery and there is only one subject; \
             add forgeries (naming: {}) or more subjects",
            scored.dir.display(),
            scored.naming.describe()
        );
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create the report folder {}", args.out.display()))?;
    let files = Files::in_folder(&args.out);
    let plot = Plot {
        title: format!("{} on {}", manifest.name, folder_name(&scored.dir)),
        subtitle: format!(
            "metric {metric} · {} genuine pairs · {} images of {} subjects",
            scored.positive.len(),
            scored.images(),
            scored.subjects
        ),
        series: kinds.iter().map(|k| k.series.clone()).collect(),
    };
    write_plots(&files, plot, &kinds)?;

    let simulated = if args.enrolment.wanted() {
        subject_level::simulate_all(&scored, &args.enrolment, args.folder.seed)?
    } else {
        Vec::new()
    };
    let subject_points: Vec<_> = manifest
        .subject_operating_points
        .iter()
        .filter(|p| p.metric == metric)
        .cloned()
        .collect();
    let mut subject = Vec::new();
    for s in &simulated {
        subject.extend(subject_level::evaluate(s, &subject_points)?);
    }

    let mut report = report(&args, &manifest, metric, &scored, &kinds, &files, started);
    if !subject.is_empty() {
        report["subject_level"] = json!({
            "draws": args.enrolment.draws,
            "random_probes": args.enrolment.random_probes,
            "seed": args.folder.seed,
            "decisions": subject.iter().map(|e| e.json()).collect::<Vec<_>>(),
        });
    }
    let text = serde_json::to_string_pretty(&report).context("serializing the report")?;
    write(&files.report, &(text + "\n"))?;
    if args.folder.json {
        client::print_json(&report);
    } else {
        print!(
            "{}",
            table(&args, &manifest, metric, &scored, &kinds, &points, &files)
        );
        if !subject.is_empty() {
            println!();
            print!("{}", subject_level::table(&subject, &args.enrolment));
        }
    }
    Ok(())
}

/// `twin eval --pairs FILE`: a text model on sentence pairs: ROC AUC and EER, and
/// accuracy, F1, FAR and FRR at each of the model's operating points (the default one
/// marked), the thresholds as calibrated (`twin calibrate --pairs` on training pairs).
fn run_pairs(args: &EvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = PairFile::read(&args.folder.dir)?;
    let embedder = load_model(&args.model, args.folder.config.as_deref())?;
    let manifest = embedder.manifest().clone();
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let scored = sentence_pairs::score(&file, &embedder, metric, args.rbf_sigma)?;
    drop(embedder);
    let all = figures(&scored.positive, &scored.negative)?;
    let mut at = Vec::new();
    for point in manifest
        .operating_points
        .iter()
        .filter(|p| p.metric == metric)
    {
        let c = classification(&scored.positive, &scored.negative, point.threshold)?;
        let rates = far_frr(&scored.positive, &scored.negative, point.threshold)?;
        let default = (point.target_far - manifest.default_target_far).abs() <= 1e-9;
        at.push((point.clone(), c, rates, default));
    }
    let report = json!({
        "file": args.folder.dir.display().to_string(),
        "model": model_json(&args.model, &manifest),
        "metric": metric,
        "pairs": scored.positive.len() + scored.negative.len(),
        "paraphrases": scored.positive.len(),
        "non_paraphrases": scored.negative.len(),
        "sentences": scored.sentences,
        "truncated_sentences": scored.truncated,
        "auc": all.auc,
        "eer": all.eer,
        "eer_threshold": all.eer_threshold,
        "operating_points": at.iter().map(|(p, c, r, default)| json!({
            "name": p.name,
            "target_far": p.target_far,
            "threshold": p.threshold,
            "calibrated_on": p.calibrated_on,
            "default": default,
            "accuracy": c.accuracy,
            "f1": c.f1,
            "precision": c.precision,
            "recall": c.recall,
            "far": r.far,
            "frr": r.frr,
        })).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let files = write_report(&args.out, &report)?;
    let points: Vec<_> = at.iter().map(|(p, ..)| p.clone()).collect();
    let pairs = kind(
        "pairs",
        "paraphrase vs not",
        "#1f77b4",
        &scored.positive,
        &scored.negative,
        &points,
    )?;
    let plot = Plot {
        title: format!("{} on {}", manifest.name, folder_name(&args.folder.dir)),
        subtitle: format!(
            "metric {metric} · {} paraphrase pairs · {} other pairs",
            scored.positive.len(),
            scored.negative.len()
        ),
        series: vec![pairs.series.clone()],
    };
    write_plots(&files, plot, &[pairs])?;
    if args.folder.json {
        client::print_json(&report);
        return Ok(());
    }
    println!(
        "twin eval --pairs {}: model {}, metric {metric}",
        args.folder.dir.display(),
        manifest.name
    );
    println!(
        "  {} pairs ({} paraphrases, {} not), {} sentences ({} truncated at max_tokens)",
        scored.positive.len() + scored.negative.len(),
        scored.positive.len(),
        scored.negative.len(),
        scored.sentences,
        scored.truncated
    );
    println!(
        "  ROC AUC {:.4}   EER {} (threshold {:.6})",
        all.auc,
        percent(all.eer),
        all.eer_threshold
    );
    println!();
    println!(
        "  {:<22}{:>11}{:>10}{:>9}{:>11}{:>9}{:>9}{:>9}",
        "operating point", "threshold", "accuracy", "F1", "precision", "recall", "FAR", "FRR"
    );
    for (p, c, r, default) in &at {
        let name = if *default {
            format!("{} *", p.name)
        } else {
            p.name.clone()
        };
        println!(
            "  {:<22}{:>11.6}{:>10}{:>9}{:>11}{:>9}{:>9}{:>9}",
            name,
            p.threshold,
            percent(c.accuracy),
            percent(c.f1),
            percent(c.precision),
            percent(c.recall),
            percent(r.far),
            percent(r.frr)
        );
    }
    if at.is_empty() {
        println!("  (the model has no {metric} operating points: run `twin calibrate --pairs`)");
    } else {
        println!(
            "  * the default operating point; thresholds from the manifest, calibrated on: {}",
            at[0].0.calibrated_on
        );
    }
    println!("  report: {}", files.report.display());
    Ok(())
}

/// Mean and (population) standard deviation.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn run_lfw(args: &EvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let pairs_file = &args.folder.dir;
    let file = LfwPairs::read(pairs_file)?;
    let images = match &args.lfw_images {
        Some(dir) => dir.clone(),
        None => pairs_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("images"),
    };
    let embedder = load_model(&args.model, args.folder.config.as_deref())?;
    let manifest = embedder.manifest().clone();
    let metric = args.metric.unwrap_or(manifest.native_metric);
    let scored = face_pairs::score(&file, &images, &embedder, metric, args.rbf_sigma)?;
    drop(embedder);
    if args.vectors {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let dim = manifest.output.embedding_size as usize;
        let mut data = Vec::with_capacity(scored.vectors.len() * dim);
        for v in &scored.vectors {
            match v {
                Some(v) => data.extend_from_slice(v),
                None => data.extend(std::iter::repeat_n(f32::NAN, dim)),
            }
        }
        let npy = args.out.join("vectors.npy");
        let out = std::fs::File::create(&npy)
            .with_context(|| format!("cannot write {}", npy.display()))?;
        twin_core::npy::write_f32(
            std::io::BufWriter::new(out),
            &[scored.vectors.len(), dim],
            &data,
        )
        .with_context(|| format!("cannot write {}", npy.display()))?;
        let names: Vec<String> = file
            .images
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write(
            &args.out.join("vectors.json"),
            &serde_json::to_string(&names).context("serializing image names")?,
        )?;
    }
    let best = face_pairs::folds(&file, &scored.scores, None)?;
    let at_far = face_pairs::folds(&file, &scored.scores, Some(0.001))?;
    let accuracies: Vec<f64> = best.iter().map(|f| f.accuracy).collect();
    let (accuracy, accuracy_std) = mean_std(&accuracies);
    let tars: Vec<f64> = at_far.iter().map(|f| 1.0 - f.frr).collect();
    let (tar, tar_std) = mean_std(&tars);
    let (positive, negative) = face_pairs::all(&file, &scored.scores);
    let pooled = figures(
        &face_pairs::scored_only(&positive),
        &face_pairs::scored_only(&negative),
    )?;
    let mut at = Vec::new();
    for point in manifest
        .operating_points
        .iter()
        .filter(|p| p.metric == metric)
    {
        let rates = far_frr(&positive, &negative, point.threshold)?;
        let c = classification(&positive, &negative, point.threshold)?;
        at.push((point.clone(), c, rates));
    }
    let fold_json = |folds: &[face_pairs::Fold]| {
        folds
            .iter()
            .map(|f| json!({"threshold": f.threshold, "accuracy": f.accuracy, "far": f.far, "frr": f.frr}))
            .collect::<Vec<_>>()
    };
    let report = json!({
        "file": pairs_file.display().to_string(),
        "images_dir": images.display().to_string(),
        "model": model_json(&args.model, &manifest),
        "metric": metric,
        "pairs": file.pairs.len(),
        "images": file.images.len(),
        "images_refused": scored.failed.iter().map(|(p, why)| json!({"image": p.display().to_string(), "reason": why})).collect::<Vec<_>>(),
        "ten_fold_accuracy": accuracy,
        "ten_fold_accuracy_std": accuracy_std,
        "folds_best_accuracy": fold_json(&best),
        "ten_fold_tar_at_far_0_1": tar,
        "ten_fold_tar_at_far_0_1_std": tar_std,
        "folds_far_0_1": fold_json(&at_far),
        "auc": pooled.auc,
        "eer": pooled.eer,
        "operating_points": at.iter().map(|(p, c, r)| json!({
            "name": p.name, "threshold": p.threshold, "accuracy": c.accuracy,
            "far": r.far, "frr": r.frr, "calibrated_on": p.calibrated_on,
        })).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    let files = write_report(&args.out, &report)?;
    // A pair with a face not found counts as a non-match (its score is the lowest).
    let points: Vec<_> = at.iter().map(|(p, ..)| p.clone()).collect();
    let pairs = kind(
        "pairs",
        "same person vs not",
        "#1f77b4",
        &positive,
        &negative,
        &points,
    )?;
    let plot = Plot {
        title: format!("{} on LFW {}", manifest.name, folder_name(pairs_file)),
        subtitle: format!(
            "metric {metric} · {} matched pairs · {} mismatched pairs",
            positive.len(),
            negative.len()
        ),
        series: vec![pairs.series.clone()],
    };
    write_plots(&files, plot, &[pairs])?;
    if args.folder.json {
        client::print_json(&report);
        return Ok(());
    }
    println!(
        "twin eval --lfw {}: model {}, metric {metric}",
        pairs_file.display(),
        manifest.name
    );
    println!(
        "  {} pairs, {} images ({} refused: no usable face; their pairs count as rejected)",
        file.pairs.len(),
        file.images.len(),
        scored.failed.len()
    );
    println!(
        "  ten-fold accuracy {:.2} % ± {:.2}   TAR at FAR 0.1 % {:.2} % ± {:.2}   (pooled: AUC {:.4}, EER {})",
        100.0 * accuracy,
        100.0 * accuracy_std,
        100.0 * tar,
        100.0 * tar_std,
        pooled.auc,
        percent(pooled.eer)
    );
    println!(
        "  {:<6}{:>12}{:>11}{:>12}{:>10}",
        "fold", "threshold", "accuracy", "threshold", "TAR@0.1%"
    );
    for (k, (b, f)) in best.iter().zip(&at_far).enumerate() {
        println!(
            "  {:<6}{:>12.6}{:>11}{:>12.6}{:>10}",
            k + 1,
            b.threshold,
            percent(b.accuracy),
            f.threshold,
            percent(1.0 - f.frr)
        );
    }
    for (p, c, r) in &at {
        println!(
            "  at {:<18} threshold {:.6}: accuracy {}  FAR {}  FRR {}",
            p.name,
            p.threshold,
            percent(c.accuracy),
            percent(r.far),
            percent(r.frr)
        );
    }
    for (path, why) in scored.failed.iter().take(5) {
        println!("  refused {}: {why}", path.display());
    }
    println!("  report: {}", files.report.display());
    Ok(())
}

fn kind(
    name: &'static str,
    label: &str,
    color: &'static str,
    positive: &[f64],
    negative: &[f64],
    points: &[OperatingPoint],
) -> anyhow::Result<Kind> {
    let context = || format!("{name} forgeries");
    let figures = figures(positive, negative).with_context(context)?;
    let curve = roc(positive, negative).with_context(context)?;
    let at = points
        .iter()
        .map(|p| Ok((p.clone(), far_frr(positive, negative, p.threshold)?)))
        .collect::<Result<Vec<_>, twin_core::evaluation::EvaluationError>>()
        .with_context(context)?;
    Ok(Kind {
        name,
        series: Series {
            label: format!(
                "{label}: EER {}, AUC {:.3}",
                percent(figures.eer),
                figures.auc
            ),
            color,
            far: curve.far,
            frr: curve.frr,
            eer: figures.eer,
            operating_points: at.iter().map(|(_, r)| (r.far, r.frr)).collect(),
        },
        figures,
        at,
    })
}

/// Where the report files go.
struct Files {
    report: PathBuf,
    roc: PathBuf,
    det: PathBuf,
}

impl Files {
    fn in_folder(dir: &Path) -> Self {
        Self {
            report: dir.join("report.json"),
            roc: dir.join("roc.svg"),
            det: dir.join("det.svg"),
        }
    }
}

/// Creates the report folder and writes `report.json` into it, pretty-printed.
/// roc.svg and det.svg of `plot` (whose series are the kinds'), the DET's axes down to
/// the smallest rate the data can measure.
fn write_plots(files: &Files, plot: Plot, kinds: &[Kind]) -> anyhow::Result<()> {
    let smallest_rate = kinds
        .iter()
        .map(|k| 1.0 / k.figures.negatives.min(k.figures.positives).max(1) as f64)
        .fold(1.0, f64::min);
    let mut roc_plot = plot.clone();
    roc_plot.title = format!("ROC: {}", plot.title);
    let mut det_plot = plot;
    det_plot.title = format!("DET: {}", det_plot.title);
    write(&files.roc, &roc_svg(&roc_plot))?;
    write(&files.det, &det_svg(&det_plot, smallest_rate))
}

fn write_report(out: &Path, report: &serde_json::Value) -> anyhow::Result<Files> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the report folder {}", out.display()))?;
    let files = Files::in_folder(out);
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    write(&files.report, &(text + "\n"))?;
    Ok(files)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The folder's own name for titles (`data/BHSig260-Bengali` → `BHSig260-Bengali`).
fn folder_name(dir: &Path) -> String {
    let full = dir.display().to_string();
    match dir.file_name() {
        Some(name) if full.len() > 40 => name.to_string_lossy().into_owned(),
        _ => full,
    }
}

fn report(
    args: &EvalArgs,
    manifest: &ModelManifest,
    metric: Metric,
    scored: &Scored,
    kinds: &[Kind],
    files: &Files,
    started: Instant,
) -> serde_json::Value {
    let mut report = scored.json();
    report["model"] = model_json(&args.model, manifest);
    report["metric"] = json!(metric);
    if metric == Metric::Rbf {
        report["rbf_sigma"] = json!(args.rbf_sigma);
    }
    for name in ["skilled", "random"] {
        report[name] = kinds
            .iter()
            .find(|k| k.name == name)
            .map_or(serde_json::Value::Null, |k| {
                json!({
                    "eer": k.figures.eer,
                    "eer_threshold": k.figures.eer_threshold,
                    "auc": k.figures.auc,
                    "positives": k.figures.positives,
                    "negatives": k.figures.negatives,
                    "operating_points": k.at.iter().map(|(p, r)| json!({
                        "name": p.name,
                        "target_far": p.target_far,
                        "threshold": p.threshold,
                        "calibrated_on": p.calibrated_on,
                        "far": r.far,
                        "frr": r.frr,
                    })).collect::<Vec<_>>(),
                })
            });
    }
    report["files"] = json!({
        "report": files.report.display().to_string(),
        "roc": files.roc.display().to_string(),
        "det": files.det.display().to_string(),
    });
    report["seconds"] = json!(started.elapsed().as_secs_f64());
    report
}

fn table(
    args: &EvalArgs,
    manifest: &ModelManifest,
    metric: Metric,
    scored: &Scored,
    kinds: &[Kind],
    points: &[OperatingPoint],
    files: &Files,
) -> String {
    let short_id: String = manifest.id.chars().take(12).collect();
    let mut out = format!(
        "twin eval {}: model {} ({short_id}{}), metric {metric}\n",
        scored.dir.display(),
        manifest.name,
        if manifest.trained { "" } else { ", UNTRAINED" }
    );
    out.push_str(&scored.summary());
    out.push('\n');
    let cell = |name: &str, f: &dyn Fn(&Kind) -> String| {
        kinds
            .iter()
            .find(|k| k.name == name)
            .map_or_else(|| "-".to_owned(), f)
    };
    out.push_str(&format!(
        "  {:<22}{:>12}{:>12}\n",
        "negatives", "skilled", "random"
    ));
    let figure_row = |label: &str, f: fn(&Figures) -> String| {
        let figure = |k: &Kind| f(&k.figures);
        format!(
            "  {label:<22}{:>12}{:>12}\n",
            cell("skilled", &figure),
            cell("random", &figure)
        )
    };
    out.push_str(&figure_row("EER", |f| percent(f.eer)));
    out.push_str(&figure_row("EER threshold", |f| {
        format!("{:.4}", f.eer_threshold)
    }));
    out.push_str(&figure_row("ROC AUC", |f| format!("{:.4}", f.auc)));
    out.push('\n');
    if points.is_empty() {
        let hint = if metric == manifest.native_metric {
            format!(
                "calibrate some with `twin calibrate DIR --model {}`",
                args.model.display()
            )
        } else {
            format!(
                "`twin calibrate` calibrates the native metric ({})",
                manifest.native_metric
            )
        };
        out.push_str(&format!(
            "  no FAR/FRR at operating points: the model has none calibrated for {metric}; {hint}\n"
        ));
    } else {
        out.push_str(&format!(
            "  {:<22}{:>12}{:>12}{:>14}{:>14}\n",
            "operating point", "threshold", "FRR", "FAR skilled", "FAR random"
        ));
        for (i, p) in points.iter().enumerate() {
            let frr = kinds
                .first()
                .map_or_else(|| "-".to_owned(), |k| percent(k.at[i].1.frr));
            let far = |name: &str| cell(name, &|k: &Kind| percent(k.at[i].1.far));
            out.push_str(&format!(
                "  {:<22}{:>12.4}{:>12}{:>14}{:>14}\n",
                p.name,
                p.threshold,
                frr,
                far("skilled"),
                far("random")
            ));
        }
        if let Some(on) = points
            .first()
            .map(|p| &p.calibrated_on)
            .filter(|on| !on.is_empty())
        {
            out.push_str(&format!("  (thresholds calibrated on {on})\n"));
        }
    }
    out.push('\n');
    out.push_str(&format!("  report   {}\n", files.report.display()));
    out.push_str(&format!(
        "  plots    {}, {}\n",
        files.roc.display(),
        files.det.display()
    ));
    out
}
