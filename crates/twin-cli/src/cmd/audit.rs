//! `twin audit`: the decisions on record (Verify, VerifySubject, Search), newest first,
//! by subject, request id or time.

use twin_proto::v1::QueryAuditRequest;

use super::client::{self, ClientArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    twin audit --subject w0001                  # the latest decisions about w0001\n  \
    twin audit --request-id 2b1c…               # the decision of one request\n  \
    twin audit --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z --limit 1000 --json")]
pub struct AuditArgs {
    /// Decisions about this subject (VerifySubject's subject, Search's best hit).
    #[arg(long)]
    pub subject: Option<String>,
    /// The decision of this request (the `x-request-id` of its answer).
    #[arg(long)]
    pub request_id: Option<String>,
    /// Decided at or after this instant (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Decided before this instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Admin keys only: read this tenant's decisions (others read their key's tenant).
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// At most this many (the server allows 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    client::block_on(audit(args))
}

fn instant(flag: &str, text: Option<&str>) -> anyhow::Result<Option<twin_proto::Timestamp>> {
    text.map(|t| {
        twin_proto::parse_rfc3339(t).map_err(|e| {
            anyhow::anyhow!(
                "--{flag} {t:?} is not an RFC 3339 instant like 2026-12-01T09:00:00Z: {e}"
            )
        })
    })
    .transpose()
}

async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let request = QueryAuditRequest {
        subject_id: args.subject.clone().unwrap_or_default(),
        request_id: args.request_id.clone().unwrap_or_default(),
        from: instant("since", args.since.as_deref())?,
        to: instant("until", args.until.as_deref())?,
        limit: args.limit,
        tenant: args.tenant.clone(),
    };
    let connection = args.client.connect().await?;
    let entries = connection
        .audit_trail()
        .query_audit(request)
        .await
        .map_err(|status| connection.error("audit query", status))?
        .into_inner()
        .entries;
    if args.client.json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut value = client::audit_json(e.audit.as_ref());
                value["method"] = e.method.clone().into();
                value["subject_id"] = e.subject_id.clone().into();
                value["match"] = e.r#match.into();
                value["key_id"] = e.key_id.clone().into();
                value["tenant"] = e.tenant.clone().into();
                value["image_sha256"] = e.image_sha256.clone().into();
                value
            })
            .collect();
        client::print_json(&serde_json::json!({ "entries": list }));
        return Ok(());
    }
    if entries.is_empty() {
        println!("no decisions on record match");
        return Ok(());
    }
    println!(
        "{:<30} {:<14} {:<16} {:>5} {:>10} {:>10}  {:<26} request id",
        "decided at", "method", "subject", "match", "score", "threshold", "operating point"
    );
    for e in &entries {
        let Some(a) = e.audit.as_ref() else { continue };
        let at = a
            .decided_at
            .as_ref()
            .map(twin_proto::rfc3339)
            .unwrap_or_default();
        println!(
            "{:<30} {:<14} {:<16} {:>5} {:>10.6} {:>10.6}  {:<26} {}",
            at,
            e.method,
            e.subject_id,
            if e.r#match { "yes" } else { "no" },
            a.score,
            a.threshold,
            a.operating_point,
            a.request_id
        );
    }
    Ok(())
}
