//! An embedding job as the domain sees it: one sample of one subject, for one model,
//! to be embedded and stored. Producers (gateway, CLI) build it; the queue carries it
//! (its wire format is the queue's business, `twin_queue::codec`); the worker runs it.

use std::collections::BTreeMap;

use crate::input::Input;

/// One sample to embed and store as a point of `subject_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedJob {
    /// UUID v4, chosen by the producer; also the queue's message id.
    pub job_id: String,
    /// The tenant the point belongs to (the enrolling key's); empty for the default one.
    pub tenant: String,
    pub subject_id: String,
    /// The model's id (sha256 of its ONNX file); a worker that does not serve it
    /// dead-letters the job.
    pub model_id: String,
    /// Encoded image bytes; empty for a text job.
    pub image: Vec<u8>,
    /// The sample's text, for a text model; empty for an image job.
    pub text: String,
    /// sha256 (hex) of the sample's bytes: the image's, or the text's UTF-8. The worker
    /// recomputes it and dead-letters the job on a mismatch.
    pub image_sha256: String,
    pub labels: BTreeMap<String, String>,
    /// The sample's source name (a file name, say).
    pub source: String,
    /// When it was enqueued, ms since the Unix epoch; 0 when unknown.
    pub enqueued_at_ms: u64,
    /// W3C trace context (`traceparent`); empty when none.
    pub traceparent: String,
}

impl EmbedJob {
    /// The bytes [`EmbedJob::image_sha256`] covers: the text's when it carries one, else
    /// the image's.
    pub fn sample_bytes(&self) -> &[u8] {
        if self.text.is_empty() {
            &self.image
        } else {
            self.text.as_bytes()
        }
    }

    /// True when the job carries both an image and a text (a job is one sample).
    pub fn has_two_samples(&self) -> bool {
        !self.image.is_empty() && !self.text.is_empty()
    }

    /// Moves the sample out, leaving the job without one: the text when it carries one,
    /// else the image.
    pub fn take_input(&mut self) -> Input {
        if self.text.is_empty() {
            Input::Image(std::mem::take(&mut self.image))
        } else {
            Input::Text(std::mem::take(&mut self.text))
        }
    }

    /// The point this job produces (deterministic: known at enqueue).
    pub fn point_id(&self) -> uuid::Uuid {
        crate::ids::point_id(
            &self.model_id,
            &self.tenant,
            &self.subject_id,
            &self.image_sha256,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_the_text_when_there_is_one() {
        let mut job = EmbedJob {
            image: vec![1, 2, 3],
            ..EmbedJob::default()
        };
        assert_eq!(job.sample_bytes(), &[1, 2, 3]);
        assert!(!job.has_two_samples());
        job.text = "hello".into();
        assert_eq!(job.sample_bytes(), b"hello");
        assert!(job.has_two_samples());
        assert_eq!(job.take_input(), Input::Text("hello".into()));
        assert_eq!(job.take_input(), Input::Image(vec![1, 2, 3]));
        assert!(job.image.is_empty() && job.text.is_empty());
    }
}
