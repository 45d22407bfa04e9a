//! The repository's `testdata/` is what the tests read (see `testdata/README.md`):
//!
//! - each data file is byte for byte the one recorded in `testdata/SHA256SUMS`, and every data
//!   file there is recorded;
//! - `tests/fixtures/basic.token` (shipped with this crate for a doc example) is the `basic`
//!   vector of `testdata/tokens.json`;
//! - nothing in the workspace reads test data or cites the protocol from outside the repository
//!   (or by its old file names), and every `testdata/<file>` a test names, relative to its
//!   crate, is there;
//! - every test or bench that reads `testdata/` (itself or through `audius-login-testdata`) is
//!   left out of its crate's package (`exclude` in its `Cargo.toml`), and no shipped test needs a
//!   module that is left out.
//!
//! Not shipped with the crate itself: it reads the workspace around it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The workspace root, named from this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// How a test names the folder: relative to its crate (`CARGO_MANIFEST_DIR`, then up to the
/// workspace root). Spelled in pieces so that this file does not find itself.
const READS: &str = concat!("../", "testdata/");

/// How a test reads it through the workspace's loader (`crates/testdata`, never published).
const LOADS: &str = concat!("audius_login_", "testdata::");

fn testdata() -> PathBuf {
    root().join("testdata")
}

/// Files of `testdata/` that describe the data rather than being data.
const NOT_DATA: [&str; 4] = [
    "README.md",
    "SHA256SUMS",
    "LICENSE-PayloadsAllTheThings",
    ".gitattributes",
];

#[test]
fn every_data_file_matches_its_recorded_digest() {
    let sums = fs::read_to_string(testdata().join("SHA256SUMS")).unwrap();
    let mut recorded = BTreeSet::new();
    for line in sums.lines().filter(|l| !l.is_empty()) {
        let (digest, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("`<sha256>  <file>` lines in SHA256SUMS: {line:?}"));
        let bytes = fs::read(testdata().join(name))
            .unwrap_or_else(|e| panic!("SHA256SUMS names {name}, which cannot be read: {e}"));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            digest,
            "testdata/{name} differs from the copy recorded in SHA256SUMS"
        );
        recorded.insert(name.to_owned());
    }
    let present: BTreeSet<String> = fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !NOT_DATA.contains(&name.as_str()))
        .collect();
    assert_eq!(
        present, recorded,
        "every data file in testdata/ is recorded"
    );
    for name in [
        "tokens.json",
        "open-redirect-payloads.txt",
        "open-redirect-wordlist.txt",
    ] {
        assert!(recorded.contains(name), "{name} is recorded");
    }
}

#[test]
fn the_basic_fixture_is_the_basic_vector() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/basic.token");
    let fixture = fs::read_to_string(fixture).unwrap();
    let basic = audius_login_testdata::vector_token("basic");
    assert_eq!(basic, fixture.trim());
}

/// Every file of the workspace with one of these extensions, outside build output and git.
fn workspace_files(extensions: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "corpus" | "artifacts") {
                    walk(&path, extensions, out);
                }
            } else if path
                .extension()
                .is_some_and(|e| extensions.contains(&e.to_string_lossy().as_ref()))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), extensions, &mut out);
    assert!(
        out.len() > 50,
        "the workspace is walked: {} files",
        out.len()
    );
    out
}

#[test]
fn nothing_reads_from_outside_the_repository() {
    // Spelled in pieces, so that this file does not find itself.
    let shared = ["shared", "/"].concat();
    let forbidden = [
        ["../", &shared].concat(),
        [&shared, "spec"].concat(),
        [&shared, "testdata"].concat(),
        // The protocol's old file names: it is in docs/protocol.md and docs/protocol-pkce.md.
        ["audius-login", ".md"].concat(),
        ["audius-login-pkce", ".md"].concat(),
    ];
    let mut found = Vec::new();
    for path in workspace_files(&["rs", "toml", "md", "sh", "py"]) {
        let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f.as_str())) {
                found.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The nearest directory at or above `path` that holds a `Cargo.toml`.
fn crate_dir(path: &Path) -> &Path {
    path.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .unwrap()
}

#[test]
fn every_named_testdata_file_is_there() {
    let mut named = 0;
    for path in workspace_files(&["rs"]) {
        let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        // Each `READS` with the `../` before it: the folder as the file's crate names it.
        for (at, _) in text.match_indices(READS) {
            let mut start = at;
            while text[..start].ends_with("../") {
                start -= 3;
            }
            let relative = &text[start..at + READS.len() - 1];
            let relative = relative.trim_start_matches('/');
            let name: String = text[at + READS.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            let dir = crate_dir(&path).join(relative);
            assert_eq!(
                dir.canonicalize().ok(),
                Some(testdata()),
                "{}: {relative} is the repository's testdata/ seen from its crate",
                path.display()
            );
            assert!(
                name.is_empty() || testdata().join(&name).is_file(),
                "{}: testdata/{name} does not exist",
                path.display()
            );
            named += 1;
        }
    }
    assert!(named >= 5, "the tests' data paths are found: {named}");
}

/// The `exclude` list of a `Cargo.toml`.
fn exclude_list(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("\nexclude = [") else {
        return Vec::new();
    };
    let list = &manifest[start..];
    let list = &list[..list.find(']').unwrap()];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn data_readers_are_left_out_of_their_package() {
    let mut readers = 0;
    for entry in fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if manifest.contains("\npublish = false") {
            continue;
        }
        let excluded = exclude_list(&manifest);
        for name in &excluded {
            assert!(
                dir.join(name).exists(),
                "{}: excluded {name} does not exist",
                dir.display()
            );
        }
        let mut files = Vec::new();
        for sub in ["tests", "benches", "examples"] {
            collect_rs(&dir.join(sub), &mut files);
        }
        for file in files {
            let relative = file
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&file).unwrap();
            let shipped = !excluded.contains(&relative);
            if text.contains(READS) || text.contains(LOADS) {
                readers += 1;
                assert!(
                    !shipped,
                    "{}: {relative} reads testdata/ but is shipped: add it to `exclude`",
                    dir.display()
                );
            }
            // A shipped test must not need a module that is left out.
            if shipped {
                for module in module_files(&file, &text) {
                    let module = module
                        .strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    assert!(
                        !excluded.contains(&module),
                        "{}: shipped {relative} needs excluded {module}",
                        dir.display()
                    );
                }
            }
        }
    }
    assert!(readers >= 5, "the data readers are found: {readers}");
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of the `mod name;` items of a test file (`#[path]` honoured), as far as they exist.
fn module_files(file: &Path, text: &str) -> Vec<PathBuf> {
    let dir = file.parent().unwrap();
    let mut out = Vec::new();
    let mut path_attr = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            path_attr = rest.split('"').next().map(str::to_owned);
            continue;
        }
        if let Some(name) = line
            .strip_prefix("mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .and_then(|rest| rest.strip_suffix(';'))
        {
            match path_attr.take() {
                Some(p) => out.push(dir.join(p)),
                None => {
                    out.push(dir.join(format!("{name}.rs")));
                    out.push(dir.join(name).join("mod.rs"));
                }
            }
        } else {
            path_attr = None;
        }
    }
    out.into_iter().filter(|p| p.is_file()).collect()
}
