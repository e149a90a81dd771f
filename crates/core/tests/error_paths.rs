//! Failures of the ports that real adapters cannot produce on demand, played with mocks: what
//! the caller gets, and what state is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use password_setup_core::{
    BearerCredential, ErrorResponse, HashingError, HashingParams, IdentityError, MailError,
    NewPassword, PasswordSetup, SetupError, SetupState, StoreError, UserId,
};
use password_setup_memory::{BearerTokenTable, MemoryUserStore, RecordingMailer};
use password_setup_testkit::mocks::{
    MockIdentityProvider, MockMailer, MockPasswordHasher, MockUserStore,
};
use password_setup_testkit::{Harness, ManualClock};

fn alice() -> UserId {
    UserId::new("alice")
}

/// A service over the given ports; unmocked ports are in-memory ones that know alice.
fn service(
    store: Arc<dyn password_setup_core::UserStore>,
    mailer: Arc<dyn password_setup_core::Mailer>,
    identity: Arc<dyn password_setup_core::IdentityProvider>,
) -> PasswordSetup {
    PasswordSetup::builder()
        .store(store)
        .mailer(mailer)
        .identity_provider(identity)
        .clock(Arc::new(ManualClock::new(Harness::START)))
        .hashing_params(HashingParams::INSECURE_FOR_TESTS)
        .public_base_url(Harness::BASE_URL)
        .build()
        .unwrap()
}

fn known_identity() -> Arc<BearerTokenTable> {
    let identity = BearerTokenTable::new();
    identity.insert("alice-token", alice());
    Arc::new(identity)
}

fn store_with_alice() -> Arc<MemoryUserStore> {
    let store = MemoryUserStore::new();
    store.insert_user(
        alice(),
        password_setup_core::EmailAddress::new("alice@example.test"),
    );
    Arc::new(store)
}

/// A mock store whose reads answer with alice's real record; writes are up to each test.
async fn mock_store_that_reads_alice() -> MockUserStore {
    use password_setup_core::UserStore as _;
    let record = store_with_alice().load(&alice()).await.unwrap();
    let mut store = MockUserStore::new();
    store.expect_load().returning(move |_| Ok(record.clone()));
    store
}

fn credential() -> BearerCredential {
    BearerCredential::new("alice-token")
}

fn store_failure() -> StoreError {
    StoreError::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connection timed out",
    ))
}

#[tokio::test]
async fn a_failed_send_leaves_no_pending_token_and_a_retry_sends_a_working_link() {
    let store = store_with_alice();
    let mut mailer = MockMailer::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(std::sync::Mutex::new(None));
    {
        let attempts = attempts.clone();
        let delivered = delivered.clone();
        mailer.expect_send().times(2).returning(move |email| {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(MailError::new(std::io::Error::other(
                    "421 service not available",
                )))
            } else {
                *delivered.lock().unwrap() = Some(email.token.clone());
                Ok(())
            }
        });
    }
    let service = service(store.clone(), Arc::new(mailer), known_identity());

    let failed = service.request(Some(&credential())).await.unwrap_err();
    assert!(matches!(failed, SetupError::Mail(_)));
    assert_eq!(ErrorResponse::from_error(&failed).status, 501);
    assert_eq!(store.state(&alice()), Some(SetupState::NoPassword));

    let retried = service.request(Some(&credential())).await.unwrap();
    assert!(retried.email_sent);
    let token = delivered.lock().unwrap().clone().unwrap();
    service
        .confirm(&token, &NewPassword::new("correct horse battery"))
        .await
        .unwrap();
}

#[tokio::test]
async fn c14b_a_store_that_fails_the_write_sends_no_email() {
    let mut store = mock_store_that_reads_alice().await;
    store
        .expect_issue()
        .times(1)
        .returning(|_, _, _| Err(store_failure()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    let service = service(Arc::new(store), Arc::new(mailer), known_identity());

    let failed = service.request(Some(&credential())).await.unwrap_err();

    assert!(matches!(failed, SetupError::Store(_)));
    let response = ErrorResponse::from_error(&failed);
    assert_eq!(response.status, 501);
    assert_eq!(response.document.errors[0].code, "store-unavailable");
}

#[tokio::test]
async fn a_store_that_cannot_be_read_answers_501_and_mails_nothing() {
    let mut store = MockUserStore::new();
    store.expect_load().returning(|_| Err(store_failure()));
    store.expect_issue().never();
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    let service = service(Arc::new(store), Arc::new(mailer), known_identity());

    let failed = service.request(Some(&credential())).await.unwrap_err();

    assert_eq!(failed.status(), 501);
    assert!(failed.to_string().contains("timed out"));
}

#[tokio::test]
async fn when_taking_back_an_unsent_link_also_fails_the_send_failure_is_reported() {
    let mut store = mock_store_that_reads_alice().await;
    store
        .expect_issue()
        .returning(|_, _, _| Ok(password_setup_core::IssueOutcome::Issued));
    store
        .expect_withdraw()
        .times(1)
        .returning(|_, _| Err(store_failure()));
    let mut mailer = MockMailer::new();
    mailer
        .expect_send()
        .returning(|_| Err(MailError::new(std::io::Error::other("connection refused"))));
    let service = service(Arc::new(store), Arc::new(mailer), known_identity());

    let failed = service.request(Some(&credential())).await.unwrap_err();

    assert!(matches!(failed, SetupError::Mail(_)));
}

#[tokio::test]
async fn a_store_that_fails_to_complete_answers_501_and_the_token_stays_usable() {
    let real = store_with_alice();
    let mailer = Arc::new(RecordingMailer::new());
    service(real.clone(), mailer.clone(), known_identity())
        .request(Some(&credential()))
        .await
        .unwrap();
    let token = mailer.last().unwrap().token;

    // A store whose reads work but whose completing write fails.
    let mut store = MockUserStore::new();
    let reader = real.clone();
    store.expect_find_by_token().returning(move |digest| {
        use password_setup_core::UserStore as _;
        run_ready_future(reader.find_by_token(digest))
    });
    store
        .expect_complete()
        .times(1)
        .returning(|_, _, _| Err(store_failure()));
    let failing = service(Arc::new(store), mailer.clone(), known_identity());

    let failed = failing
        .confirm(&token, &NewPassword::new("correct horse battery"))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), "store-unavailable");

    service(real.clone(), mailer, known_identity())
        .confirm(&token, &NewPassword::new("correct horse battery"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_hasher_answers_501_and_the_token_stays_usable() {
    let h = Harness::new();
    let alice = h.add_user("alice", "alice@example.test");
    h.request(&alice).await.unwrap();
    let token = h.last_token().unwrap();
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .times(1)
        .returning(|_| Err(HashingError::Failed));
    let failing = PasswordSetup::builder()
        .store(h.store.clone())
        .mailer(h.mailer.clone())
        .identity_provider(h.identity.clone())
        .clock(h.clock.clone())
        .hasher(Arc::new(hasher))
        .public_base_url(Harness::BASE_URL)
        .build()
        .unwrap();

    let failed = failing
        .confirm(&token, &NewPassword::new("correct horse battery"))
        .await
        .unwrap_err();

    assert_eq!(failed.code(), "hashing-failed");
    assert_eq!(failed.status(), 501);
    h.confirm(&token, "correct horse battery").await.unwrap();
}

#[tokio::test]
async fn identity_failures_map_to_401_or_501_and_touch_no_store() {
    let cases = [
        (IdentityError::InvalidCredential, 401, "invalid-credentials"),
        (
            IdentityError::LinkedIdentityMissing,
            401,
            "missing-linked-identity",
        ),
        (
            IdentityError::Unavailable(Box::new(std::io::Error::other("idp down"))),
            501,
            "identity-unavailable",
        ),
    ];
    for (error, status, code) in cases {
        let mut identity = MockIdentityProvider::new();
        let error = std::sync::Mutex::new(Some(error));
        identity
            .expect_identify()
            .times(1)
            .returning(move |_| Err(error.lock().unwrap().take().unwrap()));
        let mut store = MockUserStore::new();
        store.expect_load().never();
        let service = service(
            Arc::new(store),
            Arc::new(RecordingMailer::new()),
            Arc::new(identity),
        );

        let failed = service.request(Some(&credential())).await.unwrap_err();
        let response = ErrorResponse::from_error(&failed);

        assert_eq!((response.status, failed.code()), (status, code));
        let challenge = response
            .headers
            .iter()
            .any(|(name, _)| *name == "WWW-Authenticate");
        assert_eq!(challenge, status == 401, "{code}");
    }
}

#[tokio::test]
async fn a_missing_credential_is_refused_without_asking_the_identity_provider() {
    let mut identity = MockIdentityProvider::new();
    identity.expect_identify().never();
    let service = service(
        store_with_alice(),
        Arc::new(RecordingMailer::new()),
        Arc::new(identity),
    );

    let failed = service.request(None).await.unwrap_err();

    assert_eq!(failed.code(), "missing-credentials");
    assert_eq!(failed.status(), 401);
}

#[tokio::test]
async fn an_unknown_user_gets_404() {
    let service = service(
        Arc::new(MemoryUserStore::new()),
        Arc::new(RecordingMailer::new()),
        known_identity(),
    );

    let failed = service.request(Some(&credential())).await.unwrap_err();

    assert_eq!((failed.status(), failed.code()), (404, "user-not-found"));
}

#[tokio::test]
async fn a_store_that_always_conflicts_ends_in_a_bounded_number_of_attempts() {
    let mut store = mock_store_that_reads_alice().await;
    store
        .expect_issue()
        .times(1..=16)
        .returning(|_, _, _| Ok(password_setup_core::IssueOutcome::Conflict));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();
    let service = service(Arc::new(store), Arc::new(mailer), known_identity());

    let failed = service.request(Some(&credential())).await.unwrap_err();

    assert!(matches!(failed, SetupError::Contention));
    assert_eq!(failed.status(), 501);
}

/// Runs a future that never waits (the in-memory store's) to completion inside a mock.
fn run_ready_future<F: std::future::Future>(future: F) -> F::Output {
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
