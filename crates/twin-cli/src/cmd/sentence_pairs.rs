//! Sentence-pair files for text models, shared by `twin eval --pairs` and
//! `twin calibrate --pairs`: MRPC's format, a header line then
//! `Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String` per pair (Quality 1 = the two
//! sentences are paraphrases), or plain `label<TAB>text<TAB>text` lines. Each distinct
//! sentence is embedded once, as serving embeds it; a pair's score is the model's metric.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use twin_core::input::Input;
use twin_core::manifest::InputKind;
use twin_core::metric::Metric;
use twin_embed::Embedder;

use super::labelled::PairScorer;

/// Sentences embedded per batcher call (bounds memory; the batcher splits further).
const EMBED_CHUNK: usize = 256;

/// A pair file read: each distinct sentence once, and the pairs as indices into them.
#[derive(Debug, Clone, PartialEq)]
pub struct PairFile {
    pub sentences: Vec<String>,
    /// (sentence a, sentence b, paraphrase?)
    pub pairs: Vec<(usize, usize, bool)>,
}

impl PairFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the sentence-pair file {} (UTF-8 text)",
                path.display()
            )
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> anyhow::Result<Self> {
        let mut file = PairFile {
            sentences: Vec::new(),
            pairs: Vec::new(),
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut intern = |sentence: &str, sentences: &mut Vec<String>| -> usize {
            *index.entry(sentence.to_owned()).or_insert_with(|| {
                sentences.push(sentence.to_owned());
                sentences.len() - 1
            })
        };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if number == 0 && fields[0].trim_start_matches('\u{feff}') == "Quality" {
                continue;
            }
            let (label, a, b) = match fields.as_slice() {
                [label, _, _, a, b] | [label, a, b] => (*label, *a, *b),
                _ => anyhow::bail!(
                    "{name}:{}: expected `Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 \
                     String` (MRPC) or `label<TAB>text<TAB>text`, found {} fields",
                    number + 1,
                    fields.len()
                ),
            };
            let paraphrase = match label.trim() {
                "1" => true,
                "0" => false,
                other => anyhow::bail!(
                    "{name}:{}: the label is {other:?}; 1 (paraphrase) or 0 (not) expected",
                    number + 1
                ),
            };
            if a.trim().is_empty() || b.trim().is_empty() {
                anyhow::bail!("{name}:{}: a sentence is empty", number + 1);
            }
            let a = intern(a, &mut file.sentences);
            let b = intern(b, &mut file.sentences);
            file.pairs.push((a, b, paraphrase));
        }
        if file.pairs.is_empty() {
            anyhow::bail!("{name} holds no sentence pairs");
        }
        Ok(file)
    }
}

/// A pair file's scores, split by label.
#[derive(Debug, Clone)]
pub struct ScoredPairs {
    pub positive: Vec<f64>,
    pub negative: Vec<f64>,
    pub sentences: usize,
    /// Texts cut at the model's `max_tokens` before embedding.
    pub truncated: usize,
}

/// Embeds every sentence of `file` with `embedder` and scores its pairs with `metric`.
pub fn score(
    file: &PairFile,
    embedder: &Embedder,
    metric: Metric,
    rbf_sigma: f64,
) -> anyhow::Result<ScoredPairs> {
    if embedder.input_kind() != InputKind::Text {
        anyhow::bail!(
            "model {} takes {} input; --pairs evaluates a text model on sentence pairs",
            embedder.manifest().name,
            embedder.input_kind()
        );
    }
    let scorer = PairScorer::new(embedder, metric, rbf_sigma)?;
    let mut vectors = Vec::with_capacity(file.sentences.len());
    let mut truncated = 0;
    for chunk in file.sentences.chunks(EMBED_CHUNK) {
        let inputs: Vec<Input> = chunk.iter().cloned().map(Input::Text).collect();
        truncated += inputs
            .iter()
            .filter(|i| embedder.truncation_warning("", i).is_some())
            .count();
        let prepared = embedder
            .prepare_many(&inputs)
            .into_iter()
            .zip(chunk)
            .map(|(p, sentence)| p.with_context(|| format!("sentence {sentence:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        vectors.extend(embedder.embed_batch(&prepared)?);
    }
    let pairs: Vec<[usize; 2]> = file.pairs.iter().map(|&(a, b, _)| [a, b]).collect();
    let scores = scorer.score(&vectors, &pairs)?;
    let (mut positive, mut negative) = (Vec::new(), Vec::new());
    for (&(_, _, paraphrase), score) in file.pairs.iter().zip(scores) {
        if paraphrase {
            positive.push(score);
        } else {
            negative.push(score);
        }
    }
    if positive.is_empty() || negative.is_empty() {
        anyhow::bail!(
            "the file has {} paraphrase and {} non-paraphrase pairs; figures need both",
            positive.len(),
            negative.len()
        );
    }
    Ok(ScoredPairs {
        positive,
        negative,
        sentences: file.sentences.len(),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrpc_lines_and_plain_lines_parse_and_sentences_are_shared() {
        let text = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n\
                    1\t1\t2\tThe cat sat.\tA cat was sitting.\n\
                    0\t3\t1\tDogs bark.\tThe cat sat.\n\
                    \n\
                    1\tShort.\tBrief.\n";
        let file = PairFile::parse(text, "mrpc.txt").expect("parses");
        assert_eq!(
            file.sentences,
            [
                "The cat sat.",
                "A cat was sitting.",
                "Dogs bark.",
                "Short.",
                "Brief."
            ]
        );
        assert_eq!(file.pairs, [(0, 1, true), (2, 0, false), (3, 4, true)]);
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("1\tonly two", "expected"),
            ("x\ta\tb", "the label is \"x\""),
            ("1\t \tb", "a sentence is empty"),
            ("# nothing\n", "no sentence pairs"),
        ];
        for (text, says) in cases {
            let err = PairFile::parse(text, "f.txt").expect_err(text).to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
