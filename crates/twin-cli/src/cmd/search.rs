//! `twin search IMG` (or `twin search --text "…"` for a text model): the enrolled samples
//! nearest to a probe, or "unknown" when no one reaches the threshold.

use std::path::PathBuf;

use twin_proto::v1::{search_request, SearchRequest};

use super::client::{self, ClientArgs, PolicyArgs};

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Probe image (with --text: the probe text).
    pub image: PathBuf,
    /// The probe is a text, not an image file (for a text model such as paraphrase-v1).
    #[arg(long)]
    pub text: bool,
    /// Number of neighbours (1..1000).
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Only references of this subject; repeat for several.
    #[arg(long = "subject")]
    pub subjects: Vec<String>,
    /// At most one hit (the best) per subject.
    #[arg(long)]
    pub group_by_subject: bool,
    /// Model name or id; default: the server's default model.
    #[arg(long, default_value = "")]
    pub model: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    client::block_on(search(args))
}

async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let image = client::read_sample(&args.image, args.text).await?;
    let connection = args.client.connect().await?;
    let response = connection
        .similarity()
        .search(SearchRequest {
            query: Some(search_request::Query::Image(image)),
            model: args.model.clone(),
            top_k: args.top_k,
            subject_ids: args.subjects.clone(),
            labels: Vec::new(),
            policy: args.policy.policy(),
            group_by_subject: args.group_by_subject,
        })
        .await
        .map_err(|status| connection.error("search", status))?
        .into_inner();
    if args.client.json {
        let hits: Vec<_> = response
            .hits
            .iter()
            .map(|hit| {
                serde_json::json!({
                    "point_id": hit.point_id,
                    "subject_id": hit.subject_id,
                    "score": hit.score,
                    "source": hit.source,
                })
            })
            .collect();
        client::print_json(&serde_json::json!({
            "unknown": response.unknown,
            "hits": hits,
            "audit": client::audit_json(response.audit.as_ref()),
            "warnings": response.warnings,
        }));
        return Ok(());
    }
    client::print_warnings(&response.warnings);
    if response.unknown {
        let (best, threshold) = response
            .audit
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |a| (a.score, a.threshold));
        println!("unknown: no enrolled image reaches the threshold (best score {best:.6}, threshold {threshold:.6})");
    } else {
        println!(
            "{:>4}  {:<24}  {:>10}  {:<36}  source",
            "rank", "subject", "score", "point id"
        );
        for (rank, hit) in response.hits.iter().enumerate() {
            println!(
                "{:>4}  {:<24}  {:>10.6}  {:<36}  {}",
                rank + 1,
                hit.subject_id,
                hit.score,
                hit.point_id,
                hit.source
            );
        }
        println!();
    }
    client::print_audit(response.audit.as_ref());
    Ok(())
}
