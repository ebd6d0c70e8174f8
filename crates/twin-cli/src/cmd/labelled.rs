//! Labelled folders, shared by `twin eval` and `twin calibrate`: DIR/<subject>/<image>, each
//! image genuine or forged by its name; every image embedded once by the model exactly as
//! serving does (`Embedder::embed_image`: the manifest's preprocessing, then the
//! micro-batcher); verification pairs built as training builds them
//! (`twin_core::evaluation::pairs`) and scored with `twin_core::metric`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use serde_json::json;
use twin_core::evaluation::pairs::{build_pairs, RandomPairs, SampleKind};
use twin_core::manifest::ModelManifest;
use twin_core::metric::{score, Metric};
use twin_embed::{EmbedError, Embedder};

use super::client;
use super::enqueue::{progress_bar, relative, walk, IMAGE_EXTENSIONS};

/// Name markers recognised when no pattern is given: BHSig260 (`B-S-1-G-01.tif`,
/// `B-S-1-F-01.tif`, and `twin synth`'s `w0001-G-01.png`) and CEDAR (`original_1_1.png`,
/// `forgeries_1_1.png`).
const DEFAULT_GENUINE: &[&str] = &["-G-", "original_"];
const DEFAULT_FORGED: &[&str] = &["-F-", "forgeries_"];

/// The folder and how its files are labelled; flattened into `eval` and `calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct FolderArgs {
    /// Labelled folder: DIR/<subject>/<image> (png, jpg, jpeg, tif, tiff, bmp; subfolders
    /// below a subject belong to it). Genuine or forged is read from the file's path below
    /// its subject folder: by default BHSig names (`-G-` / `-F-`) and CEDAR names
    /// (`original_` / `forgeries_`).
    pub dir: PathBuf,
    /// Files whose path below the subject folder contains SUBSTRING are forged (repeat for
    /// several); without --genuine-pattern, every other file is genuine.
    #[arg(long, value_name = "SUBSTRING", allow_hyphen_values = true)]
    pub forged_pattern: Vec<String>,
    /// Files whose path below the subject folder contains SUBSTRING are genuine (repeat for
    /// several); without --forged-pattern, every other file is forged.
    #[arg(long, value_name = "SUBSTRING", allow_hyphen_values = true)]
    pub genuine_pattern: Vec<String>,
    /// Random-forgery pairs (a subject's genuine vs other subjects' genuine) grow with the
    /// square of the folder: keep at most N, sampled with --seed; 0 keeps all.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub random_pairs: usize,
    /// Only these subjects (first-level folder names): a comma-separated list of names and
    /// numeric ranges, e.g. `061-100` (folders whose name is a number in it) or `alice,bob`.
    /// How a writer split of one collection is evaluated without copying it.
    #[arg(long, value_name = "LIST")]
    pub subjects: Option<String>,
    /// Seed of the random-pair sample (the same seed picks the same pairs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Configuration file; its embed section applies as in serving (TWIN_EMBED__* override).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON document instead of a readable table.
    #[arg(long)]
    pub json: bool,
    /// DIR is a sentence-pair file for a text model (MRPC's format: `Quality<TAB>#1 ID<TAB>
    /// #2 ID<TAB>#1 String<TAB>#2 String`, Quality 1 = paraphrase), not a folder of images.
    #[arg(long)]
    pub pairs: bool,
}

/// The pattern no file name holds: with it as the only forged pattern, every file is
/// genuine (a folder of faces by person has no forgeries).
const NO_FORGERIES: &str = "\0";

impl FolderArgs {
    pub fn naming(&self) -> Naming {
        Naming::new(&self.genuine_pattern, &self.forged_pattern)
    }

    /// These arguments for `model`: a face model's folder (`DIR/<person>/<photos>`) has no
    /// forgeries, so without patterns every photo is genuine and other people's photos are
    /// the negatives.
    pub fn for_model(&self, model: &Path) -> Self {
        let face = twin_core::manifest::ModelManifest::load(model).is_ok_and(|m| m.face.is_some());
        let mut args = self.clone();
        if face && self.genuine_pattern.is_empty() && self.forged_pattern.is_empty() {
            args.forged_pattern = vec![NO_FORGERIES.to_owned()];
        }
        args
    }

    pub fn random(&self) -> RandomPairs {
        match self.random_pairs {
            0 => RandomPairs::All,
            cap => RandomPairs::AtMost {
                cap,
                seed: self.seed,
            },
        }
    }
}

/// How a file's path below its subject folder tells genuine from forged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    genuine: Vec<String>,
    forged: Vec<String>,
}

impl Naming {
    /// Patterns as given on the command line; none at all means the BHSig/CEDAR defaults.
    pub fn new(genuine: &[String], forged: &[String]) -> Self {
        if genuine.is_empty() && forged.is_empty() {
            let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
            return Self {
                genuine: owned(DEFAULT_GENUINE),
                forged: owned(DEFAULT_FORGED),
            };
        }
        Self {
            genuine: genuine.to_vec(),
            forged: forged.to_vec(),
        }
    }

    /// Genuine or forged; an error says why the file cannot be labelled.
    pub fn kind(&self, inner: &str) -> Result<SampleKind, String> {
        let matches = |patterns: &[String]| patterns.iter().any(|p| inner.contains(p.as_str()));
        // An empty side means "everything the other side does not claim".
        let forged = if self.forged.is_empty() {
            !matches(&self.genuine)
        } else {
            matches(&self.forged)
        };
        let genuine = if self.genuine.is_empty() {
            !forged
        } else {
            matches(&self.genuine)
        };
        match (genuine, forged) {
            (true, false) => Ok(SampleKind::Genuine),
            (false, true) => Ok(SampleKind::Forged),
            (true, true) => Err(format!(
                "the name matches both a genuine ({}) and a forged ({}) pattern",
                list(&self.genuine),
                list(&self.forged)
            )),
            (false, false) => Err(format!(
                "cannot tell genuine from forged: the name contains none of {} (genuine) or {} \
                 (forged); pass --genuine-pattern / --forged-pattern",
                list(&self.genuine),
                list(&self.forged)
            )),
        }
    }

    /// For reports: `genuine "-G-", "original_"; forged "-F-", "forgeries_"`.
    pub fn describe(&self) -> String {
        if self.genuine.is_empty() && self.forged == [NO_FORGERIES] {
            return "every file genuine (photos by person: other people's are the negatives)"
                .to_owned();
        }
        format!(
            "genuine {}; forged {}",
            list(&self.genuine),
            list(&self.forged)
        )
    }
}

fn list(patterns: &[String]) -> String {
    if patterns.is_empty() {
        return "(every other file)".to_owned();
    }
    patterns
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One labelled image of the folder.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    /// Path relative to DIR, `/`-separated (what reports show).
    pub file: String,
    pub subject: String,
    pub kind: SampleKind,
}

/// A file left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// The folder's images in a stable order, and the files that cannot be labelled.
pub fn read_folder(dir: &Path, naming: &Naming) -> anyhow::Result<(Vec<Image>, Vec<Skipped>)> {
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a folder; pass a labelled folder DIR/<subject>/<image>",
            dir.display()
        );
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        let file = relative(dir, &path);
        let Some((subject, inner)) = file.split_once('/') else {
            skipped.push(Skipped {
                file,
                reason: "no subject: the file lies directly in DIR; put it in DIR/<subject>/"
                    .to_owned(),
            });
            continue;
        };
        match naming.kind(inner) {
            Ok(kind) => images.push(Image {
                subject: subject.to_owned(),
                path,
                file,
                kind,
            }),
            Err(reason) => skipped.push(Skipped { file, reason }),
        }
    }
    if images.is_empty() {
        anyhow::bail!(
            "no labelled images under {} (looked for {} files in DIR/<subject>/; {} file(s) \
             skipped{})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", "),
            skipped.len(),
            skipped
                .first()
                .map(|s| format!(", e.g. {}: {}", s.file, s.reason))
                .unwrap_or_default()
        );
    }
    Ok((images, skipped))
}

/// `--subjects`: names and numeric ranges of subject folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectFilter {
    names: BTreeSet<String>,
    ranges: Vec<(u64, u64)>,
}

impl SubjectFilter {
    /// `061-100,alice`: a term of two numbers joined by `-` is a range, any other a name.
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let mut filter = Self {
            names: BTreeSet::new(),
            ranges: Vec::new(),
        };
        for term in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let range = term
                .split_once('-')
                .and_then(|(lo, hi)| Some((lo.parse::<u64>().ok()?, hi.parse::<u64>().ok()?)));
            match range {
                Some((lo, hi)) if lo > hi => {
                    anyhow::bail!("--subjects range {term:?} is empty (its start is above its end)")
                }
                Some(range) => filter.ranges.push(range),
                None => {
                    filter.names.insert(term.to_owned());
                }
            }
        }
        if filter.names.is_empty() && filter.ranges.is_empty() {
            anyhow::bail!("--subjects {list:?} names no subject; e.g. --subjects 061-100 or --subjects alice,bob");
        }
        Ok(filter)
    }

    pub fn matches(&self, subject: &str) -> bool {
        self.names.contains(subject)
            || subject
                .parse::<u64>()
                .is_ok_and(|n| self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&n)))
    }
}

/// An image and its embedding.
pub type Embedded = (Image, Vec<f32>);

/// What became of one image.
enum Outcome {
    Embedded(Vec<f32>),
    /// The image itself is unusable (unreadable, not an image, blank): skipped.
    Bad(String),
    /// The runtime failed (not the image's fault): the run stops.
    Failed(EmbedError),
}

/// Embeds every image once through the serving path. Images that cannot be read or
/// preprocessed come back as skipped with the reason; a failure of the runtime is an error.
pub fn embed_images(
    embedder: &Embedder,
    images: Vec<Image>,
    quiet: bool,
) -> anyhow::Result<(Vec<Embedded>, Vec<Skipped>)> {
    let progress = progress_bar(images.len() as u64, quiet, "embed");
    // Enough requests in flight to fill every session's batch twice over.
    let in_flight = embedder.max_batch().max(1) * embedder.pool().sessions.max(1) * 2;
    let mut results = Vec::with_capacity(images.len());
    client::block_on(async {
        results = futures::stream::iter(images)
            .map(|image| {
                let progress = progress.clone();
                async move {
                    let outcome = match tokio::fs::read(&image.path).await {
                        Err(error) => Outcome::Bad(format!("cannot read the file: {error}")),
                        Ok(bytes) => match embedder.embed_image(bytes).await {
                            Ok(vector) => Outcome::Embedded(vector),
                            Err(EmbedError::Preprocess(error)) => Outcome::Bad(error.to_string()),
                            Err(error) => Outcome::Failed(error),
                        },
                    };
                    progress.inc(1);
                    (image, outcome)
                }
            })
            .buffered(in_flight)
            .collect::<Vec<_>>()
            .await;
        Ok(())
    })?;
    progress.finish_and_clear();
    let mut embedded = Vec::with_capacity(results.len());
    let mut skipped = Vec::new();
    for (image, outcome) in results {
        match outcome {
            Outcome::Embedded(vector) => embedded.push((image, vector)),
            Outcome::Bad(reason) => skipped.push(Skipped {
                file: image.file,
                reason,
            }),
            Outcome::Failed(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "embedding {} failed in the runtime (not because of the image)",
                        image.file
                    )
                })
            }
        }
    }
    Ok((embedded, skipped))
}

/// A labelled folder embedded and its verification pairs scored.
#[derive(Debug)]
pub struct Scored {
    pub dir: PathBuf,
    pub naming: Naming,
    /// Image files found (labelled or not).
    pub files: usize,
    /// Embedded images by kind, and their subjects.
    pub genuine: usize,
    pub forged: usize,
    pub subjects: usize,
    /// Files left out (unlabelled or unusable), in file order.
    pub skipped: Vec<Skipped>,
    pub positive: Vec<f64>,
    pub skilled: Vec<f64>,
    pub random: Vec<f64>,
    /// Random pairs before sampling, and the seed when some were dropped.
    pub random_total: u64,
    pub random_seed: Option<u64>,
    /// Every embedded image's (subject, kind) and vector, in the same order: what
    /// subject-level simulation ([`super::subject_level`]) draws its references from.
    pub samples: Vec<(String, SampleKind)>,
    pub vectors: Vec<Vec<f32>>,
    /// How the pairs were scored.
    pub scorer: PairScorer,
}

/// The collection of a subject in a folder of several (`--per-collection`): its name up to
/// the first `-` (`bhsig-051` → `bhsig`).
pub fn collection_of(subject: &str) -> &str {
    subject
        .split_once('-')
        .map_or(subject, |(collection, _)| collection)
}

/// One collection's pair scores (pairs never cross collections).
#[derive(Debug)]
pub struct CollectionPairs {
    pub name: String,
    pub positive: Vec<f64>,
    pub skilled: Vec<f64>,
    pub random: Vec<f64>,
}

impl Scored {
    /// The folder's pairs scored collection by collection.
    pub fn by_collection(&self, random: RandomPairs) -> anyhow::Result<Vec<CollectionPairs>> {
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, (subject, _)) in self.samples.iter().enumerate() {
            groups.entry(collection_of(subject)).or_default().push(i);
        }
        groups
            .into_iter()
            .map(|(name, members)| {
                let labels: Vec<(&str, SampleKind)> = members
                    .iter()
                    .map(|&i| (self.samples[i].0.as_str(), self.samples[i].1))
                    .collect();
                let pairs = build_pairs(&labels, random);
                let global = |p: &[[usize; 2]]| -> Vec<[usize; 2]> {
                    p.iter().map(|&[a, b]| [members[a], members[b]]).collect()
                };
                Ok(CollectionPairs {
                    name: name.to_owned(),
                    positive: self.scorer.score(&self.vectors, &global(&pairs.positive))?,
                    skilled: self.scorer.score(&self.vectors, &global(&pairs.skilled))?,
                    random: self.scorer.score(&self.vectors, &global(&pairs.random))?,
                })
            })
            .collect()
    }
}

/// How a pair of embedded images is scored: a vector formula, or the model's joint head
/// (`Metric::Learned`), which takes many pairs per run.
#[derive(Debug, Clone)]
pub enum PairScorer {
    Formula { metric: Metric, rbf_sigma: f64 },
    Joint(std::sync::Arc<twin_embed::JointHead>),
}

/// Pairs per joint-head run.
const JOINT_CHUNK: usize = 65_536;

impl PairScorer {
    pub fn new(embedder: &Embedder, metric: Metric, rbf_sigma: f64) -> anyhow::Result<Self> {
        if metric != Metric::Learned {
            return Ok(Self::Formula { metric, rbf_sigma });
        }
        embedder.joint().map(Self::Joint).ok_or_else(|| {
            anyhow::anyhow!(
                "--metric learned needs the model's joint head, and model {} declares none \
                 ([joint] in its manifest)",
                embedder.manifest().name
            )
        })
    }

    /// The scores of `pairs` (indices into `vectors`).
    pub fn score(&self, vectors: &[Vec<f32>], pairs: &[[usize; 2]]) -> anyhow::Result<Vec<f64>> {
        match self {
            Self::Formula { metric, rbf_sigma } => pairs
                .iter()
                .map(|&[a, b]| score(*metric, &vectors[a], &vectors[b], *rbf_sigma))
                .collect::<Result<_, _>>()
                .context("scoring pairs"),
            Self::Joint(head) => {
                let mut out = Vec::with_capacity(pairs.len());
                for chunk in pairs.chunks(JOINT_CHUNK) {
                    let left: Vec<&[f32]> =
                        chunk.iter().map(|p| vectors[p[0]].as_slice()).collect();
                    let right: Vec<&[f32]> =
                        chunk.iter().map(|p| vectors[p[1]].as_slice()).collect();
                    out.extend(head.score(&left, &right).context("the joint head")?);
                }
                Ok(out)
            }
        }
    }
}

/// A labelled folder read, not embedded yet (read first, so a wrong folder fails before
/// the model loads).
#[derive(Debug)]
pub struct Listed {
    naming: Naming,
    images: Vec<Image>,
    skipped: Vec<Skipped>,
}

impl Listed {
    pub fn read(args: &FolderArgs) -> anyhow::Result<Self> {
        let naming = args.naming();
        let (mut images, mut skipped) = read_folder(&args.dir, &naming)?;
        if let Some(list) = &args.subjects {
            let filter = SubjectFilter::parse(list)?;
            images.retain(|image| filter.matches(&image.subject));
            skipped.retain(|s| {
                s.file
                    .split_once('/')
                    .is_none_or(|(subject, _)| filter.matches(subject))
            });
            if images.is_empty() {
                anyhow::bail!(
                    "--subjects {list:?} selects none of the subjects under {}",
                    args.dir.display()
                );
            }
        }
        Ok(Self {
            naming,
            images,
            skipped,
        })
    }
}

impl Scored {
    /// Embeds the listed images with `embedder` and scores their pairs under `metric`.
    pub fn compute(
        args: &FolderArgs,
        listed: Listed,
        embedder: &Embedder,
        metric: Metric,
        rbf_sigma: f64,
    ) -> anyhow::Result<Self> {
        let Listed {
            naming,
            images,
            mut skipped,
        } = listed;
        let files = images.len() + skipped.len();
        let (embedded, bad) = embed_images(embedder, images, args.json)?;
        skipped.extend(bad);
        skipped.sort_by(|a, b| a.file.cmp(&b.file));
        if embedded.is_empty() {
            anyhow::bail!(
                "none of the {files} images under {} could be used; first: {}",
                args.dir.display(),
                skipped
                    .first()
                    .map(|s| format!("{}: {}", s.file, s.reason))
                    .unwrap_or_default()
            );
        }
        let labels: Vec<(&str, SampleKind)> = embedded
            .iter()
            .map(|(image, _)| (image.subject.as_str(), image.kind))
            .collect();
        let random = args.random();
        let pairs = build_pairs(&labels, random);
        let scorer = PairScorer::new(embedder, metric, rbf_sigma)?;
        let vectors: Vec<Vec<f32>> = embedded.iter().map(|(_, v)| v.clone()).collect();
        let score_all = |pairs: &[[usize; 2]]| scorer.score(&vectors, pairs);
        let genuine = labels
            .iter()
            .filter(|(_, kind)| *kind == SampleKind::Genuine)
            .count();
        let subjects: BTreeSet<&str> = labels.iter().map(|(subject, _)| *subject).collect();
        let sampled = (pairs.random.len() as u64) < pairs.random_total;
        let subjects = subjects.len();
        let positive = score_all(&pairs.positive)?;
        let skilled = score_all(&pairs.skilled)?;
        let random_scores = score_all(&pairs.random)?;
        let forged = labels.len() - genuine;
        let samples = labels
            .iter()
            .map(|(subject, kind)| ((*subject).to_owned(), *kind))
            .collect();
        Ok(Self {
            dir: args.dir.clone(),
            files,
            genuine,
            forged,
            subjects,
            positive,
            skilled,
            random: random_scores,
            random_total: pairs.random_total,
            random_seed: match random {
                RandomPairs::AtMost { seed, .. } if sampled => Some(seed),
                _ => None,
            },
            naming,
            skipped,
            samples,
            vectors,
            scorer,
        })
    }

    /// Images embedded.
    pub fn images(&self) -> usize {
        self.genuine + self.forged
    }

    /// The `data`, `pairs` and `skipped` parts of a JSON report.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "data": {
                "dir": self.dir.display().to_string(),
                "naming": self.naming.describe(),
                "files": self.files,
                "images": self.images(),
                "genuine": self.genuine,
                "forged": self.forged,
                "subjects": self.subjects,
                "skipped": self.skipped.len(),
            },
            "pairs": {
                "positive": self.positive.len(),
                "skilled": self.skilled.len(),
                "random": self.random.len(),
                "random_total": self.random_total,
                "random_sampled": self.random_seed.is_some(),
                "random_seed": self.random_seed,
            },
            "skipped": self.skipped.iter().map(|s| json!({"file": s.file, "reason": s.reason})).collect::<Vec<_>>(),
        })
    }

    /// The readable summary lines shared by `eval` and `calibrate`.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "  data     {} subjects, {} images ({} genuine, {} forged), {} skipped\n",
            self.subjects,
            self.images(),
            self.genuine,
            self.forged,
            self.skipped.len()
        );
        let random = match self.random_seed {
            Some(seed) => format!(
                "{} random (sampled from {} with seed {seed})",
                self.random.len(),
                self.random_total
            ),
            None => format!("{} random", self.random.len()),
        };
        out.push_str(&format!(
            "  pairs    {} genuine, {} skilled forgery, {random}\n",
            self.positive.len(),
            self.skilled.len()
        ));
        if !self.skipped.is_empty() {
            let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for s in &self.skipped {
                reasons.entry(s.reason.as_str()).or_default().push(&s.file);
            }
            out.push_str("  skipped:\n");
            for (reason, files) in reasons {
                out.push_str(&format!("    {} × {reason}\n", files.len()));
                for file in files.iter().take(5) {
                    out.push_str(&format!("        {file}\n"));
                }
                if files.len() > 5 {
                    out.push_str(&format!("        … and {} more\n", files.len() - 5));
                }
            }
        }
        out
    }
}

/// Loads the model as serving does: the configuration's embed section, then `Embedder::load`.
pub fn load_model(dir: &Path, config: Option<&Path>) -> anyhow::Result<Embedder> {
    let config = twin_core::config::TwinConfig::from_env(config)?;
    Embedder::load(dir, &config.embed).with_context(|| {
        format!(
            "cannot load the model in {} (a folder with model.onnx and manifest.toml; pass --model)",
            dir.display()
        )
    })
}

/// The model part of a JSON report.
pub fn model_json(dir: &Path, manifest: &ModelManifest) -> serde_json::Value {
    json!({
        "dir": dir.display().to_string(),
        "name": manifest.name,
        "version": manifest.version,
        "id": manifest.id,
        "trained": manifest.trained,
        "native_metric": manifest.native_metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn default_naming_knows_bhsig_cedar_and_synth() {
        let naming = Naming::new(&[], &[]);
        assert_eq!(naming.kind("B-S-12-G-01.tif"), Ok(SampleKind::Genuine));
        assert_eq!(naming.kind("H-S-3-F-24.tif"), Ok(SampleKind::Forged));
        assert_eq!(naming.kind("w0001-G-01.png"), Ok(SampleKind::Genuine));
        assert_eq!(naming.kind("original_5_1.png"), Ok(SampleKind::Genuine));
        assert_eq!(naming.kind("forgeries_5_1.png"), Ok(SampleKind::Forged));
        let error = naming.kind("scan-0001.png").expect_err("unlabelled");
        assert!(error.contains("--forged-pattern"), "{error}");
        assert!(naming.kind("x-G-y-F-1.png").is_err(), "ambiguous");
    }

    #[test]
    fn one_pattern_labels_everything_else_the_other_way() {
        let forged_only = Naming::new(&[], &strings(&["forg"]));
        assert_eq!(forged_only.kind("forged/1.png"), Ok(SampleKind::Forged));
        assert_eq!(forged_only.kind("scan-0001.png"), Ok(SampleKind::Genuine));
        let genuine_only = Naming::new(&strings(&["real"]), &[]);
        assert_eq!(genuine_only.kind("real_1.png"), Ok(SampleKind::Genuine));
        assert_eq!(genuine_only.kind("fake_1.png"), Ok(SampleKind::Forged));
        let both = Naming::new(&strings(&["_g"]), &strings(&["_f"]));
        assert_eq!(both.kind("a_f.png"), Ok(SampleKind::Forged));
        assert!(both.kind("a.png").is_err());
    }

    #[test]
    fn folder_reading_takes_the_subject_from_the_first_folder() {
        let dir = tempfile_dir("read");
        for file in [
            "alice/alice-G-01.png",
            "alice/scans/alice-F-01.png",
            "bob/bob-G-01.PNG",
            "bob/notes.txt",
            "bob/unlabelled.png",
            "loose-G-01.png",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"x").expect("write");
        }
        let (images, skipped) = read_folder(&dir, &Naming::new(&[], &[])).expect("read");
        let got: Vec<(&str, &str, SampleKind)> = images
            .iter()
            .map(|i| (i.file.as_str(), i.subject.as_str(), i.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("alice/alice-G-01.png", "alice", SampleKind::Genuine),
                ("alice/scans/alice-F-01.png", "alice", SampleKind::Forged),
                ("bob/bob-G-01.PNG", "bob", SampleKind::Genuine),
            ]
        );
        let files: Vec<&str> = skipped.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(files, vec!["bob/unlabelled.png", "loose-G-01.png"]);
        assert!(skipped[1].reason.contains("no subject"), "{skipped:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_without_labelled_images_is_an_error_that_says_why() {
        let dir = tempfile_dir("empty");
        std::fs::create_dir_all(dir.join("a")).expect("mkdir");
        std::fs::write(dir.join("a/scan.png"), b"x").expect("write");
        let error = read_folder(&dir, &Naming::new(&[], &[])).expect_err("nothing labelled");
        let text = format!("{error:#}");
        assert!(
            text.contains("a/scan.png") && text.contains("--forged-pattern"),
            "{text}"
        );
        assert!(read_folder(&dir.join("missing"), &Naming::new(&[], &[])).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn subject_filter_takes_names_and_numeric_ranges() {
        let filter = SubjectFilter::parse("061-100, alice").expect("parse");
        assert!(filter.matches("061") && filter.matches("100") && filter.matches("75"));
        assert!(!filter.matches("060") && !filter.matches("101") && !filter.matches("bob"));
        assert!(filter.matches("alice"));
        let error = SubjectFilter::parse("100-061").expect_err("empty range");
        assert!(format!("{error}").contains("empty"), "{error}");
        assert!(SubjectFilter::parse(" , ").is_err());
        // a name with a dash that is not two numbers stays a name
        assert!(SubjectFilter::parse("icdar-002")
            .expect("parse")
            .matches("icdar-002"));
    }

    #[cfg(unix)]
    #[test]
    fn subject_folders_behind_symbolic_links_are_read_and_a_link_loop_ends() {
        let data = tempfile_dir("links-data");
        let split = tempfile_dir("links-split");
        for file in ["001/a-G-01.png", "001/a-G-02.png", "002/b-F-01.png"] {
            let path = data.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"x").expect("write");
        }
        std::os::unix::fs::symlink(data.join("001"), split.join("001")).expect("link");
        std::os::unix::fs::symlink(data.join("002"), split.join("002")).expect("link");
        // a loop: 001/back -> the split folder itself
        std::os::unix::fs::symlink(&split, data.join("001/back")).expect("loop link");
        let (images, _) = read_folder(&split, &Naming::new(&[], &[])).expect("read");
        let got: Vec<&str> = images.iter().map(|i| i.file.as_str()).collect();
        assert_eq!(
            got,
            vec!["001/a-G-01.png", "001/a-G-02.png", "002/b-F-01.png"]
        );
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(&split);
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("twin-labelled-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
