//! `twin eval` on faces: a folder of photos by person (other people's photos are the
//! negatives) and LFW's pairs protocol, through the shipped models/face-v1. Needs
//! ../shared/data/lfw; says "skipped" without it.

use std::path::PathBuf;

use twin_tests::{bin, repo_root};

fn lfw() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/data/lfw");
    if dir.join("pairs.txt").is_file() {
        Some(dir)
    } else {
        println!("skipped: ../shared/data/lfw is missing");
        None
    }
}

fn eval(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(bin("twin"))
        .arg("eval")
        .args(args)
        .args(["--model", "models/face-v1", "--json"])
        .current_dir(repo_root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run twin eval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn a_folder_of_faces_by_person_is_evaluated_with_other_people_as_negatives() {
    let Some(lfw) = lfw() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    for person in ["Colin_Powell", "George_W_Bush", "Tony_Blair"] {
        std::os::unix::fs::symlink(lfw.join("images").join(person), dir.path().join(person))
            .expect("link");
    }
    let out = dir.path().join("report");
    let report = eval(&[
        &dir.path().display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    let text = report.to_string();
    assert!(
        report["skipped"].as_array().is_none_or(Vec::is_empty),
        "{text}"
    );
    let random = &report["random"];
    assert!(
        random["auc"].as_f64().is_some_and(|auc| auc > 0.95),
        "{text}"
    );
}

#[test]
fn lfw_pairs_are_scored_in_ten_folds_with_thresholds_from_the_other_nine() {
    let Some(lfw) = lfw() else { return };
    let all = std::fs::read_to_string(lfw.join("pairs.txt")).expect("pairs");
    let lines: Vec<&str> = all.lines().skip(1).collect();
    // 2 matched and 2 mismatched pairs per fold: header 20, then 20 + 20.
    let mut small = String::from("20\n");
    for line in lines[..3000].iter().step_by(150).take(20) {
        small.push_str(line);
        small.push('\n');
    }
    for line in lines[3000..].iter().step_by(150).take(20) {
        small.push_str(line);
        small.push('\n');
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, small).expect("write pairs");
    let images = lfw.join("images");
    let out = dir.path().join("report");
    let report = eval(&[
        &pairs.display().to_string(),
        "--lfw",
        "--lfw-images",
        &images.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    let text = report.to_string();
    assert_eq!(report["pairs"], 40, "{text}");
    assert_eq!(
        report["folds_best_accuracy"].as_array().map(Vec::len),
        Some(10),
        "{text}"
    );
    assert!(
        report["ten_fold_accuracy"]
            .as_f64()
            .is_some_and(|a| a >= 0.9),
        "{text}"
    );
    assert!(out.join("report.json").is_file());
}
