//! One sample as a request carries it: an encoded image or a text. Which kind a model
//! takes is in its manifest (`InputSpec`); `check_kind` refuses the other one.

use sha2::{Digest, Sha256};

use crate::manifest::InputKind;
use crate::preprocess::PreprocessError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Encoded image bytes (PNG, JPEG, TIFF, BMP).
    Image(Vec<u8>),
    /// UTF-8 text.
    Text(String),
}

impl Input {
    pub fn kind(&self) -> InputKind {
        match self {
            Input::Image(_) => InputKind::Image,
            Input::Text(_) => InputKind::Text,
        }
    }

    /// The sample's bytes: what its hash and its size limits are taken over.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Input::Image(bytes) => bytes,
            Input::Text(text) => text.as_bytes(),
        }
    }

    /// sha256 of the sample's bytes, lowercase hex (stored with each vector).
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.bytes()))
    }

    /// Refuses a sample of the kind the model does not take.
    pub fn check_kind(&self, model: &str, expected: InputKind) -> Result<(), PreprocessError> {
        if self.kind() == expected {
            Ok(())
        } else {
            Err(PreprocessError::WrongKind {
                model: model.to_owned(),
                expected,
                sent: self.kind(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_and_an_image_of_the_same_bytes_hash_alike_but_differ_in_kind() {
        let text = Input::Text("abc".to_owned());
        let image = Input::Image(b"abc".to_vec());
        assert_eq!(text.sha256(), image.sha256());
        assert_eq!(
            text.sha256(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(text.kind(), image.kind());
    }

    #[test]
    fn the_wrong_kind_is_refused_with_both_kinds_named() {
        let err = Input::Text("hello".into())
            .check_kind("signature-v1", InputKind::Image)
            .expect_err("text to an image model");
        assert_eq!(
            err.to_string(),
            "model signature-v1 takes image input, this request sent text"
        );
        assert!(Input::Image(vec![1])
            .check_kind("signature-v1", InputKind::Image)
            .is_ok());
    }
}
