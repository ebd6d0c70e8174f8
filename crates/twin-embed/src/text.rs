//! A text model's tokenizer: the model directory's own `tokenizer.json` (Hugging Face
//! format), read with the `tokenizers` crate, so that Rust and Python cut a sentence into
//! the same ids. Whatever truncation or padding the file carries is replaced: twin
//! truncates at the manifest's `max_tokens` (and says so in the answer) and pads a batch
//! to its longest text in the session, not here.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use twin_core::preprocess::PreprocessError;

use crate::error::EmbedError;

/// Token ids of one text, and whether it was cut at `max_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    pub truncated: bool,
}

pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_tokens: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Reads `path` and sets truncation at `max_tokens` (special tokens included), no
    /// padding.
    pub fn load(path: &Path, max_tokens: usize) -> Result<Self, EmbedError> {
        let model_error = |message: String| EmbedError::Model {
            dir: path.parent().unwrap_or(path).to_owned(),
            message,
        };
        if !path.is_file() {
            return Err(model_error(format!(
                "the tokenizer file {} is missing",
                path.display()
            )));
        }
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| model_error(format!("cannot read {}: {e}", path.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| model_error(format!("cannot set truncation at {max_tokens}: {e}")))?;
        Ok(Self {
            tokenizer,
            max_tokens,
        })
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenizes one text with the model's special tokens ([CLS] … [SEP] for BERT).
    pub fn tokenize(&self, text: &str) -> Result<Tokens, PreprocessError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| PreprocessError::Tokenizer(e.to_string()))?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| i64::from(id)).collect();
        if ids.is_empty() {
            return Err(PreprocessError::EmptyText);
        }
        Ok(Tokens {
            truncated: !encoding.get_overflowing().is_empty(),
            ids,
        })
    }
}
