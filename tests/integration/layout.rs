//! The package's shape, checked on the source: the binaries stay thin (arguments, logging, a
//! call into the library), and agent-cli's code does not reach into the console.

use std::path::{Path, PathBuf};

const MAX_BIN_LINES: usize = 80;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Paths into the console module (`console::…`, `crate::console::…`), but not the crate's own
/// name, `sponsor_console::`.
fn console_paths(text: &str) -> Vec<String> {
    text.match_indices("console::")
        .filter(|(at, _)| {
            !text[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            text[line_start..line_end].trim().to_owned()
        })
        .collect()
}

#[test]
fn binaries_only_parse_log_and_call_the_library() {
    let bins = rust_files(&root().join("src/bin"));
    assert_eq!(bins.len(), 3, "{bins:?}");
    for bin in bins {
        let lines = std::fs::read_to_string(&bin).unwrap().lines().count();
        assert!(
            lines <= MAX_BIN_LINES,
            "{} has {lines} lines; its logic belongs in src/cli/",
            bin.display()
        );
    }
}

#[test]
fn agent_cli_does_not_depend_on_the_console() {
    let root = root();
    let mut files = vec![
        root.join("src/bin/agent-cli.rs"),
        root.join("src/cli/agent.rs"),
        root.join("src/cli/exit.rs"),
        root.join("src/cli/output.rs"),
    ];
    // What agent-cli calls: the client (sign-in and sessions included) and the demo fleet.
    files.extend(rust_files(&root.join("src/client")));
    files.extend(rust_files(&root.join("src/demo")));
    for file in files {
        let found = console_paths(&std::fs::read_to_string(&file).unwrap());
        assert!(found.is_empty(), "{}: {found:?}", file.display());
    }
}

#[test]
fn the_console_path_check_can_fail() {
    assert_eq!(
        console_paths("use crate::console::safe_text;\nuse sponsor_console::client;\n"),
        vec!["use crate::console::safe_text;"]
    );
    assert_eq!(
        console_paths("super::console::x"),
        vec!["super::console::x"]
    );
    assert!(console_paths("sponsor_console::cli::agent").is_empty());
}

/// The lines of `file` that use one of `crates` (`use axum::…`, `sqlx::query(…)`, …).
fn uses_of(text: &str, crates: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("//")
                && crates.iter().any(|c| {
                    line.match_indices(&format!("{c}::")).any(|(at, _)| {
                        !line[..at]
                            .chars()
                            .next_back()
                            .is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == ':')
                    })
                })
        })
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn the_rules_and_the_wire_types_use_no_framework() {
    let frameworks = [
        "axum",
        "sqlx",
        "reqwest",
        "ratatui",
        "crossterm",
        "tower_http",
    ];
    for layer in ["src/domain", "src/protocol"] {
        for file in rust_files(&root().join(layer)) {
            let found = uses_of(&std::fs::read_to_string(&file).unwrap(), &frameworks);
            assert!(found.is_empty(), "{}: {found:?}", file.display());
        }
    }
}

#[test]
fn arrows_point_down() {
    // (layer, the modules of this crate it must not import)
    let rules: &[(&str, &[&str])] = &[
        (
            "src/domain",
            &[
                "crate::server",
                "crate::client",
                "crate::console",
                "crate::cli",
            ],
        ),
        (
            "src/protocol",
            &[
                "crate::server",
                "crate::client",
                "crate::console",
                "crate::cli",
            ],
        ),
        (
            "src/client",
            &[
                "crate::server",
                "crate::console",
                "crate::cli",
                "crate::demo",
            ],
        ),
        (
            "src/server",
            &[
                "crate::client",
                "crate::console",
                "crate::cli",
                "crate::demo",
            ],
        ),
        (
            "src/console",
            &["crate::server", "crate::cli", "crate::demo"],
        ),
    ];
    for (layer, forbidden) in rules {
        for file in rust_files(&root().join(layer)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let found: Vec<&str> = forbidden
                .iter()
                .copied()
                .filter(|m| text.contains(&format!("{m}::")) || text.contains(&format!("{m};")))
                .collect();
            assert!(found.is_empty(), "{} imports {found:?}", file.display());
        }
    }
}

#[test]
fn the_framework_check_can_fail() {
    let text = "use axum::Json;\n// axum::nothing\nlet x = sqlx::query(q);\nuse my_axum::x;\n";
    assert_eq!(
        uses_of(text, &["axum", "sqlx"]),
        ["use axum::Json;", "let x = sqlx::query(q);"]
    );
}

#[test]
fn no_source_file_grows_past_600_lines() {
    for file in rust_files(&root().join("src")) {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(
            lines <= 600,
            "{} has {lines} lines: split it by what it holds",
            file.display()
        );
    }
}

/// A `major.minor[.patch]` Rust version as numbers, for comparing.
fn rust_version(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text
        .split('.')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("rust-version {text:?}"))
        })
        .collect();
    parts.resize(3, 0);
    parts
}

/// The `rust-version` the workspace declares is what its locked dependencies need: none asks
/// for a newer compiler, and every member declares the same one.
#[test]
fn rust_version_covers_every_locked_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--locked", "--format-version", "1"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = metadata["packages"].as_array().unwrap();
    let ours: Vec<(&str, &str)> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or_default()))
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default();
            let version = p["rust_version"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} declares no rust-version"));
            (name, version)
        })
        .collect();
    let declared = ours
        .iter()
        .find(|(n, _)| *n == "sponsor-console")
        .unwrap()
        .1;
    for (name, version) in &ours {
        assert_eq!(version, &declared, "{name}'s rust-version");
    }
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (rust_version(needs) > rust_version(declared)).then(|| {
                format!(
                    "{} {} needs Rust {needs}",
                    p["name"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default()
                )
            })
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "rust-version is {declared}, but {}",
        too_new.join(", ")
    );
    assert!(rust_version("1.88") < rust_version("1.89.0"));
}
