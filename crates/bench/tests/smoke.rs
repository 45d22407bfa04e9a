//! Runs the benchmark binary briefly (`--smoke`: every part, tiny sizes) and checks the shape
//! of its last line: one JSON object with exactly the documented keys, each a finite number.
//! The numbers themselves are not judged. Needs `redis-server` on the `PATH` (the bench starts
//! its own for its Redis figures; `.ci/run` installs the package).

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_last_line_is_the_json_report() {
    let output = Command::new(env!("CARGO_BIN_EXE_audius-login-bench"))
        .arg("--smoke")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last).unwrap();
    let object = json.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, audius_login_bench::REPORT_KEYS);
    for (key, value) in object {
        let number = value.as_f64().unwrap_or(f64::NAN);
        assert!(number.is_finite() && number > 0.0, "{key} = {value}");
    }
}
