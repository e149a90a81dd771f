//! One black-box HTTP suite, run against both example servers (axum and actix-web) as child
//! processes: statuses, error codes, headers, repeats, cooldown, cap, expiry, confirm races,
//! body limits and media types. Each test starts its own server with the configuration it needs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, client, seed_file, token_of};

const SEED: &str = r#"[
    {"id": "alice", "email": "alice@example.test", "hasPassword": false},
    {"id": "bob", "email": "bob@example.test"},
    {"id": "carol", "email": "carol@example.test", "hasPassword": true},
    {"id": "dave", "email": "dave@example.test", "linkedIdentity": false}
]"#;

const JWT_SECRET: &str = "a secret shared with the identity system";

fn start(example: &str, extra: &[(&str, &str)]) -> Server {
    let seed = seed_file(SEED);
    let mut env = vec![("SEED_USERS", seed.to_str().unwrap())];
    env.extend_from_slice(extra);
    Server::start(example, &env)
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/vnd.api+json"),
            "{}",
            self.body
        );
        serde_json::from_str(&self.body).unwrap()
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let answer = Answer {
        status,
        headers,
        body,
    };
    assert!(
        answer.header("x-request-id").is_some(),
        "every response has a request id"
    );
    answer
}

fn put_password(server: &Server, bearer: Option<&str>) -> Answer {
    let mut request = client().put(server.url("/user/password"));
    if let Some(bearer) = bearer {
        request = request.header("Authorization", &format!("Bearer {bearer}"));
    }
    answer(request.send_empty().unwrap())
}

fn confirm_raw(server: &Server, content_type: &str, body: &[u8]) -> Answer {
    let response = client()
        .post(server.url("/user/password/confirm"))
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    answer(response)
}

fn confirm(server: &Server, token: &str, password: &str) -> Answer {
    let body = json!({
        "data": {"type": "passwordSetup", "attributes": {"token": token, "password": password}}
    });
    confirm_raw(
        server,
        "application/vnd.api+json",
        body.to_string().as_bytes(),
    )
}

fn jwt(claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn in_an_hour() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_secs() as i64
        + 3600
}

fn request_then_confirm_then_409(example: &str) {
    let server = start(example, &[]);

    let accepted = put_password(&server, Some("demo-token-alice"));
    assert_eq!(accepted.status, 202);
    assert!(accepted.json()["meta"]["expiresAt"].is_string());
    assert_eq!(accepted.header("cache-control"), Some("no-store"));
    let link = server.wait_for_links(1).remove(0);
    assert!(link.starts_with(&format!("{}/set-password?token=", server.base)));

    assert_eq!(
        confirm(&server, &token_of(&link), "a perfectly fine password").status,
        204
    );
    let again = put_password(&server, Some("demo-token-alice"));
    assert_eq!(
        (again.status, again.code()),
        (409, "password-already-set".to_owned())
    );
}

fn unauthorised_and_unknown(example: &str) {
    let server = start(example, &[]);
    let cases = [
        (None, 401, "missing-credentials"),
        (Some("nobody"), 401, "invalid-credentials"),
        (Some("demo-token-dave"), 401, "missing-linked-identity"),
        (Some("demo-token-carol"), 409, "password-already-set"),
    ];
    for (bearer, status, code) in cases {
        let answer = put_password(&server, bearer);
        assert_eq!(
            (answer.status, answer.code()),
            (status, code.to_owned()),
            "{bearer:?}"
        );
        if status == 401 {
            assert!(
                answer
                    .header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }
    let body = put_password(&server, Some("demo-token-dave")).json();
    assert_eq!(
        body["errors"][0]["title"],
        "Missing linked identity for authorized access"
    );
    assert_eq!(body["errors"][0]["status"], "401");
    assert!(server.links().is_empty());
}

fn jwt_identities(example: &str) {
    let server = start(example, &[("AUTH_JWT_SECRET", JWT_SECRET)]);
    let exp = in_an_hour();

    let with_audience = jwt(json!({"sub": "alice", "exp": exp, "aud": "api", "iss": "idp"}));
    let accepted = put_password(&server, Some(&with_audience));
    assert_eq!(accepted.status, 202);
    let unknown = put_password(&server, Some(&jwt(json!({"sub": "ghost", "exp": exp}))));
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "user-not-found".to_owned())
    );
    let unlinked = jwt(json!({"sub": "bob", "exp": exp, "linked_identity": false}));
    assert_eq!(
        put_password(&server, Some(&unlinked)).code(),
        "missing-linked-identity"
    );
    let expired = put_password(
        &server,
        Some(&jwt(json!({"sub": "bob", "exp": exp - 7200}))),
    );
    assert_eq!(expired.code(), "invalid-credentials");
    assert_eq!(
        put_password(&server, Some("demo-token-bob")).code(),
        "invalid-credentials"
    );
}

fn repeats_cooldown_and_cap(example: &str) {
    let server = start(
        example,
        &[("RESEND_COOLDOWN_SECS", "1"), ("DAILY_EMAIL_CAP", "2")],
    );

    for _ in 0..3 {
        assert_eq!(put_password(&server, Some("demo-token-alice")).status, 202);
    }
    assert_eq!(
        server.wait_for_links(1).len(),
        1,
        "repeats within the cooldown send nothing"
    );

    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(put_password(&server, Some("demo-token-alice")).status, 202);
    let links = server.wait_for_links(2);

    std::thread::sleep(Duration::from_millis(1100));
    let capped = put_password(&server, Some("demo-token-alice"));
    assert_eq!(
        (capped.status, capped.code()),
        (429, "too-many-requests".to_owned())
    );
    let retry_after: u64 = capped.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after > 86_000 && retry_after <= 86_400,
        "{retry_after}"
    );

    // Only the newest link works.
    let old = confirm(&server, &token_of(&links[0]), "a perfectly fine password");
    assert_eq!((old.status, old.code()), (400, "token-invalid".to_owned()));
    assert_eq!(
        confirm(&server, &token_of(&links[1]), "a perfectly fine password").status,
        204
    );
}

fn expiry(example: &str) {
    let server = start(example, &[("SETUP_TTL_SECS", "1")]);
    put_password(&server, Some("demo-token-alice"));
    let link = server.wait_for_links(1).remove(0);

    std::thread::sleep(Duration::from_millis(1200));
    let expired = confirm(&server, &token_of(&link), "a perfectly fine password");
    assert_eq!(
        (expired.status, expired.code()),
        (400, "token-expired".to_owned())
    );
}

fn confirm_refusals(example: &str) {
    let server = start(example, &[]);
    put_password(&server, Some("demo-token-alice"));
    let token = token_of(&server.wait_for_links(1)[0]);
    let pointer = |answer: &Answer| {
        answer.json()["errors"][0]["source"]["pointer"]
            .as_str()
            .map(str::to_owned)
    };

    let malformed = confirm_raw(&server, "application/json", b"{\"data\":");
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "malformed-json".to_owned())
    );
    let missing = confirm_raw(
        &server,
        "application/json",
        br#"{"data":{"type":"passwordSetup"}}"#,
    );
    assert_eq!(missing.status, 400);
    assert_eq!(pointer(&missing).as_deref(), Some("/data/attributes"));
    let mistyped = confirm_raw(
        &server,
        "application/vnd.api+json",
        br#"{"data":{"type":"passwordSetup","attributes":{"token":1,"password":"x"}}}"#,
    );
    assert_eq!(
        pointer(&mistyped).as_deref(),
        Some("/data/attributes/token")
    );
    assert_eq!(confirm_raw(&server, "text/plain", b"hello").status, 415);
    let huge = vec![b' '; 64 * 1024];
    assert_eq!(confirm_raw(&server, "application/json", &huge).status, 413);

    let short = confirm(&server, &token, "short");
    assert_eq!(
        (short.status, short.code()),
        (422, "password-too-short".to_owned())
    );
    assert_eq!(
        pointer(&short).as_deref(),
        Some("/data/attributes/password")
    );
    let made_up = confirm(&server, &"A".repeat(43), "a perfectly fine password");
    assert_eq!(
        (made_up.status, made_up.code()),
        (400, "token-invalid".to_owned())
    );

    // None of that used up the token.
    assert_eq!(
        confirm(&server, &token, "a perfectly fine password").status,
        204
    );
}

fn confirm_race(example: &str) {
    let server = start(example, &[]);
    put_password(&server, Some("demo-token-alice"));
    let token = token_of(&server.wait_for_links(1)[0]);

    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..12)
            .map(|i| {
                let (server, token) = (&server, &token);
                scope.spawn(move || confirm(server, token, &format!("racing password {i}")).status)
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .collect()
    });

    assert_eq!(
        statuses.iter().filter(|status| **status == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|status| matches!(status, 204 | 400)),
        "{statuses:?}"
    );
}

/// With no room to wait, confirms that find every hashing thread busy are refused at once with
/// 501 `server-busy` and a `Retry-After`, keep their links, and log nothing at warn or above:
/// a burst must not flood the log.
fn a_burst_beyond_the_hashing_queue_is_refused_quietly_and_loses_no_link(example: &str) {
    const USERS: usize = 16;
    let seed: Vec<Value> = (0..USERS)
        .map(|i| json!({"id": format!("user{i}"), "email": format!("user{i}@example.test")}))
        .collect();
    let seed = seed_file(&Value::from(seed).to_string());
    let server = Server::start(
        example,
        &[
            ("SEED_USERS", seed.to_str().unwrap()),
            ("HASH_QUEUE_LIMIT", "0"),
        ],
    );
    for i in 0..USERS {
        assert_eq!(
            put_password(&server, Some(&format!("demo-token-user{i}"))).status,
            202
        );
    }
    let tokens: Vec<String> = server
        .wait_for_links(USERS)
        .iter()
        .map(|link| token_of(link))
        .collect();

    let start_together = std::sync::Barrier::new(USERS);
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let confirms: Vec<_> = tokens
            .iter()
            .map(|token| {
                let (server, start_together) = (&server, &start_together);
                scope.spawn(move || {
                    start_together.wait();
                    confirm(server, token, "a perfectly fine password")
                })
            })
            .collect();
        confirms
            .into_iter()
            .map(|confirm| confirm.join().unwrap())
            .collect()
    });

    let mut refused = Vec::new();
    for (token, answer) in tokens.iter().zip(&answers) {
        match answer.status {
            204 => {}
            501 => {
                assert_eq!(answer.code(), "server-busy");
                let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
                assert!(
                    (1..=60).contains(&retry_after),
                    "Retry-After: {retry_after}"
                );
                refused.push(token);
            }
            other => panic!("confirm answered {other}: {}", answer.body),
        }
    }
    assert!(
        !refused.is_empty(),
        "{USERS} confirms at once never found every hashing thread busy"
    );
    for token in refused {
        assert_eq!(
            confirm(&server, token, "a perfectly fine password").status,
            204
        );
    }
    let loud: Vec<String> = server
        .log()
        .into_iter()
        .filter(|line| line.contains("ERROR") || line.contains("WARN"))
        .collect();
    assert!(
        loud.is_empty(),
        "refusals logged at warn or above: {loud:?}"
    );
}

/// An answer's status line and headers, read off a raw connection (up to its blank line).
fn read_head(connection: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read as _;

    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match connection.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// A body announced (by `Content-Length`) as over the limit is refused before any of it is
/// sent: the client gets its 413 instead of the server waiting for a body that may never come.
fn announced_oversized_bodies_are_refused_without_waiting(example: &str) {
    use std::io::Write as _;

    let server = start(example, &[]);
    let address = server.base.trim_start_matches("http://").to_owned();
    for (path, content_type, answer_type) in [
        (
            "/user/password/confirm",
            "application/vnd.api+json",
            "application/vnd.api+json",
        ),
        (
            "/set-password",
            "application/x-www-form-urlencoded",
            "text/html",
        ),
    ] {
        let mut connection = std::net::TcpStream::connect(&address).unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            connection,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
             Content-Length: 99999999999\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let answer = String::from_utf8_lossy(&read_head(&mut connection)).to_lowercase();
        assert!(answer.starts_with("http/1.1 413"), "{path}: {answer:?}");
        assert!(
            answer.contains(&format!("content-type: {answer_type}")),
            "{path}: {answer:?}"
        );
    }
}

fn link_built_from_configuration_not_headers(example: &str) {
    let server = start(
        example,
        &[("PUBLIC_BASE_URL", "https://accounts.example.test")],
    );
    let response = client()
        .put(server.url("/user/password"))
        .header("Authorization", "Bearer demo-token-alice")
        .header("X-Forwarded-Host", "evil.test")
        .header("Forwarded", "host=evil.test;proto=http")
        .header("X-Forwarded-Proto", "http")
        // C10: a body naming other recipients is ignored.
        .header("Content-Type", "application/json")
        .send(br#"{"email":"mallory@evil.test","to":["x@evil.test"]}"#.as_slice())
        .unwrap();
    assert_eq!(answer(response).status, 202);

    let link = server.wait_for_links(1).remove(0);
    assert!(link.starts_with("https://accounts.example.test/set-password?token="));
    let printed = server.output().join("\n");
    assert!(!printed.contains("evil.test"));
    assert!(printed.contains("To: alice@example.test"));
    assert_eq!(server.links().len(), 1);
}

fn page_and_form(example: &str) {
    let server = start(example, &[]);
    put_password(&server, Some("demo-token-alice"));
    let link = server.wait_for_links(1).remove(0);
    let token = token_of(&link);

    // C05: link scanners fetch the page with GET and HEAD; nothing changes.
    for _ in 0..2 {
        let page = answer(client().get(&link).call().unwrap());
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert!(
            page.header("content-security-policy")
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(page.body.contains("autocomplete=\"new-password\""));
    }
    let head = answer(client().head(&link).call().unwrap());
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let form = |password: &str, confirmation: &str| {
        let body =
            format!("token={token}&password={password}&password_confirmation={confirmation}");
        answer(
            client()
                .post(server.url("/set-password"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body.as_bytes())
                .unwrap(),
        )
    };
    assert_eq!(form("one+password", "another+password").status, 422);
    let done = form("my+new+password", "my+new+password");
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Your password is set"));
    let reused = form("my+new+password", "my+new+password");
    assert_eq!(reused.status, 400);
}

fn unknown_routes_and_methods(example: &str) {
    let server = start(example, &[]);
    let missing = answer(client().get(&server.url("/nothing/here")).call().unwrap());
    assert_eq!(
        (missing.status, missing.code()),
        (404, "route-not-found".to_owned())
    );
    let wrong_method = answer(
        client()
            .delete(&server.url("/user/password"))
            .call()
            .unwrap(),
    );
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["errors"][0]["status"], "405");
}

fn errors_are_logged_with_their_id_and_the_request_id(example: &str) {
    let server = start(example, &[]);
    let response = client()
        .put(server.url("/user/password"))
        .header("Authorization", "Bearer nobody")
        .header("x-request-id", "req-from-the-test-1")
        .send_empty()
        .unwrap();
    let refused = answer(response);
    assert_eq!(refused.header("x-request-id"), Some("req-from-the-test-1"));
    let error_id = refused.json()["errors"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log();
        if log
            .iter()
            .any(|line| line.contains(&error_id) && line.contains("req-from-the-test-1"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line names both ids: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stops_gracefully_on_sigterm(example: &str) {
    let mut server = start(example, &[]);
    assert_eq!(put_password(&server, Some("demo-token-alice")).status, 202);
    assert!(server.terminate(), "the server exits cleanly on SIGTERM");
}

fn bad_configuration_stops_start_up(example: &str) {
    for (variable, value) in [
        ("SEED_USERS", "/nonexistent/seed.json"),
        ("LISTEN_ADDR", "not an address"),
        ("PUBLIC_BASE_URL", "ftp://files.example.test"),
        ("DAILY_EMAIL_CAP", "many"),
        ("HASH_QUEUE_LIMIT", "-1"),
        ("HASH_PRIORITY", "lowest"),
        ("HASH_PRIORITY", "256"),
        ("LOG_LEVEL", "loud"),
        ("AUTH_JWT_SECRET", "too short"),
    ] {
        let output = support::example_command(example)
            .env(variable, value)
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{variable}={value} must stop start-up"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{variable}: {stderr}");
    }
}

/// Numbered fields (as `proc(5)` numbers them) of a `/proc/.../stat` file.
#[cfg(target_os = "linux")]
fn stat_fields(path: impl AsRef<std::path::Path>, numbers: [usize; 2]) -> (i64, i64) {
    let stat = std::fs::read_to_string(path).unwrap();
    // The fields after the parenthesised name, which may hold spaces, start with the 3rd.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let field = |number: usize| fields[number - 3].parse::<i64>().unwrap();
    (field(numbers[0]), field(numbers[1]))
}

/// The fields of the nice value and of the scheduling policy (0 normal, 5 idle).
#[cfg(target_os = "linux")]
const NICE_AND_POLICY: [usize; 2] = [19, 41];

/// The nice value and scheduling policy of each of the server's password-hashing threads.
#[cfg(target_os = "linux")]
fn hashing_thread_priorities(server: &Server) -> Vec<(i64, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap();
    let mut priorities = Vec::new();
    for task in tasks {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if name.starts_with("password-hash") {
            priorities.push(stat_fields(task.join("stat"), NICE_AND_POLICY));
        }
    }
    priorities
}

/// A hashing thread takes the configured priority before its first hash: after one confirm,
/// one of them has it. The server inherits this process's nice value, which the idle policy
/// leaves as it is.
#[cfg(target_os = "linux")]
fn hashing_priority_follows_the_configuration(example: &str) {
    let (own_nice, _) = stat_fields("/proc/self/stat", NICE_AND_POLICY);
    let (normal, idle) = (0, 5);
    for (configured, expected_nice, expected_policy) in [
        (None, own_nice, idle),
        (Some("IDLE"), own_nice, idle),
        (Some("4"), (own_nice + 4).min(19), normal),
    ] {
        let server = match configured {
            Some(value) => start(example, &[("HASH_PRIORITY", value)]),
            None => start(example, &[]),
        };
        assert_eq!(put_password(&server, Some("demo-token-alice")).status, 202);
        let link = server.wait_for_links(1).remove(0);
        assert_eq!(
            confirm(&server, &token_of(&link), "a perfectly fine password").status,
            204
        );
        let priorities = hashing_thread_priorities(&server);
        assert!(
            priorities.contains(&(expected_nice, expected_policy)),
            "HASH_PRIORITY={configured:?}: hashing threads at {priorities:?}"
        );
    }
}

macro_rules! against_both_examples {
    ($( $(#[$attribute:meta])* $test:ident ),* $(,)?) => {
        mod axum {
            $( $(#[$attribute])* #[test] fn $test() { super::$test("axum") } )*
        }
        mod actix {
            $( $(#[$attribute])* #[test] fn $test() { super::$test("actix") } )*
        }
    };
}

against_both_examples!(
    request_then_confirm_then_409,
    unauthorised_and_unknown,
    jwt_identities,
    repeats_cooldown_and_cap,
    expiry,
    confirm_refusals,
    confirm_race,
    a_burst_beyond_the_hashing_queue_is_refused_quietly_and_loses_no_link,
    announced_oversized_bodies_are_refused_without_waiting,
    link_built_from_configuration_not_headers,
    page_and_form,
    unknown_routes_and_methods,
    errors_are_logged_with_their_id_and_the_request_id,
    stops_gracefully_on_sigterm,
    bad_configuration_stops_start_up,
    #[cfg(target_os = "linux")]
    hashing_priority_follows_the_configuration,
);
