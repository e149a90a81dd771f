//! Tokens and passwords never reach logs, span fields, error bodies or `Debug` output, whatever
//! path a request or confirm takes (field case C09).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::sync::{Arc, Mutex};

use password_setup_core::{BuildError, ErrorResponse, PasswordSetup};
use password_setup_memory::{BearerTokenTable, MemoryUserStore, SystemClock};
use password_setup_testkit::Harness;
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLog {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn c09_no_token_or_password_in_logs_bodies_or_debug_output() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(log.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    let mut seen = Vec::new();

    // A request whose mailer fails, then one that works.
    h.mailer.fail_next(1);
    let failed = h.request(&alice).await.unwrap_err();
    seen.push(format!("{failed:?} {failed}"));
    seen.push(String::from_utf8(ErrorResponse::from_error(&failed).body()).unwrap());
    assert_eq!(h.mailer.count(), 0, "a failed send delivers nothing");
    let failed_token = h.mailer.attempted()[0].token.clone();

    h.request(&alice).await.unwrap();
    let token = h.last_token().unwrap();
    let email = h.mailer.last().unwrap();
    seen.push(format!("{email:?}"));

    // A failed confirm (policy), then a successful one.
    let refused_password = "short";
    let refused = h.confirm(&token, refused_password).await.unwrap_err();
    seen.push(format!("{refused:?} {refused}"));
    seen.push(String::from_utf8(ErrorResponse::from_error(&refused).body()).unwrap());

    let password = "a secret nobody logs 42";
    let completed = h.confirm(&token, password).await.unwrap();
    seen.push(format!("{completed:?}"));
    seen.push(format!("{:?}", h.service));
    seen.push(format!("{:?}", h.store));

    let logged = log.text();
    assert!(
        logged.contains("setup email sent"),
        "the capture works: {logged}"
    );
    assert!(logged.contains("password set"));
    for text in seen.iter().chain([&logged]) {
        assert!(
            !text.contains(failed_token.expose_secret()),
            "unsent token leaked: {text}"
        );
        assert!(
            !text.contains(token.expose_secret()),
            "token leaked: {text}"
        );
        assert!(!text.contains(password), "password leaked: {text}");
        assert!(
            !text.contains(&format!("\"{refused_password}\"")),
            "password leaked: {text}"
        );
        assert!(!text.contains("$argon2id$"), "hash leaked: {text}");
    }
}

#[test]
fn c09_a_missing_mailer_is_an_error_not_a_fallback() {
    let built = PasswordSetup::builder()
        .store(Arc::new(MemoryUserStore::new()))
        .identity_provider(Arc::new(BearerTokenTable::new()))
        .clock(Arc::new(SystemClock))
        .public_base_url("https://accounts.example.test")
        .build();

    assert!(matches!(built, Err(BuildError::Missing("mailer"))));
}
