//! The four routes through [`SetupEndpoints`], over the in-memory harness: statuses, headers,
//! bodies and pages, as any framework would pass them on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use password_setup_core::{SetupState, UserId};
use password_setup_http::{HttpResponse, SetupEndpoints};
use password_setup_testkit::Harness;
use serde_json::Value;
use time::Duration;

const JSON_API: Option<&str> = Some("application/vnd.api+json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn setup() -> (Harness, SetupEndpoints) {
    let h = Harness::new();
    h.add_user("alice", "alice@example.test");
    let endpoints = SetupEndpoints::new(h.service.clone());
    (h, endpoints)
}

fn json(response: &HttpResponse) -> Value {
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.api+json")
    );
    serde_json::from_slice(&response.body).unwrap()
}

fn confirm_body(token: &str, password: &str) -> Vec<u8> {
    serde_json::json!({
        "data": {"type": "passwordSetup", "attributes": {"token": token, "password": password}}
    })
    .to_string()
    .into_bytes()
}

fn html(response: &HttpResponse) -> String {
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    String::from_utf8(response.body.clone()).unwrap()
}

#[tokio::test]
async fn request_answers_202_with_the_expiry_then_confirm_answers_204() {
    let (h, endpoints) = setup();

    let accepted = endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    assert_eq!(accepted.status, 202);
    assert_eq!(json(&accepted)["meta"]["expiresAt"], "2026-01-06T09:00:00Z");

    let token = h.last_token().unwrap();
    let confirmed = endpoints
        .confirm(
            JSON_API,
            &confirm_body(token.expose_secret(), "correct horse battery"),
        )
        .await;
    assert_eq!(confirmed.status, 204);
    assert!(confirmed.body.is_empty());

    let again = endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(json(&again)["errors"][0]["code"], "password-already-set");
}

#[tokio::test]
async fn unauthorised_requests_carry_a_bearer_challenge() {
    let (_h, endpoints) = setup();
    let cases: [(Option<&[u8]>, &str); 3] = [
        (None, "missing-credentials"),
        (Some(b"Basic YTpi"), "missing-credentials"),
        (Some(b"Bearer nobody"), "invalid-credentials"),
    ];
    for (header, code) in cases {
        let response = endpoints.request_password(header).await;
        assert_eq!(response.status, 401);
        assert!(
            response
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(json(&response)["errors"][0]["code"], code);
    }
}

#[tokio::test]
async fn the_cap_answers_429_with_retry_after() {
    let (h, endpoints) = setup();
    for _ in 0..5 {
        let accepted = endpoints
            .request_password(Some(b"Bearer bearer-alice"))
            .await;
        assert_eq!(accepted.status, 202);
        h.clock.advance(Duration::minutes(2));
    }
    let capped = endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    assert_eq!(capped.status, 429);
    let retry_after: i64 = capped.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(retry_after, 24 * 3600 - 5 * 120);
}

#[tokio::test]
async fn confirm_refusals_point_at_the_member_and_leave_the_token_usable() {
    let (h, endpoints) = setup();
    endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    let token = h.last_token().unwrap();

    let short = endpoints
        .confirm(JSON_API, &confirm_body(token.expose_secret(), "short"))
        .await;
    assert_eq!(short.status, 422);
    assert_eq!(
        json(&short)["errors"][0]["source"]["pointer"],
        "/data/attributes/password"
    );

    let unknown = endpoints
        .confirm(JSON_API, &confirm_body(&"A".repeat(43), "long enough"))
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(json(&unknown)["errors"][0]["code"], "token-invalid");

    let wrong_media = endpoints.confirm(Some("text/plain"), b"token=x").await;
    assert_eq!(wrong_media.status, 415);

    let ok = endpoints
        .confirm(
            Some("application/json"),
            &confirm_body(token.expose_secret(), "long enough"),
        )
        .await;
    assert_eq!(ok.status, 204);
}

#[tokio::test]
async fn c05_opening_the_link_changes_nothing() {
    let (h, endpoints) = setup();
    endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    let token = h.last_token().unwrap();
    let before = h.store.state(&UserId::new("alice"));
    let query = format!("token={}", token.expose_secret());

    h.clock.advance(Duration::seconds(20));
    for _ in 0..3 {
        let page = endpoints.set_password_page(Some(&query));
        assert_eq!(page.status, 200);
        assert!(html(&page).contains(token.expose_secret()));
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    assert_eq!(h.store.state(&UserId::new("alice")), before);

    h.clock.advance(Duration::minutes(4));
    let body = format!(
        "token={}&password=a+fine+password&password_confirmation=a+fine+password",
        token.expose_secret()
    );
    let done = endpoints.submit_form(FORM, body.as_bytes()).await;
    assert_eq!(done.status, 200);
    assert!(html(&done).contains("Your password is set"));
    assert_eq!(
        h.store.state(&UserId::new("alice")),
        Some(SetupState::PasswordSet)
    );
}

#[tokio::test]
async fn a_page_for_a_malformed_token_echoes_nothing() {
    let (_h, endpoints) = setup();
    let page = endpoints.set_password_page(Some("token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"));
    assert_eq!(page.status, 400);
    assert!(!html(&page).contains("script"));
    assert_eq!(endpoints.set_password_page(None).status, 400);
}

#[tokio::test]
async fn form_problems_re_show_the_form_and_keep_the_token() {
    let (h, endpoints) = setup();
    endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    let token = h.last_token().unwrap();
    let submit = |password: &str, confirmation: &str| {
        format!(
            "token={}&password={password}&password_confirmation={confirmation}",
            token.expose_secret()
        )
        .into_bytes()
    };

    let mismatch = endpoints
        .submit_form(FORM, &submit("one+password", "another+one"))
        .await;
    assert_eq!(mismatch.status, 422);
    assert!(html(&mismatch).contains("differ"));

    let short = endpoints.submit_form(FORM, &submit("short", "short")).await;
    assert_eq!(short.status, 422);
    assert!(html(&short).contains(token.expose_secret()));
    assert_eq!(h.hasher.calls(), 0);

    let done = endpoints
        .submit_form(FORM, &submit("long+enough", "long+enough"))
        .await;
    assert_eq!(done.status, 200);
    let reused = endpoints
        .submit_form(FORM, &submit("long+enough", "long+enough"))
        .await;
    assert_eq!(reused.status, 400);
    assert!(html(&reused).contains("not valid"));
}

#[tokio::test]
async fn an_expired_link_gets_its_own_page() {
    let (h, endpoints) = setup();
    endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    let token = h.last_token().unwrap();
    h.clock.advance(Duration::hours(24));

    let body = format!(
        "token={}&password=long+enough&password_confirmation=long+enough",
        token.expose_secret()
    );
    let expired = endpoints.submit_form(FORM, body.as_bytes()).await;
    assert_eq!(expired.status, 400);
    assert!(html(&expired).contains("expired"));
}

/// Refuses the next `busy_for` hashes as a full hashing queue would, then hashes for real.
struct BusyHasher {
    busy_for: std::sync::atomic::AtomicUsize,
    inner: password_setup_core::Argon2idHasher,
}

#[async_trait::async_trait]
impl password_setup_core::PasswordHasher for BusyHasher {
    async fn hash(
        &self,
        password: password_setup_core::NormalizedPassword,
    ) -> Result<password_setup_core::PasswordHash, password_setup_core::HashingError> {
        use std::sync::atomic::Ordering;
        if self
            .busy_for
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(password_setup_core::HashingError::Busy {
                retry_after: Duration::milliseconds(1_500),
            });
        }
        self.inner.hash(password).await
    }
}

#[tokio::test]
async fn a_busy_hasher_answers_501_with_retry_after_and_the_link_still_works() {
    let h = Harness::new();
    h.add_user("alice", "alice@example.test");
    let service = password_setup_core::PasswordSetup::builder()
        .store(h.store.clone())
        .mailer(h.mailer.clone())
        .identity_provider(h.identity.clone())
        .clock(h.clock.clone())
        .hasher(std::sync::Arc::new(BusyHasher {
            busy_for: 2.into(),
            inner: password_setup_core::Argon2idHasher::new(
                password_setup_core::HashingParams::INSECURE_FOR_TESTS,
            )
            .unwrap(),
        }))
        .public_base_url(Harness::BASE_URL)
        .build()
        .unwrap();
    let endpoints = SetupEndpoints::new(service);
    endpoints
        .request_password(Some(b"Bearer bearer-alice"))
        .await;
    let token = h.last_token().unwrap();

    let busy = endpoints
        .confirm(
            JSON_API,
            &confirm_body(token.expose_secret(), "long enough"),
        )
        .await;
    assert_eq!(busy.status, 501);
    assert_eq!(busy.header("retry-after"), Some("2"));
    let error = &json(&busy)["errors"][0];
    assert_eq!(error["code"], "server-busy");
    assert_eq!(error["meta"]["retryAfterSeconds"], 2);

    let form = format!(
        "token={}&password=long+enough&password_confirmation=long+enough",
        token.expose_secret()
    );
    let busy_page = endpoints.submit_form(FORM, form.as_bytes()).await;
    assert_eq!(busy_page.status, 501);
    assert_eq!(busy_page.header("retry-after"), Some("2"));
    let page = html(&busy_page);
    assert!(page.contains("try again in 2 seconds"), "{page}");
    assert!(
        page.contains(token.expose_secret()),
        "the form keeps the link"
    );
    assert!(matches!(
        h.store.state(&UserId::new("alice")),
        Some(SetupState::Pending(_))
    ));

    let done = endpoints.submit_form(FORM, form.as_bytes()).await;
    assert_eq!(done.status, 200);
    assert!(h.password_verifies("alice", "long enough"));
}
