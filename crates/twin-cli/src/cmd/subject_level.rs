//! Subject-level figures for `twin eval --references` and `twin calibrate --references`:
//! enrolment simulated on a labelled folder (`twin_core::evaluation::enrolment`) for each
//! reference count and aggregation, scored exactly as `VerifySubject` scores a probe.

use anyhow::Context;
use serde_json::json;
use twin_core::decision::{subject_point_name, Aggregation, SubjectOperatingPoint};
use twin_core::evaluation::enrolment::{simulate, Enrolment, SubjectScores};
use twin_core::evaluation::{far_frr, figures, threshold_for_mean_far, EvaluationError, Figures};
use twin_core::metric::score;

use twin_core::error::CoreError;

use super::labelled::{collection_of, PairScorer, Scored};
use super::plot::percent;

/// How enrolment is simulated; flattened into `eval` and `calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EnrolmentArgs {
    /// Simulate enrolment with this many references per subject (comma-separated, e.g.
    /// 1,3,5,10): subject-level figures in `eval`, subject-level operating points in
    /// `calibrate`. Subjects need more genuine images than the count.
    #[arg(long, value_delimiter = ',', value_name = "COUNTS")]
    pub references: Vec<usize>,
    /// Aggregations simulated: best, mean, adapted, k_of_n:K (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "best,mean,adapted")]
    pub aggregations: Vec<Aggregation>,
    /// Reference sets drawn per subject (with --seed); every draw judges every probe again.
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// Random probes (other subjects' genuine images) per subject and draw; 0 keeps all.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub random_probes: usize,
    /// The folder holds several collections, told by the subject's name up to its first `-`
    /// (`bhsig-051`, `icdar-013`): each is paired or simulated on its own (random pairs and
    /// probes from the same collection) and each threshold holds the *mean* of the
    /// collections' FARs, so a large collection cannot hide a small one's false accepts.
    #[arg(long)]
    pub per_collection: bool,
}

impl EnrolmentArgs {
    pub fn wanted(&self) -> bool {
        !self.references.is_empty()
    }

    /// The counts checked, de-duplicated and ascending.
    fn counts(&self) -> anyhow::Result<Vec<usize>> {
        let mut counts = self.references.clone();
        if counts.contains(&0) {
            anyhow::bail!("--references counts must be at least 1");
        }
        counts.sort_unstable();
        counts.dedup();
        Ok(counts)
    }
}

/// One simulated enrolment: an aggregation over a reference count.
#[derive(Debug)]
pub struct Simulated {
    pub aggregation: Aggregation,
    pub references: usize,
    /// Reference sets drawn per subject.
    pub draws: usize,
    /// Every collection's scores together.
    pub scores: SubjectScores,
    /// Each collection's own (one entry, named "", without --per-collection).
    pub collections: Vec<(String, SubjectScores)>,
}

impl Simulated {
    /// "best of 5".
    pub fn label(&self) -> String {
        self.aggregation.describe(self.references)
    }
}

/// Every (reference count, aggregation) of `args` simulated on `scored`'s images.
pub fn simulate_all(
    scored: &Scored,
    args: &EnrolmentArgs,
    seed: u64,
) -> anyhow::Result<Vec<Simulated>> {
    let counts = args.counts()?;
    // Sample indices per collection, so each is simulated on its own.
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, (subject, _)) in scored.samples.iter().enumerate() {
        let name = if args.per_collection {
            collection_of(subject)
        } else {
            ""
        };
        groups.entry(name).or_default().push(i);
    }
    let mut out = Vec::new();
    for &references in &counts {
        for &aggregation in &args.aggregations {
            if references < aggregation.min_references() {
                continue; // e.g. 2 of 1, or adapted with nothing to adapt to
            }
            let plan = Enrolment {
                references,
                draws: args.draws,
                random_probes: args.random_probes,
                seed,
            };
            let mut collections = Vec::with_capacity(groups.len());
            let mut pooled = SubjectScores::default();
            for (&name, members) in &groups {
                let samples: Vec<_> = members.iter().map(|&i| scored.samples[i].clone()).collect();
                let vectors: Vec<Vec<f32>> =
                    members.iter().map(|&i| scored.vectors[i].clone()).collect();
                let table = ScoreTable::new(&scored.scorer, &vectors)?;
                let score_of = |a: usize, b: usize| table.score(&vectors, a, b);
                let scores = simulate(&samples, score_of, aggregation, plan)
                    .with_context(|| format!("simulating {}", aggregation.describe(references)))?;
                if scores.subjects == 0 {
                    anyhow::bail!(
                        "no subject {}under {} has more than {references} genuine images, so \
                         none can be enrolled with {references} references and still be probed; \
                         lower --references",
                        if name.is_empty() {
                            String::new()
                        } else {
                            format!("of collection {name:?} ")
                        },
                        scored.dir.display()
                    );
                }
                pooled.genuine.extend_from_slice(&scores.genuine);
                pooled.skilled.extend_from_slice(&scores.skilled);
                pooled.random.extend_from_slice(&scores.random);
                pooled.subjects += scores.subjects;
                pooled.too_few += scores.too_few;
                collections.push((name.to_owned(), scores));
            }
            out.push(Simulated {
                aggregation,
                references,
                draws: args.draws,
                scores: pooled,
                collections,
            });
        }
    }
    Ok(out)
}

/// Pair scores for the simulation: a vector formula computed on demand, or, for the joint
/// head (one ONNX run per call), every pair of the collection scored up front in large runs.
enum ScoreTable {
    Formula {
        metric: twin_core::Metric,
        rbf_sigma: f64,
    },
    Joint {
        count: usize,
        scores: Vec<f64>,
    },
}

impl ScoreTable {
    fn new(scorer: &PairScorer, vectors: &[Vec<f32>]) -> anyhow::Result<Self> {
        match scorer {
            PairScorer::Formula { metric, rbf_sigma } => Ok(Self::Formula {
                metric: *metric,
                rbf_sigma: *rbf_sigma,
            }),
            PairScorer::Joint(_) => {
                let count = vectors.len();
                let pairs: Vec<[usize; 2]> = (0..count)
                    .flat_map(|a| (a + 1..count).map(move |b| [a, b]))
                    .collect();
                let upper = scorer.score(vectors, &pairs)?;
                let mut scores = vec![0.0; count * count];
                for ([a, b], s) in pairs.into_iter().zip(upper) {
                    // The head sees |a - b| and a * b, so it is symmetric by construction.
                    scores[a * count + b] = s;
                    scores[b * count + a] = s;
                }
                Ok(Self::Joint { count, scores })
            }
        }
    }

    fn score(&self, vectors: &[Vec<f32>], a: usize, b: usize) -> Result<f64, CoreError> {
        match self {
            Self::Formula { metric, rbf_sigma } => {
                score(*metric, &vectors[a], &vectors[b], *rbf_sigma)
            }
            Self::Joint { count, scores } => Ok(scores[a * count + b]),
        }
    }
}

/// The negatives a subject-level FAR is held on: skilled forgeries, or other subjects'
/// genuine samples (faces, characters: data without forgeries).
fn held_negatives(scores: &SubjectScores, on_random: bool) -> &[f64] {
    if on_random {
        &scores.random
    } else {
        &scores.skilled
    }
}

/// The subject-level operating points of one simulation, one per target FAR, calibrated on
/// its skilled forgeries.
pub fn calibrate(
    simulated: &Simulated,
    targets: &[f64],
    calibrated_on: &str,
    metric: twin_core::Metric,
    on_random: bool,
) -> anyhow::Result<Vec<SubjectOperatingPoint>> {
    let what = if on_random {
        "random-forgery"
    } else {
        "skilled-forgery"
    };
    let parts: Vec<&SubjectScores> = simulated.collections.iter().map(|(_, s)| s).collect();
    if let Some((name, _)) = simulated
        .collections
        .iter()
        .find(|(_, c)| held_negatives(c, on_random).is_empty() || c.genuine.is_empty())
    {
        anyhow::bail!(
            "cannot calibrate {}: {} has no {what} or no genuine probes{}",
            simulated.label(),
            if name.is_empty() {
                "the folder".to_owned()
            } else {
                format!("collection {name:?}")
            },
            if on_random {
                " (random probes need two or more subjects)"
            } else {
                " (subjects need forgeries; --negatives random calibrates on other subjects)"
            }
        );
    }
    let s = &simulated.scores;
    // Rates are the mean of the collections' (with one collection, its own).
    let mean = |rate: &dyn Fn(&SubjectScores) -> Result<f64, EvaluationError>| {
        parts
            .iter()
            .map(|c| rate(c))
            .sum::<Result<f64, EvaluationError>>()
            .map(|sum| sum / parts.len() as f64)
    };
    let held: Vec<&[f64]> = parts.iter().map(|c| held_negatives(c, on_random)).collect();
    targets
        .iter()
        .map(|&target| {
            let threshold = threshold_for_mean_far(&held, target)?;
            let far =
                mean(&|c| Ok(far_frr(&c.genuine, held_negatives(c, on_random), threshold)?.far))?;
            let frr =
                mean(&|c| Ok(far_frr(&c.genuine, held_negatives(c, on_random), threshold)?.frr))?;
            let random_far = mean(&|c| {
                Ok(if c.random.is_empty() {
                    0.0
                } else {
                    far_frr(&c.genuine, &c.random, threshold)?.far
                })
            })?;
            Ok(SubjectOperatingPoint {
                name: subject_point_name(target, simulated.aggregation, simulated.references),
                metric,
                aggregation: simulated.aggregation,
                references: simulated.references as u32,
                target_far: target,
                threshold,
                measured_far: far,
                measured_frr: frr,
                measured_far_random: random_far,
                calibrated_on: format!(
                    "{calibrated_on}; enrolment simulated with {} references, {} subjects × {} \
                     draws{}",
                    simulated.references,
                    s.subjects,
                    simulated.draws,
                    if parts.len() > 1 {
                        ", mean FAR of the collections"
                    } else {
                        ""
                    }
                ),
            })
        })
        .collect::<Result<Vec<_>, twin_core::evaluation::EvaluationError>>()
        .with_context(|| format!("calibrating {}", simulated.label()))
}

/// The figures of one simulation (of one collection under --per-collection), with FAR/FRR
/// at the manifest's matching points.
pub struct Evaluated<'a> {
    pub simulated: &'a Simulated,
    /// The collection ("" for the whole folder).
    pub collection: &'a str,
    pub scores: &'a SubjectScores,
    pub skilled: Option<Figures>,
    pub random: Option<Figures>,
    /// (point, FRR, skilled FAR, random FAR) at each subject point of the same metric,
    /// aggregation and reference count.
    pub at: Vec<(SubjectOperatingPoint, f64, Option<f64>, Option<f64>)>,
}

/// The figures of `simulated`: one entry per collection.
pub fn evaluate<'a>(
    simulated: &'a Simulated,
    points: &[SubjectOperatingPoint],
) -> anyhow::Result<Vec<Evaluated<'a>>> {
    simulated
        .collections
        .iter()
        .map(|(collection, s)| {
            let figures_against = |negative: &[f64]| -> anyhow::Result<Option<Figures>> {
                if negative.is_empty() || s.genuine.is_empty() {
                    return Ok(None);
                }
                Ok(Some(figures(&s.genuine, negative)?))
            };
            let rate = |negative: &[f64], threshold: f64| -> anyhow::Result<Option<f64>> {
                if negative.is_empty() || s.genuine.is_empty() {
                    return Ok(None);
                }
                Ok(Some(far_frr(&s.genuine, negative, threshold)?.far))
            };
            let mut at = Vec::new();
            for p in points.iter().filter(|p| {
                p.aggregation == simulated.aggregation
                    && p.references as usize == simulated.references
            }) {
                let rejected = s
                    .genuine
                    .iter()
                    .filter(|&&g| !twin_core::decision::decide(g, p.threshold))
                    .count();
                at.push((
                    p.clone(),
                    rejected as f64 / s.genuine.len().max(1) as f64,
                    rate(&s.skilled, p.threshold)?,
                    rate(&s.random, p.threshold)?,
                ));
            }
            Ok(Evaluated {
                simulated,
                collection,
                scores: s,
                skilled: figures_against(&s.skilled).context("skilled forgeries")?,
                random: figures_against(&s.random).context("random forgeries")?,
                at,
            })
        })
        .collect()
}

impl Evaluated<'_> {
    pub fn json(&self) -> serde_json::Value {
        let s = self.scores;
        let fig = |f: &Option<Figures>| {
            f.map_or(
                serde_json::Value::Null,
                |f| json!({"eer": f.eer, "eer_threshold": f.eer_threshold, "auc": f.auc}),
            )
        };
        json!({
            "collection": self.collection,
            "aggregation": self.simulated.aggregation,
            "references": self.simulated.references,
            "subjects": s.subjects,
            "subjects_with_too_few_genuine": s.too_few,
            "probes": {"genuine": s.genuine.len(), "skilled": s.skilled.len(), "random": s.random.len()},
            "skilled": fig(&self.skilled),
            "random": fig(&self.random),
            "operating_points": self.at.iter().map(|(p, frr, far, far_random)| json!({
                "name": p.name,
                "target_far": p.target_far,
                "threshold": p.threshold,
                "frr": frr,
                "far_skilled": far,
                "far_random": far_random,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The readable table of subject-level figures.
pub fn table(evaluated: &[Evaluated<'_>], plan: &EnrolmentArgs) -> String {
    let mut out = format!(
        "  subject level ({} draws of references per subject, {} random probes per draw)\n",
        plan.draws,
        if plan.random_probes == 0 {
            "all".to_owned()
        } else {
            plan.random_probes.to_string()
        }
    );
    out.push_str(&format!(
        "  {:<22}{:>10}{:>12}{:>12}   {:<30}{:>9}{:>13}{:>12}\n",
        "decision",
        "subjects",
        "EER skilled",
        "EER random",
        "operating point",
        "FRR",
        "FAR skilled",
        "FAR random"
    ));
    let or_dash = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), percent);
    for e in evaluated {
        let label = if e.collection.is_empty() {
            e.simulated.label()
        } else {
            format!("{} {}", e.collection, e.simulated.label())
        };
        let head = format!(
            "  {:<22}{:>10}{:>12}{:>12}",
            label,
            e.scores.subjects,
            or_dash(e.skilled.map(|f| f.eer)),
            or_dash(e.random.map(|f| f.eer)),
        );
        if e.at.is_empty() {
            out.push_str(&format!("{head}   (no calibrated point)\n"));
        }
        for (i, (p, frr, far, far_random)) in e.at.iter().enumerate() {
            let lead = if i == 0 {
                head.clone()
            } else {
                " ".repeat(head.chars().count())
            };
            out.push_str(&format!(
                "{lead}   {:<30}{:>9}{:>13}{:>12}\n",
                p.name,
                percent(*frr),
                or_dash(*far),
                or_dash(*far_random)
            ));
        }
    }
    out
}
