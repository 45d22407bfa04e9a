//! What `cargo package` and crates.io do not check, for every crate of the workspace that can be
//! published (read from `cargo metadata`):
//!
//! - the manifest: description, licence, repository, `rust-version`, `readme`, at most five valid
//!   keywords, categories from crates.io's list, docs.rs metadata (every feature, `--cfg docsrs`);
//! - the files: README, `CHANGELOG.md` with an `Unreleased` section, `LICENSE-MIT` and
//!   `LICENSE-APACHE` identical to the repository's; a library marks feature-gated items on
//!   docs.rs (`doc_cfg` under `docsrs`);
//! - the README: a features table naming exactly the crate's features, and a link definition for
//!   every intra-doc link (`[`Item`]`), so that it reads the same on the forge as in rustdoc
//!   (`.ci/run` checks, after the docs build, that each definition names a documented item);
//! - the library forces nothing on its users: no default features of actix-web, none of
//!   actix-session's stores, and `audius-sandbox`'s binary dependencies only behind its `cli`
//!   feature, which the workspace's users of the library leave off.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace root, named from this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// `cargo metadata --no-deps` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The packages that can be published (`publish` not `false`).
fn publishable(meta: &Value) -> Vec<&Value> {
    let packages: Vec<&Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["publish"] != Value::Array(vec![]))
        .collect();
    assert!(
        packages.len() >= 4,
        "the four published crates are found: {}",
        packages.len()
    );
    packages
}

fn dir(package: &Value) -> PathBuf {
    Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned()
}

fn name(package: &Value) -> &str {
    package["name"].as_str().unwrap()
}

/// crates.io's category slugs that fit crates like these (the full list:
/// https://crates.io/category_slugs); a slug outside it fails here before it fails the upload.
const CATEGORIES: [&str; 16] = [
    "api-bindings",
    "asynchronous",
    "authentication",
    "command-line-utilities",
    "cryptography",
    "cryptography::cryptocurrencies",
    "development-tools",
    "development-tools::testing",
    "network-programming",
    "parser-implementations",
    "web-programming",
    "web-programming::http-client",
    "web-programming::http-server",
    "web-programming::websocket",
    "encoding",
    "multimedia::audio",
];

#[test]
fn every_published_manifest_has_what_crates_io_and_docs_rs_show() {
    let meta = metadata();
    for p in publishable(&meta) {
        let n = name(p);
        for field in ["description", "license", "repository", "rust_version"] {
            let value = p[field].as_str().unwrap_or("");
            assert!(!value.trim().is_empty(), "{n}: `{field}` is set");
        }
        assert_eq!(p["license"], "MIT OR Apache-2.0", "{n}: licence");
        assert_eq!(p["readme"], "README.md", "{n}: `readme`");

        let keywords: Vec<&str> = p["keywords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert!(
            (1..=5).contains(&keywords.len()),
            "{n}: 1 to 5 keywords, not {}",
            keywords.len()
        );
        for k in &keywords {
            let valid = k.len() <= 20
                && k.starts_with(|c: char| c.is_ascii_alphabetic())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c));
            assert!(valid, "{n}: keyword {k:?} is one crates.io accepts");
        }

        let categories = p["categories"].as_array().unwrap();
        assert!(
            (1..=5).contains(&categories.len()),
            "{n}: 1 to 5 categories"
        );
        for c in categories {
            let c = c.as_str().unwrap();
            assert!(
                CATEGORIES.contains(&c),
                "{n}: category {c:?} is a crates.io slug"
            );
        }

        let docs_rs = &p["metadata"]["docs"]["rs"];
        assert_eq!(
            docs_rs["all-features"], true,
            "{n}: docs.rs builds every feature"
        );
        assert_eq!(
            docs_rs["rustdoc-args"],
            serde_json::json!(["--cfg", "docsrs"]),
            "{n}: docs.rs passes --cfg docsrs"
        );
    }
}

#[test]
fn every_published_crate_carries_its_readme_changelog_and_licences() {
    let meta = metadata();
    let mit = fs::read(root().join("LICENSE-MIT")).unwrap();
    let apache = fs::read(root().join("LICENSE-APACHE")).unwrap();
    assert!(String::from_utf8_lossy(&apache).contains("Apache License"));
    assert!(String::from_utf8_lossy(&mit).contains("MIT License"));
    for p in publishable(&meta) {
        let (n, d) = (name(p), dir(p));
        assert!(d.join("README.md").is_file(), "{n}: README.md");
        for (file, top) in [("LICENSE-MIT", &mit), ("LICENSE-APACHE", &apache)] {
            let copy = fs::read(d.join(file)).unwrap_or_else(|e| panic!("{n}: {file}: {e}"));
            assert!(
                &copy == top,
                "{n}: {file} is the repository's (copy it again)"
            );
        }
        let changelog = fs::read_to_string(d.join("CHANGELOG.md"))
            .unwrap_or_else(|e| panic!("{n}: CHANGELOG.md: {e}"));
        assert!(
            changelog.contains("\n## [Unreleased]"),
            "{n}: CHANGELOG.md has an `## [Unreleased]` section"
        );
        let is_lib = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "lib"));
        if is_lib {
            let lib = fs::read_to_string(d.join("src/lib.rs")).unwrap();
            assert!(
                lib.contains("#![cfg_attr(docsrs, feature(doc_cfg))]"),
                "{n}: src/lib.rs marks feature-gated items on docs.rs"
            );
        }
    }
}

/// The text of a README without its fenced code blocks.
fn prose(readme: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The labels of the reference-style links `[`x`]` that have no target of their own.
fn intra_doc_links(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let after = &rest[start + 1..];
        let Some(end) = after.find("`]") else { break };
        let label = &after[..end + 1];
        let next = after[end + 2..].chars().next();
        let is_definition = rest[..start].ends_with('\n') && next == Some(':');
        if !label.contains(['[', ']', '\n'])
            && !matches!(next, Some('(') | Some('['))
            && !is_definition
        {
            found.insert(label.to_owned());
        }
        rest = &after[end + 2..];
    }
    found
}

/// The labels defined by `[label]: target` lines.
fn definitions(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix('[')?;
            let (label, target) = l.split_once("]: ")?;
            (!target.trim().is_empty()).then(|| label.to_owned())
        })
        .collect()
}

#[test]
fn readme_links_have_definitions_for_the_forge() {
    let meta = metadata();
    for p in publishable(&meta) {
        let n = name(p);
        let readme = fs::read_to_string(dir(p).join("README.md")).unwrap();
        let defined = definitions(&readme);
        let missing: Vec<String> = intra_doc_links(&prose(&readme))
            .difference(&defined)
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "{n}: README.md links without a definition (add `[{}]: https://docs.rs/...` at \
             its end): {missing:?}",
            missing.first().map(String::as_str).unwrap_or("")
        );
        for label in &defined {
            let line = readme
                .lines()
                .find(|l| l.starts_with(&format!("[{label}]: ")))
                .unwrap();
            let target = line.split_once("]: ").unwrap().1;
            assert!(
                target.starts_with("https://"),
                "{n}: {label} points at an absolute URL, which works on the forge, on \
                 crates.io and in rustdoc: {target}"
            );
        }
    }
}

#[test]
fn the_readme_features_table_names_every_feature() {
    let meta = metadata();
    for p in publishable(&meta) {
        let n = name(p);
        let features: BTreeSet<String> = p["features"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|f| *f != "default")
            .cloned()
            .collect();
        if features.is_empty() {
            continue;
        }
        let readme = fs::read_to_string(dir(p).join("README.md")).unwrap();
        let section = readme
            .split("\n## Features\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{n}: README.md has a `## Features` section"));
        let section = section.split("\n## ").next().unwrap();
        let listed: BTreeSet<String> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(f, _)| f.to_owned())
            .collect();
        assert_eq!(
            listed, features,
            "{n}: the README's features table lists exactly the crate's features"
        );
        let default: BTreeSet<String> = p["features"]["default"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        for f in &features {
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| `{f}` |")))
                .unwrap();
            let says_on = row.split('|').nth(2).unwrap().trim() == "on";
            assert_eq!(
                says_on,
                default.contains(f),
                "{n}: the table says whether `{f}` is on by default"
            );
        }
    }
}

/// The normal (not dev, not build) dependencies of a package on `dep`.
fn normal_deps<'a>(package: &'a Value, dep: &str) -> Vec<&'a Value> {
    package["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == dep && d["kind"].is_null())
        .collect()
}

#[test]
fn the_libraries_force_no_features_on_their_users() {
    let meta = metadata();
    for p in publishable(&meta) {
        let n = name(p);
        for d in normal_deps(p, "actix-web") {
            assert_eq!(
                d["uses_default_features"], false,
                "{n}: actix-web's default features (macros, compression, ...) are the app's choice"
            );
            let features = d["features"].as_array().unwrap();
            for f in features {
                assert!(
                    f == "cookies",
                    "{n}: asks actix-web for {f}, which the app should choose"
                );
            }
        }
        for d in normal_deps(p, "actix-session") {
            assert_eq!(d["uses_default_features"], false, "{n}: actix-session");
            assert_eq!(
                d["features"],
                serde_json::json!([]),
                "{n}: the session store (cookie-session, redis-session) is the app's choice"
            );
        }
    }
}

#[test]
fn the_sandbox_binary_dependencies_are_behind_its_cli_feature() {
    let meta = metadata();
    let packages = meta["packages"].as_array().unwrap();
    let sandbox = packages
        .iter()
        .find(|p| p["name"] == "audius-sandbox")
        .unwrap();
    for dep in ["clap", "tracing-subscriber"] {
        let d = normal_deps(sandbox, dep);
        assert!(
            !d.is_empty() && d.iter().all(|d| d["optional"] == true),
            "audius-sandbox: {dep} is optional"
        );
        let cli: Vec<&str> = sandbox["features"]["cli"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(
            cli.contains(&format!("dep:{dep}").as_str()),
            "audius-sandbox: `cli` brings {dep}"
        );
    }
    let bin = sandbox["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == serde_json::json!(["bin"]))
        .unwrap();
    assert_eq!(bin["required-features"], serde_json::json!(["cli"]));
    // The workspace's own users of the library (examples, suites, bench, dev-dependencies) leave
    // the binary's dependencies out, as the README tells users to.
    for p in packages {
        for d in p["dependencies"].as_array().unwrap() {
            if d["name"] == "audius-sandbox" {
                assert_eq!(
                    d["uses_default_features"],
                    false,
                    "{}: depends on audius-sandbox with default-features = false",
                    name(p)
                );
            }
        }
    }
}
