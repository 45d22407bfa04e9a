//! Runs the benchmark binary briefly (`--smoke`: every part, tiny sizes) and checks the shape
//! of its last line: one JSON object with exactly the documented keys, each a finite number.
//! The numbers themselves are not judged.

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
    assert_eq!(
        keys,
        [
            "auth_vs_identity",
            "auth_vs_bare",
            "anon_vs_bare",
            "logins_per_s_api",
            "logins_per_s_local",
            "callback_p99_us_local",
            "verify_vs_libsecp256k1",
            "session_cookie_bytes",
            "rss_growth_ratio"
        ]
    );
    for (key, value) in object {
        let number = value.as_f64().unwrap_or(f64::NAN);
        assert!(number.is_finite() && number > 0.0, "{key} = {value}");
    }
}
