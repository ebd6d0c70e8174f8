//! `twin verify A B` (are two images of the same identity?), `twin verify --text "…" "…"`
//! (are two sentences paraphrases? for a text model) and `twin verify --subject ID IMG`
//! (is this probe the enrolled subject?): the decision, its score and the audit record
//! that explains it.

use std::path::PathBuf;

use twin_proto::v1::{Aggregation, Metric, VerifyRequest, VerifySubjectRequest};

use super::client::{self, ClientArgs, PolicyArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  twin verify a.png b.png\n  \
    twin verify --model paraphrase-v1 --text \"The cat sat.\" \"A cat was sitting.\"\n  \
    twin verify --subject alice probe.png --aggregation k-of-n --k 2\n\n\
    Exit status 0 when a decision was made (match or not); see `match` in the output.")]
pub struct VerifyArgs {
    /// Two images to compare, or with --subject one probe image (with --text: texts).
    #[arg(required = true, num_args = 1..=2, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// The arguments are texts, not image files (for a text model such as paraphrase-v1).
    #[arg(long)]
    pub text: bool,
    /// Compare the probe with this enrolled subject's references.
    #[arg(long)]
    pub subject: Option<String>,
    /// Metric (cosine, dot, l2, squared_l2, l1, rbf); default: the model's native metric.
    #[arg(long)]
    pub metric: Option<twin_core::Metric>,
    /// sigma of the rbf metric (> 0).
    #[arg(long)]
    pub rbf_sigma: Option<f64>,
    /// How per-reference scores become one (with --subject).
    #[arg(long, value_enum, default_value = "best", requires = "subject")]
    pub aggregation: AggregationArg,
    /// k for --aggregation k-of-n: at least k references must match.
    #[arg(long, requires = "subject")]
    pub k: Option<u32>,
    /// Model name or id; default: the server's default model.
    #[arg(long, default_value = "")]
    pub model: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AggregationArg {
    Best,
    Mean,
    KOfN,
    /// The mean score minus the references' mean score among themselves (writer-adapted).
    Adapted,
}

impl From<AggregationArg> for Aggregation {
    fn from(aggregation: AggregationArg) -> Self {
        match aggregation {
            AggregationArg::Best => Aggregation::Best,
            AggregationArg::Mean => Aggregation::Mean,
            AggregationArg::KOfN => Aggregation::KOfN,
            AggregationArg::Adapted => Aggregation::Adapted,
        }
    }
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    match (&args.subject, args.images.as_slice()) {
        (Some(_), [_]) | (None, [_, _]) => {}
        (Some(_), _) => anyhow::bail!("with --subject give exactly one probe image"),
        (None, _) => anyhow::bail!("give two images to compare, or --subject ID and one image"),
    }
    if matches!(args.aggregation, AggregationArg::KOfN) && args.k.is_none() {
        anyhow::bail!("--aggregation k-of-n needs --k N (at least N references must match)");
    }
    client::block_on(verify(args))
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let metric =
        args.metric
            .map_or(Metric::Unspecified, twin_gateway::convert::metric_to_proto) as i32;
    let rbf_sigma = args.rbf_sigma.unwrap_or_default();
    let connection = args.client.connect().await?;
    let mut verification = connection.verification();
    if let Some(subject) = &args.subject {
        let probe = client::read_sample(&args.images[0], args.text).await?;
        let response = verification
            .verify_subject(VerifySubjectRequest {
                subject_id: subject.clone(),
                probe: Some(probe),
                model: args.model.clone(),
                metric,
                policy: args.policy.policy(),
                aggregation: Aggregation::from(args.aggregation) as i32,
                k: args.k.unwrap_or_default(),
                max_references: 0,
                rbf_sigma,
            })
            .await
            .map_err(|status| connection.error("verify", status))?
            .into_inner();
        if args.client.json {
            let references: Vec<_> = response
                .per_reference
                .iter()
                .map(|r| serde_json::json!({"point_id": r.point_id, "score": r.score, "source": r.source}))
                .collect();
            client::print_json(&serde_json::json!({
                "subject_id": subject,
                "match": response.r#match,
                "score": response.score,
                "references": response.references,
                "per_reference": references,
                "audit": client::audit_json(response.audit.as_ref()),
                "warnings": response.warnings,
            }));
            return Ok(());
        }
        print_decision(response.r#match, response.score);
        client::print_warnings(&response.warnings);
        println!(
            "subject          {subject} ({} references)",
            response.references
        );
        client::print_audit(response.audit.as_ref());
        let matched = response
            .audit
            .as_ref()
            .map(|a| a.matched_point_id.as_str())
            .unwrap_or_default();
        if let Some(reference) = response
            .per_reference
            .iter()
            .find(|r| r.point_id == matched)
        {
            println!("matched source   {}", reference.source);
        }
        return Ok(());
    }
    let a = client::read_sample(&args.images[0], args.text).await?;
    let b = client::read_sample(&args.images[1], args.text).await?;
    let response = verification
        .verify(VerifyRequest {
            a: Some(a),
            b: Some(b),
            model: args.model.clone(),
            metric,
            policy: args.policy.policy(),
            rbf_sigma,
        })
        .await
        .map_err(|status| connection.error("verify", status))?
        .into_inner();
    if args.client.json {
        client::print_json(&serde_json::json!({
            "a": args.images[0].display().to_string(),
            "b": args.images[1].display().to_string(),
            "match": response.r#match,
            "score": response.score,
            "audit": client::audit_json(response.audit.as_ref()),
            "warnings": response.warnings,
        }));
        return Ok(());
    }
    print_decision(response.r#match, response.score);
    client::print_warnings(&response.warnings);
    client::print_audit(response.audit.as_ref());
    Ok(())
}

fn print_decision(matched: bool, score: f64) {
    println!("match            {}", if matched { "yes" } else { "no" });
    println!("score            {score:.6}");
}
