//! Conversions between protobuf messages and domain types, in one place, so that the
//! domain never speaks protobuf.

use std::collections::BTreeMap;

use twin_core::decision::{Aggregation, OperatingPoint, ResolvedThreshold, ThresholdChoice};
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
        },
    )
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
        },
    )
}

pub fn labels_from_proto(labels: &[pb::Label]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut map = BTreeMap::new();
    for label in labels {
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

pub fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
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
        input_name: m.input.name.clone(),
        input_shape: vec![
            -1,
            i64::from(m.input.channels),
            i64::from(m.input.height),
            i64::from(m.input.width),
        ],
        output_name: m.output.name.clone(),
        embedding_size: m.output.embedding_size,
        l2_normalized: m.output.l2_normalized,
        native_metric: metric_to_proto(m.native_metric) as i32,
        operating_points: m.operating_points.iter().map(operating_point).collect(),
        default_operating_point: twin_core::decision::far_name(m.default_target_far),
        trained: m.trained,
        evaluation: m.evaluation.clone().into_iter().collect(),
        execution_provider: embedder.provider().name.to_owned(),
    }
}
