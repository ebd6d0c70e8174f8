//! `twin jobs ID`: what became of an enrolment job (queued, done or failed, and why).

use twin_proto::v1::{GetJobRequest, JobStatus};

use super::client::{self, ClientArgs};

#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    /// Job id (UUID), as printed by `twin enqueue --json` or returned by Enroll.
    pub job_id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    client::block_on(jobs(args))
}

async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let connection = args.client.connect().await?;
    let job = connection
        .enrollment()
        .get_job(GetJobRequest {
            job_id: args.job_id.clone(),
        })
        .await
        .map_err(|status| connection.error("get job", status))?
        .into_inner();
    let status = JobStatus::try_from(job.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("status#{}", job.status));
    let time = |t: Option<&twin_proto::Timestamp>| t.map(twin_proto::rfc3339).unwrap_or_default();
    if args.client.json {
        client::print_json(&serde_json::json!({
            "job_id": job.job_id,
            "status": status,
            "subject_id": job.subject_id,
            "model_id": job.model_id,
            "point_id": job.point_id,
            "error": job.error,
            "attempts": job.attempts,
            "enqueued_at": time(job.enqueued_at.as_ref()),
            "updated_at": time(job.updated_at.as_ref()),
        }));
        return Ok(());
    }
    println!("job          {}", job.job_id);
    println!("status       {status}");
    println!("subject      {}", job.subject_id);
    println!("point id     {}", job.point_id);
    println!("model id     {}", job.model_id);
    println!("attempts     {}", job.attempts);
    if !job.error.is_empty() {
        println!("error        {}", job.error);
    }
    println!("enqueued at  {}", time(job.enqueued_at.as_ref()));
    println!("updated at   {}", time(job.updated_at.as_ref()));
    Ok(())
}
