//! The `audius-login` binary, run for real: every subcommand, both output modes, the exit codes,
//! against the shared token vectors and a stub Audius API started here.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use audius_login::token::wallet_of_secret_key;
use audius_login::{Error, Token, UserId};
use audius_login_testdata::{vector_token, vectors};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// Running the binary

const BIN: &str = env!("CARGO_BIN_EXE_audius-login");

/// What one run gave.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Standard output as exactly one JSON document (anything after it fails the parse).
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    /// The `error` object of the JSON output.
    fn error(&self) -> Map<String, Value> {
        match self.json().get("error") {
            Some(Value::Object(e)) => e.clone(),
            _ => panic!("no error object: {self:?}"),
        }
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && self.code != 101,
            "the binary panicked: {self:?}"
        );
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // A proxy set in the environment must not stand between the binary and the local stub.
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn finish(output: std::process::Output) -> Out {
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    out.assert_no_panic();
    out
}

/// Runs the binary with no standard input.
fn run(args: &[&str]) -> Out {
    let output = command(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    finish(output)
}

/// Runs the binary with `input` on standard input (written from another thread; a write error,
/// as when the binary stops reading, is ignored).
fn run_stdin(args: &[&str], input: Vec<u8>) -> Out {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("the binary ends");
    writer.join().expect("writer thread");
    finish(output)
}

/// [`run`] from async code.
async fn run_async(args: Vec<String>) -> Out {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .expect("the blocking run completes")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Test data (the token vectors: `audius_login_testdata`)

const ALICE_WALLET: &str = "0x5bb302630d6412513edf124f0c3819d5c7fc228a";
/// A key this test signs with.
const KEY: [u8; 32] = [7u8; 32];
/// Another key, for a user whose wallet is not the signer.
const OTHER_KEY: [u8; 32] = [9u8; 32];

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("a sane clock")
}

fn wallet(key: &[u8; 32]) -> String {
    wallet_of_secret_key(key).expect("a valid key").to_string()
}

/// A token signed here, as the Audius login page signs one.
fn sign(claims: Value, key: &[u8; 32]) -> String {
    let map = claims.as_object().expect("claims object").clone();
    Token::sign(&map, key).expect("signing works")
}

/// A user object as `GET /v1/users/{id}` gives it.
fn user(id: u64, handle: &str, name: &str, wallet: &str) -> Value {
    json!({
        "id": UserId::new(id).hashid(),
        "handle": handle,
        "name": name,
        "is_verified": id == 44,
        "profile_picture": {"150x150": format!("https://content.example.org/{handle}/150x150.jpg")},
        "wallet": wallet,
        "erc_wallet": wallet,
        "spl_wallet": "So11111111111111111111111111111111111111112",
    })
}

// ---------------------------------------------------------------------------------------------
// A stub Audius API

/// An answer: status and JSON body, or `None` to never answer.
type Answer = Option<(u16, String)>;
type Handler = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// A local HTTP server giving canned answers, recording the request targets it saw.
struct Stub {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, handler.clone(), seen2.clone()));
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen lock").clone()
    }
}

async fn serve(mut socket: TcpStream, handler: Handler, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    seen.lock().expect("seen lock").push(target.clone());
    match handler(&target) {
        Some((status, body)) => {
            let answer = format!(
                "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
        None => {
            // Hold the connection open and never answer.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn body(status: u16, error: &str) -> Answer {
    Some((status, json!({"code": status, "error": error}).to_string()))
}

/// A stub that answers every request the same.
fn fixed(status: u16, body: &str) -> Handler {
    let body = body.to_owned();
    Arc::new(move |_| Some((status, body.clone())))
}

/// A stub that behaves as the Audius API does (spec 4.1 and 7) for these users and manager
/// grants (keyed by the managed account's hashid).
fn audius(users: Vec<Value>, managers: Vec<(String, Value)>) -> Handler {
    let users: HashMap<String, Value> = users
        .into_iter()
        .map(|u| (u["id"].as_str().expect("user id").to_owned(), u))
        .collect();
    let managers: HashMap<String, Value> = managers.into_iter().collect();
    Arc::new(move |target| {
        if let Some(token) = target.strip_prefix("/v1/users/verify_token?token=") {
            return verify_token(token, &users);
        }
        let rest = target.strip_prefix("/v1/users/")?;
        if let Some(id) = rest.strip_suffix("/managers") {
            let list = managers.get(id).cloned().unwrap_or_else(|| json!([]));
            return Some((200, json!({ "data": list }).to_string()));
        }
        match users.get(rest) {
            Some(u) => Some((200, json!({ "data": u }).to_string())),
            None => body(404, "User not found"),
        }
    })
}

/// `verify_token` as the Audius API answers it (spec 4.1), manager grants left out.
fn verify_token(token: &str, users: &HashMap<String, Value>) -> Answer {
    let (token, signer) = match Token::parse_and_recover(token, 16 * 1024) {
        Ok(t) => t,
        Err(Error::Malformed { message, .. }) => return body(400, &message),
        Err(_) => {
            return body(
                404,
                "The JWT signature is invalid - wallet could not be recovered",
            );
        }
    };
    let Some(owner) = users
        .values()
        .find(|u| u["wallet"].as_str() == Some(signer.to_string().as_str()))
    else {
        return body(404, "The JWT signature is invalid - invalid wallet");
    };
    if owner["id"].as_str() != Some(token.claims().user_id.hashid().as_str()) {
        return body(
            403,
            "The JWT signature is invalid - the wallet does not match the user",
        );
    }
    let mut data = token.claims().as_map().clone();
    if let Some(iat) = data.get("iat").cloned() {
        data.insert("iat".into(), Value::String(iat.to_string()));
    }
    Some((200, json!({ "data": data }).to_string()))
}

/// The stub's standard population: alice (the `basic` vector's signer), a user whose wallet is
/// [`KEY`]'s, a user managed by [`KEY`]'s wallet, one with a revoked grant.
fn population() -> Handler {
    let signer = wallet(&KEY);
    let other = wallet(&OTHER_KEY);
    let grant = |approved: bool, revoked: bool| {
        json!([{
            "manager": {"id": UserId::new(200).hashid(), "wallet": signer},
            "grant": {"grantee_address": signer, "is_approved": approved, "is_revoked": revoked}
        }])
    };
    audius(
        vec![
            user(44, "alice", "Alice", ALICE_WALLET),
            user(200, "keyholder", "Key Holder", &signer),
            user(201, "managed", "Managed Artist", &other),
            user(202, "revoked", "Revoked Grant", &other),
        ],
        vec![
            (UserId::new(201).hashid(), grant(true, false)),
            (UserId::new(202).hashid(), grant(true, true)),
        ],
    )
}

fn verify_args(stub: &Stub, token: &str, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&["token", "verify", "--json", "--api", &stub.url()]);
    args.extend(strings(extra));
    args.push(token.to_owned());
    args
}

// ---------------------------------------------------------------------------------------------
// token inspect

#[test]
fn inspect_json_matches_every_valid_vector() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v["expect"]["ok"] == true) {
        let name = v["name"].as_str().expect("name");
        let token = v["token"].as_str().expect("token");
        let expect = &v["expect"];
        let out = run(&["token", "inspect", "--json", token]);
        assert_eq!(out.code, 0, "{name}: {out:?}");
        assert!(out.stderr.is_empty(), "{name}: {out:?}");
        let doc = out.json();
        let keys: Vec<&str> = doc
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "header",
                "claims",
                "signer",
                "user_id",
                "user_id_hash",
                "issued_at"
            ],
            "{name}"
        );
        if let Some(not) = expect.get("signer_is_not") {
            assert_ne!(doc["signer"], *not, "{name}: tampered payload");
            assert!(doc["signer"].as_str().is_some_and(|s| s.len() == 42));
            checked += 1;
            continue;
        }
        assert_eq!(doc["signer"], expect["signer"], "{name}: signer");
        assert_eq!(doc["user_id"], expect["user_id"], "{name}: user id");
        assert_eq!(
            doc["user_id_hash"], expect["user_id_hash"],
            "{name}: hashid"
        );
        assert_eq!(doc["claims"], expect["claims"], "{name}: claims as signed");
        assert_eq!(
            doc["header"],
            json!({"typ": "JWT", "alg": "keccak256"}),
            "{name}: header"
        );
        match expect["claims"].get("iat") {
            Some(Value::Number(_)) => assert!(doc["issued_at"].is_string(), "{name}: issued_at"),
            None => assert!(doc["issued_at"].is_null(), "{name}: issued_at"),
            Some(_) => {}
        }
        checked += 1;
    }
    assert!(
        checked >= 15,
        "expected every valid vector, checked {checked}"
    );
    let basic = run(&["token", "inspect", "--json", &vector_token("basic")]).json();
    assert_eq!(basic["issued_at"], "2025-11-28T00:00:00Z");
}

#[test]
fn inspect_refuses_every_error_vector_with_exit_2_and_its_kind() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v["expect"]["ok"] == false) {
        let name = v["name"].as_str().expect("name");
        let token = v["token"].as_str().expect("token");
        let out = run(&["token", "inspect", "--json", token]);
        assert_eq!(out.code, 2, "{name}: {out:?}");
        let error = out.error();
        assert_eq!(error["kind"], v["expect"]["error"], "{name}: {out:?}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        if error["kind"] == "malformed" {
            assert!(error["part"].is_string(), "{name}: part");
            assert_eq!(error.len(), 3, "{name}: kind, message, part only");
        } else {
            assert_eq!(error.len(), 2, "{name}: kind and message only");
        }
        checked += 1;
    }
    assert!(
        checked >= 11,
        "expected every error vector, checked {checked}"
    );
    // The part is the one the server's order finds first.
    let out = run(&["token", "inspect", "--json", &vector_token("two-segments")]);
    assert_eq!(out.error()["part"], "structure");
    let out = run(&[
        "token",
        "inspect",
        "--json",
        &vector_token("payload-missing-user-id"),
    ]);
    assert_eq!(out.error()["part"], "user_id");
}

#[test]
fn inspect_without_iat_or_a_readable_header() {
    let token = sign(json!({"userId": "eYorL", "custom": [1, 2]}), &KEY);
    let doc = run(&["token", "inspect", "--json", &token]).json();
    assert_eq!(doc["issued_at"], Value::Null);
    assert_eq!(doc["claims"], json!({"userId": "eYorL", "custom": [1, 2]}));
    assert_eq!(doc["signer"], wallet(&KEY));

    let token = Token::sign_raw(b"not json", br#"{"userId":"44","iat":5}"#, &KEY).expect("signs");
    let out = run(&["token", "inspect", "--json", &token]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc = out.json();
    assert_eq!(doc["header"], Value::Null);
    assert_eq!(doc["user_id"], 44);
    assert_eq!(doc["user_id_hash"], "eYorL");
    assert_eq!(doc["issued_at"], "1970-01-01T00:00:05Z");
    let out = run(&["token", "inspect", &token]);
    assert!(out.stdout.contains("(does not decode"), "{out:?}");
    let token = sign(json!({"userId": "eYorL"}), &KEY);
    let out = run(&["token", "inspect", &token]);
    assert!(out.stdout.contains("(no usable iat)"), "{out:?}");
}

#[test]
fn inspect_reads_the_token_from_stdin() {
    let token = vector_token("basic");
    let from_arg = run(&["token", "inspect", "--json", &token]);
    let from_stdin = run_stdin(
        &["token", "inspect", "--json", "-"],
        format!("\n  {token} \r\n\t").into_bytes(),
    );
    assert_eq!(from_stdin.code, 0, "{from_stdin:?}");
    assert_eq!(from_stdin.json(), from_arg.json());
    // Whitespace around an argument is trimmed too.
    let padded = run(&["token", "inspect", "--json", &format!(" {token}\n")]);
    assert_eq!(padded.json(), from_arg.json());
}

#[test]
fn inspect_refuses_oversized_stdin_cleanly() {
    // One byte over 64 KiB: refused, in both modes, without a panic.
    let over = vec![b'a'; 64 * 1024 + 1];
    let out = run_stdin(&["token", "inspect", "--json", "-"], over.clone());
    assert_eq!(out.code, 2, "{out:?}");
    let error = out.error();
    assert_eq!(error["kind"], "too_large");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("64 KiB")),
        "{error:?}"
    );
    let out = run_stdin(&["token", "inspect", "-"], over);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.contains("over the limit"), "{out:?}");

    // Far more than the cap (16 MiB): still refused quickly, not read whole.
    let started = Instant::now();
    let out = run_stdin(
        &["token", "inspect", "--json", "-"],
        vec![b'a'; 16 * 1024 * 1024],
    );
    assert_eq!(out.error()["kind"], "too_large");
    assert!(started.elapsed() < Duration::from_secs(20));

    // Exactly 64 KiB is read: a valid token padded with whitespace to the cap decodes.
    let token = vector_token("basic");
    let mut at_cap = token.into_bytes();
    at_cap.resize(64 * 1024, b' ');
    let out = run_stdin(&["token", "inspect", "--json", "-"], at_cap);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["user_id"], 44);
}

#[test]
fn inspect_refuses_other_bad_input() {
    // Not UTF-8 on stdin.
    let out = run_stdin(&["token", "inspect", "--json", "-"], vec![0xff, 0xfe, b'.']);
    assert_eq!(out.code, 2);
    assert_eq!(out.error()["kind"], "input");
    // Empty stdin: an empty token, malformed.
    let out = run_stdin(&["token", "inspect", "--json", "-"], Vec::new());
    assert_eq!(out.code, 2);
    assert_eq!(out.error()["kind"], "malformed");
    // A token over the library's 16 KiB limit.
    let big = format!("a.{}.b", "c".repeat(20_000));
    let out = run(&["token", "inspect", "--json", &big]);
    assert_eq!(out.code, 2);
    assert_eq!(out.error()["kind"], "too_large");
    // Odd inputs: never a panic (checked in `finish`), always exit 2.
    for odd in [
        "..",
        "a.b.c",
        "é.ü.ñ",
        "\u{1b}[31m.x.y",
        "eyJ.eyJ.MHg",
        "e30.e30.MHgwMA",
        "=.=.=",
    ] {
        let out = run(&["token", "inspect", "--json", odd]);
        assert_eq!(out.code, 2, "{odd:?}: {out:?}");
    }
}

#[test]
fn inspect_text_mode_is_readable() {
    let out = run(&["token", "inspect", &vector_token("basic")]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("signer") && l.contains(ALICE_WALLET))
    );
    assert!(lines.contains(&"user id      44"), "{lines:?}");
    assert!(lines.contains(&"user hashid  eYorL"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("issued at    2025-11-28T00:00:00Z"))
    );
    assert!(lines.contains(&"claims"));
    assert!(lines.contains(&"  email           \"alice@example.com\""));
    assert!(out.stderr.is_empty());

    let out = run(&["token", "inspect", &vector_token("zero-r-s")]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.starts_with("error: bad signature"), "{out:?}");
    assert!(out.stderr.contains("kind: bad_signature"));
}

// ---------------------------------------------------------------------------------------------
// token verify

#[tokio::test(flavor = "multi_thread")]
async fn verify_through_the_api() {
    let stub = Stub::start(population()).await;
    let out = run_async(verify_args(&stub, &vector_token("basic"), &[])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let profile = out.json();
    assert_eq!(profile["user_id"], "eYorL");
    assert_eq!(profile["handle"], "alice");
    assert_eq!(profile["name"], "Alice");
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(
        profile["verified"], true,
        "from the user record, not the token"
    );
    assert_eq!(profile["wallet"], ALICE_WALLET);
    assert_eq!(
        profile["signer"],
        Value::Null,
        "the API does not say who signed"
    );
    assert_eq!(profile["issued_at"], "2025-11-28T00:00:00Z");
    assert_eq!(profile["source"], "user_record");
    assert_eq!(
        profile["claims"]["iat"], "1764288000",
        "claims as the API echoed them"
    );
    let seen = stub.seen();
    assert!(
        seen[0].starts_with("/v1/users/verify_token?token=eyJ"),
        "{seen:?}"
    );
    assert!(seen.contains(&"/v1/users/eYorL".to_owned()), "{seen:?}");

    // The token from stdin, same answer.
    let args = verify_args(&stub, "-", &[]);
    let token = vector_token("basic");
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_stdin(&args, format!("{token}\n").into_bytes())
    })
    .await
    .expect("run");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json(), profile);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_refusals_through_the_api_carry_kind_and_status() {
    let stub = Stub::start(population()).await;
    // A token claiming alice's id, signed by another user's key.
    let impostor = sign(json!({"userId": "eYorL", "iat": now()}), &KEY);
    let cases = [
        (vector_token("two-segments"), "malformed", 400),
        (vector_token("signature-not-hex"), "malformed", 400),
        (vector_token("payload-missing-user-id"), "malformed", 400),
        (vector_token("zero-r-s"), "bad_signature", 404),
        (vector_token("tampered-payload"), "wallet_mismatch", 404),
        (impostor, "wallet_mismatch", 403),
    ];
    for (token, kind, status) in cases {
        let out = run_async(verify_args(&stub, &token, &[])).await;
        assert_eq!(out.code, 1, "{kind}: {out:?}");
        let error = out.error();
        assert_eq!(error["kind"], kind, "{out:?}");
        assert_eq!(error["status"], status, "{out:?}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let out = run_async(verify_args(&stub, &vector_token("two-segments"), &[])).await;
    assert_eq!(out.error()["message"], "Invalid JWT token format");
    assert_eq!(out.error()["part"], "structure");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_maps_unusual_answers() {
    let token = vector_token("basic");
    let cases: [(u16, &str, &str, Value); 5] = [
        (
            500,
            r#"{"error":"boom"}"#,
            "upstream_unavailable",
            json!(500),
        ),
        (503, "", "upstream_unavailable", json!(503)),
        (
            429,
            r#"{"error":"slow down"}"#,
            "upstream_unavailable",
            json!(429),
        ),
        (
            418,
            r#"{"error":"teapot"}"#,
            "upstream_unexpected",
            json!(418),
        ),
        (200, "not json", "upstream_unexpected", json!(200)),
    ];
    for (status, answer, kind, want_status) in cases {
        let stub = Stub::start(fixed(status, answer)).await;
        let out = run_async(verify_args(&stub, &token, &[])).await;
        assert_eq!(out.code, 1, "{status}: {out:?}");
        let error = out.error();
        assert_eq!(error["kind"], kind, "{status}: {out:?}");
        assert_eq!(error["status"], want_status, "{status}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_locally_a_token_signed_here() {
    let stub = Stub::start(population()).await;
    let id = UserId::new(200).hashid();
    let token = sign(
        json!({"userId": id, "email": "key@example.com", "name": "Claimed", "iat": now()}),
        &KEY,
    );
    let out = run_async(verify_args(&stub, &token, &["--local"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let profile = out.json();
    assert_eq!(profile["user_id"], id);
    assert_eq!(profile["handle"], "keyholder");
    assert_eq!(
        profile["name"], "Key Holder",
        "the user record's name, not the claim"
    );
    assert_eq!(profile["email"], "key@example.com");
    assert_eq!(profile["signer"], wallet(&KEY));
    assert_eq!(profile["wallet"], wallet(&KEY));
    assert!(
        stub.seen().iter().all(|t| !t.contains("verify_token")),
        "--local never calls verify_token: {:?}",
        stub.seen()
    );

    // Signed by an approved manager of account 201.
    let managed = sign(
        json!({"userId": UserId::new(201).hashid(), "iat": now()}),
        &KEY,
    );
    let out = run_async(verify_args(&stub, &managed, &["--local"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["signer"], wallet(&KEY));
    assert_eq!(out.json()["wallet"], wallet(&OTHER_KEY));

    // A revoked grant, and a user the signer has nothing to do with.
    for id in [202, 44] {
        let token = sign(
            json!({"userId": UserId::new(id).hashid(), "iat": now()}),
            &KEY,
        );
        let out = run_async(verify_args(&stub, &token, &["--local"])).await;
        assert_eq!(out.code, 1, "{id}: {out:?}");
        assert_eq!(out.error()["kind"], "wallet_mismatch");
        // The local check does not claim an Audius status it cannot know.
        assert_eq!(out.error()["status"], Value::Null);
    }
    // No such user.
    let token = sign(
        json!({"userId": UserId::new(999).hashid(), "iat": now()}),
        &KEY,
    );
    let out = run_async(verify_args(&stub, &token, &["--local"])).await;
    assert_eq!(out.error()["kind"], "wallet_mismatch");
    assert_eq!(out.error()["status"], Value::Null);
    // A malformed token is refused before any request.
    let out = run_async(verify_args(&stub, "a.b", &["--local"])).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.error()["kind"], "malformed");
    assert_eq!(out.error()["status"], 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_enforces_max_age() {
    let stub = Stub::start(population()).await;
    let id = UserId::new(200).hashid();
    let fresh = sign(json!({"userId": id, "iat": now()}), &KEY);
    let stale = sign(json!({"userId": id, "iat": now() - 3600}), &KEY);
    let no_iat = sign(json!({"userId": id}), &KEY);
    for local in [false, true] {
        let mode: &[&str] = if local {
            &["--local", "--max-age", "5m"]
        } else {
            &["--max-age", "5m"]
        };
        let out = run_async(verify_args(&stub, &fresh, mode)).await;
        assert_eq!(out.code, 0, "local={local}: {out:?}");
        for token in [&stale, &no_iat] {
            let out = run_async(verify_args(&stub, token, mode)).await;
            assert_eq!(out.code, 1, "local={local}: {out:?}");
            let error = out.error();
            assert_eq!(error["kind"], "stale", "{out:?}");
            assert_eq!(error["status"], Value::Null, "not Audius' refusal");
        }
        // Without --max-age the old token passes.
        let plain: &[&str] = if local { &["--local"] } else { &[] };
        let out = run_async(verify_args(&stub, &stale, plain)).await;
        assert_eq!(out.code, 0, "local={local}: {out:?}");
    }
    // The same limit in seconds, minutes and hours.
    for limit in ["7200", "7200s", "120m", "2h"] {
        let out = run_async(verify_args(&stub, &stale, &["--max-age", limit])).await;
        assert_eq!(out.code, 0, "{limit}: {out:?}");
    }
    for limit in ["1800", "30m"] {
        let out = run_async(verify_args(&stub, &stale, &["--max-age", limit])).await;
        assert_eq!(out.error()["kind"], "stale", "{limit}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_against_a_closed_port_is_upstream_unavailable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let api = format!("http://127.0.0.1:{port}");
    for local in [false, true] {
        let mut args = strings(&[
            "token",
            "verify",
            "--json",
            "--api",
            &api,
            "--timeout",
            "3s",
        ]);
        if local {
            args.push("--local".into());
        }
        args.push(vector_token("basic"));
        let started = Instant::now();
        let out = run_async(args).await;
        assert!(
            started.elapsed() < Duration::from_secs(3 + 5),
            "took too long"
        );
        assert_eq!(out.code, 1, "{out:?}");
        assert_eq!(out.error()["kind"], "upstream_unavailable");
        assert_eq!(out.error()["status"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_gives_up_on_a_silent_api_within_the_timeout() {
    let stub = Stub::start(Arc::new(|_| None)).await;
    let started = Instant::now();
    let out = run_async(verify_args(
        &stub,
        &vector_token("basic"),
        &["--timeout", "1"],
    ))
    .await;
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.error()["kind"], "upstream_unavailable");
    assert!(took >= Duration::from_secs(1), "gave up early: {took:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_text_mode_is_readable() {
    let stub = Stub::start(population()).await;
    let mut args = strings(&["token", "verify", "--api", &stub.url()]);
    args.push(vector_token("basic"));
    let out = run_async(args).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("verified ") && l.contains("Audius API"))
    );
    assert!(lines.contains(&"handle           @alice"), "{lines:?}");
    assert!(
        lines.contains(&"user id          44 (hashid eYorL)"),
        "{lines:?}"
    );
    assert!(lines.contains(&"verified artist  yes"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("email") && l.contains("alice@example.com"))
    );

    let mut args = strings(&["token", "verify", "--api", &stub.url()]);
    args.push(vector_token("tampered-payload"));
    let out = run_async(args).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.starts_with("error: wallet mismatch"), "{out:?}");
    assert!(out.stderr.contains("kind: wallet_mismatch"), "{out:?}");
    assert!(out.stderr.contains("Audius status: 404"), "{out:?}");
}

#[test]
fn verify_option_errors_are_usage_errors() {
    let token = vector_token("basic");
    for bad in [
        &["--timeout", "0"][..],
        &["--timeout", "soon"],
        &["--max-age", "5 minutes"],
        &["--max-age", "-5"],
        &["--api", "ftp://api.example"],
        &["--api", "not a url"],
    ] {
        let mut args = vec!["token", "verify"];
        args.extend_from_slice(bad);
        args.push(&token);
        let out = run(&args);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert!(out.stderr.contains("error:"), "{bad:?}: {out:?}");
        args.push("--json");
        let out = run(&args);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert_eq!(out.error()["kind"], "usage", "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// redirect-uri check

#[test]
fn redirect_uri_check_accepts_and_normalises() {
    let cases = [
        (
            "https://app.example/auth/callback",
            "https://app.example/auth/callback",
        ),
        ("https://APP.example/cb?x=1", "https://app.example/cb?x=1"),
        ("http://localhost:8080/cb", "http://localhost:8080/cb"),
        ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb"),
        ("http://[::1]:3000/cb", "http://[::1]:3000/cb"),
        ("http://2130706433/cb", "http://127.0.0.1/cb"),
        ("myapp://callback", "myapp://callback"),
        ("PostMessage", "postmessage"),
    ];
    for (input, normalised) in cases {
        let out = run(&["redirect-uri", "check", "--json", input]);
        assert_eq!(out.code, 0, "{input}: {out:?}");
        assert_eq!(out.json(), json!({ "redirect_uri": normalised }), "{input}");
    }
}

#[test]
fn redirect_uri_check_names_each_rule() {
    let cases = [
        ("", "syntax"),
        ("not a uri", "syntax"),
        ("javascript:alert(1)", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("https://app.example/cb#x", "fragment"),
        ("https://user:pw@app.example/cb", "userinfo"),
        ("https://app.example/a/../b", "traversal"),
        ("https://app.example/a/%2e%2e/b", "traversal"),
        ("http://10.0.0.1/cb", "ip_host"),
        ("http://167772161/cb", "ip_host"),
    ];
    for (input, rule) in cases {
        let out = run(&["redirect-uri", "check", "--json", input]);
        assert_eq!(out.code, 1, "{input}: {out:?}");
        let error = out.error();
        assert_eq!(error["rule"], rule, "{input}: {out:?}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(error.len(), 2, "rule and message only: {error:?}");
    }
}

#[test]
fn redirect_uri_check_text_mode_is_readable() {
    let out = run(&["redirect-uri", "check", "https://APP.example/cb"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "accepted  https://app.example/cb"),
        "{out:?}"
    );
    let out = run(&["redirect-uri", "check", "https://app.example/a/../b"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .starts_with("error: redirect URI refused by the rule traversal"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// login-url

#[test]
fn login_url_is_exact_for_fixed_inputs() {
    let out = run(&[
        "login-url",
        "--json",
        "--app-name",
        "My App",
        "--redirect-uri",
        "https://app.example/auth/callback",
        "--state",
        "fixed-state_1",
        "--response-mode",
        "query",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json(),
        json!({
            "url": "https://audius.co/oauth/auth?scope=read&app_name=My+App\
                    &redirect_uri=https%3A%2F%2Fapp.example%2Fauth%2Fcallback\
                    &state=fixed-state_1&response_mode=query&display=popup",
            "state": "fixed-state_1",
        })
    );

    let key = "AB".repeat(20);
    let out = run(&[
        "login-url",
        "--json",
        "--api-key",
        &key,
        "--scope",
        "write",
        "--redirect-uri",
        "postmessage",
        "--origin",
        "http://localhost:8080",
        "--state",
        "s1",
        "--display",
        "fullScreen",
        "--env",
        "staging",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()["url"],
        format!(
            "https://staging.audius.co/oauth/auth?scope=write&api_key={}\
             &redirect_uri=postmessage&origin=http%3A%2F%2Flocalhost%3A8080&state=s1\
             &response_mode=fragment&display=fullScreen",
            "ab".repeat(20)
        )
    );
}

#[test]
fn login_url_generates_a_state_when_none_is_given() {
    let args = [
        "login-url",
        "--json",
        "--app-name",
        "A",
        "--redirect-uri",
        "https://app.example/cb",
    ];
    let a = run(&args).json();
    let b = run(&args).json();
    let state = a["state"].as_str().expect("a state");
    assert_eq!(state.len(), 43);
    assert!(
        state
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert!(
        a["url"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("&state={state}&")))
    );
    assert_ne!(a["state"], b["state"], "a fresh state each time");
}

#[test]
fn login_url_postmessage_needs_an_origin() {
    let args = [
        "login-url",
        "--app-name",
        "A",
        "--redirect-uri",
        "postmessage",
    ];
    let out = run(&args);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("postmessage needs --origin"), "{out:?}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = run(&json_args);
    assert_eq!(out.code, 2);
    let error = out.error();
    assert_eq!(error["kind"], "usage");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("--origin"))
    );
}

#[test]
fn login_url_with_a_custom_environment() {
    let out = run(&[
        "login-url",
        "--json",
        "--app-name",
        "Sandbox App",
        "--redirect-uri",
        "http://127.0.0.1:3000/cb",
        "--state",
        "s",
        "--env",
        "http://127.0.0.1:8089",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()["url"],
        "http://127.0.0.1:8089/oauth/auth?scope=read&app_name=Sandbox+App\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&state=s&response_mode=fragment\
         &display=popup"
    );
    for bad in ["prod", "ftp://sandbox", "http://"] {
        let out = run(&[
            "login-url",
            "--app-name",
            "A",
            "--redirect-uri",
            "https://app.example/cb",
            "--env",
            bad,
        ]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
    }
}

#[test]
fn login_url_refusals() {
    let base = ["login-url", "--json", "--redirect-uri"];
    // An invalid redirect URI: exit 1, with its rule.
    let out = run(&[
        &base[..],
        &["https://app.example/cb#x", "--app-name", "A"][..],
    ]
    .concat());
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.error()["rule"], "fragment");
    assert_eq!(out.error()["kind"], "invalid_redirect_uri");
    // Wrong options: exit 2, kind usage.
    for extra in [
        &["--app-name", "A", "--scope", "write"][..],
        &["--api-key", "0x12"],
        &["--app-name", "A", "--state", "not url safe"],
        &["--app-name", "A", "--origin", "http://x/path"],
        &["--app-name", "   "],
    ] {
        let out = run(&[&base[..], &["https://app.example/cb"][..], extra].concat());
        assert_eq!(out.code, 2, "{extra:?}: {out:?}");
        assert_eq!(out.error()["kind"], "usage", "{extra:?}");
    }
    // Neither an app name nor an API key: clap's usage error.
    let out = run(&["login-url", "--redirect-uri", "https://app.example/cb"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--app-name"), "{out:?}");
}

#[test]
fn login_url_text_mode_is_readable() {
    let out = run(&[
        "login-url",
        "--app-name",
        "A",
        "--redirect-uri",
        "https://app.example/cb",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("url       https://audius.co/oauth/auth?scope=read&app_name=A&"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("state     ") && l.contains("generated"))
    );
}

// ---------------------------------------------------------------------------------------------
// The command line itself

#[test]
fn usage_errors_exit_2_and_help_documents_the_exit_codes() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["token"],
        &["token", "inspect"],
        &["redirect-uri", "check"],
        &["token", "inspect", "--bogus", "x"],
    ] {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    let out = run(&["token", "inspect", "--json"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.error()["kind"], "usage");

    let out = run(&["--help"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Exit codes:"), "{out:?}");
    assert!(out.stdout.contains("0  ok"));
    assert!(out.stdout.contains("1  refused"));
    assert!(out.stdout.contains("2  malformed input or usage error"));
    let out = run(&["--version"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("audius-login "));
}
