//! Architecture invariants of ARCHITECTURE.md, checked on the source text:
//!
//! - the engine's modules import downwards only (the layer table below);
//! - the protocol crate depends on nothing of actix, fred, Postgres or tokio;
//! - the rulesets do no I/O: they import no actor, network or database crate.
//!
//! Change the table only together with ARCHITECTURE.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The engine's top-level modules by layer: a module may import itself and
/// every module of a lower layer; not the other modules of its own layer.
const LAYERS: &[&[&str]] = &[
    &["rules", "config", "metrics", "util", "budget"],
    // The TLS settings that both the Postgres and the Redis clients use.
    &["tls"],
    &["validation_cache", "history", "cluster"],
    &["session"],
    &["node"],
    &["connection"],
    &["testing"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (doc links name modules without importing
/// them).
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`, including the
/// ones of a `crate::{a, b::c}` group.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

/// Every import that breaks the layer table, as "file: module -> module".
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue; // the crate root re-exports
        }
        let Some(own) = layer_of(&module) else {
            bad.push(format!("{}: module {module} is in no layer", rel.display()));
            continue;
        };
        for used in crate_modules(&code_of(&file)) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own => {}
                _ => bad.push(format!("{}: {module} -> {used}", rel.display())),
            }
        }
    }
    bad
}

#[test]
fn modules_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_a_violation() {
    // The checker itself: upward and sideways imports are caught (the
    // modules of one layer do not import each other), a doc link is not
    // an import.
    let dir = std::env::temp_dir().join(format!("matchd-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("history")).expect("mkdir");
    std::fs::write(
        dir.join("history/writer.rs"),
        "//! See [`crate::session::MatchSession`].\nuse crate::{metrics, cluster::keys};\nuse crate::session::messages::ToConn;\n",
    )
    .expect("write");
    std::fs::write(dir.join("rules.rs"), "use crate::util::unix_ms;\n").expect("write");
    let mut bad = violations(&dir);
    bad.sort();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        bad,
        vec![
            "history/writer.rs: history -> cluster".to_string(),
            "history/writer.rs: history -> session".to_string(),
            "rules.rs: rules -> util".to_string(),
        ]
    );
}

fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("read manifest");
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                deps.push(name.trim().split('.').next().unwrap_or("").to_string());
            }
        }
    }
    deps
}

#[test]
fn the_protocol_crate_stands_alone() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/Cargo.toml");
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"serde".to_string()), "parsed: {deps:?}");
    for dep in deps {
        for banned in [
            "actix",
            "fred",
            "postgres",
            "deadpool",
            "tokio",
            "matchd-actors",
        ] {
            assert!(
                !dep.contains(banned),
                "matchd-protocol must not depend on {dep} (a Rust game client uses it alone)"
            );
        }
    }
}

#[test]
fn rulesets_do_no_io() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rules"),
        &mut files,
    );
    assert!(!files.is_empty());
    for file in files {
        let code = code_of(&file);
        for banned in [
            "actix",
            "fred::",
            "tokio",
            "postgres",
            "std::net",
            "std::fs",
            "std::thread",
            "SystemTime",
            "Instant",
        ] {
            assert!(
                !code.contains(banned),
                "{}: a ruleset must stay pure, found {banned:?}",
                file.display()
            );
        }
    }
}
