//! LFW's verification protocol for face models, shared by `twin eval --lfw` and `twin
//! calibrate --lfw`: `pairs.txt` (a header, then matched pairs `name i j` and mismatched
//! pairs `name1 i name2 j`; images at `<images>/<name>/<name>_<NNNN>.jpg`), scored through
//! the model's own face pipeline (detect, landmarks, chip, descriptor) as serving runs it,
//! and the ten folds: a threshold chosen on nine, measured on the tenth.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use twin_core::evaluation::{best_accuracy_threshold, classification, threshold_at_far};
use twin_core::input::Input;
use twin_core::metric::Metric;
use twin_embed::Embedder;

use super::labelled::PairScorer;

/// Images embedded per batcher call (bounds memory).
const EMBED_CHUNK: usize = 64;

/// One pair: two images (indices into [`LfwPairs::images`]), the same person or not, and
/// its fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub same: bool,
    pub fold: usize,
}

/// A pairs file read.
#[derive(Debug, Clone, PartialEq)]
pub struct LfwPairs {
    /// Image paths relative to the images folder, each once.
    pub images: Vec<PathBuf>,
    pub pairs: Vec<Pair>,
    pub folds: usize,
}

fn image_path(name: &str, number: &str, line: usize, file: &str) -> anyhow::Result<PathBuf> {
    let n: u32 = number.parse().with_context(|| {
        format!("{file}:{line}: image number {number:?} is not a positive integer")
    })?;
    if name.is_empty() || name.contains(['/', '\\']) || name == ".." {
        anyhow::bail!("{file}:{line}: {name:?} is not a person's name");
    }
    Ok(PathBuf::from(name).join(format!("{name}_{n:04}.jpg")))
}

impl LfwPairs {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the pairs file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The header says how the pairs fall into folds: `F P` (the original file: F folds,
    /// each P matched then P mismatched pairs) or `P` alone (all matched pairs, then all
    /// mismatched, in ten folds of P/10 each, in file order).
    pub fn parse(text: &str, file: &str) -> anyhow::Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("{file} is empty"))?;
        let numbers: Vec<usize> = header
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!("{file}:1: the header {header:?} is not `folds pairs` or `pairs`")
            })?;
        let mut images: Vec<PathBuf> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        let mut intern = |p: PathBuf| {
            *index.entry(p.clone()).or_insert_with(|| {
                images.push(p);
                images.len() - 1
            })
        };
        let mut read = Vec::new();
        for (line, content) in lines {
            let fields: Vec<&str> = content.split_whitespace().collect();
            let (a, b, same) = match fields.as_slice() {
                [name, i, j] => (
                    image_path(name, i, line, file)?,
                    image_path(name, j, line, file)?,
                    true,
                ),
                [n1, i, n2, j] => (
                    image_path(n1, i, line, file)?,
                    image_path(n2, j, line, file)?,
                    false,
                ),
                _ => anyhow::bail!(
                    "{file}:{line}: expected `name i j` or `name1 i name2 j`, found {} fields",
                    fields.len()
                ),
            };
            read.push((intern(a), intern(b), same));
        }
        let (folds, per_fold) = match numbers.as_slice() {
            [folds, per] if *folds > 0 && *per > 0 => (*folds, *per),
            [pairs] if *pairs >= 10 && pairs % 10 == 0 => (10, pairs / 10),
            _ => anyhow::bail!("{file}:1: the header {header:?} is not `folds pairs` or `pairs`"),
        };
        if read.len() != 2 * folds * per_fold {
            anyhow::bail!(
                "{file}: the header announces {} pairs, the file holds {}",
                2 * folds * per_fold,
                read.len()
            );
        }
        let two_numbers = numbers.len() == 2;
        let mut pairs = Vec::with_capacity(read.len());
        for (k, (a, b, same)) in read.into_iter().enumerate() {
            let (fold, expected_same) = if two_numbers {
                (k / (2 * per_fold), k % (2 * per_fold) < per_fold)
            } else {
                ((k % (folds * per_fold)) / per_fold, k < folds * per_fold)
            };
            if same != expected_same {
                anyhow::bail!(
                    "{file}: pair {} is {}, but the header puts {} pairs there: matched and \
                     mismatched pairs are not where the header puts them",
                    k + 1,
                    if same { "matched" } else { "mismatched" },
                    if expected_same {
                        "matched"
                    } else {
                        "mismatched"
                    }
                );
            }
            pairs.push(Pair { a, b, same, fold });
        }
        Ok(Self {
            images,
            pairs,
            folds,
        })
    }
}

/// The scores of every pair; `None` for a pair with an image the pipeline refused (no
/// face found), with the reasons.
pub struct Scored {
    pub scores: Vec<Option<f64>>,
    /// Each image's descriptor, in [`LfwPairs::images`] order; `None` when refused.
    pub vectors: Vec<Option<Vec<f32>>>,
    /// (image, why) for each image that could not be embedded.
    pub failed: Vec<(PathBuf, String)>,
}

pub fn score(
    pairs: &LfwPairs,
    images_dir: &Path,
    embedder: &Embedder,
    metric: Metric,
    rbf_sigma: f64,
) -> anyhow::Result<Scored> {
    if embedder.face().is_none() {
        anyhow::bail!(
            "model {} is not a face model (no [face] in its manifest); --lfw evaluates face models",
            embedder.manifest().name
        );
    }
    let scorer = PairScorer::new(embedder, metric, rbf_sigma)?;
    let mut vectors: Vec<Option<Vec<f32>>> = Vec::with_capacity(pairs.images.len());
    let mut failed = Vec::new();
    for chunk in pairs.images.chunks(EMBED_CHUNK) {
        let inputs = chunk
            .iter()
            .map(|p| {
                let path = images_dir.join(p);
                std::fs::read(&path)
                    .map(Input::Image)
                    .with_context(|| format!("cannot read {}", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let prepared = embedder.prepare_many(&inputs);
        let mut ok = Vec::new();
        let mut slots = Vec::new();
        for (path, result) in chunk.iter().zip(prepared) {
            match result {
                Ok(sample) => {
                    slots.push(true);
                    ok.push(sample);
                }
                Err(e) => {
                    slots.push(false);
                    failed.push((path.clone(), e.to_string()));
                }
            }
        }
        let mut embedded = embedder.embed_batch(&ok)?.into_iter();
        for good in slots {
            vectors.push(if good { embedded.next() } else { None });
        }
    }
    let present: Vec<usize> = (0..vectors.len())
        .filter(|&i| vectors[i].is_some())
        .collect();
    let dense: Vec<Vec<f32>> = present.iter().filter_map(|&i| vectors[i].clone()).collect();
    let position: HashMap<usize, usize> =
        present.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let scorable: Vec<[usize; 2]> = pairs
        .pairs
        .iter()
        .filter_map(|p| Some([*position.get(&p.a)?, *position.get(&p.b)?]))
        .collect();
    let mut computed = scorer.score(&dense, &scorable)?.into_iter();
    let scores = pairs
        .pairs
        .iter()
        .map(|p| {
            (position.contains_key(&p.a) && position.contains_key(&p.b))
                .then(|| computed.next())
                .flatten()
        })
        .collect();
    Ok(Scored {
        scores,
        vectors,
        failed,
    })
}

/// One fold's figures: the threshold chosen on the other folds, measured on this one.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    pub threshold: f64,
    pub accuracy: f64,
    pub far: f64,
    pub frr: f64,
}

/// The score a pair that could not be scored stands at: below every threshold, so it
/// counts as "different" (an error for a matched pair, not for a mismatched one).
pub const REJECTED: f64 = f64::MIN;

/// The scores that were computed (not [`REJECTED`]), to choose thresholds on.
pub fn scored_only(scores: &[f64]) -> Vec<f64> {
    scores.iter().copied().filter(|&s| s != REJECTED).collect()
}

/// A pair's score by label; a pair that could not be scored is [`REJECTED`].
fn split(
    pairs: &LfwPairs,
    scores: &[Option<f64>],
    keep: impl Fn(usize) -> bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mut positive, mut negative) = (Vec::new(), Vec::new());
    for (p, s) in pairs.pairs.iter().zip(scores) {
        if !keep(p.fold) {
            continue;
        }
        let s = s.unwrap_or(REJECTED);
        if p.same {
            positive.push(s);
        } else {
            negative.push(s);
        }
    }
    (positive, negative)
}

/// The ten-fold protocol. `target_far`: `None` chooses each threshold for the best
/// accuracy on the other folds, `Some(far)` at that false-accept rate on them.
pub fn folds(
    pairs: &LfwPairs,
    scores: &[Option<f64>],
    target_far: Option<f64>,
) -> anyhow::Result<Vec<Fold>> {
    (0..pairs.folds)
        .map(|fold| {
            let (pos, neg) = split(pairs, scores, |f| f != fold);
            let threshold = match target_far {
                None => best_accuracy_threshold(&scored_only(&pos), &scored_only(&neg))?,
                Some(far) => threshold_at_far(&scored_only(&neg), far)?,
            };
            let (pos, neg) = split(pairs, scores, |f| f == fold);
            let c = classification(&pos, &neg, threshold)?;
            let far =
                neg.iter().filter(|&&s| s >= threshold).count() as f64 / neg.len().max(1) as f64;
            let frr =
                pos.iter().filter(|&&s| s < threshold).count() as f64 / pos.len().max(1) as f64;
            Ok(Fold {
                threshold,
                accuracy: c.accuracy,
                far,
                frr,
            })
        })
        .collect()
}

/// Every pair's score split by label, unscorable pairs [`REJECTED`].
pub fn all(pairs: &LfwPairs, scores: &[Option<f64>]) -> (Vec<f64>, Vec<f64>) {
    split(pairs, scores, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_header_forms_put_pairs_into_their_folds() {
        // "P" alone: 20 matched then 20 mismatched, ten folds of 2 + 2.
        let mut text = String::from("20\n");
        for k in 0..20 {
            text.push_str(&format!("A {} {}\n", k + 1, k + 2));
        }
        for k in 0..20 {
            text.push_str(&format!("A {} B {}\n", k + 1, k + 1));
        }
        let file = LfwPairs::parse(&text, "p.txt").expect("parses");
        assert_eq!(file.folds, 10);
        assert_eq!(file.pairs[0].fold, 0);
        assert_eq!(file.pairs[3].fold, 1);
        assert_eq!(file.pairs[20].fold, 0);
        assert!(!file.pairs[20].same);
        assert_eq!(file.images[0], PathBuf::from("A/A_0001.jpg"));
        // "F P": per fold P matched then P mismatched.
        let text = "2 1\nA 1 2\nA 1 B 1\nC 1 2\nC 2 D 3\n";
        let file = LfwPairs::parse(text, "p.txt").expect("parses");
        assert_eq!(
            file.pairs
                .iter()
                .map(|p| (p.fold, p.same))
                .collect::<Vec<_>>(),
            [(0, true), (0, false), (1, true), (1, false)]
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("x\n", "header"),
            ("2 1\nA 1 2\n", "announces 4 pairs"),
            ("1 1\nA 1 B 2\nA 1 2\n", "not where the header puts them"),
            ("1 1\nA x 2\nA 1 B 2\n", "not a positive integer"),
            ("1 1\nA 1\nA 1 B 2\n", "found 2 fields"),
        ] {
            let err = LfwPairs::parse(text, "p.txt").expect_err(text).to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn each_fold_is_measured_at_a_threshold_from_the_others() {
        let text = "2 1\nA 1 2\nA 1 B 1\nC 1 2\nC 2 D 3\n";
        let file = LfwPairs::parse(text, "p.txt").expect("parses");
        let scores = [Some(0.9), Some(0.1), Some(0.8), Some(0.2)];
        let folds = folds(&file, &scores, None).expect("folds");
        assert_eq!(folds.len(), 2);
        assert!(folds.iter().all(|f| f.accuracy == 1.0), "{folds:?}");
        // A pair that could not be scored is rejected: below every threshold.
        let scores = [Some(0.9), Some(0.1), Some(0.8), None];
        let (pos, neg) = all(&file, &scores);
        assert_eq!(pos, [0.9, 0.8]);
        assert_eq!(neg[1], REJECTED);
    }
}
