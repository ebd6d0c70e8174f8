//! What can be wrong with an image, a text, or a model's preprocessing parameters.

/// What was wrong with an image (or, for `InvalidSpec`, with the model's manifest).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    #[error("image is empty (0 bytes)")]
    Empty,
    #[error("image is {bytes} bytes, more than the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "image is {width}x{height} pixels, more than the limit of {max} pixels on a side; \
         scale it down before sending"
    )]
    DimensionsTooLarge { width: u32, height: u32, max: u32 },
    #[error("image would need {bytes} bytes once decoded, more than the limit of {max} bytes")]
    DecodedTooLarge { bytes: u64, max: u64 },
    #[error("image has no pixels ({width}x{height})")]
    ZeroSize { width: u32, height: u32 },
    #[error("unsupported image format: {0}; send PNG, JPEG, TIFF or BMP")]
    UnsupportedFormat(String),
    #[error("image data is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error(
        "no ink found: the image is blank or has too little contrast to separate ink from paper"
    )]
    NoInk,
    #[error("model manifest gives unusable preprocessing parameters: {0}")]
    InvalidSpec(String),
    #[error("text is empty (or only white space)")]
    EmptyText,
    #[error("text is {bytes} bytes, more than the limit of {max} bytes")]
    TextTooLarge { bytes: usize, max: usize },
    #[error("model {model} takes {expected} input, this request sent {sent}")]
    WrongKind {
        model: String,
        expected: crate::manifest::InputKind,
        sent: crate::manifest::InputKind,
    },
    #[error("cannot tokenize the text: {0}")]
    Tokenizer(String),
    #[error("no face found in the image")]
    NoFace,
    #[error(
        "{count} faces found in the image and this model refuses several (face.multiple = \"refuse\"); \
         send an image of one face"
    )]
    SeveralFaces { count: usize },
    #[error(
        "the face found is {size} pixels wide, smaller than the model's minimum of {min}; \
         send a closer or larger image"
    )]
    FaceTooSmall { size: u32, min: u32 },
}
