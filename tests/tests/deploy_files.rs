//! The deploy files cannot be run here (no Docker engine), so they are checked
//! statically: every `TWIN_*` setting they pass must exist in the one configuration
//! schema the binaries read, and every entrypoint must be a binary the workspace builds.

use std::path::Path;

use twin_core::config::TwinConfig;

const FILES: [&str; 4] = [
    "deploy/docker-compose.yml",
    "deploy/docker-compose.gpu.yml",
    "deploy/Dockerfile",
    "deploy/Dockerfile.cuda",
];

/// `TWIN_SECTION__KEY` settings named in a deploy file, with their literal values.
fn settings(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in text.lines() {
        for part in line.split_whitespace() {
            let part = part.trim_start_matches('-').trim_matches('"');
            let Some(start) = part.find("TWIN_") else {
                continue;
            };
            let setting = &part[start..];
            let key = setting
                .split([':', '=', ' '])
                .next()
                .unwrap_or(setting)
                .trim_end_matches('\\');
            if key.contains("__") {
                let value = line.split_once(key).map_or("", |(_, rest)| rest);
                let value = value.trim_start_matches([':', '=']).trim();
                let value = value.trim_end_matches('\\').trim().trim_matches('"');
                found.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    found
}

#[test]
fn every_twin_setting_in_the_deploy_files_exists_in_the_config_schema() {
    let root = twin_tests::repo_root();
    let mut checked = 0;
    for file in FILES {
        let text = std::fs::read_to_string(root.join(file)).expect("deploy file");
        for (key, value) in settings(&text) {
            // Values built from ${VARIABLES} are only known at deploy time.
            let value = if value.contains("${") {
                "placeholder".to_owned()
            } else {
                value
            };
            match TwinConfig::load(None, vec![(key.clone(), value.clone())]) {
                Ok(_) => {}
                Err(error) => {
                    let message = error.to_string();
                    assert!(
                        !message.contains("no config section") && !message.contains("has no key"),
                        "{file}: {key} is not a setting twin knows: {message}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} settings found: is the scan broken?"
    );
}

#[test]
fn entrypoints_and_healthchecks_name_built_binaries_and_commands() {
    let root = twin_tests::repo_root();
    let compose = std::fs::read_to_string(root.join("deploy/docker-compose.yml")).expect("compose");
    for binary in ["twin-gateway", "twin-worker"] {
        assert!(
            compose.contains(&format!("entrypoint: [\"{binary}\"]")),
            "{binary} entrypoint"
        );
        // The service binaries live in twin-cli (src/bin/), so their crates stay libraries.
        assert!(
            root.join("crates/twin-cli/src/bin")
                .join(format!("{binary}.rs"))
                .is_file(),
            "{binary} is not a workspace binary"
        );
    }
    let cli = std::fs::read_to_string(root.join("crates/twin-cli/Cargo.toml")).expect("twin-cli");
    for dockerfile in ["deploy/Dockerfile", "deploy/Dockerfile.cuda"] {
        let text = std::fs::read_to_string(root.join(dockerfile)).expect("dockerfile");
        assert!(
            text.contains("-p twin-cli") && cli.contains("name = \"twin-gateway\""),
            "{dockerfile} builds the package that holds the service binaries"
        );
    }
    assert!(
        compose.contains("[\"CMD\", \"twin\", \"health\""),
        "gateway healthcheck uses `twin health`"
    );
    for dockerfile in ["deploy/Dockerfile", "deploy/Dockerfile.cuda"] {
        let text = std::fs::read_to_string(root.join(dockerfile)).expect("dockerfile");
        assert!(text.contains("USER twin"), "{dockerfile} runs as root");
        assert!(
            text.contains("pip install"),
            "{dockerfile}: ONNX Runtime must come from PyPI"
        );
        assert!(
            !text.contains("curl ") && !text.contains("wget "),
            "{dockerfile} downloads from elsewhere"
        );
    }
    assert!(Path::new(&root.join("deploy/prometheus.yml")).is_file());
}
