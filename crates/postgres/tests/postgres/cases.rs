//! The field cases that concern the database, on each kind of users table: C17 (which stored
//! hashes mean "no password") and C04 (simultaneous requests colliding in the database).

use std::sync::Arc;

use password_setup_core::{
    BearerCredential, HashingParams, NewPassword, PasswordSetup, SetupError, SetupState,
    SetupToken, UserId, UserStore as _, hash_password, normalize_password,
};
use password_setup_memory::{BearerTokenTable, RecordingMailer};
use password_setup_testkit::conformance::{InitialHash, StoreFixture as _};
use password_setup_testkit::{Harness, ManualClock};
use tokio::sync::Barrier;

use crate::support::{PgFixture, UsersTable};

/// A service over a store with a pool of its own, as one server process would run it.
struct Instance {
    service: PasswordSetup,
    mailer: Arc<RecordingMailer>,
    identity: Arc<BearerTokenTable>,
}

impl Instance {
    async fn new(fixture: &PgFixture, clock: Arc<ManualClock>) -> Self {
        let mailer = Arc::new(RecordingMailer::new());
        let identity = Arc::new(BearerTokenTable::new());
        let service = PasswordSetup::builder()
            .store(Arc::new(fixture.pg_store().await))
            .mailer(mailer.clone())
            .identity_provider(identity.clone())
            .clock(clock)
            .hashing_params(HashingParams::INSECURE_FOR_TESTS)
            .public_base_url(Harness::BASE_URL)
            .build()
            .unwrap();
        Self {
            service,
            mailer,
            identity,
        }
    }

    fn tokens_for(&self, user: &UserId) -> Vec<SetupToken> {
        self.mailer
            .sent()
            .iter()
            .filter(|email| email.account.id == *user)
            .map(|email| SetupToken::from_submitted(email.token.expose_secret()))
            .collect()
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Harness::START))
}

async fn c17(table: UsersTable) {
    let fixture = PgFixture::new(table).await;
    let instance = Instance::new(&fixture, clock()).await;
    let real_hash = hash_password(
        &normalize_password("an-existing-password"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .unwrap();

    for (what, hash) in [("NULL", InitialHash::Null), ("empty", InitialHash::Empty)] {
        let user = fixture
            .create_user(&format!("{what}@example.test"), hash)
            .await;
        let sent = instance.mailer.count();
        let accepted = instance.service.request_for(&user).await;
        assert!(
            accepted.is_ok_and(|a| a.email_sent),
            "{what} hash: 202 with an email"
        );
        assert_eq!(instance.mailer.count(), sent + 1, "{what} hash: one email");
        assert_eq!(
            fixture.pending_rows(&user).await,
            (1, 1),
            "{what} hash: one pending link"
        );
    }

    let user = fixture
        .create_user("has-one@example.test", InitialHash::Set(real_hash.clone()))
        .await;
    let sent = instance.mailer.count();
    let refused = instance.service.request_for(&user).await.unwrap_err();
    assert!(
        matches!(refused, SetupError::PasswordAlreadySet),
        "{refused:?}"
    );
    assert_eq!(refused.status(), 409);
    assert_eq!(
        instance.mailer.count(),
        sent,
        "no email for a user with a password"
    );
    assert_eq!(
        fixture.pending_rows(&user).await,
        (0, 0),
        "no pending state"
    );
    assert_eq!(
        fixture.stored_hash(&user).await.as_deref(),
        Some(real_hash.as_phc())
    );

    let unlinked = fixture
        .create_user("unlinked@example.test", InitialHash::Null)
        .await;
    instance
        .identity
        .insert_without_linked_identity("unlinked-bearer", unlinked.clone());
    let refused = instance
        .service
        .request(Some(&BearerCredential::new("unlinked-bearer")))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.code(), "missing-linked-identity");
    assert_eq!(fixture.pending_rows(&unlinked).await, (0, 0));

    fixture.finish().await;
}

async fn c04(table: UsersTable) {
    let fixture = PgFixture::new(table).await;
    let clock = clock();
    let first = Arc::new(Instance::new(&fixture, clock.clone()).await);
    let second = Arc::new(Instance::new(&fixture, clock.clone()).await);
    let store = fixture.pg_store().await;

    for round in 0..20 {
        let user = fixture
            .create_user(&format!("c04-{round}@example.test"), InitialHash::Null)
            .await;
        let barrier = Arc::new(Barrier::new(2));
        let tasks = [first.clone(), second.clone()].map(|instance| {
            let (barrier, user) = (barrier.clone(), user.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                instance.service.request_for(&user).await
            })
        });
        for task in tasks {
            let answer = task.await.unwrap();
            assert!(answer.is_ok(), "round {round}: no 5xx, got {answer:?}");
        }

        assert_eq!(
            fixture.pending_rows(&user).await,
            (1, 1),
            "round {round}: one pending state"
        );
        let SetupState::Pending(pending) = store.load(&user).await.unwrap().unwrap().state else {
            panic!("round {round}: the user is pending");
        };
        let mailed: Vec<_> = first
            .tokens_for(&user)
            .into_iter()
            .chain(second.tokens_for(&user))
            .collect();
        assert!(!mailed.is_empty(), "round {round}: a link was mailed");
        let password = NewPassword::new("correct-horse-battery");
        for token in mailed.iter().filter(|t| t.digest() != Some(pending.digest)) {
            let refused = first.service.confirm(token, &password).await.unwrap_err();
            assert!(
                matches!(refused, SetupError::TokenInvalid),
                "round {round}: {refused:?}"
            );
        }
        let live = mailed
            .iter()
            .find(|t| t.digest() == Some(pending.digest))
            .expect("the pending link was mailed");
        second.service.confirm(live, &password).await.unwrap();
    }
    drop(store);
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c17_null_and_empty_hashes_get_a_link_with_text_ids() {
    c17(UsersTable::FreshDefault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c17_null_and_empty_hashes_get_a_link_with_uuid_ids() {
    c17(UsersTable::ExistingUuid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c17_null_and_empty_hashes_get_a_link_with_bigint_ids() {
    c17(UsersTable::ExistingBigInt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c04_simultaneous_requests_leave_one_pending_link_with_text_ids() {
    c04(UsersTable::FreshDefault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c04_simultaneous_requests_leave_one_pending_link_with_uuid_ids() {
    c04(UsersTable::ExistingUuid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c04_simultaneous_requests_leave_one_pending_link_with_bigint_ids() {
    c04(UsersTable::ExistingBigInt).await;
}
