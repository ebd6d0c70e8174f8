//! `twin eval` and `twin calibrate` as a user runs them, on a small `twin synth` folder with
//! the shipped signature model: the report's counts against the folder's structure, the
//! plots, and a calibration written into a copy of the model that then still loads.

use std::path::Path;
use std::process::Output;

use twin_core::manifest::ModelManifest;
use twin_tests::{bin, repo_root};

const WRITERS: usize = 4;
const GENUINE: usize = 4;
const FORGERIES: usize = 3;

/// Runs `twin ARGS` from the repository root on the CPU (deterministic, no GPU needed).
fn twin(args: &[&str]) -> Output {
    std::process::Command::new(bin("twin"))
        .args(args)
        .current_dir(repo_root())
        .env("TWIN_EMBED__PROVIDER", "cpu")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run twin")
}

fn success(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "twin failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn json(output: &Output) -> serde_json::Value {
    let text = success(output);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}):\n{text}"))
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn rate(value: &serde_json::Value) -> f64 {
    let v = value.as_f64().unwrap_or(f64::NAN);
    assert!((0.0..=1.0).contains(&v), "not a rate in [0, 1]: {value}");
    v
}

/// A JSON number equal to `expected` (serde_json's default parser may be 1 ulp off).
fn same(value: &serde_json::Value, expected: f64) -> bool {
    value
        .as_f64()
        .is_some_and(|v| (v - expected).abs() <= 1e-12 * expected.abs().max(1.0))
}

/// WRITERS × (GENUINE + FORGERIES) synthetic signatures, plus one corrupt image and one file
/// whose name says neither genuine nor forged.
fn labelled_folder(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    let writers = WRITERS.to_string();
    let genuine = GENUINE.to_string();
    let forgeries = FORGERIES.to_string();
    success(&twin(&[
        "synth",
        "--out",
        path(&data),
        "--writers",
        &writers,
        "--genuine",
        &genuine,
        "--forgeries",
        &forgeries,
        "--seed",
        "11",
    ]));
    std::fs::write(
        data.join("w0002/w0002-G-99.png"),
        b"\x89PNG\r\n\x1a\nnot a png",
    )
    .expect("write");
    std::fs::write(data.join("w0003/notes.png"), b"unlabelled").expect("write");
    data
}

/// Checks an SVG plot: well-formed enough for a browser, two curves, a legend, the EER.
fn check_svg(file: &Path) {
    let svg = std::fs::read_to_string(file).expect("plot written");
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    assert_eq!(svg.matches('<').count(), svg.matches('>').count(), "{svg}");
    for element in ["text", "title", "clipPath", "defs"] {
        assert_eq!(
            svg.matches(&format!("<{element}")).count(),
            svg.matches(&format!("</{element}>")).count(),
            "unbalanced <{element}> in {}",
            file.display()
        );
    }
    assert_eq!(
        svg.matches("<path d=\"M").count(),
        2,
        "one curve per kind of forgery"
    );
    for needle in [
        "signature-v1",
        "skilled forgeries",
        "random forgeries",
        "EER ",
        "%</text>",
    ] {
        assert!(svg.contains(needle), "{} lacks {needle:?}", file.display());
    }
    assert!(!svg.contains("NaN"), "{svg}");
}

/// `twin eval DATA --model MODEL --json --out OUT`, parsed.
fn eval_json(data: &Path, model: &Path, out: &Path) -> serde_json::Value {
    json(&twin(&[
        "eval",
        path(data),
        "--model",
        path(model),
        "--json",
        "--out",
        path(out),
    ]))
}

#[test]
fn eval_reports_figures_counts_and_plots_of_a_labelled_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = labelled_folder(dir.path());
    let out = dir.path().join("report");
    let model = repo_root().join("models/signature-v1");
    let report = eval_json(&data, &model, &out);

    // The folder's structure, counted independently of twin.
    let images = WRITERS * (GENUINE + FORGERIES);
    let positive = WRITERS * GENUINE * (GENUINE - 1) / 2;
    let skilled = WRITERS * GENUINE * FORGERIES;
    let random = WRITERS * (WRITERS - 1) / 2 * GENUINE * GENUINE;
    assert_eq!(report["data"]["images"], images, "{report}");
    assert_eq!(report["data"]["files"], images + 2, "{report}");
    assert_eq!(report["data"]["subjects"], WRITERS, "{report}");
    assert_eq!(report["data"]["genuine"], WRITERS * GENUINE, "{report}");
    assert_eq!(report["data"]["forged"], WRITERS * FORGERIES, "{report}");
    assert_eq!(report["data"]["skipped"], 2, "{report}");
    let skipped = report["skipped"].as_array().expect("skipped list");
    assert_eq!(skipped[0]["file"], "w0002/w0002-G-99.png", "{report}");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("corrupt"),
        "{report}"
    );
    assert_eq!(skipped[1]["file"], "w0003/notes.png", "{report}");
    assert!(
        skipped[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("genuine from forged"),
        "{report}"
    );
    assert_eq!(report["pairs"]["positive"], positive, "{report}");
    assert_eq!(report["pairs"]["skilled"], skilled, "{report}");
    assert_eq!(report["pairs"]["random"], random, "{report}");
    assert_eq!(report["pairs"]["random_sampled"], false, "{report}");

    assert_eq!(report["model"]["name"], "signature-v1", "{report}");
    assert_eq!(report["metric"], "cosine", "{report}");
    let shipped = ModelManifest::load(&model).expect("shipped manifest");
    for kind in ["skilled", "random"] {
        let k = &report[kind];
        rate(&k["eer"]);
        rate(&k["auc"]);
        assert!(
            k["eer_threshold"].as_f64().is_some_and(f64::is_finite),
            "{report}"
        );
        let points = k["operating_points"].as_array().expect("operating points");
        assert_eq!(points.len(), shipped.operating_points.len(), "{report}");
        for (point, calibrated) in points.iter().zip(&shipped.operating_points) {
            assert_eq!(point["name"], calibrated.name.as_str(), "{report}");
            assert!(same(&point["threshold"], calibrated.threshold), "{report}");
            rate(&point["far"]);
            rate(&point["frr"]);
        }
    }
    // Higher thresholds accept fewer forgeries (points are 10 %, 1 %, 0.1 %).
    let far = |i: usize| rate(&report["skilled"]["operating_points"][i]["far"]);
    assert!(far(0) >= far(1) && far(1) >= far(2), "{report}");

    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json written"),
    )
    .expect("report.json is JSON");
    assert_eq!(written["pairs"], report["pairs"]);
    assert_eq!(written["skilled"], report["skilled"]);
    check_svg(&out.join("roc.svg"));
    check_svg(&out.join("det.svg"));

    // The readable table names the figures and where the plots are.
    let table = success(&twin(&[
        "eval",
        path(&data),
        "--model",
        path(&model),
        "--out",
        path(&out),
    ]));
    for needle in [
        "EER",
        "ROC AUC",
        "FAR 1 %",
        "FAR skilled",
        "skipped",
        "det.svg",
    ] {
        assert!(table.contains(needle), "table lacks {needle:?}:\n{table}");
    }
}

#[test]
fn calibrate_writes_thresholds_that_meet_their_targets_and_the_model_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = labelled_folder(dir.path());
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).expect("model dir");
    let shipped = repo_root().join("models/signature-v1");
    for file in ["model.onnx", "manifest.toml"] {
        std::fs::copy(shipped.join(file), model.join(file)).expect("copy model");
    }
    let before = std::fs::read_to_string(model.join("manifest.toml")).expect("manifest");

    // A dry run prints thresholds and leaves the manifest alone.
    let dry = json(&twin(&[
        "calibrate",
        path(&data),
        "--model",
        path(&model),
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["written"], false, "{dry}");
    assert_eq!(
        dry["operating_points"].as_array().map(Vec::len),
        Some(3),
        "{dry}"
    );
    assert_eq!(
        std::fs::read_to_string(model.join("manifest.toml")).expect("manifest"),
        before
    );

    // Without the default FAR (1 %) the default operating point would be lost: refused.
    let refused = twin(&[
        "calibrate",
        path(&data),
        "--model",
        path(&model),
        "--target-far",
        "0.2",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("default_target_far"),
        "{refused:?}"
    );

    let calibrated = json(&twin(&[
        "calibrate",
        path(&data),
        "--model",
        path(&model),
        "--target-far",
        "0.2,0.05,0.01",
        "--calibrated-on",
        "synthetic test writers",
        "--json",
    ]));
    assert_eq!(calibrated["written"], true, "{calibrated}");
    let original = ModelManifest::load(&shipped).expect("shipped manifest");
    let manifest = ModelManifest::load(&model).expect("rewritten manifest loads");
    assert_eq!(manifest.id, original.id);
    assert_eq!(manifest.input, original.input);
    assert_eq!(manifest.preprocess, original.preprocess);
    assert_eq!(manifest.evaluation, original.evaluation);
    let targets: Vec<f64> = manifest
        .operating_points
        .iter()
        .map(|p| p.target_far)
        .collect();
    assert_eq!(targets, vec![0.2, 0.05, 0.01]);
    let skilled = (WRITERS * GENUINE * FORGERIES) as f64;
    for point in &manifest.operating_points {
        assert_eq!(point.metric, twin_core::Metric::Cosine);
        assert_eq!(point.calibrated_on, "synthetic test writers");
        assert!(point.threshold.is_finite());
        assert!(point.measured_far <= point.target_far, "{point:?}");
        // The lowest such threshold: one more accepted forgery would break the target.
        assert!(
            point.measured_far + 1.0 / skilled > point.target_far,
            "{point:?}"
        );
        assert!((0.0..=1.0).contains(&point.measured_frr), "{point:?}");
    }

    // The calibrated model serves an evaluation, which measures the same rates again.
    let out = dir.path().join("report");
    let report = eval_json(&data, &model, &out);
    let points = report["skilled"]["operating_points"]
        .as_array()
        .expect("operating points");
    assert_eq!(points.len(), 3, "{report}");
    for (point, calibrated) in points.iter().zip(&manifest.operating_points) {
        assert!(same(&point["threshold"], calibrated.threshold), "{report}");
        let far = rate(&point["far"]);
        assert!(
            (far - calibrated.measured_far).abs() < 1e-12,
            "eval measures FAR {far} where calibrate measured {}",
            calibrated.measured_far
        );
    }
}

/// The test writers of each collection signature-v2's card reports, as `twin eval --subjects`
/// selects them (training/twin_train/splits.py holds the same lists).
const V2_TEST_SPLITS: [(&str, &str, &str); 2] = [
    ("bhsig260-bengali", "061-100", "bhsig"),
    (
        "icdar2011-sign-data",
        "002,003,004,016,019,020,024,025,029,037,047,050,057,063,064,065",
        "icdar",
    ),
];

/// `twin eval` on each test split, through the serving path (Rust preprocessing and
/// twin-embed), prints the EERs the shipped model card and manifest report (computed in
/// training by onnxruntime-Python on the training cache). Needs ../shared/data.
#[test]
fn twin_eval_on_each_test_split_reproduces_signature_v2s_card_figures() {
    let data = repo_root().join("../shared/data");
    if !data.join("bhsig260-bengali").is_dir() || !data.join("icdar2011-sign-data").is_dir() {
        println!("skipped: ../shared/data has no BHSig260-Bengali / ICDAR 2011 signatures");
        return;
    }
    let model = repo_root().join("models/signature-v2");
    let shipped = ModelManifest::load(&model).expect("shipped signature-v2 manifest");
    let card = std::fs::read_to_string(model.join("MODEL_CARD.md")).expect("model card");
    let dir = tempfile::tempdir().expect("tempdir");
    for (folder, subjects, collection) in V2_TEST_SPLITS {
        let report = json(&twin(&[
            "eval",
            path(&data.join(folder)),
            "--subjects",
            subjects,
            "--model",
            path(&model),
            "--random-pairs",
            "0",
            "--json",
            "--out",
            path(&dir.path().join(collection)),
        ]));
        for kind in ["skilled", "random"] {
            let measured = rate(&report[kind]["eer"]);
            let key = format!("eer_{kind}_test_{collection}");
            let expected = shipped.evaluation.get(&key).copied().unwrap_or_else(|| {
                panic!(
                    "manifest [evaluation] has no {key}: {:?}",
                    shipped.evaluation
                )
            });
            // same tensors bit for bit; embeddings within 1e-5, so only near-ties can move
            assert!(
                (measured - expected).abs() <= 5e-4,
                "{collection} {kind} EER through twin eval {measured} vs card {expected}"
            );
            // the manifest keeps 5 decimals, the card prints the unrounded figure to 2 (in %)
            let shown: Vec<String> = [-5e-6, 0.0, 5e-6]
                .iter()
                .map(|d| format!("{:.2} %", 100.0 * (expected + d)))
                .collect();
            assert!(
                shown.iter().any(|s| card.contains(s.as_str())),
                "the card does not show {key} = {}",
                shown[1]
            );
        }
    }
}
