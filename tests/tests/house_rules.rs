//! The house's structural rules, read from the tree itself so that they hold as it grows:
//! no import loop between the files of a crate, the worker free of the API's protobuf
//! types, and no library crate depending on `clap` (argument parsing belongs to binaries).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `.rs` files of a crate's `src/`, by module path (`crate`, `crate::a`, `crate::a::b`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).expect("read src folder");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                // src/bin/ holds binaries: each is a crate root of its own.
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let module = std::iter::once("crate".to_owned())
                .chain(parts)
                .collect::<Vec<_>>()
                .join("::");
            found.insert(module, path);
        }
    }
    found
}

/// The code of a file without its trailing unit-test module (whose `super::` means the
/// file itself) and without comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths a file names: `crate::..`, `super::..`, `self::..`, and `use child::..` of its own
/// child modules, each resolved to an absolute module path.
fn named_paths(module: &str, code: &str, modules: &BTreeMap<String, PathBuf>) -> Vec<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let parent = module.rsplit_once("::").map_or("crate", |(p, _)| p);
    let mut paths = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !is_word(chars[i - 1]) && chars[i - 1] != ':';
        if !at_word_start || !is_word(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (is_word(chars[i]) || (chars[i] == ':' && chars.get(i + 1) == Some(&':')))
        {
            i += if chars[i] == ':' { 2 } else { 1 };
        }
        let path: String = chars[start..i].iter().collect();
        let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        if segments.len() < 2 {
            continue;
        }
        let base = match segments[0] {
            "crate" => {
                segments.remove(0);
                "crate".to_owned()
            }
            "super" => {
                segments.remove(0);
                parent.to_owned()
            }
            "self" => {
                segments.remove(0);
                module.to_owned()
            }
            first if modules.contains_key(&format!("{module}::{first}")) => module.to_owned(),
            _ => continue,
        };
        let mut resolved = base;
        for segment in segments {
            let next = format!("{resolved}::{segment}");
            if !modules.contains_key(&next) {
                break;
            }
            resolved = next;
        }
        paths.push(resolved);
    }
    paths
}

/// Import edges between a crate's files, then any cycle among them.
fn import_cycle(src: &Path) -> Option<Vec<String>> {
    let modules = modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &modules {
        let code = code_of(path);
        for target in named_paths(module, &code, &modules) {
            if &target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for module in modules.keys() {
        if state.get(module.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(module, &edges, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

fn crate_dirs() -> Vec<PathBuf> {
    let root = twin_tests::repo_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut loops = Vec::new();
    for dir in crate_dirs() {
        if let Some(cycle) = import_cycle(&dir.join("src")) {
            loops.push(format!("{}: {}", dir.display(), cycle.join(" -> ")));
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("queue")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod queue;\npub mod job;\n").expect("write");
    std::fs::write(src.join("job.rs"), "pub struct Job;\n").expect("write");
    std::fs::write(
        src.join("queue/mod.rs"),
        "mod rabbit;\nuse rabbit::Settle;\npub struct Delivery;\n",
    )
    .expect("write");
    std::fs::write(
        src.join("queue/rabbit.rs"),
        "use super::Delivery;\nuse crate::job::Job;\npub struct Settle;\n",
    )
    .expect("write");
    let cycle = import_cycle(src).expect("the loop queue <-> queue::rabbit");
    assert!(
        cycle.contains(&"crate::queue::rabbit".to_owned()),
        "{cycle:?}"
    );
    std::fs::write(
        src.join("queue/rabbit.rs"),
        "use crate::job::Job;\npub struct Settle;\n",
    )
    .expect("write");
    assert_eq!(import_cycle(src), None);
}

/// `[dependencies]` of a crate's Cargo.toml (names only).
fn dependencies(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Value = text.parse().expect("Cargo.toml is TOML");
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_worker_sees_domain_jobs_not_protobuf() {
    let root = twin_tests::repo_root();
    let direct = dependencies(&root.join("crates/twin-worker"));
    assert!(
        direct.contains("twin-queue"),
        "the scan is reading the wrong file: {direct:?}"
    );
    // Through every workspace crate it uses, not only directly.
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = vec!["twin-worker".into()];
    while let Some(name) = todo.pop() {
        let dir = root.join("crates").join(&name);
        if !dir.is_dir() || !seen.insert(name) {
            continue;
        }
        todo.extend(
            dependencies(&dir)
                .into_iter()
                .filter(|d| d.starts_with("twin-")),
        );
    }
    assert!(seen.contains("twin-core"), "{seen:?}");
    assert!(
        !seen.contains("twin-proto"),
        "twin-worker depends on twin-proto through {seen:?}"
    );
}

#[test]
fn argument_parsing_lives_in_binaries_only() {
    let mut offenders = Vec::new();
    for dir in crate_dirs() {
        // A crate with a library target must not depend on clap.
        if dir.join("src/lib.rs").is_file() && dependencies(&dir).contains("clap") {
            offenders.push(dir.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "library crates depending on clap: {offenders:?}"
    );
}
