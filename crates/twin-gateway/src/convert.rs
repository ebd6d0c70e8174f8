//! Conversions between protobuf messages and domain types, in one place, so that the
//! domain never speaks protobuf.

use std::collections::BTreeMap;
use twin_core::manifest::InputSpec;

use twin_core::decision::{Aggregation, OperatingPoint, ResolvedThreshold, ThresholdChoice};
use twin_core::metric::DEFAULT_RBF_SIGMA;
use twin_core::Metric;
use twin_proto::v1 as pb;

use crate::status::ApiError;

pub fn metric_to_proto(metric: Metric) -> pb::Metric {
    match metric {
        Metric::L2 => pb::Metric::L2,
        Metric::SquaredL2 => pb::Metric::SquaredL2,
        Metric::L1 => pb::Metric::L1,
        Metric::Dot => pb::Metric::Dot,
        Metric::Cosine => pb::Metric::Cosine,
        Metric::Rbf => pb::Metric::Rbf,
        Metric::Learned => pb::Metric::Learned,
    }
}

/// The metric a request asks for; `native` when it leaves the field unset.
pub fn metric_from_proto(value: i32, native: Metric) -> Result<Metric, ApiError> {
    Ok(
        match pb::Metric::try_from(value)
            .map_err(|_| ApiError::InvalidArgument(format!("unknown metric value {value}")))?
        {
            pb::Metric::Unspecified => native,
            pb::Metric::L2 => Metric::L2,
            pb::Metric::SquaredL2 => Metric::SquaredL2,
            pb::Metric::L1 => Metric::L1,
            pb::Metric::Dot => Metric::Dot,
            pb::Metric::Cosine => Metric::Cosine,
            pb::Metric::Rbf => Metric::Rbf,
            pb::Metric::Learned => Metric::Learned,
        },
    )
}

/// The RBF sigma a request asks for: 0 (unset) means the default. Under the RBF metric
/// it must be a finite number > 0; other metrics ignore it. Checked before any image is
/// decoded.
pub fn rbf_sigma(requested: f64, metric: Metric) -> Result<f64, ApiError> {
    let sigma = if requested == 0.0 {
        DEFAULT_RBF_SIGMA
    } else {
        requested
    };
    if metric == Metric::Rbf && !(sigma.is_finite() && sigma > 0.0) {
        return Err(ApiError::InvalidArgument(format!(
            "rbf_sigma must be a finite number > 0 (0 for the default {DEFAULT_RBF_SIGMA}), \
             got {requested}"
        )));
    }
    Ok(sigma)
}

pub fn threshold_choice(policy: Option<&pb::DecisionPolicy>) -> ThresholdChoice {
    match policy.and_then(|p| p.threshold.as_ref()) {
        None => ThresholdChoice::Default,
        Some(pb::decision_policy::Threshold::TargetFar(far)) => ThresholdChoice::TargetFar(*far),
        Some(pb::decision_policy::Threshold::ExplicitThreshold(t)) => ThresholdChoice::Explicit(*t),
    }
}

pub fn aggregation(value: i32, k: u32) -> Result<Aggregation, ApiError> {
    Ok(
        match pb::Aggregation::try_from(value)
            .map_err(|_| ApiError::InvalidArgument(format!("unknown aggregation value {value}")))?
        {
            pb::Aggregation::Unspecified | pb::Aggregation::Best => Aggregation::Best,
            pb::Aggregation::Mean => Aggregation::Mean,
            pb::Aggregation::KOfN => Aggregation::KOfN(k as usize),
            pb::Aggregation::Adapted => Aggregation::Adapted,
        },
    )
}

/// Labels as a map; each follows the API's rules (the store's), no key twice.
pub fn labels_from_proto(labels: &[pb::Label]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut map = BTreeMap::new();
    for label in labels {
        twin_store::validate_label(&label.key, &label.value)?;
        if map.insert(label.key.clone(), label.value.clone()).is_some() {
            return Err(ApiError::InvalidArgument(format!(
                "label {:?} is given twice",
                label.key
            )));
        }
    }
    Ok(map)
}

pub fn labels_to_proto(labels: &BTreeMap<String, String>) -> Vec<pb::Label> {
    labels
        .iter()
        .map(|(key, value)| pb::Label {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub fn timestamp_ms(ms: i64) -> twin_proto::Timestamp {
    twin_proto::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn now() -> twin_proto::Timestamp {
    twin_proto::timestamp(std::time::SystemTime::now())
}

/// A job's status record as the API's `twin.v1.Job`.
pub fn job_to_proto(record: &twin_queue::JobRecord) -> pb::Job {
    use twin_queue::JobState;
    let status = match record.state {
        JobState::Queued => pb::JobStatus::Queued,
        JobState::Done => pb::JobStatus::Done,
        JobState::Failed => pb::JobStatus::Failed,
    };
    // 0 is "unknown" in the record, absent in the API.
    let time = |ms: u64| (ms > 0).then(|| timestamp_ms(i64::try_from(ms).unwrap_or(i64::MAX)));
    pb::Job {
        job_id: record.job_id.clone(),
        status: status as i32,
        subject_id: record.subject_id.clone(),
        model_id: record.model_id.clone(),
        point_id: record.point_id.clone(),
        error: record.error.clone(),
        enqueued_at: time(record.enqueued_at_ms),
        updated_at: time(record.updated_at_ms),
        attempts: record.attempts,
    }
}

/// The audit record of a decision.
pub struct AuditInput<'a> {
    pub manifest: &'a twin_core::manifest::ModelManifest,
    pub metric: Metric,
    pub score: f64,
    pub threshold: &'a ResolvedThreshold,
    pub matched_point_id: String,
    pub request_id: String,
}

pub fn audit(input: AuditInput<'_>) -> pb::Audit {
    pb::Audit {
        model_id: input.manifest.id.clone(),
        model_name: format!("{}-{}", input.manifest.name, input.manifest.version),
        metric: metric_to_proto(input.metric) as i32,
        score: input.score,
        threshold: input.threshold.threshold,
        operating_point: input.threshold.operating_point.clone(),
        target_far: input.threshold.target_far,
        calibrated_on: input.threshold.calibrated_on.clone(),
        matched_point_id: input.matched_point_id,
        decided_at: Some(now()),
        request_id: input.request_id,
    }
}

pub fn operating_point(point: &OperatingPoint) -> pb::OperatingPoint {
    pb::OperatingPoint {
        name: point.name.clone(),
        metric: metric_to_proto(point.metric) as i32,
        target_far: point.target_far,
        threshold: point.threshold,
        measured_far: point.measured_far,
        measured_frr: point.measured_frr,
        calibrated_on: point.calibrated_on.clone(),
    }
}

pub fn model(embedder: &twin_embed::Embedder) -> pb::Model {
    let m = embedder.manifest();
    pb::Model {
        id: m.id.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        input_kind: m.input_kind().name().to_owned(),
        max_tokens: embedder.max_tokens().map_or(0, |n| n as u32),
        // Image models: the tensor's name and [N, C, H, W]; text models: the token-id input
        // and [N, S], both dynamic.
        input_name: match &m.input {
            InputSpec::Image(i) => i.name.clone(),
            InputSpec::Text(t) => t.input_ids.clone(),
        },
        input_shape: match &m.input {
            InputSpec::Image(i) => vec![
                -1,
                i64::from(i.channels),
                i64::from(i.height),
                i64::from(i.width),
            ],
            InputSpec::Text(_) => vec![-1, -1],
        },
        output_name: m.output.name.clone(),
        embedding_size: m.output.embedding_size,
        l2_normalized: m.output.l2_normalized,
        native_metric: metric_to_proto(m.native_metric) as i32,
        operating_points: m.operating_points.iter().map(operating_point).collect(),
        joint_head: m
            .joint
            .as_ref()
            .map(|j| {
                if j.description.is_empty() {
                    j.file.clone()
                } else {
                    format!("{}: {}", j.file, j.description)
                }
            })
            .unwrap_or_default(),
        subject_operating_points: m
            .subject_operating_points
            .iter()
            .map(|p| pb::SubjectOperatingPoint {
                name: p.name.clone(),
                metric: metric_to_proto(p.metric) as i32,
                aggregation: p.aggregation.to_string(),
                references: p.references,
                target_far: p.target_far,
                threshold: p.threshold,
                measured_far: p.measured_far,
                measured_frr: p.measured_frr,
                measured_far_random: p.measured_far_random,
                calibrated_on: p.calibrated_on.clone(),
            })
            .collect(),
        default_operating_point: twin_core::decision::far_name(m.default_target_far),
        trained: m.trained,
        evaluation: m.evaluation.clone().into_iter().collect(),
        execution_provider: embedder.provider().name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any enum value from the wire: known ones convert, unknown ones are refused
        /// as INVALID_ARGUMENT with a message; nothing panics.
        #[test]
        fn fuzz_enum_fields(metric in any::<i32>(), aggregation_value in any::<i32>(), k in any::<u32>()) {
            match metric_from_proto(metric, Metric::Cosine) {
                Ok(m) => {
                    prop_assert!((0..=7).contains(&metric));
                    if metric != 0 {
                        prop_assert_eq!(metric_to_proto(m) as i32, metric);
                    }
                }
                Err(e) => {
                    prop_assert!(!(0..=7).contains(&metric));
                    prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            match aggregation(aggregation_value, k) {
                Ok(Aggregation::KOfN(n)) => {
                    prop_assert_eq!(aggregation_value, pb::Aggregation::KOfN as i32);
                    prop_assert_eq!(n, k as usize);
                }
                Ok(Aggregation::Adapted) => {
                    prop_assert_eq!(aggregation_value, pb::Aggregation::Adapted as i32);
                }
                Ok(_) => prop_assert!((0..=2).contains(&aggregation_value)),
                Err(e) => {
                    prop_assert!(!(0..=4).contains(&aggregation_value));
                    prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                }
            }
        }

        /// Any labels: accepted exactly when they follow the API's rules (keys unique
        /// and 1..=64 bytes of [A-Za-z0-9_.-], values at most 256 bytes), else
        /// INVALID_ARGUMENT with a message. (The count limit is enrolment's.)
        #[test]
        fn fuzz_labels(
            labels in proptest::collection::vec(
                (
                    prop_oneof!["[A-Za-z0-9_.-]{1,64}", Just("k".to_owned()), ".{0,70}"],
                    prop_oneof!["[a-z]{0,20}", "[a-z]{250,260}"],
                ),
                0..20,
            )
        ) {
            let labels: Vec<pb::Label> = labels
                .into_iter()
                .map(|(key, value)| pb::Label { key, value })
                .collect();
            let mut keys = std::collections::BTreeSet::new();
            let valid = labels.iter().all(|l| {
                    keys.insert(l.key.clone())
                        && (1..=64).contains(&l.key.len())
                        && l.key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                        && l.value.len() <= 256
                });
            match labels_from_proto(&labels) {
                Ok(map) => {
                    prop_assert!(valid, "accepted invalid labels {labels:?}");
                    prop_assert_eq!(labels_to_proto(&map).len(), labels.len());
                }
                Err(e) => {
                    prop_assert!(!valid, "refused valid labels {labels:?}: {e}");
                    prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }

        /// Any threshold choice resolves or is refused as INVALID_ARGUMENT, and a
        /// resolved threshold is finite.
        #[test]
        fn fuzz_threshold_policy(
            value in prop_oneof![
                Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0),
                Just(1.0), Just(0.01), Just(-0.01), any::<f64>()
            ],
            explicit in any::<bool>(),
            metric in 0i32..=6,
        ) {
            let point = OperatingPoint {
                name: "FAR 1 %".into(),
                metric: Metric::Cosine,
                target_far: 0.01,
                threshold: 0.5,
                measured_far: 0.01,
                measured_frr: 0.1,
                calibrated_on: "test".into(),
            };
            let threshold = Some(if explicit {
                pb::decision_policy::Threshold::ExplicitThreshold(value)
            } else {
                pb::decision_policy::Threshold::TargetFar(value)
            });
            let policy = pb::DecisionPolicy { threshold };
            let metric = metric_from_proto(metric, Metric::Cosine).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match twin_core::decision::resolve_threshold(
                std::slice::from_ref(&point),
                metric,
                threshold_choice(Some(&policy)),
                0.01,
            ) {
                Ok(resolved) => prop_assert!(resolved.threshold.is_finite()),
                Err(e) => {
                    let e = ApiError::from(e);
                    prop_assert_eq!(e.code(), tonic::Code::InvalidArgument);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}
