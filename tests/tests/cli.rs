//! The `twin` client subcommands (enqueue, verify, search, jobs, health) as a user runs
//! them, against a real `twin serve` with API keys: summaries, resumable enqueue,
//! JSON output and exit statuses.

use std::path::Path;
use std::process::Output;

use twin_tests::{bin, dev_model, TwinProcess};

const READ_KEY: &str = "read-key-for-cli-tests-00001";
const WRITE_KEY: &str = "write-key-for-cli-tests-0001";

/// Runs `twin ARGS` against `url` with `key`; returns the finished process.
async fn twin(url: &str, key: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin("twin"))
        .args(args)
        .env("TWIN_ADDR", url)
        .env("TWIN_API_KEY", key)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run twin")
}

fn json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON document ({error}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn enqueue_is_resumable_and_verify_search_jobs_health_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("read {READ_KEY}\nwrite {WRITE_KEY}\n")).expect("keys");
    let server = TwinProcess::serve(
        dir.path(),
        &[&dev_model()],
        &[
            ("TWIN_GATEWAY__API_KEYS_FILE", keys.display().to_string()),
            ("TWIN_WORKER__BATCH_WAIT_MS", "5".to_owned()),
        ],
    )
    .await;
    let url = server.url();

    // 5 writers × (3 genuine + 1 forgery) = 20 images, plus one broken file.
    let images = dir.path().join("images");
    let synth = std::process::Command::new(bin("twin"))
        .args(["synth", "--out", path(&images), "--writers", "5"])
        .args(["--genuine", "3", "--forgeries", "1", "--seed", "3"])
        .output()
        .expect("run twin synth");
    assert!(synth.status.success(), "{synth:?}");
    std::fs::write(
        images.join("w0002/broken.png"),
        b"\x89PNG\r\n\x1a\nnot a png",
    )
    .expect("write");

    // First run: everything accepted but the broken file; non-zero exit because of it.
    let first = twin(
        &url,
        WRITE_KEY,
        &["enqueue", path(&images), "--wait", "--json"],
    )
    .await;
    assert!(!first.status.success(), "a rejected file must fail the run");
    let summary = json(&first);
    assert_eq!(summary["files"], 21, "{summary}");
    assert_eq!(summary["accepted"], 20, "{summary}");
    assert_eq!(summary["already_stored"], 0, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(summary["stored"], 20, "{summary}");
    assert_eq!(summary["rejections"][0]["file"], "w0002/broken.png");
    assert!(
        !summary["rejections"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("1 of 21 images were rejected"), "{stderr}");
    let job_id = summary["jobs"][0]["job_id"]
        .as_str()
        .expect("job id")
        .to_owned();

    // Second run, broken file excluded: nothing new, everything already stored.
    let second = twin(
        &url,
        WRITE_KEY,
        &["enqueue", path(&images), "--exclude", "broken", "--json"],
    )
    .await;
    assert!(second.status.success(), "{second:?}");
    let summary = json(&second);
    assert_eq!(summary["accepted"], 0, "{summary}");
    assert_eq!(summary["already_stored"], 20, "{summary}");
    assert_eq!(summary["rejected"], 0, "{summary}");

    // The readable summary says the same.
    let text = twin(
        &url,
        WRITE_KEY,
        &[
            "enqueue",
            path(&images),
            "--exclude",
            "-F-",
            "--exclude",
            "broken",
        ],
    )
    .await;
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("15 images"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["already", "stored", "15"]),
        "{text}"
    );

    // A read-only key may not enrol.
    let refused = twin(&url, READ_KEY, &["enqueue", path(&images)]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PermissionDenied"),
        "{refused:?}"
    );

    let job = twin(&url, READ_KEY, &["jobs", &job_id, "--json"]).await;
    assert!(job.status.success(), "{job:?}");
    let job = json(&job);
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["job_id"], job_id.as_str());

    let a = images.join("w0001/w0001-G-01.png");
    let b = images.join("w0001/w0001-G-02.png");
    let same = twin(&url, READ_KEY, &["verify", path(&a), path(&a), "--json"]).await;
    assert!(same.status.success(), "{same:?}");
    let same = json(&same);
    assert_eq!(same["match"], true, "an image matches itself: {same}");
    assert!(
        same["audit"]["model_id"]
            .as_str()
            .is_some_and(|id| id.len() == 64),
        "{same}"
    );

    let pair = twin(
        &url,
        READ_KEY,
        &["verify", path(&a), path(&b), "--threshold", "1e9", "--json"],
    )
    .await;
    assert!(pair.status.success(), "{pair:?}");
    let pair = json(&pair);
    assert_eq!(
        pair["match"], false,
        "nothing reaches an absurd threshold: {pair}"
    );
    assert_eq!(pair["audit"]["operating_point"], "explicit", "{pair}");

    let subject = twin(
        &url,
        READ_KEY,
        &[
            "verify",
            "--subject",
            "w0001",
            path(&a),
            "--aggregation",
            "k-of-n",
            "--k",
            "2",
            // no subject-level point is calibrated for 2 of n: an explicit threshold,
            // which compares every reference
            "--threshold",
            "0.5",
            "--json",
        ],
    )
    .await;
    assert!(subject.status.success(), "{subject:?}");
    let subject = json(&subject);
    assert_eq!(subject["references"], 4, "{subject}");
    assert!(!subject["audit"]["matched_point_id"]
        .as_str()
        .unwrap_or_default()
        .is_empty());

    let unknown = twin(&url, READ_KEY, &["verify", "--subject", "nobody", path(&a)]).await;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("NotFound"),
        "{unknown:?}"
    );

    let search = twin(
        &url,
        READ_KEY,
        &[
            "search",
            path(&a),
            "--top-k",
            "3",
            "--threshold",
            "-1e9",
            "--json",
        ],
    )
    .await;
    assert!(search.status.success(), "{search:?}");
    let search = json(&search);
    assert_eq!(search["unknown"], false, "{search}");
    assert_eq!(search["hits"].as_array().map(Vec::len), Some(3), "{search}");
    assert_eq!(
        search["hits"][0]["subject_id"], "w0001",
        "the probe itself is enrolled: {search}"
    );
    assert_eq!(search["hits"][0]["source"], "w0001-G-01.png", "{search}");

    let nobody = twin(&url, READ_KEY, &["search", path(&a), "--threshold", "1e9"]).await;
    assert!(nobody.status.success(), "{nobody:?}");
    assert!(
        String::from_utf8_lossy(&nobody.stdout).starts_with("unknown"),
        "{nobody:?}"
    );

    let health = twin(&url, "", &["health"]).await;
    assert!(health.status.success(), "{health:?}");
    assert!(String::from_utf8_lossy(&health.stdout).contains("serving"));
    let down = twin("http://127.0.0.1:9", "", &["health"]).await;
    assert!(!down.status.success(), "nothing listens on port 9");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot connect"),
        "{down:?}"
    );
}

/// `twin bench verify` against a gateway it starts itself, then against a running one
/// with API keys: a table, then one JSON line with the figures the issue asks for.
#[tokio::test(flavor = "multi_thread")]
async fn bench_verify_prints_a_table_then_one_json_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, format!("read {READ_KEY}\n")).expect("keys");
    let model = dev_model();
    let server = TwinProcess::serve(
        dir.path(),
        &[&model],
        &[("TWIN_GATEWAY__API_KEYS_FILE", keys.display().to_string())],
    )
    .await;
    let url = server.url();
    let quick = [
        "bench",
        "verify",
        "--model",
        path(&model),
        "--seconds",
        "0.2",
        "--rounds",
        "1",
        "--pairs",
        "4",
        "--concurrency",
        "1,2",
    ];
    for target in [None, Some(url.as_str())] {
        let mut args = quick.to_vec();
        if let Some(url) = target {
            args.extend(["--addr", url]);
        }
        let output = twin(&url, READ_KEY, &args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("concurrency"), "no table:\n{stdout}");
        let last = stdout.lines().last().expect("a JSON line");
        let figures: serde_json::Value = serde_json::from_str(last).expect("JSON line");
        assert_eq!(figures["bench"], "verify");
        for key in [
            "p50_ms_c1",
            "p99_ms_c1",
            "pairs_per_s_c1",
            "p99_ms_c2",
            "pairs_per_s_c2",
            "raw_b2_ms",
            "raw_b64_pairs_per_s",
            "ratio_p99_c1",
        ] {
            let value = figures[key].as_f64().unwrap_or_default();
            assert!(value > 0.0, "{key} = {} in {last}", figures[key]);
        }
        assert_eq!(figures["errors_c1"], 0, "{last}");
        // The VerifySubject case runs where the benchmark stores the references itself.
        for key in [
            "subject_p99_ms_r5",
            "subject_p99_ms_r20",
            "ratio_subject_p99_r5",
            "ratio_subject_p99_r20",
            "p99_ms_c1_without_audit",
            "ratio_audit_p99_c1",
        ] {
            let value = figures[key].as_f64();
            match target {
                None => assert!(value.unwrap_or_default() > 0.0, "{key} in {last}"),
                Some(_) => assert!(value.is_none(), "{key} in {last}"),
            }
        }
        if target.is_none() {
            assert_eq!(figures["subject_errors_r20"], 0, "{last}");
        }
        assert_eq!(
            figures["mean_batch_c1"].is_number(),
            target.is_none(),
            "{last}"
        );
    }
}
