//! `twin.v1.AuditTrail`: the decisions on record, and the one place that turns a decision's
//! answer into an [`AuditRecord`] (the services call [`record`] as they answer).

use std::str::FromStr;

use tonic::{Request, Response, Status};
use twin_audit::{AuditQuery, AuditRecord};
use twin_proto::v1 as pb;
use twin_proto::v1::audit_trail_server::AuditTrail;

use crate::auth::{Caller, Scope};
use crate::convert::{metric_to_proto, timestamp_ms};
use crate::state::{caller, AppState};
use crate::status::ApiError;

#[derive(Debug, Clone)]
pub struct AuditTrailService {
    pub state: AppState,
}

/// What a decision adds to its audit record for the trail.
pub struct Decision<'a> {
    pub method: &'static str,
    pub subject_id: &'a str,
    pub matched: bool,
    pub caller: &'a Caller,
    pub images_sha256: Vec<String>,
}

/// Puts a decision on record (nothing when the trail is off). Never waits for the disk.
pub fn record(state: &AppState, decision: Decision<'_>, audit: &pb::Audit) {
    let Some(log) = &state.audit else {
        return;
    };
    let metric = pb::Metric::try_from(audit.metric)
        .map(|m| {
            m.as_str_name()
                .trim_start_matches("METRIC_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    log.append(AuditRecord {
        decided_at_ms: audit.decided_at.map_or(0, |t| {
            (t.seconds.max(0) as u64) * 1000 + (t.nanos.max(0) as u64) / 1_000_000
        }),
        request_id: audit.request_id.clone(),
        key_id: decision.caller.key_id.clone(),
        tenant: decision.caller.tenant.clone(),
        method: decision.method.to_owned(),
        subject_id: decision.subject_id.to_owned(),
        model_id: audit.model_id.clone(),
        model_name: audit.model_name.clone(),
        metric,
        score: audit.score,
        threshold: audit.threshold,
        operating_point: audit.operating_point.clone(),
        target_far: audit.target_far,
        calibrated_on: audit.calibrated_on.clone(),
        matched: decision.matched,
        matched_point_id: audit.matched_point_id.clone(),
        images_sha256: decision.images_sha256,
    });
}

fn millis(t: &twin_proto::Timestamp) -> Result<u64, ApiError> {
    if t.seconds < 0 || t.nanos < 0 {
        return Err(ApiError::InvalidArgument(format!(
            "time {}s {}ns is before 1970",
            t.seconds, t.nanos
        )));
    }
    Ok(t.seconds as u64 * 1000 + t.nanos as u64 / 1_000_000)
}

fn entry(r: AuditRecord) -> pb::AuditEntry {
    let metric = twin_core::Metric::from_str(&r.metric)
        .map_or(pb::Metric::Unspecified, metric_to_proto) as i32;
    pb::AuditEntry {
        method: r.method,
        subject_id: r.subject_id,
        r#match: r.matched,
        key_id: r.key_id,
        tenant: r.tenant,
        image_sha256: r.images_sha256,
        audit: Some(pb::Audit {
            model_id: r.model_id,
            model_name: r.model_name,
            metric,
            score: r.score,
            threshold: r.threshold,
            operating_point: r.operating_point,
            target_far: r.target_far,
            calibrated_on: r.calibrated_on,
            matched_point_id: r.matched_point_id,
            decided_at: Some(timestamp_ms(r.decided_at_ms as i64)),
            request_id: r.request_id,
        }),
    }
}

#[tonic::async_trait]
impl AuditTrail for AuditTrailService {
    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let caller = caller(&request);
        let r = request.into_inner();
        // Every key reads its own tenant's decisions; an admin key may name any tenant.
        let tenant = if r.tenant.is_empty() || r.tenant == caller.tenant {
            caller.tenant.clone()
        } else if caller.scope == Scope::Admin {
            twin_core::subject::validate_tenant(&r.tenant).map_err(ApiError::from)?;
            r.tenant.clone()
        } else {
            return Err(ApiError::PermissionDenied(format!(
                "this key reads the audit trail of tenant {}; only an admin key may name another",
                twin_core::subject::tenant_label(&caller.tenant)
            ))
            .into());
        };
        let log = self.state.audit.clone().ok_or_else(|| {
            ApiError::FailedPrecondition(
                "the audit trail is off on this gateway (audit.enabled = false)".into(),
            )
        })?;
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        let query = AuditQuery {
            tenant,
            subject_id: non_empty(r.subject_id),
            request_id: non_empty(r.request_id),
            from_ms: r.from.as_ref().map(millis).transpose()?,
            to_ms: r.to.as_ref().map(millis).transpose()?,
            limit: r.limit as usize,
        };
        let records = tokio::task::spawn_blocking(move || log.query(&query))
            .await
            .map_err(|e| ApiError::Internal(format!("audit query task failed: {e}")))?
            .map_err(|e| match e {
                twin_audit::AuditError::Query(message) => ApiError::InvalidArgument(message),
                other => ApiError::Internal(other.to_string()),
            })?;
        Ok(Response::new(pb::QueryAuditResponse {
            entries: records.into_iter().map(entry).collect(),
        }))
    }
}
