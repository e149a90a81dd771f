//! Failures of the database: whatever breaks, the service answers 501 and nothing is left
//! half-written.

use std::sync::Arc;
use std::time::Duration;

use password_setup_core::{
    HashingParams, NewPassword, PasswordSetup, SetupError, SetupState, SetupToken, UserId,
    UserStore,
};
use password_setup_memory::{BearerTokenTable, RecordingMailer};
use password_setup_postgres::{Error, PgUserStore};
use password_setup_testkit::conformance::{InitialHash, StoreFixture as _};
use password_setup_testkit::{Harness, ManualClock};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::support::{PgFixture, UsersTable};

const PASSWORD: &str = "correct-horse-battery";

fn service(store: Arc<dyn UserStore>, mailer: Arc<RecordingMailer>) -> PasswordSetup {
    PasswordSetup::builder()
        .store(store)
        .mailer(mailer)
        .identity_provider(Arc::new(BearerTokenTable::new()))
        .clock(Arc::new(ManualClock::new(Harness::START)))
        .hashing_params(HashingParams::INSECURE_FOR_TESTS)
        .public_base_url(Harness::BASE_URL)
        .build()
        .unwrap()
}

fn assert_store_failure(result: Result<impl std::fmt::Debug, SetupError>, what: &str) {
    match result {
        Err(error @ SetupError::Store(_)) => {
            assert_eq!(error.status(), 501, "{what}");
            assert_eq!(error.code(), "store-unavailable", "{what}");
        }
        other => panic!("{what}: expected a store failure (501), got {other:?}"),
    }
}

/// A user with one mailed link, through a healthy store.
async fn pending_user(fixture: &PgFixture) -> (UserId, SetupToken) {
    let user = fixture
        .create_user("victim@example.test", InitialHash::Null)
        .await;
    let mailer = Arc::new(RecordingMailer::new());
    let healthy = service(Arc::new(fixture.pg_store().await), mailer.clone());
    healthy.request_for(&user).await.unwrap();
    let token = SetupToken::from_submitted(mailer.last().unwrap().token.expose_secret());
    (user, token)
}

/// The user's state and hash are what they were before the failures.
async fn assert_untouched(fixture: &PgFixture, user: &UserId, token: &SetupToken) {
    let store = fixture.pg_store().await;
    let state = store.load(user).await.unwrap().unwrap().state;
    assert!(
        matches!(state, SetupState::Pending(p) if Some(p.digest) == token.digest()),
        "the pending link is unchanged: {state:?}"
    );
    assert_eq!(
        fixture.stored_hash(user).await,
        None,
        "no password was written"
    );
    assert_eq!(fixture.pending_rows(user).await, (1, 1));
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_answers_501() {
    let fixture = PgFixture::new(UsersTable::FreshDefault).await;
    let (user, token) = pending_user(&fixture).await;

    // A port that was just free: nothing listens there.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy_with(fixture.db.options().port(closed_port));
    let store = PgUserStore::new(unreachable, &fixture.config).unwrap();
    let mailer = Arc::new(RecordingMailer::new());
    let broken = service(Arc::new(store.clone()), mailer.clone());

    assert_store_failure(broken.request_for(&user).await, "request");
    assert_store_failure(
        broken.confirm(&token, &NewPassword::new(PASSWORD)).await,
        "confirm",
    );
    assert_eq!(mailer.count(), 0, "nothing is mailed without a store");
    assert!(matches!(store.migrate().await, Err(Error::Database(_))));
    assert!(matches!(
        store
            .purge_expired(Harness::START, &Default::default())
            .await,
        Err(Error::Database(_))
    ));

    assert_untouched(&fixture, &user, &token).await;
    fixture.finish().await;
}

/// A one-connection pool whose connections the test can find and kill by application name.
async fn victim_pool(fixture: &PgFixture, name: &str, statement_timeout_ms: Option<u32>) -> PgPool {
    let mut options = fixture.db.options().application_name(name);
    if let Some(ms) = statement_timeout_ms {
        options = options.options([("statement_timeout", ms.to_string())]);
    }
    PgPoolOptions::new()
        .max_connections(1)
        // Hand out the dead connection instead of replacing it quietly: the failure is the
        // point of the test.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .unwrap()
}

/// Kills the backends of the connections named `application_name` and waits until they are
/// gone; returns how many there were.
async fn terminate(fixture: &PgFixture, application_name: &str) -> i64 {
    let killed = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(application_name)
    .fetch_one(&fixture.db.admin)
    .await
    .unwrap();
    for _ in 0..250 {
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(application_name)
                .fetch_one(&fixture.db.admin)
                .await
                .unwrap();
        if alive == 0 {
            return killed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the terminated backends of {application_name} did not go away");
}

/// Waits until the pool holds its connection idle: sqlx checks a connection in the background
/// when it is released, and a check that runs after the kill would replace it quietly.
async fn wait_until_idle(pool: &PgPool) {
    while pool.num_idle() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_connection_answers_501_and_writes_nothing() {
    let fixture = PgFixture::new(UsersTable::ExistingUuid).await;
    let (user, token) = pending_user(&fixture).await;
    let name = format!("victim-{}", fixture.db.schema);
    let pool = victim_pool(&fixture, &name, None).await;
    let store = PgUserStore::new(pool.clone(), &fixture.config).unwrap();
    let victim = service(Arc::new(store), Arc::new(RecordingMailer::new()));
    // Inside the cooldown: this only warms the connection up; the mailed link stays current.
    victim.request_for(&user).await.unwrap();
    wait_until_idle(&pool).await;

    assert_eq!(
        terminate(&fixture, &name).await,
        1,
        "the pooled connection is killed"
    );
    assert_store_failure(
        victim.confirm(&token, &NewPassword::new(PASSWORD)).await,
        "confirm on a killed connection",
    );
    assert_untouched(&fixture, &user, &token).await;

    // The pool replaces the dead connection and the same link then works.
    victim
        .confirm(&token, &NewPassword::new(PASSWORD))
        .await
        .expect("the link works once the pool reconnects");
    pool.close().await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_killed_in_the_middle_of_its_statement_writes_nothing() {
    let fixture = PgFixture::new(UsersTable::ExistingBigInt).await;
    let (user, token) = pending_user(&fixture).await;
    let name = format!("midway-{}", fixture.db.schema);
    let pool = victim_pool(&fixture, &name, None).await;
    let victim = Arc::new(service(
        Arc::new(PgUserStore::new(pool.clone(), &fixture.config).unwrap()),
        Arc::new(RecordingMailer::new()),
    ));

    // Another transaction holds the user's row, so the confirm's statement blocks inside.
    let mut blocker = fixture.db.admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {}.members WHERE member_no = {} FOR UPDATE",
        fixture.db.schema,
        user.as_str()
    )))
    .execute(&mut *blocker)
    .await
    .unwrap();
    let confirm = tokio::spawn({
        let (victim, token) = (victim.clone(), token.clone());
        async move { victim.confirm(&token, &NewPassword::new(PASSWORD)).await }
    });
    wait_until_blocked(&fixture, &name).await;

    assert_eq!(terminate(&fixture, &name).await, 1);
    assert_store_failure(confirm.await.unwrap(), "confirm killed mid-statement");
    blocker.rollback().await.unwrap();
    assert_untouched(&fixture, &user, &token).await;

    victim
        .confirm(&token, &NewPassword::new(PASSWORD))
        .await
        .expect("the link still works");
    pool.close().await;
    fixture.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_timeout_answers_501_and_writes_nothing() {
    let fixture = PgFixture::new(UsersTable::FreshDefault).await;
    let (user, token) = pending_user(&fixture).await;
    let other = fixture
        .create_user("other@example.test", InitialHash::Null)
        .await;
    let name = format!("slow-{}", fixture.db.schema);
    let pool = victim_pool(&fixture, &name, Some(300)).await;
    let mailer = Arc::new(RecordingMailer::new());
    let victim = service(
        Arc::new(PgUserStore::new(pool.clone(), &fixture.config).unwrap()),
        mailer.clone(),
    );

    let mut blocker = fixture.db.admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {}.users WHERE id IN ('{}', '{}') FOR UPDATE",
        fixture.db.schema,
        user.as_str(),
        other.as_str()
    )))
    .execute(&mut *blocker)
    .await
    .unwrap();

    assert_store_failure(
        victim.confirm(&token, &NewPassword::new(PASSWORD)).await,
        "confirm past the statement timeout",
    );
    assert_store_failure(victim.request_for(&other).await, "request past the timeout");
    blocker.rollback().await.unwrap();

    assert_eq!(
        mailer.count(),
        0,
        "a request that could not write mails nothing"
    );
    assert_eq!(
        fixture.pending_rows(&other).await,
        (0, 0),
        "and leaves no pending row"
    );
    assert_untouched(&fixture, &user, &token).await;
    pool.close().await;
    fixture.finish().await;
}

/// Waits until the connection named `application_name` waits for a lock.
async fn wait_until_blocked(fixture: &PgFixture, application_name: &str) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(application_name)
        .fetch_one(&fixture.db.admin)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the confirm never blocked on the user's row");
}
