//! Counts the round trips each store call makes, through a TCP proxy between the pool and
//! PostgreSQL, so the numbers in the crate documentation are measured rather than claimed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use password_setup_core::{
    HashingParams, NewPassword, PasswordSetup, SetupToken, UserStore as _, hash_password,
    normalize_password,
};
use password_setup_memory::{BearerTokenTable, RecordingMailer};
use password_setup_postgres::PgUserStore;
use password_setup_testkit::conformance::{InitialHash, StoreFixture as _};
use password_setup_testkit::{Harness, ManualClock};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{PgFixture, UsersTable};

/// Client-to-server turns: a round trip is the client speaking after the server answered.
#[derive(Default)]
struct Turns {
    round_trips: AtomicU64,
    client_spoke_last: AtomicBool,
}

impl Turns {
    /// The turns since the last call, once the pool has the connection back: sqlx pings a
    /// connection in the background when it is released, and that ping belongs to the call
    /// that released it.
    async fn take(&self, pool: &PgPool) -> u64 {
        while pool.num_idle() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.round_trips.swap(0, Ordering::SeqCst)
    }
}

/// Accepts connections on a local port and forwards them to `upstream`, counting turns.
async fn counting_proxy(upstream: String, turns: Arc<Turns>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, turns.clone(), true));
            tokio::spawn(pipe(server_read, client_write, turns.clone(), false));
        }
    });
    port
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    turns: Arc<Turns>,
    from_client: bool,
) {
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let client_spoke_before = turns.client_spoke_last.swap(from_client, Ordering::SeqCst);
        if from_client && !client_spoke_before {
            turns.round_trips.fetch_add(1, Ordering::SeqCst);
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
}

async fn measure(test_before_acquire: bool) -> Vec<(&'static str, u64)> {
    let fixture = PgFixture::new(UsersTable::ExistingUuid).await;
    let turns = Arc::new(Turns::default());
    let options = fixture.db.options();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let port = counting_proxy(upstream, turns.clone()).await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(test_before_acquire)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.port(port))
        .await
        .unwrap();
    let store = PgUserStore::new(pool.clone(), &fixture.config).unwrap();
    let mailer = Arc::new(RecordingMailer::new());
    let service = PasswordSetup::builder()
        .store(Arc::new(store.clone()))
        .mailer(mailer.clone())
        .identity_provider(Arc::new(BearerTokenTable::new()))
        .clock(Arc::new(ManualClock::new(Harness::START)))
        .hashing_params(HashingParams::INSECURE_FOR_TESTS)
        .public_base_url(Harness::BASE_URL)
        .build()
        .unwrap();
    let password = NewPassword::new("correct-horse-battery");
    let has_password = hash_password(
        &normalize_password("an-existing-password"),
        &HashingParams::INSECURE_FOR_TESTS,
    )
    .unwrap();

    // Each statement is prepared on its first use on a connection; measure after that.
    let warm_up = fixture
        .create_user("warm@example.test", InitialHash::Null)
        .await;
    mailer.set_failing(true);
    let _ = service.request_for(&warm_up).await.unwrap_err();
    mailer.set_failing(false);
    service.request_for(&warm_up).await.unwrap();
    let token = SetupToken::from_submitted(mailer.last().unwrap().token.expose_secret());
    service.confirm(&token, &password).await.unwrap();

    let user = fixture
        .create_user("measured@example.test", InitialHash::Null)
        .await;
    let with_password = fixture
        .create_user("set@example.test", InitialHash::Set(has_password))
        .await;
    let mut counts = Vec::new();
    turns.take(&pool).await;

    store.load(&user).await.unwrap();
    counts.push(("load", turns.take(&pool).await));
    service.request_for(&user).await.unwrap();
    counts.push(("request that mails a link", turns.take(&pool).await));
    service.request_for(&user).await.unwrap();
    counts.push(("request inside the cooldown", turns.take(&pool).await));
    let _ = service.request_for(&with_password).await.unwrap_err();
    counts.push(("request by a user with a password", turns.take(&pool).await));
    let token = SetupToken::from_submitted(mailer.last().unwrap().token.expose_secret());
    service.confirm(&token, &password).await.unwrap();
    counts.push(("confirm", turns.take(&pool).await));
    let _ = service.confirm(&token, &password).await.unwrap_err();
    counts.push(("confirm with a used token", turns.take(&pool).await));

    let failing = fixture
        .create_user("failing@example.test", InitialHash::Null)
        .await;
    mailer.set_failing(true);
    let _ = service.request_for(&failing).await.unwrap_err();
    counts.push(("request whose email fails", turns.take(&pool).await));

    pool.close().await;
    fixture.finish().await;
    counts
}

/// Store calls per operation, each one statement.
const CALLS: [(&str, u64); 7] = [
    ("load", 1),
    ("request that mails a link", 2),
    ("request inside the cooldown", 1),
    ("request by a user with a password", 1),
    ("confirm", 2),
    ("confirm with a used token", 1),
    ("request whose email fails", 3),
];

fn expected(turns_per_call: u64) -> Vec<(&'static str, u64)> {
    CALLS
        .iter()
        .map(|(operation, calls)| (*operation, calls * turns_per_call))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_call_is_one_statement_round_trip_plus_the_release_ping() {
    let counts = measure(false).await;
    println!("round trips with test_before_acquire(false): {counts:?}");
    assert_eq!(counts, expected(2), "statement + sqlx's ping on release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_liveness_ping_adds_one_round_trip_per_call() {
    let counts = measure(true).await;
    println!("round trips with test_before_acquire(true): {counts:?}");
    assert_eq!(
        counts,
        expected(3),
        "ping on acquire + statement + ping on release"
    );
}
